"""Who the credentials belong to, remembered per access key, so each verb of a
build does not ask STS again (aws.Clients.account_id: the account goes in
every S3 call as ExpectedBucketOwner, the caller's ARN into the preflight).

An access key id belongs to one identity for its whole life: a long-term key
to its user, a temporary one to the role session that was issued it. So
GetCallerIdentity's answer for a key id never changes, and remembering it
changes no check: every S3 call still names the expected owner, and
credentials that have expired or been revoked since are refused by the first
call that uses them, with the same message (aws.explain). What is saved is
one client and one round trip per process, a few percent of a no-op `mltp sync`.

An entry is a small JSON file below the helper's cache root (MLTP_CACHE_DIR,
else ~/.cache/mltp), named by the SHA-256 of the endpoint and the key id
(neither is written in clear), holding that digest, the account and the ARN:
nothing secret. One that does not parse or names another key is ignored and
written again. Entries are written to a temporary file and renamed; entries
unused for a week are removed when a new one is written (temporary keys
rotate every few hours). The local emulator's identities are not kept: each
local run has an emulator of its own.
"""

import hashlib
import json
import os
import time
from pathlib import Path
from typing import Dict, Optional

from . import owned

FORMAT = 1
KEEP_DAYS = 7


def folder() -> Path:
    from .definition_cache import cache_dir

    return cache_dir().parent / "callers"


def key(session, endpoint_url: Optional[str]) -> Optional[str]:
    """The entry's key for the session's credentials; None when there are none
    to tell (STS is then asked, and says why not)."""
    try:
        credentials = session.get_credentials()
        access_key = credentials.get_frozen_credentials().access_key if credentials is not None else None
    except Exception:  # a broken profile: GetCallerIdentity fails with the reason, as before
        return None
    if not access_key:
        return None
    return hashlib.sha256(f"{FORMAT}\0{endpoint_url or ''}\0{access_key}".encode("utf-8")).hexdigest()


def read(digest: str) -> Optional[Dict[str, str]]:
    """{"account": ..., "caller": ...} remembered for this key, or None."""
    path = folder() / f"{digest}.json"
    try:
        entry = json.loads(path.read_text(encoding="utf-8"))
        if entry.get("key") != digest or not str(entry["account"]).isdigit():
            return None
        found = {"account": str(entry["account"]), "caller": str(entry.get("caller", ""))}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
    try:
        os.utime(path)  # in use: not removed with the unused ones
    except OSError:
        pass
    return found


def write(digest: str, account: str, caller: str) -> None:
    """Remembers an answer; a cache that cannot be written only costs the next verb a call."""
    target = folder()
    path = target / f"{digest}.json"
    try:
        target.mkdir(parents=True, exist_ok=True)
        owned.write_atomic(path, json.dumps({"key": digest, "account": account, "caller": caller}).encode("utf-8"),
                           mode=0o600)
    except OSError:
        return
    _remove_unused(target, keep=path)


def _remove_unused(target: Path, keep: Path) -> None:
    limit = time.time() - KEEP_DAYS * 86400
    try:
        entries = list(target.iterdir())
    except OSError:
        return
    for entry in entries:
        try:
            if entry != keep and entry.stat().st_mtime < limit:
                entry.unlink()
        except OSError:
            pass
