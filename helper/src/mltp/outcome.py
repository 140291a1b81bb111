"""The result of one run, as `wait` found it: what the report, the console table
and the exit code are all made from (docs/contract.md, 4.1).

Status is one of PASSED, GATE_FAILED, FAILED, STOPPED, TIMED_OUT; each maps to
exactly one exit code, so the Jenkins step never has to parse text.
"""

import re
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any, Dict, List, Optional

from .errors import GateFailed, RunFailed

PASSED = "passed"
GATE_FAILED = "gate_failed"
FAILED = "failed"
STOPPED = "stopped"
TIMED_OUT = "timed_out"

EXIT_CODES = {PASSED: 0, GATE_FAILED: 3, FAILED: 4, STOPPED: 4, TIMED_OUT: 4}
HEADLINES = {PASSED: "PASSED", GATE_FAILED: "GATE FAILED", FAILED: "FAILED", STOPPED: "STOPPED", TIMED_OUT: "TIMED OUT"}

# Step statuses, as shown per step.
RUNNING = "running"
SUCCEEDED = "succeeded"
STEP_FAILED = "failed"
STEP_TIMED_OUT = "timed out"
STEP_STOPPED = "stopped"
NOT_RUN = "not run"
CACHED = "cached"  # taken from an earlier run by the step cache (StepRecord.cached_from)
DEFAULT_BRANCH_TEXT = "on the default branch"  # a branch's step taken from the default branch's run


def step_status_text(name: str, status: str) -> str:
    """A step's status as people read it: the Gate 'passed' rather than 'succeeded'."""
    return "passed" if name == "Gate" and status == SUCCEEDED else status


def step_status_long(step: "StepRecord") -> str:
    """As step_status_text, with the run a cached step was taken from: 'cached (from <run>)',
    'cached (from <run> on the default branch)' for a branch's copy of a default-branch run's."""
    text = step_status_text(step.name, step.status)
    if step.status != CACHED or not step.cached_from:
        return text
    return f"{text} (from {step.cached_from}{' ' + DEFAULT_BRANCH_TEXT if step.cached_from_default else ''})"


def format_value(value: Optional[float]) -> str:
    """A metric value as people read it: 0.962, 0.0007, 12.5; 'missing' for None."""
    if value is None:
        return "missing"
    return f"{value:.4g}" if abs(value) < 1e4 else f"{value:.1f}"


def one_line(text: str, limit: int = 300) -> str:
    """A failure reason for one line (an error message, summary.txt): whitespace
    and line breaks collapsed, cut at a word boundary within `limit` characters.
    Reports keep the full text."""
    flat = " ".join(str(text).split())
    if len(flat) <= limit:
        return flat
    cut = flat[: limit - 3]
    space = cut.rfind(" ")
    if space > limit // 2:  # a word boundary, unless that loses too much
        cut = cut[:space]
    return cut.rstrip(" ,;:") + "..."


# 'ValueError: boom', 'sklearn.exceptions.NotFittedError: ...', 'KeyError', 'SystemExit: 2'
_EXCEPTION = re.compile(r"(?<![\w.])([A-Za-z_][\w.]*(?:Error|Exception|Exit|Interrupt|Failure))(?=:|$|\")")
# What SageMaker (and the local runner) wrap a script's failure in: not the script's exception.
WRAPPERS = ("AlgorithmError", "ClientError", "ExecuteUserScriptError", "InternalServerError")
_WRAPPERS = WRAPPERS


def exception_line(text: str) -> Optional[str]:
    """The exception a Python script died of, from its output or a FailureReason:
    the line after the last traceback's frames ('ValueError: bad input'), else the
    last line that names one. None when there is none."""
    lines = [line.rstrip() for line in str(text or "").splitlines()]
    found = None
    for i, line in enumerate(lines):
        if line.lstrip().startswith("Traceback (most recent call last)"):
            for following in lines[i + 1:]:
                if following and not following[0].isspace():
                    found = following.strip()
                    break
    if found:
        return found
    for line in reversed(lines):
        for match in _EXCEPTION.finditer(line):
            if match.group(1).rsplit(".", 1)[-1] not in _WRAPPERS:
                return line[match.start():].strip().strip('"').strip()
    return None


def format_duration(seconds: Optional[float]) -> str:
    if seconds is None:
        return ""
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h {minutes:02d}m"
    if minutes:
        return f"{minutes}m {secs:02d}s"
    return f"{secs}s"


