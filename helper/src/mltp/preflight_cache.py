"""A passed preflight, remembered on the agent so a build does not ask IAM's and
Service Quotas' control-plane APIs again for answers that only change when
someone edits a role, a quota or the config (docs/cli.md, "Preflight").

Those APIs are the slow and throttled ones: GetRole, SimulatePrincipalPolicy,
ListServiceQuotas took 1.4 s of the 2 s a push took to start its run, on every
build of every branch. A pass is remembered per key: the account, the region,
the caller's identity, the state machine, whether the build registers (branch
builds are warned differently), the role ARNs and the config's content together
with mltp's own code (definition_cache.key: what the state machine is rendered
from). A change to any of them (a new branch's state machine, an edited
config.yaml, another helper, other credentials) runs the preflight again; so
does an entry older than MLTP_PREFLIGHT_MAX_AGE hours (24 by default), and a
run that failed with an error the preflight checks for (`forget`).

Entries are small JSON files below the helper's cache root (MLTP_CACHE_DIR,
else ~/.cache/mltp), written to a temporary file and renamed; one that does not
parse or names another key is no pass. Nothing secret goes in them: ARNs, names
and a timestamp.
"""

import hashlib
import json
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Tuple

from . import owned
from .errors import InvalidInput

MODES = ("auto", "always", "never")
MAX_AGE_ENV = "MLTP_PREFLIGHT_MAX_AGE"
DEFAULT_MAX_AGE_HOURS = 24.0
FORMAT = 1

# What a failed run says when the preflight would have caught it: a permission,
# a role, a quota, a KMS key or a bucket (the checks of preflight.py).
_PREFLIGHT_ERRORS = re.compile(
    r"AccessDenied|not authorized|UnauthorizedOperation|ResourceLimitExceeded|LimitExceeded|quota|"
    r"NoSuchEntity|NoSuchBucket|AssumeRole|PassRole|KMS|KmsKey|ExpectedBucketOwner", re.IGNORECASE)


def folder() -> Path:
    from .definition_cache import cache_dir

    return cache_dir().parent / "preflight"


def max_age_seconds() -> float:
    """MLTP_PREFLIGHT_MAX_AGE in hours (0: never skip); a bad value is bad input (exit 2)."""
    text = os.environ.get(MAX_AGE_ENV, "").strip()
    if not text:
        return DEFAULT_MAX_AGE_HOURS * 3600
    try:
        hours = float(text)
    except ValueError:
        hours = -1.0
    if not hours >= 0 or hours == float("inf"):
        raise InvalidInput(f"{MAX_AGE_ENV}={text!r}: must be a number of hours, 0 or more (default 24)")
    return hours * 3600


@dataclass(frozen=True)
class Key:
    account: str
    region: str
    identity: str
    state_machine: str
    register: bool
    roles: Tuple[str, ...]
    config: str  # definition_cache.key: the config's content and mltp's code

    def digest(self) -> str:
        text = json.dumps([FORMAT, self.account, self.region, self.identity, self.state_machine, self.register,
                           list(self.roles), self.config], separators=(",", ":"))
        return hashlib.sha256(text.encode("utf-8")).hexdigest()

    def path(self) -> Path:
        return folder() / f"{_machine_prefix(self.region, self.state_machine)}-{self.digest()[:32]}.json"


def _machine_prefix(region: str, state_machine: str) -> str:
    """What every entry of one state machine starts with, so `forget` needs no AWS call."""
    return hashlib.sha256(f"{region}\0{state_machine}".encode("utf-8")).hexdigest()[:16]


def key(config, clients, state_machine: str, register: bool) -> Key:
    from .definition_cache import key as config_key

    aws = config.aws
    roles = tuple(r for r in (aws.states_role_arn, aws.sagemaker_role_arn, aws.branch_sagemaker_role_arn) if r)
    return Key(clients.account_id(), clients.region, clients.caller_arn(), state_machine, bool(register), roles,
               config_key(config))


def passed_ago(k: Key, now: Optional[float] = None) -> Optional[float]:
    """Seconds since this key's preflight passed, or None when it has no pass young enough."""
    limit = max_age_seconds()
    if limit <= 0:
        return None
    try:
        entry = json.loads(k.path().read_text(encoding="utf-8"))
        if entry.get("key") != k.digest():
            return None
        age = (time.time() if now is None else now) - float(entry["passed"])
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
    return age if 0 <= age < limit else None


def remember(k: Key) -> None:
    """Records a pass; a cache that cannot be written only costs the next build its preflight."""
    path = k.path()
    entry = {"key": k.digest(), "passed": time.time(), "account": k.account, "region": k.region,
             "identity": k.identity, "state_machine": k.state_machine, "roles": list(k.roles)}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        owned.write_atomic(path, json.dumps(entry).encode("utf-8"))
    except OSError:
        pass


def forget(region: str, state_machine: str) -> int:
    """Drops every remembered pass of this state machine (any identity or config); how many."""
    dropped = 0
    try:
        entries = list(folder().glob(f"{_machine_prefix(region, state_machine)}-*.json"))
    except OSError:
        return 0
    for path in entries:
        try:
            path.unlink()
            dropped += 1
        except OSError:
            continue
    return dropped


def would_have_caught(text: Optional[str]) -> bool:
    """Whether a failure's text is one the preflight checks for (a permission, role, quota, key, bucket)."""
    return bool(text) and bool(_PREFLIGHT_ERRORS.search(text))


def age_text(seconds: float) -> str:
    if seconds < 90:
        return f"{int(seconds)} s"
    if seconds < 5400:
        return f"{int(round(seconds / 60))} min"
    return f"{seconds / 3600:.1f} h"
