"""Watching one execution: the clock, the backoff, the history reader, the
tracker that turns history events into step records and lines, and the loop
(Watcher) that polls until the execution ends or the deadline passes.

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
(exit 5).

Time comes from a clock object (`now`, `sleep`), so tests and the benchmark
run hours of polling in milliseconds.
"""

import json
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Callable, Dict, List, Optional, Sequence, Set, Tuple

import botocore.exceptions

from .. import outcome as out
from ..aws import error_code, refused
from ..errors import AwsRefused
from ..jobs import JOB_STATES, REUSE_CHOICES
from .links import job_link, job_log_link

Echo = Callable[[str], None]

GATE_ERROR = "MetricGateFailed"
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
        self.reused: Dict[str, str] = {}  # job state -> the run the step cache takes it from (Cache.reuse)
        self.from_default: Set[str] = set()  # ... of those, a default-branch run's (Cache.from_default)

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
        from .. import gate

        if not self.rules or self.gate_metrics is None:
            return ""
        # Training metrics are in the same mapping (_metrics_of), under their own names.
        results = gate.evaluate(self.rules, self.gate_metrics, training=self.gate_metrics)
        shown = [r for r in results if not r.passed] if failed else results
        return ", ".join(_rule_result_text(r, rule) for r, rule in zip(results, self.rules) if r in shown)

    def _entered(self, state_type: str, name: str, ts: Optional[datetime]) -> List[str]:
        if state_type == "Choice" and REUSE_CHOICES.get(name) in self.reused:
            return self._cached(REUSE_CHOICES[name], ts)
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

    def _cached(self, name: str, ts: Optional[datetime]) -> List[str]:
        """A job step the step cache takes from an earlier run: no job, no time."""
        if any(s.name == name for s in self.steps):
            return []
        job, kind = self.jobs.get(name, (None, None))
        record = out.StepRecord(name=name, status=out.CACHED, job_kind=kind, state_type="Task",
                                cached_from=str(self.reused[name]), cached_from_default=name in self.from_default)
        self.steps.append(record)
        line = [f"{'':>8}", f"{name:<16}", out.step_status_long(record)]
        if self.started and ts:
            line[0] = f"{'+' + _clock_text((ts - self.started).total_seconds()):>8}"
        return ["  ".join(line).rstrip()]

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
    ($.evaluation.report) read as the Gate reads it (gate.report_values), and
    the training metrics rules with source: training read ($.jobs.training.metrics)."""
    from .. import gate, training_metrics

    data = _json(output)
    try:
        report = data["evaluation"]["report"]
    except (TypeError, KeyError):
        return None
    if not isinstance(report, dict):
        return None
    return {**gate.report_values(report, rules), **training_metrics.state_values(data, rules)}


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