@dataclass
class StepRecord:
    """One state of the execution, as the history shows it."""

    name: str  # the state's name: Preprocessing, Training, Evaluation, Gate, ...
    status: str = RUNNING
    job_name: Optional[str] = None
    job_kind: Optional[str] = None  # "processing" | "training" | None (no SageMaker job)
    link: Optional[str] = None  # console link of the job
    started: Optional[datetime] = None
    ended: Optional[datetime] = None
    state_type: str = ""  # Task, Choice, Fail, Succeed, Pass, ...
    error: Optional[str] = None
    cause: Optional[str] = None
    log_link: Optional[str] = None  # the job's log stream in CloudWatch Logs
    log_file: Optional[str] = None  # a local run's job log, relative to the report folder (logs/<job>.log)
    cached_from: Optional[str] = None  # status CACHED: the run whose outputs this step reused
    cached_from_default: bool = False  # ... a default-branch run, whose outputs this branch run copied

    @property
    def duration_seconds(self) -> Optional[float]:
        if self.started is None or self.ended is None:
            return None
        return max(0.0, (self.ended - self.started).total_seconds())

    def to_dict(self) -> Dict[str, Any]:
        cached = {"cached_from": self.cached_from} if self.status == CACHED else {}
        if self.status == CACHED and self.cached_from_default:
            cached["cached_from_default_branch"] = True
        return {
            "name": self.name,
            "status": self.status,
            "job_name": self.job_name,
            "job_kind": self.job_kind,
            "link": self.link,
            "started": _iso(self.started),
            "ended": _iso(self.ended),
            "duration_seconds": self.duration_seconds,
            "error": self.error,
            "log_link": self.log_link,
            "log_file": self.log_file,
            **cached,  # a step the step cache took from an earlier run: that run
        }


@dataclass(frozen=True)
class GateCheck:
    """One gate rule and how the run's evaluation.json met it.

    passed is None when the rule was not evaluated (the run failed before)."""

    metric: str
    rule: str  # ">= 0.9", "<= 0.05", ">= 0.1 and <= 0.9"
    value: Optional[float] = None
    passed: Optional[bool] = None
    note: str = ""  # why there is no value: '"abc" is not a number', ...

    @property
    def verdict(self) -> str:
        return {True: "pass", False: "FAIL", None: "not evaluated"}[self.passed]

    @property
    def value_text(self) -> str:
        """The value; 'missing' when the rule failed for want of one, 'n/a' when unknown."""
        if self.value is not None:
            return format_value(self.value)
        if self.passed is False:
            return "not a number" if "not a number" in self.note else "missing"
        return "n/a"

    def describe(self) -> str:
        """'auc=0.962 (>= 0.9)'"""
        return f"{self.metric}={self.value_text} ({self.rule})"

    def miss_message(self) -> str:
        if self.value is None:
            if self.note.startswith("missing"):  # 'missing from evaluation.json, which has: ...'
                head, _, has = self.note.partition(", which has")
                return f"{self.metric} is {head} (needs {self.rule})" + (f"; it has{has}" if has else "")
            why = self.note or "is missing from evaluation.json"
            return f"{self.metric} {why} (needs {self.rule})"
        if self.note:  # a champion rule: the bar and the champion's value
            return f"{self.metric} = {format_value(self.value)}, needs {self.rule}: {self.note}"
        return f"{self.metric} = {format_value(self.value)}, needs {self.rule}"


@dataclass
class Failure:
    """Why the run did not pass: where, what AWS said, and the end of the job's log."""

    step: Optional[str] = None
    job_name: Optional[str] = None
    error: Optional[str] = None
    reason: Optional[str] = None
    log_group: Optional[str] = None
    log_tail: List[str] = field(default_factory=list)
    log_link: Optional[str] = None

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)


