"""`mltp logs`: one run's log, from every place it is written, in time order.

A run writes to several places: Step Functions keeps the execution's history
(and logs it to the model's group, `log_group`), and each SageMaker job writes
its output to SageMaker's own group, one stream per job instance. This merges
the history events and the jobs' log lines by time, each labelled with its step,
follows a running run (`--follow`), and exports the same logs to S3 with
CreateExportTask (`--export`). Local runs keep their logs as files beside their
report (`--local`).
"""

import json
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

import botocore.exceptions

from . import log_group, naming, runs
from .aws import Clients, error_code, refused
from .context import RunContext
from .errors import AwsRefused, InvalidInput
from .jobs import JOB_STATES, LOG_GROUPS

Echo = Callable[[str], None]
RUN_LABEL = "run"
EXPORT_POLL_SECONDS = 2.0
EXPORT_TIMEOUT_SECONDS = 3600.0


@dataclass(frozen=True)
class LogLine:
    time: datetime
    step: str
    text: str
    order: int = 0  # keeps the history's order among equal timestamps

    def render(self, width: int = 14) -> str:
        stamp = self.time.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
        return f"{stamp}  {self.step:<{width}} | {self.text}"


def _utc(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000.0, tz=timezone.utc)


# --------------------------------------------------------------------------- which run


def find_execution(ctx: RunContext, clients: Clients, run: Optional[str]) -> dict:
    """The named run, or the state machine's newest one."""
    machine = runs.state_machine_arn(ctx, clients)
    with refused("find run", run or ctx.state_machine):
        if run:
            found = runs.describe_execution(clients, runs.execution_arn_for(machine, naming.run_name(run)))
            if found is None:
                raise InvalidInput(f"no run {run} on state machine {ctx.state_machine} in {ctx.region}")
            return found
        try:
            newest = clients.sfn.list_executions(stateMachineArn=machine, maxResults=1).get("executions", [])
        except botocore.exceptions.ClientError as exc:
            if error_code(exc) != "StateMachineDoesNotExist":
                raise
            newest = []
        if not newest:
            raise InvalidInput(f"state machine {ctx.state_machine} has no runs in {ctx.region}")
        return clients.sfn.describe_execution(executionArn=newest[0]["executionArn"])


def jobs_of(execution: dict) -> Dict[str, Tuple[str, str]]:
    """{step: (job name, kind)} from the execution input."""
    try:
        data = json.loads(execution.get("input") or "{}")
    except ValueError:
        data = {}
    return {state: (str(data[key]), kind) for state, (key, kind) in JOB_STATES.items() if data.get(key)}


# --------------------------------------------------------------------------- reading


def _details(event: Dict[str, Any]) -> Dict[str, Any]:
    for key, value in event.items():
        if key.endswith("EventDetails") and isinstance(value, dict):
            return value
    return {}


def _history_text(kind: str, details: Dict[str, Any]) -> str:
    text = kind
    if details.get("error") or details.get("cause"):
        cause = " ".join(str(details.get("cause") or "").split())
        text += f": {details.get('error') or ''}" + (f": {cause[:300]}" if cause else "")
    return text


def history_lines(clients: Clients, execution_arn: str) -> List[LogLine]:
    """The execution's history events, each labelled with the state it belongs to."""
    lines: List[LogLine] = []
    current = RUN_LABEL
    with refused("read run history", execution_arn):
        pages = clients.sfn.get_paginator("get_execution_history").paginate(executionArn=execution_arn)
        for page in pages:
            for event in page.get("events", []):
                kind = event.get("type", "")
                details = _details(event)
                if kind.endswith("StateEntered"):
                    current = details.get("name") or current
                step = RUN_LABEL if kind.startswith("Execution") else current
                stamp = event["timestamp"]
                lines.append(LogLine(stamp if stamp.tzinfo else stamp.replace(tzinfo=timezone.utc), step,
                                     _history_text(kind, details), len(lines)))
                if kind.endswith("StateExited"):
                    current = RUN_LABEL
    return lines


