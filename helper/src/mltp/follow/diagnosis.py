"""Why a run failed: the failed step, its job's FailureReason and the tail of
its CloudWatch log, and the one line that says what the script died of, the
same on AWS and locally (tests/helper/test_parity.py)."""

import re
from pathlib import Path
from typing import List, Optional

from .. import outcome as out
from ..aws import Clients, error_code
from ..context import RunContext
from ..jobs import LOG_GROUPS
from .links import console_links, log_link
from .watching import _AWS_ERRORS, Tracker, _describe_error, _json

LOG_TAIL_LINES = 20

_SCRIPT = re.compile(r"\b([\w.-]+\.py)\b")
_FRAME = re.compile(r'^\s*File "(?P<path>[^"]+\.py)", line \d+')
_MISSING_MODULE = re.compile(r"^ModuleNotFoundError: No module named '(?P<module>[^']+)'")
_GUARD = "mltp: "  # evaluation_guard's refusals
# SageMaker's wording for a job whose script failed; the job's log says why.
_SCRIPT_FAILED = ("AlgorithmError",)


def _died_of(failure: out.Failure) -> str:
    """What the one-line error says about a failed step.

    A job whose script failed (FailureReason AlgorithmError) is described by its
    log, which SageMaker and the local run both have: the evaluation guard's
    refusal, else the script and the exception it died of. SageMaker's own
    FailureReason for a processing job is only 'See job logs', so the log is what
    makes a run end with the same line on AWS and locally (tests/helper/test_parity.py).
    Any other failure (no data, time limit, stopped) is said by its FailureReason."""
    reason = (failure.reason or "").strip()
    tail = "\n".join(failure.log_tail)
    if not reason or reason.startswith(_SCRIPT_FAILED):
        from_log = _from_log(failure.log_tail)
        if from_log:
            return from_log
    script = _SCRIPT.search(reason)
    prefix = f"{script.group(1)}: " if script else ""
    died = out.exception_line(reason)
    if died:
        return prefix + died
    if reason and "\n" not in reason:
        return reason
    died = out.exception_line(tail)
    if died:
        return prefix + died
    return reason


def _from_log(lines: List[str]) -> Optional[str]:
    """'evaluation.json written by ... is not valid JSON', or 'train.py: ValueError: bad'."""
    for line in reversed(lines):
        if line.startswith(_GUARD):
            return line[len(_GUARD):].strip()
    lines = _user_traceback(lines)
    died = out.exception_line("\n".join(lines))
    if not died:
        return None
    script = _script_of(lines)
    missing = _MISSING_MODULE.match(died)
    if missing:
        died += " (a package the script needs is not installed where it ran: list it in requirements.txt)"
    return (f"{script}: " if script else "") + died


def _user_traceback(lines: List[str]) -> List[str]:
    """The log up to the end of the script's own traceback: a framework container's
    toolkit (sagemaker-training) logs its own traceback after it, ending in its
    wrapper (ExecuteUserScriptError), which says less than the script's."""
    starts = [i for i, line in enumerate(lines) if line.lstrip().startswith("Traceback (most recent")]
    ends = starts[1:] + [len(lines)]
    for start, end in reversed(list(zip(starts, ends))):
        died = out.exception_line("\n".join(lines[start:end]))
        name = (died or "").split(":", 1)[0].rsplit(".", 1)[-1]
        if died and name not in out.WRAPPERS:
            return lines[:end]
    return lines


def _script_of(lines: List[str]) -> Optional[str]:
    """The script the last traceback started in: its first frame of the model repo's
    code (not the evaluation guard, runpy or an installed library)."""
    start = max((i for i, line in enumerate(lines) if line.lstrip().startswith("Traceback (most recent")), default=None)
    if start is None:
        return None
    for line in lines[start + 1:]:
        frame = _FRAME.match(line)
        if not frame:
            continue
        path = frame.group("path").replace("\\", "/")
        name = path.rsplit("/", 1)[-1]
        if "/lib/python" in path or "site-packages" in path or name == "evaluation_guard.py" or path.startswith("<"):
            continue
        return name
    return None


# --------------------------------------------------------------------------- failures