@dataclass
class Outcome:
    status: str
    model: str
    state_machine: str
    run_name: str
    execution_arn: str
    region: str
    branch: str = ""
    commit: str = ""
    build_url: str = ""
    register: bool = False
    execution_status: Optional[str] = None  # RUNNING, SUCCEEDED, FAILED, TIMED_OUT, ABORTED
    execution_link: Optional[str] = None
    started: Optional[datetime] = None
    ended: Optional[datetime] = None
    steps: List[StepRecord] = field(default_factory=list)
    gate: List[GateCheck] = field(default_factory=list)
    model_package_arn: Optional[str] = None
    approval_status: Optional[str] = None
    failure: Optional[Failure] = None
    # Champion vs challenger (gate.compare): the champion as the execution input
    # had it ({"Version", "Arn", "Metrics", "Bars"} or {"Reason"}), one row per gate metric.
    champion: Optional[Dict[str, Any]] = None
    comparison: List[Dict[str, Any]] = field(default_factory=list)
    model_sha256: Optional[str] = None
    model_copy: Optional[Any] = None  # registry.ModelCopy: what `wait` hashes (If-Match its ETag)
    message: str = ""  # one line: "passed", "metric gate failed: ...", "stopped: build aborted"
    warnings: List[str] = field(default_factory=list)
    # The gate metrics across the versions of the model package group (history.collect).
    history: Optional[Dict[str, Any]] = None
    # The training job's metrics (steps.training.metric_definitions): [{"name", "value"}]
    # in config order, the last value of each (None: the log never matched); None without definitions.
    training_metrics: Optional[List[Dict[str, Any]]] = None
    # What the run cost (costs.RunCost); None for a local run, which shows none.
    cost: Optional[Any] = None

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.status]

    @property
    def headline(self) -> str:
        return HEADLINES[self.status]

    @property
    def passed(self) -> bool:
        return self.status == PASSED

    @property
    def failed_checks(self) -> List[GateCheck]:
        return [c for c in self.gate if c.passed is False]

    @property
    def model_package_name(self) -> Optional[str]:
        """'fraud-detection/3' from the package ARN."""
        if not self.model_package_arn:
            return None
        return self.model_package_arn.split(":model-package/", 1)[-1]

    def registration_text(self) -> str:
        if self.model_package_arn:
            approval = f" ({self.approval_status})" if self.approval_status else ""
            return f"registered {self.model_package_name}{approval}"
        if not self.register:
            return "not registered (branch build)"
        if self.status == PASSED:
            return "registered (model package not found)"
        return "not registered"

    def champion_dict(self) -> Optional[Dict[str, Any]]:
        """report.json's champion: who, or why none, and the per-metric comparison."""
        if self.champion is None:
            return None
        version = self.champion.get("Version")
        return {
            "version": version,
            "arn": self.champion.get("Arn"),
            "reason": self.champion.get("Reason") if version is None else None,
            "metrics": dict(self.champion.get("Metrics") or {}),
            "comparison": [dict(row) for row in self.comparison],
        }

    def comparison_table(self) -> Optional[Dict[str, Any]]:
        """report.json's top-level comparison, as report.html shows it: the two
        sides' labels and one row per gate metric (None without a champion)."""
        if not self.comparison:
            return None
        version = (self.champion or {}).get("Version")
        return {
            "champion": f"champion v{version}" if version is not None else "champion",
            "challenger": self.model_package_name or "this run",
            "rows": [dict(row) for row in self.comparison],
        }

    def raise_for_status(self) -> None:
        """Nothing for a pass; otherwise the error whose exit code tells the outcome."""
        # One line, no details: the Jenkins step shows the first line of an error
        # (and the details, when there are any, in its place).
        if self.status == PASSED:
            return
        if self.status == GATE_FAILED:
            raise GateFailed(self.message)
        raise RunFailed(self.message)

    def to_dict(self) -> Dict[str, Any]:
        return {
            "model": self.model,
            "state_machine": self.state_machine,
            "run": self.run_name,
            "execution_arn": self.execution_arn,
            "execution_status": self.execution_status,
            "execution_link": self.execution_link,
            "region": self.region,
            "branch": self.branch,
            "commit": self.commit,
            "build_url": self.build_url,
            "register": self.register,
            "status": self.status,
            "exit_code": self.exit_code,
            "message": self.message,
            "started": _iso(self.started),
            "ended": _iso(self.ended),
            "steps": [s.to_dict() for s in self.steps],
            "gate": [
                {"metric": c.metric, "rule": c.rule, "value": c.value, "passed": c.passed} for c in self.gate
            ],
            "model_package": {
                "arn": self.model_package_arn,
                "name": self.model_package_name,
                "approval_status": self.approval_status,
                "sha256": self.model_sha256,
            }
            if self.model_package_arn
            else None,
            "failure": self.failure.to_dict() if self.failure else None,
            "champion": self.champion_dict(),
            "warnings": list(self.warnings),
            "registration": self.registration_text(),
            "history": self.history,
            "comparison": self.comparison_table(),
            "training_metrics": [dict(row) for row in self.training_metrics] if self.training_metrics is not None else None,
            "cost": self.cost.to_dict() if self.cost is not None else None,
        }


def _iso(value: Optional[datetime]) -> Optional[str]:
    return value.isoformat() if value else None