def job_lines(clients: Clients, jobs: Dict[str, Tuple[str, str]]) -> List[LogLine]:
    """Every line SageMaker logged for the run's jobs: the job's streams
    (`<job>/algo-1-...`, one per instance) are listed by prefix, then read."""
    lines: List[LogLine] = []
    logs = clients.logs
    for step, (job, kind) in jobs.items():
        group = LOG_GROUPS[kind]
        with refused("read job log", f"{group} {job}"):
            try:
                streams = []
                for page in logs.get_paginator("describe_log_streams").paginate(
                        logGroupName=group, logStreamNamePrefix=f"{job}/"):
                    streams += [s["logStreamName"] for s in page.get("logStreams", [])]
                for start in range(0, len(streams), 100):  # FilterLogEvents takes 100 stream names
                    pages = logs.get_paginator("filter_log_events").paginate(
                        logGroupName=group, logStreamNames=streams[start:start + 100])
                    for page in pages:
                        for event in page.get("events", []):
                            lines.append(LogLine(_utc(event["timestamp"]), step, event.get("message", "").rstrip("\n"),
                                                 len(lines)))
            except botocore.exceptions.ClientError as exc:
                if error_code(exc) != "ResourceNotFoundException":  # the job never logged anything
                    raise
    return lines


def merged(clients: Clients, execution: dict) -> List[LogLine]:
    lines = history_lines(clients, execution["executionArn"])
    # Job lines after history lines of the same millisecond: a step starts, then logs.
    jobs = [LogLine(line.time, line.step, line.text, 1_000_000 + line.order) for line in job_lines(clients, jobs_of(execution))]
    return sorted(lines + jobs, key=lambda line: (line.time, line.order))


def show(ctx: RunContext, clients: Clients, run: Optional[str], follow: bool = False, echo: Echo = print,
         poll_seconds: float = 5.0, sleep: Callable[[float], None] = time.sleep) -> dict:
    """Print the run's merged log; with `follow`, keep printing until the run ends."""
    execution = find_execution(ctx, clients, run)
    arn = execution["executionArn"]
    echo(f"logs of run {execution['name']} ({execution['status']}): {arn}")
    shown = set()
    while True:
        for line in merged(clients, execution):
            key = (line.time, line.step, line.text)
            if key not in shown:
                shown.add(key)
                echo(line.render())
        if not follow or execution.get("status") != "RUNNING":
            return execution
        sleep(poll_seconds)
        with refused("read run", arn):
            execution = clients.sfn.describe_execution(executionArn=arn)


# --------------------------------------------------------------------------- export


def default_destination(ctx: RunContext, run: str) -> str:
    return f"s3://{ctx.config.aws.bucket}/{naming.run_prefix(ctx.config, run, ctx.state_machine)}logs/"


def _split(uri: str) -> Tuple[str, str]:
    if not uri.startswith("s3://") or len(uri) <= 5:
        raise InvalidInput(f"--export: '{uri}' is not an S3 URI such as s3://bucket/prefix/")
    bucket, _, prefix = uri[5:].partition("/")
    return bucket, prefix.strip("/")


def export_plan(ctx: RunContext, execution: dict) -> List[Tuple[str, str, Optional[str]]]:
    """(label, log group, stream prefix) per export task: the model's Step
    Functions group over the run's time span, and each job's streams."""
    plan: List[Tuple[str, str, Optional[str]]] = [("states", log_group.group_name(ctx.config), None)]
    for step, (job, kind) in jobs_of(execution).items():
        plan.append((step.lower(), LOG_GROUPS[kind], f"{job}/"))
    return plan


def _ms(value: Optional[datetime], default: int) -> int:
    return int(value.timestamp() * 1000) if value else default


def export(ctx: RunContext, clients: Clients, run: Optional[str], destination: Optional[str], echo: Echo = print,
           poll_seconds: float = EXPORT_POLL_SECONDS, sleep: Callable[[float], None] = time.sleep,
           timeout_seconds: float = EXPORT_TIMEOUT_SECONDS) -> List[str]:
    """One CreateExportTask per log group, one after the other (CloudWatch Logs
    runs one export per account at a time), each waited for. Returns the S3
    prefixes that hold the files."""
    execution = find_execution(ctx, clients, run)
    name = execution["name"]
    bucket, prefix = _split(destination or default_destination(ctx, name))
    start = _ms(execution.get("startDate"), 0)
    stop = _ms(execution.get("stopDate"), int(time.time() * 1000))
    start, stop = min(start, stop), max(start, stop) + 60_000  # late log lines
    written = []
    for label, group, stream_prefix in export_plan(ctx, execution):
        target = f"{prefix}/{label}" if prefix else label
        kwargs = {"taskName": f"mltp-{ctx.config.name}-{name}-{label}"[:512], "logGroupName": group,
                  "fromTime": start, "to": stop, "destination": bucket, "destinationPrefix": target}
        if stream_prefix:
            kwargs["logStreamNamePrefix"] = stream_prefix
        if not _group_exists(clients, group):
            echo(f"export: {label}: nothing logged ({group} does not exist)")
            continue
        task = _create_export_task(clients, kwargs, sleep, poll_seconds, timeout_seconds)
        _wait_export(clients, task, label, sleep, poll_seconds, timeout_seconds)
        uri = f"s3://{bucket}/{target}/"
        files = _list(clients, bucket, target + "/")
        echo(f"export: {label}: {uri} ({len(files)} file{'s' if len(files) != 1 else ''})")
        written.append(uri)
    return written


