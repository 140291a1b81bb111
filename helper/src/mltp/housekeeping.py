"""Housekeeping: what runs leave behind, on this machine and on AWS.

Locally, every `--local` run leaves its jobs' /opt/ml trees in `.mltp/work/<run>/`
(a few MB each): only the newest `KEEP_WORK_RUNS` are kept, and `mltp clean`
empties the folder. The reports in `.mltp/runs/` stay: they are small and are
what people look at.

On AWS, `mltp prune` finds what nothing needs any more:
- branch state machines (`<name>--<branch>`, never the default `<name>`) with no
  execution started or ended within the period and none running (a merged or
  abandoned branch; a training job may run for 28 days, so a run that started
  long ago and still runs, or ended yesterday, keeps its state machine);
- code prefixes that no kept run references, each judged on its own: the default
  branch's `<prefix>/<name>/code/<hash>/` and every branch's or pull request's
  `<prefix>/<name>/code/branches/<slug>/<hash>/` (naming.code_prefix). One is kept
  while it is the input of any execution of a state machine that stays, the code
  of any registered model package (its serving container loads that code), or
  written within the period (a build may be about to start on it).
It lists them, and deletes them only with `--yes`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Callable, List, Optional, Set

from . import owned
from .errors import InvalidInput

KEEP_WORK_RUNS = 5
WORK_DIR = Path(".mltp") / "work"
BRANCHES = "branches/"  # naming.code_prefix: `code/branches/<slug>/<hash>/` for any branch but the default
# After the model's '<prefix>/<name>/code/' in a run's input or a package's environment:
# the code prefix's path under it, '<hash>' or 'branches/<slug>/<hash>' (naming.code_prefix).
_CODE_PATH = r"((?:branches/[^/]+/)?[0-9a-f]+)/"


def _code_pattern(root: str) -> "re.Pattern[str]":
    return re.compile(re.escape(root) + _CODE_PATH)


# --------------------------------------------------------------------------- local


def trim_work(repo: Path, keep: int = KEEP_WORK_RUNS, current: Optional[str] = None) -> List[Path]:
    """Delete all but the newest `keep` run folders of `.mltp/work/` (`current`
    counts as the newest, whether it exists yet or not). Returns what went.
    A symlinked `.mltp` or `.mltp/work` is refused (exit 2), and a link inside
    is not a run folder: nothing outside the repo's own folder is deleted."""
    from .locks import run_in_progress

    work = owned.owned_dir(repo, "work")
    if not work.is_dir():
        return []
    runs = sorted((p for p in work.iterdir() if p.is_dir() and not p.is_symlink() and p.name != current),
                  key=lambda p: p.stat().st_mtime, reverse=True)
    room = keep - 1 if current else keep
    # Another local run of the repo still working in its folder keeps it (locks.py).
    gone = [p for p in runs[max(0, room):] if not run_in_progress(repo, p.name)]
    for path in gone:
        owned.remove(path, work)
    return gone


def fresh_run_folder(repo: Path, run: str) -> Path:
    """`.mltp/work/<run>/`, emptied: a run given the name of an earlier one starts
    from nothing, not from files (or links) its scripts left there."""
    work = owned.owned_dir(repo, "work")
    folder = owned.owned_dir(repo, "work", run)
    if folder.exists() or folder.is_symlink():
        owned.remove(folder, work)
    return folder


def clean(repo: Path) -> int:
    """Empty `.mltp/work/` but for the folders of local runs in progress; returns
    the bytes freed. A symlinked `.mltp` or `.mltp/work` is refused (exit 2);
    links inside are removed, not followed."""
    from .locks import run_in_progress

    work = owned.owned_dir(repo, "work")
    if not work.is_dir():
        return 0
    freed = 0
    for entry in list(work.iterdir()):
        if not entry.is_symlink() and run_in_progress(repo, entry.name):
            continue  # a local run of the repo is working there now
        if entry.is_dir() and not entry.is_symlink():
            freed += sum(p.stat().st_size for p in entry.rglob("*") if p.is_file() and not p.is_symlink())
        elif entry.is_file() and not entry.is_symlink():
            freed += entry.stat().st_size
        owned.remove(entry, work)
    return freed


