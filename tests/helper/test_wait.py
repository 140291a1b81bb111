"""`mltp wait` against moto over HTTP: step lines, backoff, incremental history
reads, transient errors, timeout, interrupt, and the end of a run.

moto does not run SageMaker jobs and its Step Functions backend answers with a
fixed history, so the tests script executions: `Scripted` swaps a moto
Execution's class for one whose history, status, output and error follow a
script on a clock (the test's ManualClock, or real time for the subprocess).
The server runs in this process, so that is plain Python.

The helpers here are shared with test_report.py and test_exit_codes.py.
"""

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

import boto3
import botocore.retries.bucket
import botocore.retries.standard
import pytest
from moto.core.config import default_user_config
from moto.stepfunctions.models import Execution

from mltp import config as config_mod
from mltp import follow, invocation, naming
from mltp import outcome as out
from mltp.aws import Clients
from mltp.commands import wait as wait_cmd
from mltp.context import make_context
from mltp.errors import AwsRefused, GateFailed, RunFailed

REGION = "ap-northeast-2"
ACCOUNT = "123456789012"
T0 = datetime(2024, 5, 1, 9, 0, 0, tzinfo=timezone.utc)
ROOT = Path(__file__).resolve().parents[2]


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


# --------------------------------------------------------------------------- scripted executions


def _details_key(kind: str) -> str:
    """The history event's details field: TaskStateEntered -> stateEnteredEventDetails, ..."""
    for suffix in ("StateEntered", "StateExited"):
        if kind.endswith(suffix):
            return "state" + suffix[len("State"):] + "EventDetails"
    return kind[0].lower() + kind[1:] + "EventDetails"


class Script:
    """An execution's history as (seconds after start, type, details), shown up to `now()`."""

    TERMINAL = {"ExecutionSucceeded": "SUCCEEDED", "ExecutionFailed": "FAILED",
                "ExecutionAborted": "ABORTED", "ExecutionTimedOut": "TIMED_OUT"}

    def __init__(self, now: Callable[[], float]):
        self.now = now
        self.events: List[tuple] = []
        self.lock = threading.Lock()
        self.history_calls = 0

    def add(self, at: float, kind: str, **details) -> "Script":
        with self.lock:
            self.events.append((at, kind, details))
            self.events.sort(key=lambda e: e[0])
        return self

    def visible(self) -> List[tuple]:
        t = self.now()
        with self.lock:
            return [e for e in self.events if e[0] <= t]

    def history(self) -> List[Dict[str, Any]]:
        self.history_calls += 1
        result = []
        for i, (at, kind, details) in enumerate(self.visible(), start=1):
            event = {"timestamp": T0 + timedelta(seconds=at), "type": kind, "id": i, "previousEventId": i - 1}
            if details:
                event[_details_key(kind)] = details
            result.append(event)
        return result

    def terminal(self) -> Optional[tuple]:
        for event in self.visible():
            if event[1] in self.TERMINAL:
                return event
        return None

    def abort(self) -> None:
        if self.terminal() is None:
            self.add(self.now(), "ExecutionAborted", error="mltp.Aborted", cause="stopped")

    # the pipeline's shape ------------------------------------------------------

    def job_step(self, name: str, start: float, end: Optional[float], job: str, kind: str = "processing",
                 fail: Optional[Dict[str, str]] = None) -> "Script":
        resource = "createTrainingJob.sync" if kind == "training" else "createProcessingJob.sync"
        key = "TrainingJobName" if kind == "training" else "ProcessingJobName"
        task = {"resourceType": "sagemaker", "resource": resource}
        self.add(start, "TaskStateEntered", name=name, input="{}")
        self.add(start + 0.1, "TaskScheduled", region=REGION, parameters=json.dumps({key: job}), **task)
        self.add(start + 0.2, "TaskStarted", **task)
        self.add(start + 0.8, "TaskSubmitted", output="{}", **task)
        if end is None:
            return self
        if fail:
            return self.add(end, "TaskFailed", **task, **fail)
        self.add(end, "TaskSucceeded", output="{}", **task)
        return self.add(end, "TaskStateExited", name=name, output="{}")

    def quick_step(self, state_type: str, name: str, at: float) -> "Script":
        self.add(at, f"{state_type}StateEntered", name=name, input="{}")
        if state_type != "Fail":
            self.add(at + 0.05, f"{state_type}StateExited", name=name, output="{}")
        return self


