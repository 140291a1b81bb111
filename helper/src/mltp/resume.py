"""Resume a failed run (docs/contract.md, 8.5): a new run that takes every
step that succeeded in the failed run from it, when that step's key still
matches, and runs the rest; or, on AWS, a redrive of the failed execution
itself when nothing changed.

What a step hands on is read from the failed run's execution input (the
output keys of cache_index.OUTPUT_KEYS): a step the failed run took from an
earlier run hands on that earlier run's outputs, as it did then. Whether a
step still matches is decided by the keys the failed run's input holds
(`Cache.keys`, every run has them): the same key now, the step is taken.
When that run listed no inputs (no step had the cache on), preprocessing's
key covers the inputs' names, not their objects: data that changed since is
not noticed, as a redrive would not notice it either.

A local run's emulator S3 vanishes with it, so every local run keeps its
execution input and the outputs it names under `.mltp/work/<run>/resume/`
(`keep_local`); resuming puts them back into the new emulator first.
"""

import json
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from . import cache_index, step_cache
from .errors import InvalidInput

FAILED = ("FAILED", "TIMED_OUT", "ABORTED")
LOCAL_FAILED = ("failed", "timed_out", "stopped")
REDRIVE_DAYS = 14  # Step Functions redrives a Standard execution up to 14 days after it ended
KEEP = "resume"  # .mltp/work/<run>/resume/: input.json and outputs/<input key>/...


@dataclass
class Source:
    """The failed run: its name, input, and the job states that succeeded in it
    (or that it took from an earlier run)."""

    run: str
    execution_input: Dict[str, object]
    done: List[str] = field(default_factory=list)
    description: Dict[str, object] = field(default_factory=dict)  # AWS: DescribeExecution's answer


@dataclass
class Decision:
    reuse: Dict[str, str]  # job state -> the run whose outputs it takes
    overrides: Dict[str, object]  # execution input values
    lines: List[str]
    unchanged: bool  # every step's key is the failed run's


def decide(source: Source, keys: Dict[str, step_cache.StepKey], cache_input: Dict[str, object]) -> Decision:
    """Which steps the new run takes from `source`. `keys`: every step's key now;
    `cache_input`: the new run's plan's Cache (plan.Plan.cache_input)."""
    old_cache = source.execution_input.get("Cache") if isinstance(source.execution_input.get("Cache"), dict) else {}
    old_keys = old_cache.get("keys") if isinstance(old_cache.get("keys"), dict) else {}
    old_reuse = old_cache.get("reuse") if isinstance(old_cache.get("reuse"), dict) else {}
    old_default = old_cache.get("from_default") if isinstance(old_cache.get("from_default"), list) else []
    reuse: Dict[str, str] = {}
    from_default: List[str] = []
    overrides: Dict[str, object] = {}
    lines = []
    unchanged = all(old_keys.get(step_cache.STATES[r]) == keys[r].key for r in step_cache.ROLES)
    for role in step_cache.ROLES:
        state = step_cache.STATES[role]
        if state not in source.done:
            lines.append(f"resume: {state:<14} run (it did not succeed in {source.run})")
            continue
        if old_keys.get(state) != keys[role].key:
            old_parts = (old_cache.get("parts") or {}).get(state) or {}
            changed = keys[role].changed(old_parts) if old_parts else ()
            lines.append(f"resume: {state:<14} run ({', '.join(changed) or 'key'} changed since {source.run})")
            continue
        origin = str(old_reuse.get(state) or source.run)
        reuse[state] = origin
        if state in old_reuse and state in old_default:  # the failed run's copy of a default-branch run's
            from_default.append(state)
        overrides.update({k: source.execution_input[k] for k in cache_index.OUTPUT_KEYS[role]
                          if k in source.execution_input})
        where = " on the default branch" if state in from_default else ""
        lines.append(f"resume: {state:<14} cached (from {origin}{where})")
    cache = dict(cache_input)
    cache["reuse"] = dict(reuse)
    cache.pop("from_default", None)
    if from_default:
        cache["from_default"] = from_default
    overrides["Cache"] = cache
    return Decision(reuse, overrides, lines, unchanged)


def redrivable(source: Source, now) -> Tuple[bool, str]:
    """Whether Step Functions can still redrive the failed execution."""
    status = source.description.get("redriveStatus")
    if status is None:
        return False, "this Step Functions endpoint does not say whether the run can be redriven"
    if status != "REDRIVABLE":
        return False, f"Step Functions says {status}: {source.description.get('redriveStatusReason') or 'not redrivable'}"
    stopped = source.description.get("stopDate")
    if stopped is not None and now - stopped > timedelta(days=REDRIVE_DAYS):
        return False, f"it ended more than {REDRIVE_DAYS} days ago"
    return True, ""


# --------------------------------------------------------------------------- on AWS