def gitignore_note(repo: Path) -> Optional[str]:
    """A line for the user when REPO is a git checkout that does not ignore .mltp/
    (reports, models and work files of local runs do not belong in git)."""
    import subprocess

    try:
        found = subprocess.run(["git", "-C", str(repo), "check-ignore", "-q", ".mltp/"], capture_output=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    if found.returncode == 1:  # 0: ignored; 128: not a git checkout (or no git)
        return "note: .mltp/ (local runs' reports, models and work files) is not in .gitignore; add it there"
    return None


# --------------------------------------------------------------------------- AWS


def parse_age(text: str) -> timedelta:
    """'30d', '12h', '2w' -> a timedelta."""
    match = re.fullmatch(r"\s*(\d+)\s*([hdw])\s*", str(text or ""))
    if not match or int(match.group(1)) == 0:
        raise InvalidInput(f"--older-than {text!r}: expected a positive number of hours, days or weeks, e.g. 30d, 12h or 2w")
    count, unit = int(match.group(1)), match.group(2)
    return timedelta(hours=count) if unit == "h" else timedelta(days=count * (7 if unit == "w" else 1))


@dataclass
class Stale:
    state_machines: List[dict] = field(default_factory=list)  # {"name", "arn", "last"}
    code_prefixes: List[dict] = field(default_factory=list)  # {"uri", "bucket", "prefix", "objects", "newest"}
    kept_code: Set[str] = field(default_factory=set)  # '<hash>' or 'branches/<slug>/<hash>', under code/

    def lines(self) -> List[str]:
        out = []
        for machine in self.state_machines:
            last = machine["last"].strftime("%Y-%m-%d") if machine["last"] else "never"
            out.append(f"state machine {machine['name']}: last execution {last}")
        for code in self.code_prefixes:
            out.append(f"code {code['uri']}: {code['objects']} objects, newest {code['newest'].strftime('%Y-%m-%d')}")
        return out


def _newest_execution(sfn, arn: str) -> Optional[datetime]:
    page = sfn.list_executions(stateMachineArn=arn, maxResults=1)  # newest first
    executions = page.get("executions", [])
    return executions[0]["startDate"] if executions else None


def _busy_since(sfn, arn: str, cutoff: datetime) -> Optional[str]:
    """Why the state machine is still in use, or None: an execution that is
    RUNNING, or one that started or ended at or after `cutoff`."""
    for page in sfn.get_paginator("list_executions").paginate(stateMachineArn=arn):
        for execution in page.get("executions", []):
            if execution.get("status") == "RUNNING":
                return f"execution {execution.get('name')} is running"
            for moment in (execution.get("startDate"), execution.get("stopDate")):
                if moment is not None and moment >= cutoff:
                    return f"execution {execution.get('name')} ran within the period"
    return None


def _code_used_by_executions(sfn, arn: str, pattern: "re.Pattern[str]") -> Set[str]:
    used: Set[str] = set()
    for page in sfn.get_paginator("list_executions").paginate(stateMachineArn=arn):
        for execution in page.get("executions", []):
            described = sfn.describe_execution(executionArn=execution["executionArn"])
            used.update(pattern.findall(described.get("input") or ""))
    return used


def _execution_input(sfn, arn: str) -> str:
    return sfn.describe_execution(executionArn=arn).get("input") or ""


def _code_used_by_packages(sm, group: str, pattern: "re.Pattern[str]") -> Set[str]:
    import botocore.exceptions

    used: Set[str] = set()
    try:
        for page in sm.get_paginator("list_model_packages").paginate(ModelPackageGroupName=group):
            for summary in page.get("ModelPackageSummaryList", []):
                described = sm.describe_model_package(ModelPackageName=summary["ModelPackageArn"])
                for container in (described.get("InferenceSpecification") or {}).get("Containers", []):
                    for value in (container.get("Environment") or {}).values():
                        used.update(pattern.findall(str(value)))
    except botocore.exceptions.ClientError as exc:
        if exc.response.get("Error", {}).get("Code") not in ("ValidationException", "ResourceNotFound"):
            raise
    return used


def _folders(s3, bucket: str, prefix: str) -> List[str]:
    """The 'folders' right under `prefix` (each ends with '/')."""
    out: List[str] = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix, Delimiter="/"):
        out += [common["Prefix"] for common in page.get("CommonPrefixes", [])]
    return out