def pipeline_script(now, data: naming.ExecutionInput, times=(0, 600, 2700, 3300, 3305), end: str = "succeeded",
                    package_arn: Optional[str] = None) -> Script:
    """A whole run: Preprocessing, Training, Evaluation, ReadEvaluation, Gate, then
    registration (end='succeeded'), the gate's Fail state (end='gate') or nothing
    more (end='running')."""
    prep, train, evaluation, read, done = times
    script = Script(now).add(0, "ExecutionStarted", input=json.dumps(data.to_dict()), roleArn="arn:aws:iam::1:role/x")
    script.job_step("Preprocessing", prep + 1, train, data.PreprocessingJobName)
    script.job_step("Training", train + 0.5, evaluation, data.TrainingJobName, kind="training")
    script.job_step("Evaluation", evaluation + 0.5, read, data.EvaluationJobName)
    if end == "running":
        return script
    script.add(read + 0.5, "TaskStateEntered", name="ReadEvaluation", input="{}")
    script.add(read + 1.5, "TaskStateExited", name="ReadEvaluation", output="{}")
    script.quick_step("Choice", "Gate", read + 2)
    if end == "gate":
        script.quick_step("Fail", "MetricGateFailed", read + 2.1)
        return script.add(read + 2.1, "ExecutionFailed", error="MetricGateFailed", cause="the model missed its metric gate")
    script.quick_step("Choice", "ShouldRegister", read + 2.2)
    output = {"register": {"ModelPackageArn": package_arn}} if package_arn else {}
    if data.Register:
        script.add(read + 2.5, "TaskStateEntered", name="Register", input="{}")
        script.add(done - 0.1, "TaskStateExited", name="Register", output=json.dumps(output))
    script.quick_step("Succeed", "Done", done - 0.05)
    return script.add(done, "ExecutionSucceeded", output=json.dumps(output))


class ScriptedExecution(Execution):
    """A moto Execution whose history, status and result come from its Script."""

    _script: Script

    def get_execution_history(self, roleArn):
        return self._script.history()

    @property
    def status(self):
        terminal = self._script.terminal()
        return Script.TERMINAL[terminal[1]] if terminal else "RUNNING"

    @status.setter
    def status(self, value):  # moto's stop() sets ABORTED
        if value == "ABORTED":
            self._script.abort()

    def _terminal_detail(self, key):
        terminal = self._script.terminal()
        return terminal[2].get(key) if terminal else None

    output = property(lambda self: self._terminal_detail("output") if self.status == "SUCCEEDED" else None,
                      lambda self, value: None)
    error = property(lambda self: self._terminal_detail("error"), lambda self, value: None)
    cause = property(lambda self: self._terminal_detail("cause"), lambda self, value: None)

    @property
    def stop_date(self):
        terminal = self._script.terminal()
        return T0 + timedelta(seconds=terminal[0]) if terminal else None

    @stop_date.setter
    def stop_date(self, value):
        pass


def sfn_backend():
    from moto.stepfunctions.responses import get_backend

    return get_backend(ACCOUNT, REGION)


def script_execution(arn: str, script: Script) -> None:
    execution = sfn_backend().describe_execution(arn)
    execution._script = script
    execution.__class__ = ScriptedExecution


# --------------------------------------------------------------------------- model repos and runs


class Model:
    """A unique model (name, bucket, package group) made from the example repo, plus moto clients."""

    def __init__(self, repo: Path, endpoint: str):
        self.repo = repo
        self.endpoint = endpoint
        self.name = unique("wt")
        self.bucket = unique("wait-bucket")
        path = repo / "config.yaml"
        text = path.read_text()
        text = text.replace("name: fraud-detection\n", f"name: {self.name}\n", 1)
        text = text.replace("bucket: mlops-artifacts", f"bucket: {self.bucket}")
        text = text.replace("model_package_group: fraud-detection", f"model_package_group: {self.name}")
        path.write_text(text)
        self.config = config_mod.load(repo)
        kwargs = dict(region_name=REGION, endpoint_url=endpoint)
        self.sfn = boto3.client("stepfunctions", **kwargs)
        self.s3 = boto3.client("s3", **kwargs)
        self.sagemaker = boto3.client("sagemaker", **kwargs)
        self.logs = boto3.client("logs", **kwargs)
        self.s3.create_bucket(Bucket=self.bucket, CreateBucketConfiguration={"LocationConstraint": REGION})
        self._machines: Dict[str, str] = {}

    def context(self, run: str, env: Optional[Dict[str, str]] = None):
        return make_context(self.config, run_name=run, env=env or {})

    def start(self, run: Optional[str] = None, env: Optional[Dict[str, str]] = None):
        """Create the state machine (a stand-in definition) and start the run; returns (ctx, input, arn)."""
        ctx = self.context(run or unique("run"), env)
        if ctx.state_machine not in self._machines:
            definition = {"StartAt": "Done", "States": {"Done": {"Type": "Succeed"}}}
            created = self.sfn.create_state_machine(name=ctx.state_machine, definition=json.dumps(definition),
                                                    roleArn=self.config.aws.states_role_arn)
            self._machines[ctx.state_machine] = created["stateMachineArn"]
        data = naming.execution_input(self.config, ctx.state_machine, ctx.run_name, "abc123", register=ctx.register,
                                      branch=ctx.branch)
        started = self.sfn.start_execution(stateMachineArn=self._machines[ctx.state_machine], name=ctx.run_name,
                                           input=json.dumps(data.to_dict()))
        return ctx, data, started["executionArn"]

    def put_evaluation(self, data: naming.ExecutionInput, **metrics: float) -> None:
        body = {"metrics": {k: {"value": v} for k, v in metrics.items()}}
        self.s3.put_object(Bucket=data.EvaluationBucket, Key=data.EvaluationKey, Body=json.dumps(body).encode())

    def register(self, run: str, approval: str = "PendingManualApproval") -> str:
        try:
            self.sagemaker.create_model_package_group(ModelPackageGroupName=self.name)
        except self.sagemaker.exceptions.ClientError:
            pass
        created = self.sagemaker.create_model_package(
            ModelPackageGroupName=self.name, ModelApprovalStatus=approval,
            CustomerMetadataProperties={"RunName": run},
            InferenceSpecification={"Containers": [{"Image": "123.dkr.ecr.ap-northeast-2.amazonaws.com/x:1"}],
                                    "SupportedContentTypes": ["text/csv"], "SupportedResponseMIMETypes": ["text/csv"]},
        )
        return created["ModelPackageArn"]

    def status(self, arn: str) -> str:
        return self.sfn.describe_execution(executionArn=arn)["status"]

    def wait(self, ctx, **kwargs):
        """`mltp wait` as the CLI calls it, with the test's clock and an echo that collects lines."""
        lines: List[str] = kwargs.pop("lines", [])
        return wait_verb(self.repo, run_name=ctx.run_name, region=None, endpoint_url=self.endpoint,
                             report_dir=kwargs.pop("report_dir", None), timeout=kwargs.pop("timeout", None),
                             echo=lines.append, **kwargs)


