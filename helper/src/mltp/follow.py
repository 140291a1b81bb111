"""`mltp wait`: follow one execution to its end and say what became of it.

The loop reads the execution history incrementally (GetExecutionHistory in
order, resuming from the page that held the newest event, so a poll costs one
call however long the run has been going), prints one line per step
transition, and sleeps with a backoff that resets whenever something changed:
2 s, 4 s, 8 s, 16 s, then every 30 s. A step change is therefore shown within
30 s; a quiet hour costs 120 calls, an hour of the pipeline about 140
(benchmarks/bench_wait.py). Doubling rather than x1.5 matters: each reset
costs 3 extra calls instead of 5, and a step change resets it.

Polls that fail with a transient error (throttling that outlasted botocore's
own retries, a 5xx, a dropped connection) are logged and retried on the next
tick; only failures that last longer than `PollPolicy.transient_limit` give up
(exit 5). At the end `follow` gathers what the report needs: the gate's
values from evaluation.json, the registered model package, or the failed
step's reason and the tail of its CloudWatch log.

Time comes from a clock object (`now`, `sleep`), so tests and the benchmark
run hours of polling in milliseconds.
"""

import json
import re
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import botocore.exceptions
import click

from . import outcome as out
from .aws import Clients, error_code, refused
from .context import RunContext
from .errors import AwsRefused, MltpError

Echo = Callable[[str], None]

# The states of the definition that run SageMaker jobs, and where their job
# names travel in the execution input (naming.ExecutionInput).
JOB_STATES: Dict[str, Tuple[str, str]] = {
    "Preprocessing": ("PreprocessingJobName", "processing"),
    "Training": ("TrainingJobName", "training"),
    "Evaluation": ("EvaluationJobName", "processing"),
}
LOG_GROUPS = {"processing": "/aws/sagemaker/ProcessingJobs", "training": "/aws/sagemaker/TrainingJobs"}
GATE_ERROR = "MetricGateFailed"
LOG_TAIL_LINES = 20
# The states people see, by the contract's step names. The others (ReadEvaluation,
# ShouldRegister, MetricGateFailed, Registered, ...) are how the definition is
# built: they get a line only when they fail, and the Gate's verdict is told on
# the Gate's own line.
USER_STATES = ("Preprocessing", "Training", "Evaluation", "Gate", "Register")
GATE_STATE = "Gate"
GATE_FAILED_STATE = "MetricGateFailed"

TERMINAL_EVENTS = {
    "ExecutionSucceeded": "SUCCEEDED",
    "ExecutionFailed": "FAILED",
    "ExecutionAborted": "ABORTED",
    "ExecutionTimedOut": "TIMED_OUT",
}
FINAL_STATUSES = ("SUCCEEDED", "FAILED", "ABORTED", "TIMED_OUT", "PENDING_REDRIVE")
_STEP_STATUS_AT_END = {
    "SUCCEEDED": out.SUCCEEDED,
    "FAILED": out.STEP_FAILED,
    "ABORTED": out.STEP_STOPPED,
    "TIMED_OUT": out.STEP_TIMED_OUT,
}
_TASK_FAILURES = {
    "TaskFailed": out.STEP_FAILED,
    "TaskStartFailed": out.STEP_FAILED,
    "TaskSubmitFailed": out.STEP_FAILED,
    "TaskTimedOut": out.STEP_TIMED_OUT,
}
# States that take time and so get a "started" line; the others are instant
# (Choice, Pass, Succeed) and get one line when they end.
_LONG_STATES = ("Task", "Map", "Parallel", "Wait")

_THROTTLING_CODES = {
    "Throttling", "ThrottlingException", "ThrottledException", "RequestThrottledException",
    "TooManyRequestsException", "RequestLimitExceeded", "RequestThrottled", "SlowDown",
    "BandwidthLimitExceeded", "PriorRequestNotComplete", "ProvisionedThroughputExceededException",
}
_SERVER_CODES = {"InternalFailure", "InternalServerError", "InternalError", "ServiceUnavailable",
                 "ServiceUnavailableException", "InternalServerException", "RequestTimeout", "RequestTimeoutException"}