def _code_prefixes(s3, bucket: str, root: str) -> List[str]:
    """Every code prefix under `root` ('<prefix>/<name>/code/'): `root<hash>/` of the
    default branch and `root branches/<slug>/<hash>/` of the others."""
    out: List[str] = []
    for folder in _folders(s3, bucket, root):
        if folder == root + BRANCHES:
            for branch in _folders(s3, bucket, folder):
                out += _folders(s3, bucket, branch)
        else:
            out.append(folder)
    return out


def find_stale(config, clients, older_than: timedelta, now: Optional[datetime] = None) -> Stale:
    """What `prune` would delete: see the module docstring."""
    from . import naming

    now = now or datetime.now(timezone.utc)
    cutoff = now - older_than
    sfn, s3 = clients.sfn, clients.s3
    result = Stale()
    kept_machines = []
    for page in sfn.get_paginator("list_state_machines").paginate():
        for machine in page.get("stateMachines", []):
            name = machine["name"]
            if name != config.name and not name.startswith(config.name + "--"):
                continue
            last = _newest_execution(sfn, machine["stateMachineArn"])
            moment = last or machine.get("creationDate")
            if (name != config.name and moment is not None and moment < cutoff
                    and _busy_since(sfn, machine["stateMachineArn"], cutoff) is None):
                result.state_machines.append({"name": name, "arn": machine["stateMachineArn"], "last": last})
            else:
                kept_machines.append(machine["stateMachineArn"])
    bucket = config.aws.bucket
    root = naming.code_prefix(config, "x")[: -len("x/")]  # '<prefix>/<name>/code/'
    pattern = _code_pattern(root)
    for arn in kept_machines:
        result.kept_code |= _code_used_by_executions(sfn, arn, pattern)
    result.kept_code |= _code_used_by_packages(clients.sagemaker, config.registry.model_package_group, pattern)

    for prefix in _code_prefixes(s3, bucket, root):
        if prefix[len(root):].strip("/") in result.kept_code:
            continue
        objects, newest = 0, None
        for listing in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            for item in listing.get("Contents", []):
                objects += 1
                newest = item["LastModified"] if newest is None or item["LastModified"] > newest else newest
        if newest is not None and newest < cutoff:
            result.code_prefixes.append({"uri": f"s3://{bucket}/{prefix}", "bucket": bucket, "prefix": prefix,
                                         "objects": objects, "newest": newest})
    return result


def delete(stale: Stale, clients, echo: Callable[[str], None]) -> None:
    """Delete what `find_stale` found, looking once more right before: a state
    machine whose run started since then stays, and so does the code that run uses."""
    kept_code: Set[str] = set()
    for machine in stale.state_machines:
        running = [e for page in clients.sfn.get_paginator("list_executions").paginate(
            stateMachineArn=machine["arn"], statusFilter="RUNNING") for e in page.get("executions", [])]
        if running:
            kept_code |= {code["prefix"] for code in stale.code_prefixes
                          for e in running if code["prefix"] in _execution_input(clients.sfn, e["executionArn"])}
            echo(f"kept state machine {machine['name']}: execution {running[0].get('name')} started meanwhile")
            continue
        clients.sfn.delete_state_machine(stateMachineArn=machine["arn"])
        echo(f"deleted state machine {machine['name']}")
    s3 = clients.s3
    for code in stale.code_prefixes:
        if code["prefix"] in kept_code:
            echo(f"kept {code['uri']}: a run that started meanwhile uses it")
            continue
        keys = []
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=code["bucket"], Prefix=code["prefix"]):
            keys.extend({"Key": item["Key"]} for item in page.get("Contents", []))
        for start in range(0, len(keys), 1000):
            s3.delete_objects(Bucket=code["bucket"], Delete={"Objects": keys[start:start + 1000], "Quiet": True})
        echo(f"deleted {code['uri']} ({len(keys)} objects)")