def wait_verb(repo: Path, *, run_name: str, endpoint_url: str, region: Optional[str] = None,
              report_dir: Optional[str] = None, timeout: Optional[float] = None, clock=None,
              clients: Optional[Clients] = None, echo: Callable[[str], None] = print, **kwargs):
    """`mltp wait` as the CLI runs it: one Invocation (the config loaded once) and
    one set of clients (the test's own, when given), then commands.wait.wait."""
    inv = invocation.load(repo, None, run_name=run_name, region=region, endpoint_url=endpoint_url,
                          report_dir=report_dir, echo=echo)
    clients = clients or Clients(inv.run.region, inv.run.endpoint_url)
    return wait_cmd.wait(inv, clients, timeout=timeout, clock=clock, **kwargs)


@pytest.fixture
def classic_sfn(monkeypatch):
    """moto's plain Step Functions backend (not its interpreter, which the local run switches on)."""
    monkeypatch.setitem(default_user_config, "stepfunctions", {"execute_state_machine": False})
    monkeypatch.delenv("SF_EXECUTION_HISTORY_TYPE", raising=False)


@pytest.fixture
def model(example_repo, aws_env, classic_sfn) -> Model:
    return Model(example_repo, aws_env)


@pytest.fixture
def fast_retries(monkeypatch):
    """botocore's retry code runs as is, only faster: its jittered sleeps are
    shortened and the adaptive mode's client-side rate limiter (a token bucket
    that may hold a request for seconds after throttling) runs on a clock 100x
    faster than real time."""
    real_time = time.time
    monkeypatch.setattr(botocore.retries.standard.ExponentialBackoff, "delay_amount", lambda self, context: 0.001)
    monkeypatch.setattr(botocore.retries.bucket.Clock, "current_time", lambda self: real_time() * 100)


# --------------------------------------------------------------------------- a faulty network