def aws_source(clients, machine_arn: str, run: Optional[str]) -> Source:
    """The named run, or the state machine's newest failed, timed-out or stopped one."""
    from .jobs import JOB_STATES
    from .runs import describe_execution, execution_arn_for

    sfn = clients.sfn
    if run:
        arn = execution_arn_for(machine_arn, run)
    else:
        newest = None
        for status in FAILED:
            for page in sfn.get_paginator("list_executions").paginate(stateMachineArn=machine_arn,
                                                                      statusFilter=status):
                for item in page.get("executions", []):
                    if newest is None or item["startDate"] > newest["startDate"]:
                        newest = item
        if newest is None:
            raise InvalidInput(f"no failed run of {machine_arn.rsplit(':', 1)[-1]} to resume: name one with --run")
        arn = newest["executionArn"]
    description = describe_execution(clients, arn)
    if description is None:
        raise InvalidInput(f"run {run} of {machine_arn.rsplit(':', 1)[-1]} does not exist: nothing to resume")
    if description.get("status") not in FAILED + ("PENDING_REDRIVE",):
        raise InvalidInput(f"run {description.get('name')} is {description.get('status')}: only a failed, timed-out "
                           f"or stopped run can be resumed")
    execution_input = json.loads(description.get("input") or "{}")
    done = []
    for page in sfn.get_paginator("get_execution_history").paginate(executionArn=arn):
        for event in page.get("events", []):
            details = event.get("stateExitedEventDetails") or {}
            if event.get("type") == "TaskStateExited" and details.get("name") in JOB_STATES:
                done.append(details["name"])
    cache = execution_input.get("Cache") if isinstance(execution_input.get("Cache"), dict) else {}
    done += [s for s in (cache.get("reuse") or {}) if s not in done]
    return Source(str(description.get("name")), execution_input, done, description)


# --------------------------------------------------------------------------- local runs


def keep_local(clients, work: Path, execution_arn: str) -> None:
    """At the end of a local run: its execution input and the outputs its job
    states hand on, under work/resume/, for a later `mltp resume --local`."""
    from . import owned

    try:
        described = clients.sfn.describe_execution(executionArn=execution_arn)
    except Exception:  # noqa: BLE001  (the run never started: nothing to keep)
        return
    execution_input = json.loads(described.get("input") or "{}")
    keep = work / KEEP
    keep.mkdir(parents=True, exist_ok=True)
    s3 = clients.s3
    for role, names in cache_index.DATA_KEYS.items():
        for name in names:
            uri = str(execution_input.get(name) or "")
            if not uri.startswith("s3://"):
                continue
            bucket, _, key = uri[len("s3://"):].partition("/")
            cache_index.download_prefix(s3, bucket, key, keep / "outputs" / name)
    owned.write_atomic(keep / "input.json", json.dumps(execution_input, sort_keys=True).encode("utf-8"))


def local_source(repo: Path, state_machine: str, run: Optional[str]) -> Source:
    """The named local run, or the newest failed, timed-out or stopped one of this
    state machine, from its report (.mltp/runs/<run>/report.json) and what it kept."""
    runs = Path(repo) / ".mltp" / "runs"
    candidates = []
    for report in sorted(runs.glob("*/report.json")) if runs.is_dir() else []:
        try:
            data = json.loads(report.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if data.get("state_machine") != state_machine or (run and data.get("run") != run):
            continue
        candidates.append((report.stat().st_mtime, data))
    if not candidates:
        what = f"run {run}" if run else "failed local run"
        raise InvalidInput(f"no {what} of {state_machine} under .mltp/runs/ to resume")
    _, data = max(candidates, key=lambda c: c[0])
    if data.get("status") not in LOCAL_FAILED:
        raise InvalidInput(f"run {data.get('run')} {data.get('status')}: only a failed, timed-out or stopped run "
                           f"can be resumed")
    name = str(data.get("run"))
    kept = Path(repo) / ".mltp" / "work" / name / KEEP / "input.json"
    if not kept.is_file():
        raise InvalidInput(f"run {name}: what it produced is gone from .mltp/work/{name}/ (mltp clean, or more than "
                           f"5 newer runs): nothing to resume from")
    execution_input = json.loads(kept.read_text(encoding="utf-8"))
    done = [s["name"] for s in data.get("steps", []) if s.get("status") in ("succeeded", "cached")
            and s.get("name") in step_cache.STATES.values()]
    return Source(name, execution_input, done)


def materialize_local(clients, repo: Path, source: Source, reuse: Dict[str, str]) -> None:
    """The outputs the new run takes from the failed local run, put back into the
    emulator's S3 where that run's input says they are."""
    keep = Path(repo) / ".mltp" / "work" / source.run / KEEP / "outputs"
    roles = {state: role for role, state in step_cache.STATES.items()}
    for state in reuse:
        for name in cache_index.DATA_KEYS[roles[state]]:
            uri = str(source.execution_input[name])
            bucket, _, key = uri[len("s3://"):].partition("/")
            folder = keep / name
            files = [p for p in sorted(folder.rglob("*")) if p.is_file() and not p.is_symlink()] if folder.is_dir() else []
            if not files:
                raise InvalidInput(f"run {source.run}: its {state} outputs are gone from .mltp/work/{source.run}/: "
                                   f"run again instead of resuming")
            for path in files:
                rel = path.relative_to(folder).as_posix()
                cache_index.put_file(clients.s3, path, bucket, key + rel if key.endswith("/") else key)