def _failure(ctx: RunContext, clients: Clients, tracker: Tracker, cause: Optional[str], error: Optional[str],
             result: out.Outcome) -> out.Failure:
    step = tracker.failed_step()
    failure = out.Failure(step=step.name if step else None, error=(step.error if step else None) or error)
    reason = None
    if step and step.job_name and step.job_kind in LOG_GROUPS:
        failure.job_name = step.job_name
        reason = _job_failure_reason(clients, step, result)
        group = LOG_GROUPS[step.job_kind]
        failure.log_group = group
        failure.log_link = log_link(ctx.region, group, f"{step.job_name}/") if console_links(ctx) else None
        failure.log_tail = _log_tail(clients, group, step.job_name, result)
        if not console_links(ctx):  # a local run: paths in the log relative to the repo
            root = f"{Path(ctx.config.repo).resolve()}/"
            failure.log_tail = [line.replace(root, "") for line in failure.log_tail]
    if not reason and step and step.cause:
        parsed = _json(step.cause)
        reason = parsed.get("FailureReason") if isinstance(parsed, dict) else None
        reason = reason or step.cause
    failure.reason = reason or cause or error
    empty = empty_output(ctx.config, failure.step, failure.reason)
    if empty:
        failure.reason = empty
    return failure


# SageMaker's words for a channel or processing input with no object under its
# prefix, and the local runner's (runner._download): both name the URI.
_NO_DATA = re.compile(r'(?:No S3 objects found under S3 URL|no data found at)\s*"?(s3://[^"\s]+)')
_OUTPUT_FOLDER = re.compile(r"/preprocessing/([a-z][a-z0-9_-]*)/?$")


def empty_output(config, step: Optional[str], reason: Optional[str]) -> Optional[str]:
    """'preprocessing left its output 'validation' empty ...': the one line for a
    Training or Evaluation job that found no data where a preprocessing output
    should be, the same whether SageMaker or the local runner said so."""
    found = _NO_DATA.search(reason or "")
    folder = _OUTPUT_FOLDER.search(found.group(1)) if found else None
    outputs = config.steps.preprocessing.outputs if config is not None else {}
    if not folder or folder.group(1) not in outputs or step not in ("Training", "Evaluation"):
        return None
    name = folder.group(1)
    if step == "Training":
        readers = [c.name for c in config.steps.training.channels if c.output == name]
        reader = f"training reads it as channel '{readers[0]}'" if readers else "training reads it"
    else:
        reader = "evaluation reads it as its test data"
    return (f"preprocessing left its output '{name}' empty ({outputs[name]}), and {reader}: "
            f"write at least one file there, or drop the output; nothing at {found.group(1)}")


def _job_failure_reason(clients: Clients, step: out.StepRecord, result: out.Outcome) -> Optional[str]:
    try:
        if step.job_kind == "training":
            job = clients.sagemaker.describe_training_job(TrainingJobName=step.job_name)
        else:
            job = clients.sagemaker.describe_processing_job(ProcessingJobName=step.job_name)
    except _AWS_ERRORS as exc:
        result.warnings.append(f"could not describe job {step.job_name}: {_describe_error(exc)}")
        return None
    return job.get("FailureReason") or None


def _log_tail(clients: Clients, group: str, job: str, result: out.Outcome, lines: int = LOG_TAIL_LINES) -> List[str]:
    """The last lines of the job's CloudWatch log streams (one per instance), merged by time."""
    try:
        streams = clients.logs.describe_log_streams(logGroupName=group, logStreamNamePrefix=f"{job}/", limit=50)
        names = [s["logStreamName"] for s in sorted(streams.get("logStreams", []),
                                                     key=lambda s: s.get("lastEventTimestamp") or 0)][-3:]
        events = []
        for name in names:
            page = clients.logs.get_log_events(logGroupName=group, logStreamName=name, limit=lines, startFromHead=False)
            events.extend(page.get("events", []))
    except _AWS_ERRORS as exc:
        if error_code(exc) != "ResourceNotFoundException":
            result.warnings.append(f"could not read the log of {job}: {_describe_error(exc)}")
        return []
    events.sort(key=lambda e: e.get("timestamp", 0))
    return [str(e.get("message", "")).rstrip("\n") for e in events][-lines:]