class FaultProxy:
    """An HTTP proxy in front of moto that throttles or drops chosen requests.

    `plan(target, kind, count)`: the next `count` requests whose X-Amz-Target ends
    with `target` get a 400 ThrottlingException ('throttle') or a closed
    connection without an answer ('drop'); everything else is forwarded."""

    def __init__(self, upstream: str):
        self.upstream = upstream.replace("http://", "")
        self.rules: List[list] = []
        self.faults: Dict[str, int] = {"throttle": 0, "drop": 0}
        self.forwarded: List[str] = []
        self.lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _handle(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                target = self.headers.get("X-Amz-Target", "")
                kind = proxy._fault_for(target)
                if kind == "drop":
                    self.close_connection = True
                    try:
                        self.connection.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass
                    return
                if kind == "throttle":
                    payload = json.dumps({"__type": "ThrottlingException", "message": "Rate exceeded"}).encode()
                    self.send_response(400)
                    self.send_header("Content-Type", "application/x-amz-json-1.0")
                    self.send_header("x-amzn-ErrorType", "ThrottlingException")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                    return
                with proxy.lock:
                    proxy.forwarded.append(target)
                conn = http.client.HTTPConnection(proxy.upstream, timeout=30)
                try:
                    conn.request(self.command, self.path, body=body, headers=dict(self.headers))
                    response = conn.getresponse()
                    data = response.read()
                finally:
                    conn.close()
                self.send_response(response.status)
                for name, value in response.getheaders():
                    if name.lower() not in ("transfer-encoding", "connection", "content-length", "server", "date"):
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _handle

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def plan(self, target: str, kind: str, count: int) -> None:
        with self.lock:
            self.rules.append([target, kind, count])

    def _fault_for(self, target: str) -> Optional[str]:
        with self.lock:
            for rule in self.rules:
                if rule[2] > 0 and target.endswith(rule[0]):
                    rule[2] -= 1
                    self.faults[rule[1]] += 1
                    return rule[1]
        return None

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def proxy(aws_env):
    p = FaultProxy(aws_env)
    yield p
    p.close()


# =========================================================================== unit: policy and reader


def test_backoff_doubles_to_30s_and_resets():
    backoff = follow.Backoff()
    seq = [backoff.next() for _ in range(8)]
    assert seq == [2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0, 30.0]
    backoff.reset()
    assert backoff.next() == 2.0


class PagedHistory:
    """A Step Functions stub with AWS's paging: nextToken only while a page is full."""

    def __init__(self, events: List[dict]):
        self.events = events
        self.requests: List[dict] = []
        self.expire_tokens = False

    def get_execution_history(self, **request):
        self.requests.append(request)
        assert request["reverseOrder"] is False
        start = int(request.get("nextToken", "0"))
        if self.expire_tokens and "nextToken" in request:
            import botocore.exceptions

            raise botocore.exceptions.ClientError({"Error": {"Code": "InvalidToken", "Message": "expired"}},
                                                  "GetExecutionHistory")
        size = request["maxResults"]
        page = self.events[start:start + size]
        result = {"events": page}
        if len(page) == size:
            result["nextToken"] = str(start + size)
        return result


def _events(n: int, first: int = 1) -> List[dict]:
    return [{"id": i, "type": "TaskStarted", "timestamp": T0} for i in range(first, first + n)]


def test_history_reader_reads_each_event_once_and_resumes_from_the_last_page():
    stub = PagedHistory(_events(12))
    reader = follow.HistoryReader(stub, "arn:x", page_size=5)
    assert [e["id"] for e in reader.poll()] == list(range(1, 13))
    assert len(stub.requests) == 3  # pages 1-5, 6-10, 11-12
    assert reader.poll() == []  # nothing new: one call, for the last page only
    assert len(stub.requests) == 4 and stub.requests[-1]["nextToken"] == "10"
    stub.events += _events(6, first=13)
    assert [e["id"] for e in reader.poll()] == list(range(13, 19))
    assert [r.get("nextToken") for r in stub.requests[4:]] == ["10", "15"]  # never back to the start


def test_history_reader_starts_over_when_its_token_expired():
    stub = PagedHistory(_events(7))
    reader = follow.HistoryReader(stub, "arn:x", page_size=5)
    reader.poll()
    stub.events += _events(2, first=8)
    before = len(stub.requests)
    stub.expire_tokens = True
    original = stub.get_execution_history

    def expires_once(**request):
        try:
            return original(**request)
        finally:
            stub.expire_tokens = False

    stub.get_execution_history = expires_once
    assert [e["id"] for e in reader.poll()] == [8, 9]  # each event still once
    assert [r.get("nextToken") for r in stub.requests[before:]] == ["5", None, "5"]


def test_tracker_lines_name_step_job_status_duration_and_each_job_s_link_once():
    data = naming.ExecutionInput(**{f: "x" for f in naming.ExecutionInput.__dataclass_fields__})
    clock = follow.ManualClock(10_000)
    script = pipeline_script(clock.now, data)
    tracker = follow.Tracker(REGION, follow.jobs_from_input({"PreprocessingJobName": "m-prep-1", "TrainingJobName": "m-train-1"}))
    lines = tracker.feed(script.history())
    assert any(l.split()[1:3] == ["Preprocessing", "started"] for l in lines)
    prep = next(l for l in lines if "Preprocessing" in l and "succeeded" in l)
    assert "m-prep-1" in prep and "9m 59s" in prep and "https://" not in prep
    link = f"https://{REGION}.console.aws.amazon.com/sagemaker/home?region={REGION}#/processing-jobs/m-prep-1"
    assert [l.strip() for l in lines].count(link) == 1  # its own line, once
    train = next(l for l in lines if "Training" in l and "succeeded" in l)
    assert "35m 00s" in train
    assert sum("#/jobs/m-train-1" in l for l in lines) == 1
    assert all(len(l) < 140 for l in lines)
    assert tracker.terminal_status == "SUCCEEDED"
    assert [s.name for s in tracker.steps] == ["Preprocessing", "Training", "Evaluation", "ReadEvaluation", "Gate",
                                                "ShouldRegister", "Register", "Done"]
    # Internal states of the definition are not shown; the Gate says passed.
    assert [l.split()[1] for l in lines if "started" not in l and "https://" not in l] == \
        ["Preprocessing", "Training", "Evaluation", "Gate", "Register"]
    assert any(l.split()[1:3] == ["Gate", "passed"] for l in lines)


def test_without_console_links_no_line_has_a_link():
    data = naming.ExecutionInput(**{f: "x" for f in naming.ExecutionInput.__dataclass_fields__})
    script = pipeline_script(follow.ManualClock(10_000).now, data)
    tracker = follow.Tracker(REGION, follow.jobs_from_input({"PreprocessingJobName": "m-prep-1"}), links=False)
    lines = tracker.feed(script.history())
    assert lines and not [l for l in lines if "http" in l]
    assert all(s.link is None for s in tracker.steps)


# =========================================================================== against moto


def test_wait_follows_a_whole_run_and_reports_the_registered_package(model, monkeypatch):
    # The emulator stands in for AWS here: console and log links as on AWS (a --local run has none).
    monkeypatch.setattr(follow, "console_links", lambda ctx: True)
    clock = follow.ManualClock()
    ctx, data, arn = model.start()
    package = model.register(ctx.run_name)
    model.put_evaluation(data, auc=0.962, false_positive_rate=0.0007)
    script = pipeline_script(clock.now, data, package_arn=package)
    script_execution(arn, script)
    lines: List[str] = []
    shown: List[tuple] = []

    def echo(line):
        lines.append(line)
        shown.append((clock.now(), line))

    result = wait_verb(model.repo, run_name=ctx.run_name, endpoint_url=model.endpoint, clock=clock, echo=echo)
    assert result.status == out.PASSED and result.exit_code == 0
    assert result.model_package_arn == package and result.approval_status == "PendingManualApproval"
    assert [(c.metric, c.value, c.passed) for c in result.gate] == [("auc", 0.962, True), ("false_positive_rate", 0.0007, True)]
    # Each step change is shown within 30 s of happening, and an hour costs at most 150 polls.
    changes = {"Preprocessing": 1, "Training": 600.5, "Evaluation": 2700.5}
    for name, at in changes.items():
        when = next(t for t, line in shown if f" {name} " in f" {line} " and "started" in line)
        assert 0 <= when - at <= 30, (name, when - at)
    assert max(clock.sleeps) <= 30
    assert script.history_calls <= 150
    text = "\n".join(lines)
    assert "Training" in text and data.TrainingJobName in text
    assert f"model package: {package} (PendingManualApproval)" in text
    assert (ctx.report_dir / "report.json").is_file()
    report = json.loads((ctx.report_dir / "report.json").read_text())
    assert report["status"] == "passed" and report["model_package"]["arn"] == package
    logs = {step["name"]: step["log_link"] for step in report["steps"]}
    assert f"$252Faws$252Fsagemaker$252FTrainingJobs$3FlogStreamNameFilter$3D{data.TrainingJobName}$252F" in logs["Training"]
    assert f"ProcessingJobs$3FlogStreamNameFilter$3D{data.EvaluationJobName}$252F" in logs["Evaluation"]
    assert f"[log stream]({logs['Preprocessing']})" in (ctx.report_dir / "report.md").read_text()


def test_wait_finds_the_package_by_run_name_when_the_output_does_not_say(model):
    ctx, data, arn = model.start()
    model.register(unique("other-run"))
    mine = model.register(ctx.run_name, approval="Approved")
    model.register(unique("other-run"))
    model.put_evaluation(data, auc=0.95, false_positive_rate=0.01)
    # moto's own fixed history: ExecutionSucceeded with a non-JSON output
    result = model.wait(ctx, clock=follow.ManualClock())
    assert result.status == out.PASSED
    assert result.model_package_arn == mine and result.approval_status == "Approved"


def test_branch_builds_are_not_registered(model, monkeypatch):
    monkeypatch.setenv("BRANCH_NAME", "feature/x")
    ctx, data, arn = model.start(env={"BRANCH_NAME": "feature/x"})
    assert ctx.state_machine.startswith(f"{model.name}--") and not data.Register
    model.put_evaluation(data, auc=0.95, false_positive_rate=0.01)
    lines: List[str] = []
    result = wait_verb(model.repo, run_name=ctx.run_name, endpoint_url=model.endpoint,
                           clock=follow.ManualClock(), echo=lines.append)
    assert result.status == out.PASSED and result.model_package_arn is None
    assert "model package: not registered (branch build)" in lines
    summary = (ctx.report_dir / "summary.txt").read_text()
    # then the run's cost (costs.py): moto's fixed history runs no job
    assert summary.endswith("not registered (branch build) · $0.00\n"), summary


def test_a_passed_default_branch_run_is_what_retraining_runs_next(model):
    """`wait` records the run's execution input in last-good.json (mltp trigger)."""
    ctx, data, arn = model.start()
    model.put_evaluation(data, auc=0.95, false_positive_rate=0.01)
    lines: List[str] = []
    wait_verb(model.repo, run_name=ctx.run_name, endpoint_url=model.endpoint,
                  clock=follow.ManualClock(), echo=lines.append)
    key = f"mltp/{model.name}/trigger/last-good.json"
    assert f"retrain code: s3://{model.bucket}/{key}" in lines
    pointer = json.loads(model.s3.get_object(Bucket=model.bucket, Key=key)["Body"].read())
    assert pointer["run"] == ctx.run_name and pointer["state_machine"] == ctx.state_machine
    assert pointer["input"] == data.to_dict()


def test_branch_and_failed_runs_record_no_retrain_code(model, monkeypatch):
    key = f"mltp/{model.name}/trigger/last-good.json"
    ctx, data, arn = model.start()
    model.put_evaluation(data, auc=0.85, false_positive_rate=0.01)  # misses the gate
    script_execution(arn, pipeline_script(lambda: 1e9, data, end="gate"))
    with pytest.raises(GateFailed):
        wait_verb(model.repo, run_name=ctx.run_name, endpoint_url=model.endpoint,
                      clock=follow.ManualClock(), echo=lambda line: None)
    monkeypatch.setenv("BRANCH_NAME", "feature/x")
    ctx, data, arn = model.start(env={"BRANCH_NAME": "feature/x"})
    model.put_evaluation(data, auc=0.95, false_positive_rate=0.01)
    wait_verb(model.repo, run_name=ctx.run_name, endpoint_url=model.endpoint,
                  clock=follow.ManualClock(), echo=lambda line: None)
    assert model.s3.list_objects_v2(Bucket=model.bucket, Prefix=key).get("KeyCount") == 0


def test_wait_reattaches_to_a_finished_run_without_sleeping(model):
    clock = follow.ManualClock()
    ctx, data, arn = model.start()
    model.put_evaluation(data, auc=0.95, false_positive_rate=0.01)
    script_execution(arn, pipeline_script(lambda: 1e9, data, package_arn=model.register(ctx.run_name)))
    assert model.wait(ctx, clock=clock).status == out.PASSED
    assert clock.sleeps == []


def test_missed_gate_reads_evaluation_and_names_the_metric(model):
    ctx, data, arn = model.start()
    model.put_evaluation(data, auc=0.85, false_positive_rate=0.01)
    script_execution(arn, pipeline_script(lambda: 1e9, data, end="gate"))
    lines: List[str] = []
    with pytest.raises(GateFailed) as caught:
        model.wait(ctx, clock=follow.ManualClock(), lines=lines)
    assert caught.value.exit_code == 3
    assert "auc = 0.85" in caught.value.message and ">= 0.9" in caught.value.message
    table = [l for l in lines if l.startswith(("auc", "false_positive_rate"))]
    assert table[0].split() == ["auc", "0.85", ">=", "0.9", "FAIL"]
    assert table[1].split() == ["false_positive_rate", "0.01", "<=", "0.05", "pass"]
    report = json.loads((ctx.report_dir / "report.json").read_text())
    assert report["status"] == "gate_failed" and report["exit_code"] == 3


def test_missing_metric_fails_the_gate_by_name(model):
    ctx, data, arn = model.start()
    model.put_evaluation(data, auc=0.99)
    script_execution(arn, pipeline_script(lambda: 1e9, data, end="gate"))
    with pytest.raises(GateFailed) as caught:
        model.wait(ctx, clock=follow.ManualClock())
    assert "false_positive_rate is missing from evaluation.json (needs <= 0.05); it has: auc" in caught.value.message


def _training_job(model: Model, name: str, reason: str) -> None:
    model.sagemaker.create_training_job(
        TrainingJobName=name, RoleArn=model.config.aws.sagemaker_role_arn,
        AlgorithmSpecification={"TrainingImage": "123.dkr.ecr.ap-northeast-2.amazonaws.com/x:1", "TrainingInputMode": "File"},
        OutputDataConfig={"S3OutputPath": f"s3://{model.bucket}/out/"},
        ResourceConfig={"InstanceType": "ml.m5.xlarge", "InstanceCount": 1, "VolumeSizeInGB": 30},
        StoppingCondition={"MaxRuntimeInSeconds": 3600},
    )
    from moto.sagemaker.models import sagemaker_backends

    job = sagemaker_backends[ACCOUNT][REGION].training_jobs[name]
    job.training_job_status = "Failed"
    job.failure_reason = reason


def test_failed_step_names_step_job_reason_and_log_tail(model):
    ctx, data, arn = model.start()
    job = data.TrainingJobName
    _training_job(model, job, "AlgorithmError: ValueError: Input contains NaN")
    group = "/aws/sagemaker/TrainingJobs"
    try:
        model.logs.create_log_group(logGroupName=group)
    except model.logs.exceptions.ResourceAlreadyExistsException:
        pass
    stream = f"{job}/algo-1-1714550000"
    model.logs.create_log_stream(logGroupName=group, logStreamName=stream)
    now_ms = int(time.time() * 1000)
    model.logs.put_log_events(logGroupName=group, logStreamName=stream, logEvents=[
        {"timestamp": now_ms + i, "message": f"line {i}"} for i in range(30)])
    script = pipeline_script(lambda: 1e9, data, end="running")
    script.events = [e for e in script.events if e[0] < 2000]  # Training never ends well...
    script.add(1500, "TaskFailed", resourceType="sagemaker", resource="createTrainingJob.sync",
               error="SageMaker.AmazonSageMakerException", cause=json.dumps({"FailureReason": "from the task"}))
    script.add(1500, "ExecutionFailed", error="SageMaker.AmazonSageMakerException", cause="Training failed")
    script_execution(arn, script)
    lines: List[str] = []
    with pytest.raises(RunFailed) as caught:
        model.wait(ctx, clock=follow.ManualClock(), lines=lines)
    assert caught.value.exit_code == 4
    assert caught.value.message == "run failed at Training: ValueError: Input contains NaN"
    assert f"step: Training (job {job})" in lines
    tail = [l for l in lines if l.startswith("  | ")]
    assert tail == [f"  | line {i}" for i in range(10, 30)]
    report = json.loads((ctx.report_dir / "report.json").read_text())
    assert report["failure"]["step"] == "Training" and report["failure"]["job_name"] == job
    assert report["failure"]["log_tail"][-1] == "line 29"
    steps = {s["name"]: s["status"] for s in report["steps"]}
    assert steps == {"Preprocessing": "succeeded", "Training": "failed", "Evaluation": "not run"}


def test_failed_step_without_job_or_logs_uses_the_task_cause(model):
    ctx, data, arn = model.start()
    script = pipeline_script(lambda: 1e9, data, end="running")
    script.events = [e for e in script.events if e[0] < 100]
    script.add(120, "TaskFailed", resourceType="sagemaker", resource="createProcessingJob.sync",
               error="States.TaskFailed", cause=json.dumps({"FailureReason": "ClientError: no such file preprocessing.py"}))
    script.add(120, "ExecutionFailed", error="States.TaskFailed", cause="{}")
    script_execution(arn, script)
    with pytest.raises(RunFailed) as caught:
        model.wait(ctx, clock=follow.ManualClock())
    assert caught.value.message == "run failed at Preprocessing: ClientError: no such file preprocessing.py"


def test_moto_failure_history_is_a_failed_run(model, monkeypatch):
    monkeypatch.setenv("SF_EXECUTION_HISTORY_TYPE", "FAILURE")
    ctx, data, arn = model.start()
    with pytest.raises(RunFailed) as caught:
        model.wait(ctx, clock=follow.ManualClock())
    assert "An error occurred!" in caught.value.message
    assert json.loads((ctx.report_dir / "report.json").read_text())["failure"]["error"] == "AnError"


def test_an_execution_stopped_elsewhere_is_a_stopped_run(model):
    ctx, data, arn = model.start()
    model.sfn.stop_execution(executionArn=arn)
    with pytest.raises(RunFailed) as caught:
        model.wait(ctx, clock=follow.ManualClock())
    assert caught.value.message.startswith("stopped")
    assert json.loads((ctx.report_dir / "report.json").read_text())["status"] == "stopped"


def test_timeout_stops_the_execution(model):
    clock = follow.ManualClock()
    ctx, data, arn = model.start()
    script = pipeline_script(clock.now, data, end="running")
    script_execution(arn, script)
    lines: List[str] = []
    with pytest.raises(RunFailed) as caught:
        model.wait(ctx, clock=clock, timeout=1.5, lines=lines)
    assert caught.value.message == "timed out after 1.5 min"
    assert clock.now() == pytest.approx(90)
    assert model.status(arn) == "ABORTED"
    report = json.loads((ctx.report_dir / "report.json").read_text())
    assert report["status"] == "timed_out" and report["exit_code"] == 4
    assert report["failure"]["step"] == "Preprocessing"
    assert {s["name"]: s["status"] for s in report["steps"]}["Preprocessing"] == "stopped"


def test_interrupt_stops_the_execution(model):
    ctx, data, arn = model.start()

    class Interrupting(follow.ManualClock):
        def sleep(self, seconds):
            super().sleep(seconds)
            if len(self.sleeps) == 3:
                raise KeyboardInterrupt

    clock = Interrupting()
    script_execution(arn, pipeline_script(clock.now, data, end="running"))
    with pytest.raises(RunFailed) as caught:
        model.wait(ctx, clock=clock)
    assert caught.value.message == "stopped: build aborted" and caught.value.exit_code == 4
    assert model.status(arn) == "ABORTED"
    assert json.loads((ctx.report_dir / "report.json").read_text())["status"] == "stopped"


def test_a_throttling_storm_does_not_fail_the_run(model, proxy, fast_retries):
    clock = follow.ManualClock()
    ctx, data, arn = model.start()
    model.put_evaluation(data, auc=0.95, false_positive_rate=0.01)
    script_execution(arn, pipeline_script(clock.now, data, times=(0, 60, 120, 180, 185),
                                          package_arn=model.register(ctx.run_name)))
    # More throttles in a row than botocore's 10 attempts: a poll fails, the next one goes on.
    proxy.plan("GetExecutionHistory", "throttle", 25)
    lines: List[str] = []
    result = wait_verb(model.repo, run_name=ctx.run_name, endpoint_url=proxy.url, clock=clock,
                           echo=lines.append)
    assert result.status == out.PASSED
    assert proxy.faults["throttle"] == 25
    assert any("ThrottlingException" in l and "retrying" in l for l in lines)


def test_a_dropped_connection_is_survived(model, proxy, fast_retries):
    clock = follow.ManualClock()
    ctx, data, arn = model.start()
    model.put_evaluation(data, auc=0.95, false_positive_rate=0.01)
    script_execution(arn, pipeline_script(clock.now, data, times=(0, 60, 120, 180, 185),
                                          package_arn=model.register(ctx.run_name)))
    state = {"polls": 0}

    def drop_mid_wait(now):
        if now > 70 and not state["polls"]:
            state["polls"] = 1
            proxy.plan("GetExecutionHistory", "drop", 3)  # within botocore's retries
            proxy.plan("GetExecutionHistory", "drop", 12)  # and beyond them: the loop retries

    clock.on_sleep = drop_mid_wait
    clients = Clients(REGION, proxy.url, max_attempts=4)
    lines: List[str] = []
    result = wait_verb(model.repo, run_name=ctx.run_name, endpoint_url=proxy.url, clock=clock,
                           clients=clients, echo=lines.append)
    assert result.status == out.PASSED
    assert proxy.faults["drop"] == 15
    assert any("retrying" in l for l in lines)


def test_polls_failing_for_too_long_give_up_with_exit_5(model, proxy, fast_retries):
    clock = follow.ManualClock()
    ctx, data, arn = model.start()
    script_execution(arn, pipeline_script(clock.now, data, end="running"))
    proxy.plan("GetExecutionHistory", "throttle", 10_000)
    clients = Clients(REGION, proxy.url, max_attempts=2)
    with pytest.raises(AwsRefused) as caught:
        wait_verb(model.repo, run_name=ctx.run_name, endpoint_url=proxy.url, clock=clock, clients=clients,
                      echo=lambda line: None)
    assert "GetExecutionHistory" in caught.value.message and "ThrottlingException" in caught.value.message
    assert clock.now() >= follow.DEFAULT_POLICY.transient_limit


def test_a_missing_execution_is_refused(model):
    ctx, data, arn = model.start()
    with pytest.raises(AwsRefused) as caught:
        wait_verb(model.repo, run_name=unique("never-started"), endpoint_url=model.endpoint,
                      clock=follow.ManualClock(), echo=lambda line: None)
    assert "DescribeExecution" in caught.value.message and caught.value.exit_code == 5


def test_sigterm_stops_the_execution_and_exits_4(model, tmp_path):
    t0 = time.monotonic()
    ctx, data, arn = model.start()
    script_execution(arn, pipeline_script(lambda: time.monotonic() - t0, data, end="running"))
    env = dict(os.environ, AWS_ENDPOINT_URL=model.endpoint, MLTP_REPORT_DIR=str(tmp_path / "report"),
               PYTHONPATH=str(ROOT / "helper" / "src"))
    proc = subprocess.Popen([sys.executable, "-m", "mltp.cli", "wait", str(model.repo), "--run-name", ctx.run_name],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        seen = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            seen.append(line)
            if "Preprocessing" in line and "started" in line:
                break
        else:
            pytest.fail("no step line: " + "".join(seen))
        proc.send_signal(signal.SIGTERM)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 4, stderr
    assert "stopped: build aborted" in stderr
    assert model.status(arn) == "ABORTED"
    assert json.loads((tmp_path / "report" / "report.json").read_text())["status"] == "stopped"
    # The Jenkins step then calls `mltp stop`: nothing left to do.
    from click.testing import CliRunner
    from mltp.cli import main

    again = CliRunner().invoke(main, ["stop", str(model.repo), "--run-name", ctx.run_name,
                                      "--endpoint-url", model.endpoint])
    assert again.exit_code == 0 and "nothing to stop" in again.output


def test_a_redriven_run_is_followed_on():
    tracker = follow.Tracker(REGION)
    tracker.feed([{"id": 1, "type": "ExecutionFailed", "timestamp": T0, "executionFailedEventDetails": {"error": "X"}}])
    assert tracker.terminal_status == "FAILED"
    tracker.feed([{"id": 2, "type": "ExecutionRedriven", "timestamp": T0}])
    assert tracker.terminal is None


@pytest.mark.parametrize("body", [b'{"metrics": {"auc": {"value": 0.9}}, "x": "\xff"}',
                                  b'{"metrics": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"],
                         ids=["not-utf8", "100000-deep"])
def test_an_unreadable_earlier_version_never_costs_a_run_its_report_or_pointer(model, body):
    """An earlier registered version whose evaluation.json is not UTF-8 or is
    nested 100,000 deep ended `wait` in a traceback after registering: no
    report, no retrain pointer. Now that version is skipped with a note."""
    key = f"mltp/{model.name}/runs/old/evaluation/evaluation.json"
    model.s3.put_object(Bucket=model.bucket, Key=key, Body=body)
    try:
        model.sagemaker.create_model_package_group(ModelPackageGroupName=model.name)
    except model.sagemaker.exceptions.ClientError:
        pass
    model.sagemaker.create_model_package(
        ModelPackageGroupName=model.name, ModelApprovalStatus="Approved", CustomerMetadataProperties={"RunName": "old"},
        InferenceSpecification={"Containers": [{"Image": "123.dkr.ecr.ap-northeast-2.amazonaws.com/x:1"}],
                                "SupportedContentTypes": ["text/csv"], "SupportedResponseMIMETypes": ["text/csv"]},
        ModelMetrics={"ModelQuality": {"Statistics": {"ContentType": "application/json",
                                                      "S3Uri": f"s3://{model.bucket}/{key}"}}})
    ctx, data, arn = model.start()
    model.put_evaluation(data, auc=0.95, false_positive_rate=0.01)
    result = wait_verb(model.repo, run_name=ctx.run_name, endpoint_url=model.endpoint,
                       clock=follow.ManualClock(), echo=lambda line: None)
    assert result.status == out.PASSED
    report = json.loads((ctx.report_dir / "report.json").read_text())
    assert "skipped v1: its evaluation.json" in report["history"]["note"], report["history"]
    assert (ctx.report_dir / "summary.txt").read_text().startswith(f"{model.name} run {ctx.run_name}: PASSED")
    pointer = f"mltp/{model.name}/trigger/last-good.json"
    assert json.loads(model.s3.get_object(Bucket=model.bucket, Key=pointer)["Body"].read())["run"] == ctx.run_name