def _group_exists(clients: Clients, group: str) -> bool:
    with refused("log group", group):
        found = clients.logs.describe_log_groups(logGroupNamePrefix=group).get("logGroups", [])
    return any(g.get("logGroupName") == group for g in found)


def _create_export_task(clients: Clients, kwargs: dict, sleep, poll_seconds: float, timeout_seconds: float) -> str:
    waited = 0.0
    with refused("export logs", f"{kwargs['logGroupName']} to s3://{kwargs['destination']}/{kwargs['destinationPrefix']}"):
        while True:
            try:
                return clients.logs.create_export_task(**kwargs)["taskId"]
            except botocore.exceptions.ClientError as exc:
                # Another export (of anyone in the account) is running: wait for our turn.
                if error_code(exc) != "LimitExceededException" or waited >= timeout_seconds:
                    raise
            sleep(poll_seconds)
            waited += poll_seconds


def _wait_export(clients: Clients, task: str, label: str, sleep, poll_seconds: float, timeout_seconds: float) -> None:
    waited = 0.0
    with refused("export logs", task):
        while True:
            found = clients.logs.describe_export_tasks(taskId=task).get("exportTasks", [])
            status = (found[0].get("status", {}) if found else {}).get("code", "")
            if status == "COMPLETED":
                return
            if status in ("FAILED", "CANCELLED"):
                message = (found[0].get("status", {}) or {}).get("message", "")
                raise AwsRefused(f"export logs {label}: task {task} {status.lower()}: {message}".rstrip(": "))
            if waited >= timeout_seconds:
                raise AwsRefused(f"export logs {label}: task {task} still {status or 'pending'} after {timeout_seconds:.0f} s")
            sleep(poll_seconds)
            waited += poll_seconds


def _list(clients: Clients, bucket: str, prefix: str) -> List[str]:
    keys: List[str] = []
    with refused("list exported logs", f"s3://{bucket}/{prefix}"):
        for page in clients.s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            keys += [o["Key"] for o in page.get("Contents", []) if not o["Key"].endswith("aws-logs-write-test")]
    return keys


# --------------------------------------------------------------------------- local runs


def local_runs(repo: Path) -> List[Path]:
    """Local runs' report folders (REPO/.mltp/runs/<run>/), oldest first."""
    base = repo / ".mltp" / "runs"
    found = [p for p in base.iterdir() if (p / "report.json").is_file()] if base.is_dir() else []
    return sorted(found, key=lambda p: (p / "report.json").stat().st_mtime)


def local_lines(folder: Path) -> List[str]:
    """A local run's log from the files it keeps: each step's start and end from
    report.json, and under each job step the job's output (logs/<job>.log)."""
    report = json.loads((folder / "report.json").read_text(encoding="utf-8"))
    lines = [f"logs of local run {report.get('run')} ({report.get('status')}): {folder}"]
    steps = sorted(report.get("steps", []), key=lambda s: s.get("started") or "9999")
    for step in steps:
        name = step.get("name", "?")
        if step.get("started"):
            lines.append(f"{step['started']}  {name:<14} | entered")
        job = step.get("job_name")
        log = folder / "logs" / f"{job}.log" if job else None
        if log is not None and log.is_file():
            for text in log.read_text(encoding="utf-8", errors="replace").splitlines():
                lines.append(f"{'':<32}  {name:<14} | {text}")
        if step.get("ended"):
            lines.append(f"{step['ended']}  {name:<14} | {step.get('status', 'ended')}")
    return lines


def show_local(repo: Path, run: Optional[str], echo: Echo = print) -> Path:
    folders = local_runs(repo)
    if run:
        chosen = [p for p in folders if p.name == naming.run_name(run)]
    else:
        chosen = folders[-1:]
    if not chosen:
        where = repo / ".mltp" / "runs"
        raise InvalidInput(f"no local run {run} in {where}" if run else f"no local runs in {where}: run `mltp run --local` first")
    for line in local_lines(chosen[0]):
        echo(line)
    return chosen[0]