# --------------------------------------------------------------------------- time


class SystemClock:
    """Real time: monotonic seconds, real sleeps (a signal interrupts them)."""

    def now(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


class ManualClock:
    """A clock that only moves when slept on: for tests and the benchmark.
    `on_sleep(now)` runs after every sleep, e.g. to advance a simulation."""

    def __init__(self, start: float = 0.0, on_sleep: Optional[Callable[[float], None]] = None):
        self.t = float(start)
        self.sleeps: List[float] = []
        self.on_sleep = on_sleep

    def now(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.t += seconds
        if self.on_sleep:
            self.on_sleep(self.t)


@dataclass(frozen=True)
class PollPolicy:
    initial: float = 2.0  # seconds after a change
    factor: float = 2.0
    cap: float = 30.0  # so a step change is shown within 30 s
    page_size: int = 25  # GetExecutionHistory maxResults: a poll re-reads at most one page
    transient_limit: float = 600.0  # give up (exit 5) when polls fail for this long in a row


DEFAULT_POLICY = PollPolicy()


class Backoff:
    def __init__(self, policy: PollPolicy = DEFAULT_POLICY):
        self.policy = policy
        self.interval = policy.initial

    def reset(self) -> None:
        self.interval = self.policy.initial

    def next(self) -> float:
        current = self.interval
        self.interval = min(self.policy.cap, self.interval * self.policy.factor)
        return current


# --------------------------------------------------------------------------- links


def _console(region: str) -> str:
    domain = "console.amazonaws.cn" if region.startswith("cn-") else "console.aws.amazon.com"
    return f"https://{region}.{domain}"


def job_link(region: str, kind: Optional[str], job: Optional[str]) -> Optional[str]:
    if not job or kind not in LOG_GROUPS:
        return None
    page = "jobs" if kind == "training" else "processing-jobs"
    return f"{_console(region)}/sagemaker/home?region={region}#/{page}/{job}"


def console_links(ctx: RunContext) -> bool:
    """AWS console links only point somewhere on AWS: not against an emulator (--local)."""
    return not ctx.endpoint_url


def job_log_link(region: str, kind: Optional[str], job: Optional[str]) -> Optional[str]:
    """The job's log stream(s) in SageMaker's log group (the report links them)."""
    if not job or kind not in LOG_GROUPS:
        return None
    return log_link(region, LOG_GROUPS[kind], f"{job}/")


def execution_link(region: str, arn: str) -> str:
    return f"{_console(region)}/states/home?region={region}#/v2/executions/details/{arn}"


def log_link(region: str, group: str, prefix: str) -> str:
    def esc(text: str) -> str:  # the console's own double escaping of log group paths
        return text.replace("$", "$2524").replace("/", "$252F").replace("=", "$253D")

    return (f"{_console(region)}/cloudwatch/home?region={region}#logsV2:log-groups/log-group/"
            f"{esc(group)}$3FlogStreamNameFilter$3D{esc(prefix)}")


# --------------------------------------------------------------------------- errors


def is_transient(exc: BaseException) -> bool:
    """Worth another try on the next tick: throttling, AWS-side 5xx, connection trouble."""
    if isinstance(exc, botocore.exceptions.ClientError):
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
        return error_code(exc) in _THROTTLING_CODES | _SERVER_CODES or status >= 500
    return isinstance(exc, (botocore.exceptions.HTTPClientError, botocore.exceptions.ConnectionError))


def _describe_error(exc: BaseException) -> str:
    if isinstance(exc, botocore.exceptions.ClientError):
        error = exc.response.get("Error", {})
        return f"{error.get('Code', 'Error')}: {error.get('Message', '')}".rstrip(": ")
    return f"{type(exc).__name__}: {exc}"


_AWS_ERRORS = (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError)


# --------------------------------------------------------------------------- history


def _details(event: Dict[str, Any]) -> Dict[str, Any]:
    for key, value in event.items():
        if key.endswith("EventDetails") and isinstance(value, dict):
            return value
    return {}


def _json(text: Any) -> Any:
    if not isinstance(text, str):
        return text
    try:
        return json.loads(text)
    except ValueError:
        return None


class HistoryReader:
    """Reads an execution's history in order, each event once.

    GetExecutionHistory returns a nextToken only while a page is full, so the
    reader keeps the token of the page that holds the newest event and asks
    for that page again: a poll is one call, plus one per page that filled up
    since. Events already seen (by id) are skipped. A token expires after a
    day; then the reader starts over from the beginning, still skipping."""

    def __init__(self, sfn, execution_arn: str, page_size: int = DEFAULT_POLICY.page_size):
        self.sfn = sfn
        self.execution_arn = execution_arn
        self.page_size = page_size
        self.token: Optional[str] = None
        self.last_id = 0

    def poll(self) -> List[Dict[str, Any]]:
        new: List[Dict[str, Any]] = []
        try:
            while True:
                request = {"executionArn": self.execution_arn, "maxResults": self.page_size, "reverseOrder": False}
                if self.token:
                    request["nextToken"] = self.token
                try:
                    page = self.sfn.get_execution_history(**request)
                except botocore.exceptions.ClientError as exc:
                    if self.token and error_code(exc) in ("InvalidToken", "InvalidTokenException"):
                        self.token = None
                        continue
                    raise
                for event in page.get("events", []):
                    if event.get("id", 0) > self.last_id:
                        new.append(event)
                        self.last_id = event["id"]
                following = page.get("nextToken")
                if not following:
                    return new
                self.token = following
        except Exception:
            if new:  # keep what was read; the next poll resumes from self.token
                return new
            raise


class Tracker:
    """Turns history events into step records, and a line per step transition."""

    def __init__(self, region: str, jobs: Optional[Dict[str, Tuple[str, str]]] = None, rules: Sequence[Any] = (),
                 links: bool = True):
        self.region = region
        self.jobs = jobs or {}
        self.rules = list(rules)  # the config's gate rules, to tell why the Gate failed
        self.links = links  # console links exist only on AWS, not against the emulator
        self.pending_gate: Optional[out.StepRecord] = None  # exited; passed or not is told by the next state
        self.gate_metrics: Optional[Dict[str, Any]] = None
        self.steps: List[out.StepRecord] = []
        self.open: Dict[str, out.StepRecord] = {}
        self.last_entered: Optional[out.StepRecord] = None
        self.started: Optional[datetime] = None
        self.terminal: Optional[Dict[str, Any]] = None

    @property
    def terminal_status(self) -> Optional[str]:
        return TERMINAL_EVENTS[self.terminal["type"]] if self.terminal else None

    def feed(self, events: List[Dict[str, Any]]) -> List[str]:
        lines: List[str] = []
        for event in events:
            lines.extend(self._apply(event))
        return lines

    def _apply(self, event: Dict[str, Any]) -> List[str]:
        kind = event.get("type", "")
        ts = event.get("timestamp")
        details = _details(event)
        if kind == "ExecutionStarted":
            self.started = ts or self.started
            return []
        if kind in TERMINAL_EVENTS:
            self.terminal = event
            gate_line = self._settle_gate(failed=details.get("error") == GATE_ERROR)
            return gate_line + self.close(_STEP_STATUS_AT_END[TERMINAL_EVENTS[kind]], ts)
        if kind == "ExecutionRedriven":  # someone redrove the failed run: it goes on
            self.terminal = None
            return []
        if kind.endswith("StateEntered"):
            name = details.get("name", "?")
            gate_line = self._settle_gate(failed=name == GATE_FAILED_STATE)
            return gate_line + self._entered(kind[: -len("StateEntered")], name, ts)
        if kind.endswith("StateExited"):
            record = self.open.pop(details.get("name", ""), None)
            if record is None:
                return []
            record.ended = ts
            if record.status != out.RUNNING:
                return []  # already reported (a caught failure)
            record.status = out.SUCCEEDED
            if record.name == GATE_STATE:  # the Choice exits either way: the next state tells
                self.pending_gate = record
                self.gate_metrics = _metrics_of(details.get("output"), self.rules or ())
                return []
            return [self.line(record)] if record.name in USER_STATES else []
        record = self.last_entered if self.last_entered and self.last_entered.name in self.open else None
        if record is None:
            return []
        if kind == "TaskScheduled":
            if record.status != out.RUNNING:  # a Retry: the step runs again
                record.status, record.ended, record.error, record.cause = out.RUNNING, None, None, None
            self._job_from_parameters(record, details)
            return []
        if kind in _TASK_FAILURES:
            record.status = _TASK_FAILURES[kind]
            record.ended = ts
            record.error = details.get("error")
            record.cause = details.get("cause")
            return [self.line(record)]
        return []

    def _settle_gate(self, failed: bool) -> List[str]:
        """The Gate's line, once it is known whether it passed."""
        record, self.pending_gate = self.pending_gate, None
        if record is None:
            return []
        if failed:
            record.status = out.STEP_FAILED
            record.error = GATE_ERROR
        record.cause = self._gate_detail(failed)
        return [self.line(record)]

    def _gate_detail(self, failed: bool) -> str:
        """'auc 0.87 < 0.9' for the rules that missed (all rules when it passed)."""
        from . import gate

        if not self.rules or self.gate_metrics is None:
            return ""
        results = gate.evaluate(self.rules, self.gate_metrics)
        shown = [r for r in results if not r.passed] if failed else results
        return ", ".join(_rule_result_text(r, rule) for r, rule in zip(results, self.rules) if r in shown)

    def _entered(self, state_type: str, name: str, ts: Optional[datetime]) -> List[str]:
        record = out.StepRecord(name=name, state_type=state_type, started=ts)
        if name in self.jobs:
            record.job_name, record.job_kind = self.jobs[name]
            record.link = self._link(record)
            record.log_link = self._log_link(record)
        self.steps.append(record)
        self.open[name] = record
        self.last_entered = record
        if state_type == "Fail":
            self.open.pop(name)
            record.status, record.ended = out.STEP_FAILED, ts
            return [] if name == GATE_FAILED_STATE else [self.line(record)]  # the Gate's line said it
        if state_type not in _LONG_STATES or name not in USER_STATES:
            return []
        lines = [self.line(record)]
        if record.link:  # on AWS: the job's console page, once per job
            lines.append(f"{'':>8}  {'':<16}  {record.link}")
        return lines

    def _link(self, record: out.StepRecord) -> Optional[str]:
        return job_link(self.region, record.job_kind, record.job_name) if self.links else None

    def _log_link(self, record: out.StepRecord) -> Optional[str]:
        return job_log_link(self.region, record.job_kind, record.job_name) if self.links else None

    def _job_from_parameters(self, record: out.StepRecord, details: Dict[str, Any]) -> None:
        if record.job_name:
            return
        params = _json(details.get("parameters")) or {}
        if not isinstance(params, dict):
            return
        resource = str(details.get("resource", ""))
        if params.get("TrainingJobName") or "TrainingJob" in resource:
            record.job_name, record.job_kind = params.get("TrainingJobName"), "training"
        elif params.get("ProcessingJobName") or "ProcessingJob" in resource:
            record.job_name, record.job_kind = params.get("ProcessingJobName"), "processing"
        record.link = self._link(record)
        record.log_link = self._log_link(record)

    def close(self, status: str, ts: Optional[datetime]) -> List[str]:
        """End every step still open (the execution ended or was stopped)."""
        lines = []
        for name in list(self.open):
            record = self.open.pop(name)
            if record.status == out.RUNNING:
                record.status = status
                record.ended = ts
                lines.append(self.line(record))
            elif record.ended is None:
                record.ended = ts
        return lines

    def failed_step(self) -> Optional[out.StepRecord]:
        """The step the run failed in: a failed task, else the last state entered
        before the end (a Fail state only when nothing else was entered)."""
        for record in reversed(self.steps):
            if record.status in (out.STEP_FAILED, out.STEP_TIMED_OUT) and record.state_type != "Fail":
                return record
        for record in reversed(self.steps):
            if record.state_type != "Fail":
                return record
        return self.steps[-1] if self.steps else None

    def line(self, record: out.StepRecord) -> str:
        when = ""
        moment = record.ended or record.started
        if self.started and moment:
            when = "+" + _clock_text((moment - self.started).total_seconds())
        status = "started" if record.status == out.RUNNING else out.step_status_text(record.name, record.status)
        duration = out.format_duration(record.duration_seconds) if record.state_type in _LONG_STATES else ""
        parts = [f"{when:>8}", f"{record.name:<16}", f"{status:<10}", f"{duration:>8}"]
        if record.job_name:
            parts.append(record.job_name)
        if record.name == GATE_STATE and record.cause:
            parts.append(record.cause)
        return "  ".join(parts).rstrip()


def _metrics_of(output: Any, rules: Sequence[Any] = ()) -> Optional[Dict[str, Any]]:
    """The values the Gate looked at, from its state output: evaluation.json
    ($.evaluation.report) read as the Gate reads it (gate.report_values)."""
    from . import gate

    data = _json(output)
    try:
        report = data["evaluation"]["report"]
    except (TypeError, KeyError):
        return None
    if not isinstance(report, dict):
        return None
    return gate.report_values(report, rules)


def _rule_result_text(result: Any, rule: Any) -> str:
    """'auc 0.87 < 0.9', 'fpr 0.001 <= 0.05', 'recall missing'."""
    if result.value is None:
        return f"{result.metric} {'missing' if 'missing' in result.reason else 'not a number'}"
    value = out.format_value(result.value)
    if result.passed:
        return f"{result.metric} {value} {result.rule}"
    if rule.min is not None and result.value < rule.min:
        return f"{result.metric} {value} < {out.format_value(rule.min)}"
    return f"{result.metric} {value} > {out.format_value(rule.max)}"


def _clock_text(seconds: float) -> str:
    seconds = max(0, int(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60:02d}:{rest % 60:02d}"


def jobs_from_input(execution_input: Dict[str, Any]) -> Dict[str, Tuple[str, str]]:
    jobs = {}
    for state, (key, kind) in JOB_STATES.items():
        if execution_input.get(key):
            jobs[state] = (str(execution_input[key]), kind)
    return jobs


# --------------------------------------------------------------------------- the loop


class Watcher:
    """Polls the history until the execution ends or the deadline passes."""

    def __init__(self, sfn, execution_arn: str, tracker: Tracker, clock, echo: Echo,
                 policy: PollPolicy = DEFAULT_POLICY):
        self.reader = HistoryReader(sfn, execution_arn, policy.page_size)
        self.execution_arn = execution_arn
        self.tracker = tracker
        self.clock = clock
        self.echo = echo
        self.policy = policy

    def poll(self) -> bool:
        """One poll; True when something was shown."""
        lines = self.tracker.feed(self.reader.poll())
        for line in lines:
            self.echo(line)
        return bool(lines)

    def run(self, deadline: Optional[float] = None) -> bool:
        """True when the execution ended, False when the deadline came first."""
        backoff = Backoff(self.policy)
        failing_since: Optional[float] = None
        while True:
            try:
                changed = self.poll()
                failing_since = None
            except _AWS_ERRORS as exc:
                if not is_transient(exc):
                    with refused("GetExecutionHistory", self.execution_arn):
                        raise
                now = self.clock.now()
                failing_since = now if failing_since is None else failing_since
                if now - failing_since >= self.policy.transient_limit:
                    raise AwsRefused(
                        f"GetExecutionHistory {self.execution_arn}: still failing after "
                        f"{(now - failing_since) / 60:.0f} min: {_describe_error(exc)}"
                    )
                self.echo(f"warning: reading the execution history failed ({_describe_error(exc)}); retrying")
                changed = False
            if self.tracker.terminal:
                return True
            if changed:
                backoff.reset()
            delay = backoff.next()
            if deadline is not None:
                left = deadline - self.clock.now()
                if left <= 0:
                    return False
                delay = min(delay, left)
            self.clock.sleep(delay)


# --------------------------------------------------------------------------- follow


def follow(ctx: RunContext, clients: Clients, timeout_minutes: Optional[float] = None, clock=None,
           echo: Echo = click.echo, policy: PollPolicy = DEFAULT_POLICY) -> out.Outcome:
    """Follow the run of `ctx` to its end; the Outcome says how it ended.

    On timeout or interrupt (Ctrl-C, SIGTERM) the execution is stopped first.
    Raises AwsRefused when the execution cannot be found or read."""
    from . import runs

    clock = clock or SystemClock()
    with refused("DescribeExecution", f"{ctx.state_machine}/{ctx.run_name}"):
        arn = runs.execution_arn(ctx, clients)
    with refused("DescribeExecution", arn):
        description = clients.sfn.describe_execution(executionArn=arn)
    execution_input = _json(description.get("input")) or {}
    if not isinstance(execution_input, dict):
        execution_input = {}
    links = console_links(ctx)
    tracker = Tracker(ctx.region, jobs_from_input(execution_input), ctx.config.gate, links=links)
    tracker.started = description.get("startDate")
    echo(f"following {ctx.state_machine} run {ctx.run_name}" + (f": {execution_link(ctx.region, arn)}" if links else ""))

    watcher = Watcher(clients.sfn, arn, tracker, clock, echo, policy)
    deadline = clock.now() + timeout_minutes * 60 if timeout_minutes else None
    stop = None  # (status, why): wait stops the run
    try:
        if not watcher.run(deadline):
            stop = (out.TIMED_OUT, f"timed out after {timeout_minutes:g} min")
    except KeyboardInterrupt:
        stop = (out.STOPPED, "build aborted")

    result = _new_outcome(ctx, arn, execution_input, tracker)
    if stop:
        status, why = stop
        echo(f"stopping the execution: {why}")
        with refused("StopExecution", arn):
            stopped = runs.stop(ctx, clients, cause=f"mltp wait: {why}")
        _final_poll(watcher, result)
        if not stopped and tracker.terminal:
            stop = None  # it ended on its own meanwhile: report that
    if stop:
        for line in tracker.close(out.STEP_STOPPED, datetime.now(timezone.utc)):
            echo(line)
        result.execution_status = "ABORTED"
        result.status = status
        result.message = why if status == out.TIMED_OUT else f"stopped: {why}"
        result.failure = _failure(ctx, clients, tracker, why, None, result)
    else:
        _conclude(ctx, clients, tracker, arn, execution_input, result)
    result.started = tracker.started
    result.ended = result.ended or _end_time(tracker)
    result.steps = _with_unrun_jobs(tracker)
    return result


def _new_outcome(ctx: RunContext, arn: str, execution_input: Dict[str, Any], tracker: Tracker) -> out.Outcome:
    register = execution_input.get("Register")
    return out.Outcome(
        status=out.FAILED,
        model=ctx.config.name,
        state_machine=ctx.state_machine,
        run_name=ctx.run_name,
        execution_arn=arn,
        region=ctx.region,
        branch=execution_input.get("Branch") or ctx.branch or _git_branch(ctx),
        commit=_known(execution_input.get("GitCommit")) or ctx.git_commit,
        build_url=_known(execution_input.get("BuildUrl")) or ctx.build_url,
        register=bool(register) if register is not None else ctx.register,
        execution_link=execution_link(ctx.region, arn) if console_links(ctx) else None,
        gate=[out.GateCheck(r.metric, r.describe()) for r in ctx.config.gate],
    )


def _known(value: Any) -> str:
    """The execution input says 'unknown' where CreateModelPackage needed a value."""
    return "" if not value or value == "unknown" else str(value)


def _git_branch(ctx: RunContext) -> str:
    """Outside Jenkins (no BRANCH_NAME), the branch checked out in the repo, for the report."""
    import subprocess

    try:
        found = subprocess.run(["git", "-C", str(ctx.config.repo), "rev-parse", "--abbrev-ref", "HEAD"],
                               capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return ""
    name = found.stdout.strip() if found.returncode == 0 else ""
    return "" if name == "HEAD" else name


def _final_poll(watcher: Watcher, result: out.Outcome) -> None:
    try:
        watcher.poll()
    except _AWS_ERRORS as exc:
        result.warnings.append(f"could not read the end of the execution history: {_describe_error(exc)}")


def _end_time(tracker: Tracker) -> Optional[datetime]:
    return tracker.terminal.get("timestamp") if tracker.terminal else None


def _with_unrun_jobs(tracker: Tracker) -> List[out.StepRecord]:
    """The steps that ran, plus the job steps the run never reached (as 'not run')."""
    steps = list(tracker.steps)
    seen = {s.name for s in steps}
    for state in JOB_STATES:
        if state not in seen:
            job, kind = tracker.jobs.get(state, (None, JOB_STATES[state][1]))
            steps.append(out.StepRecord(name=state, status=out.NOT_RUN, job_name=job, job_kind=kind,
                                        link=job_link(tracker.region, kind, job) if tracker.links else None,
                                        state_type="Task",
                                        log_link=job_log_link(tracker.region, kind, job) if tracker.links else None))
    # What people see: the contract's steps, and an internal state only when it failed.
    return [s for s in steps if s.name in USER_STATES or (s.status in (out.STEP_FAILED, out.STEP_TIMED_OUT)
                                                         and s.name != GATE_FAILED_STATE)]


def _conclude(ctx: RunContext, clients: Clients, tracker: Tracker, arn: str,
              execution_input: Dict[str, Any], result: out.Outcome) -> None:
    """The execution ended: settle its status and gather what the report needs."""
    try:
        description = clients.sfn.describe_execution(executionArn=arn)
    except _AWS_ERRORS as exc:
        result.warnings.append(f"could not describe the execution: {_describe_error(exc)}")
        description = {}
    status = description.get("status")
    if status not in FINAL_STATUSES:  # the history is ahead of DescribeExecution
        status = tracker.terminal_status
    if status == "PENDING_REDRIVE":  # failed, and a redrive was asked for
        status = "FAILED"
    details = _details(tracker.terminal or {})
    error = details.get("error") or description.get("error")
    cause = details.get("cause") or description.get("cause")
    result.execution_status = status
    result.ended = description.get("stopDate")
    champion = execution_input.get("Champion")
    result.champion = dict(champion) if isinstance(champion, dict) else {"Reason": "the run was started without a champion lookup"}

    if status == "SUCCEEDED":
        result.status = out.PASSED
        output = _json(details.get("output") if "output" in details else description.get("output"))
        # A registered run's report reads the registry copies, which the version names.
        from . import registry

        result.gate = _gate_checks(ctx, clients, registry.evaluation_read_from(execution_input, output), result,
                                   decided=True)
        if result.register:
            _find_model_package(ctx, clients, output, result)
            result.model_copy = registry.model_copy(execution_input, output)
        result.message = "passed"
        return
    if status == "FAILED" and error == GATE_ERROR:
        result.status = out.GATE_FAILED
        result.gate = _gate_checks(ctx, clients, execution_input, result, decided=False)
        missed = result.failed_checks
        result.message = ("metric gate failed: " + "; ".join(c.miss_message() for c in missed)) if missed else \
            "metric gate failed" + (f": {out.one_line(cause)}" if cause else "")
        result.failure = out.Failure(step="Gate", error=error, reason=result.message)
        return
    result.status = out.TIMED_OUT if status == "TIMED_OUT" else out.STOPPED if status == "ABORTED" else out.FAILED
    result.failure = _failure(ctx, clients, tracker, cause, error, result)
    where = f" at {result.failure.step}" if result.failure.step else ""
    if result.status == out.TIMED_OUT:
        result.message = f"the execution timed out{where}"
    elif result.status == out.STOPPED:
        result.message = f"stopped{where}: the execution was aborted" + (f" ({out.one_line(cause)})" if cause else "")
    else:
        result.message = f"run failed{where}: {out.one_line(_died_of(result.failure) or error or 'unknown error')}"


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


# --------------------------------------------------------------------------- gate


def _rule_text(result: Any) -> str:
    text = str(getattr(result, "rule", "") or "")
    return text[len(result.metric):].strip() if text.startswith(result.metric + " ") else text


def _gate_checks(ctx: RunContext, clients: Clients, execution_input: Dict[str, Any],
                 result: out.Outcome, decided: bool) -> List[out.GateCheck]:
    """The gate table from evaluation.json. `decided` is what the state machine's
    Gate said (True: passed), used for every rule when the file cannot be read."""
    from . import gate

    bucket, key = execution_input.get("EvaluationBucket"), execution_input.get("EvaluationKey")
    unknown = [out.GateCheck(r.metric, r.describe(), None, True if decided else None) for r in ctx.config.gate]
    if not bucket or not key:
        result.warnings.append("the execution input names no evaluation.json; gate values unknown")
        return unknown
    try:
        source = f"s3://{bucket}/{key}"
        body = gate.read_evaluation(clients.s3.get_object(Bucket=bucket, Key=key)["Body"], source)
        metrics = gate.metric_values(body, source, rules=ctx.config.gate)
    except _AWS_ERRORS as exc:
        result.warnings.append(f"could not read s3://{bucket}/{key}: {_describe_error(exc)}")
        return unknown
    except (MltpError, ValueError, TypeError, KeyError) as exc:
        result.warnings.append(f"s3://{bucket}/{key} is not a valid evaluation.json: {exc}")
        return unknown
    champion = execution_input.get("Champion") if isinstance(execution_input.get("Champion"), dict) else {}
    results = gate.evaluate(ctx.config.gate, metrics, champion)
    checks = [out.GateCheck(r.metric, _rule_text(r), r.value, bool(r.passed),
                            r.reason if (r.value is None or rule.beat_champion) else "")
              for r, rule in zip(results, ctx.config.gate)]
    result.comparison = gate.compare(ctx.config.gate, metrics, champion)
    if decided and not all(c.passed for c in checks):
        result.warnings.append("the state machine passed the gate, but evaluation.json as read now misses it")
    return checks


# --------------------------------------------------------------------------- model package


def _find_model_package(ctx: RunContext, clients: Clients, output: Any, result: out.Outcome) -> None:
    arn = None
    if isinstance(output, dict) and isinstance(output.get("register"), dict):
        arn = output["register"].get("ModelPackageArn")
    group = ctx.config.registry.model_package_group
    sm = clients.sagemaker
    try:
        if not arn:
            arn, description = _package_of_run(sm, group, ctx.run_name)
        else:
            description = sm.describe_model_package(ModelPackageName=arn)
    except _AWS_ERRORS as exc:
        result.warnings.append(f"could not look up the model package in {group}: {_describe_error(exc)}")
        result.model_package_arn = arn
        return
    if not arn:
        result.warnings.append(f"no model package of run {ctx.run_name} found in group {group}")
        return
    result.model_package_arn = arn
    result.approval_status = (description or {}).get("ModelApprovalStatus")


def _package_of_run(sm, group: str, run_name: str, newest: int = 50):
    """The newest package of the group whose metadata names this run."""
    token = None
    looked = 0
    while looked < newest:
        request = {"ModelPackageGroupName": group, "SortBy": "CreationTime", "SortOrder": "Descending", "MaxResults": 20}
        if token:
            request["NextToken"] = token
        page = sm.list_model_packages(**request)
        for summary in page.get("ModelPackageSummaryList", []):
            looked += 1
            description = sm.describe_model_package(ModelPackageName=summary["ModelPackageArn"])
            if (description.get("CustomerMetadataProperties") or {}).get("RunName") == run_name:
                return summary["ModelPackageArn"], description
        token = page.get("NextToken")
        if not token:
            break
    return None, None


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
    return failure


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
