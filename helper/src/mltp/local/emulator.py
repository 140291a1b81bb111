"""The embedded AWS API emulator for `mltp run --local`: moto in server mode,
in-process, with its Step Functions interpreter really executing the state
machine, and SageMaker jobs handed to a local runner.

moto does not run SageMaker jobs (it marks them Completed at once) and its ASL
interpreter has no `sagemaker:*.sync` integration. Two hooks close that gap;
both must be installed BEFORE the state machine is created, since the
definition is parsed then and again in each execution's worker thread:

 1. `install_sagemaker_backend_hook(runner)` wraps moto's SageMakerModelBackend
    create_processing_job / create_training_job: the job is set "InProgress"
    and `runner(kind, job_name, request, job)` runs in a thread. When the runner
    returns the job is "Completed"; when it raises, "Failed" with the message
    as FailureReason, exactly what `describe_*_job` shows on AWS.
 2. `install_sfn_patches()` registers a `sagemaker` service integration that
    calls createX over HTTP and, for `.sync`, polls describeX to a terminal
    status (modelled on moto's Glue integration), and makes aws-sdk results
    JSON-safe (s3:getObject Body as text, datetimes as ISO strings) as Step
    Functions does. It also applies `fix_jsonpath_keyword_prefixes()`: older
    jsonpath-ng (the one Python < 3.11 gets) cannot parse a path whose member
    name starts with `true` or `false`, e.g. `$.metrics.false_positive_rate`;
    and `fix_indefinite_path_misses()`: a filter or deep scan that matches
    nothing gives [], as on AWS, where moto raises.

Two more make a local run cheap to follow (`install_sfn_patches` applies
them): GetExecutionHistory answers in pages (maxResults, nextToken,
reverseOrder) as on AWS, where moto returns the whole history on every call,
so the waiter's poll re-reads one page instead of the whole run; and every new
history event wakes the waiter (`HistoryClock`), and a job's end wakes the
interpreter's `.sync` wait, instead of both polling over HTTP.

These reach into moto internals, so the `local` extra pins moto's minor version.
"""
from __future__ import annotations

import datetime
import functools
import json
import logging
import os
import threading
import time
from collections.abc import Callable
from typing import Any

from botocore.exceptions import ClientError
from botocore.response import StreamingBody

from .. import service_models

# Before moto's imports: each of its backends makes a botocore session, and
# some parse EC2's large model to list regions (see service_models).
service_models.share_in_process()


def _cache_moto_resources() -> None:
    """moto parses its bundled JSON data as its backends import (EC2's instance
    types alone: about 0.2 s of every local run's start-up); keep it parsed in
    the helper cache, like botocore's models. Each call still gets its own copy."""
    from importlib import resources

    import moto
    import moto.utilities.utils as moto_utils

    original = moto_utils.load_resource
    import inspect

    if len(inspect.signature(original).parameters) != 1:
        return  # moto before 5.2 (Python 3.9) takes (package, resource): left as it is

    def load_resource(resource: str) -> Any:
        base = resources.files("moto")
        path = base / (resource if resource.endswith(".gz") else f"{resource}.gz")
        if not path.is_file():
            path = base / resource
        return service_models.cached_file(f"moto {moto.__version__}", str(path), lambda: original(resource))

    moto_utils.load_resource = load_resource


_cache_moto_resources()  # before the backends import it by name


def _defer_moto_batch() -> None:
    """The interpreter's Batch integration imports `moto.batch.utils` for one
    enum (JobStatus); the package's `__init__` imports Batch's backend, and with
    it EC2's (instance types, offerings, regions): about a third of the
    emulator's import, for a service no mltp state machine calls. The package
    is put in place without running its `__init__`, which runs (and then gives
    the backend) the first time anything asks the package for what it holds, as
    moto's server does when a Batch request arrives."""
    import importlib.util
    import sys

    if "moto.batch" in sys.modules:
        return
    spec = importlib.util.find_spec("moto.batch")
    if spec is None or spec.loader is None or not spec.submodule_search_locations:
        return
    package = importlib.util.module_from_spec(spec)
    lock = threading.Lock()

    def __getattr__(name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        with lock:
            if package.__dict__.get("__getattr__") is __getattr__:
                del package.__dict__["__getattr__"]
                spec.loader.exec_module(package)  # the package's own __init__, once
        return object.__getattribute__(package, name)

    package.__getattr__ = __getattr__
    sys.modules["moto.batch"] = package
    import moto

    moto.batch = package


_defer_moto_batch()  # before the interpreter's service integrations import moto.batch.utils


def _cache_moto_models() -> None:
    """moto serializes its answers with botocore's service models, which it
    loads with a loader of its own (its extras merged in) and no cache: S3's,
    SageMaker's, STS's and Step Functions' JSON parsed again by every local
    run, some 0.3 s of its fixed cost, and the same files the run's clients
    read from the helper's cache already. moto's loader reads them through that
    cache too (service_models); each load still gets its own copy, which moto's
    extras then change. MLTP_NO_MODEL_CACHE=1 leaves moto's loader as it is."""
    if os.environ.get("MLTP_NO_MODEL_CACHE"):
        return
    import moto.core.loaders as moto_loaders
    import moto.core.utils as moto_utils

    if getattr(moto_utils, "create_loader", None) is not moto_loaders.create_loader:
        return  # a moto that loads its models some other way: left as it is

    class Loader(moto_loaders.Loader, service_models.CachingLoader):
        """moto's loader (its extras), with the list of services remembered too."""

    def create_loader() -> moto_loaders.Loader:
        return Loader(extra_search_paths=[moto_loaders.moto_root], file_loader=service_models.caching_file_loader())

    moto_utils.create_loader = create_loader


_cache_moto_models()  # before the first request asks moto.core.utils for a model

import moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_aws_sdk as aws_sdk_mod
import moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_callback as cb_mod
import moto.stepfunctions.parser.asl.component.state.exec.state_task.state_task_factory as task_factory_mod
from moto.sagemaker.models import SageMakerModelBackend
from moto.stepfunctions.parser.api import HistoryEventType, TaskFailedEventDetails
from moto.stepfunctions.parser.asl.component.common.error_name.custom_error_name import CustomErrorName
from moto.stepfunctions.parser.asl.component.common.error_name.failure_event import (
    FailureEvent,
    FailureEventException,
)
from moto.stepfunctions.parser.asl.component.common.error_name.states_error_name import StatesErrorName
from moto.stepfunctions.parser.asl.component.common.error_name.states_error_name_type import (
    StatesErrorNameType,
)
from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.resource import ResourceCondition
from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_aws_sdk import (
    StateTaskServiceAwsSdk,
)
from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_callback import (
    StateTaskServiceCallback,
)
from moto.stepfunctions.parser.asl.eval.event.event_detail import EventDetails
from moto.stepfunctions.parser.asl.utils.boto_client import boto_client_for
from moto.stepfunctions.parser.asl.utils.encoding import to_json_str


# --------------------------------------------------------------------------- helpers


def _jsonable(v: Any) -> Any:
    """Make a boto3 response JSON-safe the way real SFN returns it."""
    if isinstance(v, dict):
        return {k: _jsonable(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_jsonable(x) for x in v]
    if isinstance(v, StreamingBody):
        return v.read().decode("utf-8")
    if isinstance(v, (datetime.datetime, datetime.date)):
        return v.isoformat()
    if isinstance(v, bytes):
        return v.decode("utf-8", "replace")
    return v


# --------------------------------------------------------------------------- 1. sagemaker backend hook

# (kind, job_name, request, job) -> None ; raise to fail the job
JobRunner = Callable[[str, str, dict, Any], None]

_STATUS_ATTR = {"processing": "processing_job_status", "training": "training_job_status"}

# Full CreateXJob request as the SFN interpreter sent it, keyed by job name. moto's
# backend drops fields (e.g. ProcessingResources, Environment), so the runner gets this.
FULL_REQUESTS: dict[str, dict] = {}
# Set when the runner is done with the job (its status is final), keyed by job
# name: the interpreter's `.sync` wait wakes on it instead of polling DescribeXJob.
JOB_ENDED: dict[str, threading.Event] = {}
# How long a `.sync` wait waits for that before it describes the job anyway
# (a job stopped through the API ends without the runner).
SYNC_WAIT_SECONDS = 1.0


def install_sagemaker_backend_hook(runner: JobRunner) -> None:
    def wrap(kind: str, orig):
        @functools.wraps(orig)
        def create(self, *args, **kwargs):
            job = orig(self, *args, **kwargs)
            name = kwargs.get("processing_job_name") or kwargs.get("training_job_name")
            status_attr = _STATUS_ATTR[kind]
            setattr(job, status_attr, "InProgress")
            if kind == "training":
                job.secondary_status = "Training"
            ended = JOB_ENDED[name] = threading.Event()

            def _run():
                try:
                    runner(kind, name, FULL_REQUESTS.get(name) or dict(kwargs), job)
                except BaseException as exc:  # noqa: BLE001 - runner failure == job failure
                    job.failure_reason = str(exc) or exc.__class__.__name__
                    setattr(job, status_attr, "Failed")
                    if kind == "training":
                        job.secondary_status = "Failed"
                else:
                    setattr(job, status_attr, "Completed")
                    if kind == "training":
                        job.secondary_status = "Completed"
                now = datetime.datetime.now(datetime.timezone.utc)
                job.last_modified_time = now
                if kind == "processing":
                    job.processing_end_time = now
                else:
                    job.training_end_time = now
                ended.set()

            threading.Thread(target=_run, name=f"local-{kind}-{name}", daemon=True).start()
            return job

        return create

    if not getattr(SageMakerModelBackend, "_mltp_hooked", False):
        SageMakerModelBackend._orig_cpj = SageMakerModelBackend.create_processing_job
        SageMakerModelBackend._orig_ctj = SageMakerModelBackend.create_training_job
    SageMakerModelBackend.create_processing_job = wrap("processing", SageMakerModelBackend._orig_cpj)
    SageMakerModelBackend.create_training_job = wrap("training", SageMakerModelBackend._orig_ctj)
    SageMakerModelBackend._mltp_hooked = True


# --------------------------------------------------------------------------- 2. SFN service integration

# api_action (lower) -> (describe op, name param, status key)
_SM_SYNC = {
    "createprocessingjob": ("describe_processing_job", "ProcessingJobName", "ProcessingJobStatus"),
    "createtrainingjob": ("describe_training_job", "TrainingJobName", "TrainingJobStatus"),
    "createtransformjob": ("describe_transform_job", "TransformJobName", "TransformJobStatus"),
}
_SM_FAILED = {"Failed", "Stopped"}
_SM_DONE = {"Completed"}
_SYNC_POLL_SECONDS = 0.5  # install_sfn_patches sets it


class StateTaskServiceSageMaker(StateTaskServiceCallback):
    """arn:aws:states:::sagemaker:<action>[.sync|.waitForTaskToken]"""

    def __init__(self):
        super().__init__(
            supported_integration_patterns={ResourceCondition.Sync, ResourceCondition.WaitForTaskToken}
        )

    def _get_supported_parameters(self):  # no per-action allow-list: pass everything through
        return set()

    def _client(self, rrp, creds):
        return _shared_client(region=rrp.region, service="sagemaker", state_credentials=creds)

    def _from_error(self, env, ex):
        if isinstance(ex, ClientError):
            err = f"SageMaker.{ex.response['Error']['Code']}"
            return FailureEvent(
                env=env,
                error_name=CustomErrorName(err),
                event_type=HistoryEventType.TaskFailed,
                event_details=EventDetails(
                    taskFailedEventDetails=TaskFailedEventDetails(
                        error=err,
                        cause=ex.response["Error"]["Message"],
                        resource=self._get_sfn_resource(),
                        resourceType=self._get_sfn_resource_type(),
                    )
                ),
            )
        return super()._from_error(env=env, ex=ex)

    def _eval_service_task(self, env, resource_runtime_part, normalised_parameters, state_credentials):
        client = self._client(resource_runtime_part, state_credentials)
        action = self._get_boto_service_action()  # e.g. create_processing_job
        for key in ("ProcessingJobName", "TrainingJobName", "TransformJobName"):
            if key in normalised_parameters:
                FULL_REQUESTS[normalised_parameters[key]] = json.loads(json.dumps(normalised_parameters))
        resp = getattr(client, action)(**normalised_parameters)
        resp.pop("ResponseMetadata", None)
        env.stack.append(_jsonable(resp))

    def _build_sync_resolver(self, env, resource_runtime_part, normalised_parameters, state_credentials):
        spec = _SM_SYNC.get(self.resource.api_action.lower())
        if spec is None:
            raise RuntimeError(f"Unsupported .sync for {self.resource.resource_arn}")
        describe_op, name_key, status_key = spec
        env.stack.pop()  # output of createX (only the ARN)
        job_name = normalised_parameters[name_key]
        client = self._client(resource_runtime_part, state_credentials)

        poll = _SYNC_POLL_SECONDS

        def _resolver():
            # A job of the local runner: wait for its end (at most SYNC_WAIT_SECONDS),
            # then one DescribeXJob, as SageMaker's status would be read on AWS.
            ended = JOB_ENDED.get(job_name)
            if ended is not None:
                ended.wait(SYNC_WAIT_SECONDS)
            desc = getattr(client, describe_op)(**{name_key: job_name})
            desc.pop("ResponseMetadata", None)
            status = desc[status_key]
            if status in _SM_DONE:
                return _jsonable(desc)
            if status not in _SM_FAILED:
                if ended is None:
                    time.sleep(poll)  # another job: polled, as moto polls its own integrations
                return None
            # Real SFN: error States.TaskFailed, cause = JSON of the describe output.
            raise FailureEventException(
                FailureEvent(
                    env=env,
                    error_name=StatesErrorName(typ=StatesErrorNameType.StatesTaskFailed),
                    event_type=HistoryEventType.TaskFailed,
                    event_details=EventDetails(
                        taskFailedEventDetails=TaskFailedEventDetails(
                            resource=self._get_sfn_resource(),
                            resourceType=self._get_sfn_resource_type(),
                            error=StatesErrorNameType.StatesTaskFailed.to_name(),
                            cause=to_json_str(_jsonable(desc)),
                        )
                    ),
                )
            )

        return _resolver


class StateTaskServiceAwsSdkFixed(StateTaskServiceAwsSdk):
    """aws-sdk:* with JSON-safe output (s3:getObject Body -> str, datetimes -> ISO)."""

    def _eval_service_task(self, env, resource_runtime_part, normalised_parameters, state_credentials):
        super()._eval_service_task(env, resource_runtime_part, normalised_parameters, state_credentials)
        env.stack.append(_jsonable(env.stack.pop()))


# --------------------------------------------------------------------------- 3. JSONPath member names


# jsonpath-ng's own fix (issue h2non/jsonpath-ng#177, in its later releases): a boolean
# literal only when no name character follows.
_JSONPATH_BOOL = r"true(?![a-zA-Z0-9_@\-])|false(?![a-zA-Z0-9_@\-])"


def _jsonpath_lexes_prefix_as_bool() -> bool:
    from jsonpath_ng.ext.parser import ExtendedJsonPathLexer

    tokens = ExtendedJsonPathLexer().tokenize("$.false_x.true_x")
    return any(t.type == "BOOL" for t in tokens)


def fix_jsonpath_keyword_prefixes() -> bool:
    """Make JSONPath member names that start with `true`/`false` parse, as on AWS.

    moto's interpreter resolves every JSONPath (a Choice rule's Variable, InputPath,
    Parameters `.$`, ...) with jsonpath-ng's extended parser. Before jsonpath-ng
    fixed it, that lexer's BOOL token is the bare regex `true|false`, so in
    `$.evaluation.report.metrics.false_positive_rate.value` it reads `false` as a
    boolean and the path fails to parse. A Choice rule's IsPresent swallows the
    error as "not present", so the gate on false_positive_rate takes its Default
    (MetricGateFailed) however good the metric. The lock installs such a jsonpath-ng
    (1.8.0) on Python < 3.11 (with moto 5.1.x on 3.9, 5.2.x on 3.10).

    PLY builds jsonpath-ng's lexer from the rule functions each time a path is
    parsed, reading a rule's regex from its `regex` attribute before its docstring;
    setting that attribute on the existing function keeps the rule order (PLY orders
    rules by source line). Applied only where the installed lexer has the bug;
    returns whether it was applied.
    """
    from jsonpath_ng.ext.parser import ExtendedJsonPathLexer

    if not _jsonpath_lexes_prefix_as_bool():
        return False
    ExtendedJsonPathLexer.t_BOOL.regex = _JSONPATH_BOOL
    if _jsonpath_lexes_prefix_as_bool():  # a lexer we do not know: leave it as it was
        del ExtendedJsonPathLexer.t_BOOL.regex
        return False
    return True


def _indefinite(path: str) -> bool:
    """A JSONPath that can match any number of nodes: a deep scan, a filter or a wildcard."""
    return ".." in path or "[?" in path or "[*]" in path


def fix_indefinite_path_misses() -> bool:
    """Make an indefinite JSONPath that matches nothing give [], as on AWS.

    Step Functions evaluates paths with Jayway JsonPath, which answers an
    indefinite path (a deep scan `$..x`, a filter `[?(...)]`) with the list of its
    matches: [] when there is none. moto's interpreter raises "could not be found"
    instead (States.Runtime), except for slices and wildcards. The Training task's
    ResultSelector picks gated training metrics with such paths
    (training_metrics.selector_path): a metric the log never printed must reach the
    Gate as [], where the rule misses it (exit 3) as on AWS, instead of failing the
    execution. Definite paths (a Choice rule's Variable) keep moto's answer.
    Rebinds `extract_json` in the interpreter's modules that imported it; returns
    whether any was patched."""
    import sys

    from moto.stepfunctions.parser.asl.utils import json_path

    original = getattr(json_path, "_mltp_original_extract_json", json_path.extract_json)

    def extract_json(path, data):
        try:
            return original(path, data)
        except json_path.NoSuchJsonPathError:
            if isinstance(path, str) and _indefinite(path):
                return []
            raise

    json_path._mltp_original_extract_json = original
    patched = False
    for name, module in list(sys.modules.items()):
        if name.startswith("moto.stepfunctions.parser") and getattr(module, "extract_json", None) in (
                original, getattr(json_path, "_mltp_extract_json", None)):
            module.extract_json = extract_json
            patched = True
    json_path._mltp_extract_json = extract_json
    return patched


# --------------------------------------------------------------------------- 4. the execution history


_CLIENTS: dict[tuple, Any] = {}
_CLIENTS_LOCK = threading.Lock()


def _shared_client(region: str, service: str, state_credentials: Any = None):
    """moto's boto_client_for, made once per service, region and emulator port:
    the interpreter asks for a new client at every task, some 30 ms of
    botocore's set-up each, for a client that is always the same: moto's
    signs with a fixed key whatever the task's credentials (it does not read
    them) and points at the emulator. botocore clients may be shared between
    threads. Under moto's in-process mock (no server), moto's own."""
    from moto.core.models import botocore_stubber
    from moto.settings import moto_server_port

    if botocore_stubber.enabled:
        return boto_client_for(region=region, service=service, state_credentials=state_credentials)
    key = (region, service, moto_server_port())
    with _CLIENTS_LOCK:
        if key not in _CLIENTS:
            _CLIENTS[key] = boto_client_for(region=region, service=service)
        return _CLIENTS[key]


def install_shared_clients() -> None:
    """The interpreter's service integrations get their clients from
    _shared_client: rebinds boto_client_for in the modules that imported it.
    Idempotent."""
    import sys

    for name, module in list(sys.modules.items()):
        if name.startswith("moto.stepfunctions.parser") and getattr(module, "boto_client_for", None) is boto_client_for:
            module.boto_client_for = _shared_client


# GetExecutionHistory's maxResults: AWS's default when none (or 0) is given, and its largest.
HISTORY_PAGE_DEFAULT = 100
HISTORY_PAGE_MAX = 1000


def _history_events(backend, execution_arn: str) -> list:
    """The execution's events, oldest first: copied from the interpreter's event
    list directly where it is there (moto's own answer deep-copies the whole
    history on every call), else moto's answer."""
    try:
        execution = backend.describe_execution(execution_arn=execution_arn)
        manager = execution.exec_worker.env.event_manager
        with manager._mutex:
            return list(manager._history_event_list)
    except AttributeError:  # not started yet, or a moto that keeps them elsewhere
        return list(backend.get_execution_history(execution_arn)["events"])


# Each history event as moto's serializer writes it, by (execution, event id):
# an event never changes once it is in the history.
_SERIALIZED_EVENTS: dict[tuple, Any] = {}
_JSON_CONTENT_TYPE = ["application/x-amz-json-1.0"]


def _serialized_event(response, execution_arn: str, event: dict) -> Any:
    """The event's JSON, as moto's serializer makes it for a page holding it
    (a list's items are written one by one), made once per event: the waiter
    reads the page with the newest events at every poll, and moto's generic
    serializer costs about 1 ms an event (30 ms a page of 25)."""
    import copy

    from moto.core.responses import ActionResult

    key = (execution_arn, event.get("id"))
    if key not in _SERIALIZED_EVENTS or key[1] is None:
        _, headers, body = response.serialized(ActionResult({"events": [copy.deepcopy(event)]}))
        _JSON_CONTENT_TYPE[0] = headers.get("Content-Type") or _JSON_CONTENT_TYPE[0]
        _SERIALIZED_EVENTS[key] = json.loads(body)["events"][0]
    return _SERIALIZED_EVENTS[key]


def install_history_pages() -> None:
    """GetExecutionHistory as AWS answers it: at most maxResults events (100 by
    default), a nextToken while more follow, reverseOrder newest first. moto
    returns every event on every call, so a waiter polling a run re-read (and
    the emulator serialized) the whole history each time. The token is the
    position of the next event, and an unknown one is InvalidToken, as on AWS.
    Each event is serialized once (_serialized_event). Idempotent."""
    from moto.stepfunctions.exceptions import InvalidToken
    from moto.stepfunctions.responses import StepFunctionResponse

    if getattr(StepFunctionResponse, "_mltp_history_pages", False):
        return

    def get_execution_history(self):
        events = _history_events(self.stepfunction_backend, self._get_param("executionArn"))
        if self._get_param("reverseOrder"):
            events.reverse()
        size = self._get_int_param("maxResults") or HISTORY_PAGE_DEFAULT
        size = max(1, min(size, HISTORY_PAGE_MAX))
        token = self._get_param("nextToken")
        start = 0
        if token:
            if not token.startswith("mltp-") or not token[5:].isdigit() or int(token[5:]) > len(events):
                raise InvalidToken(token)
            start = int(token[5:])
        arn = self._get_param("executionArn")
        page = [_serialized_event(self, arn, event) for event in events[start:start + size]]
        answer = {"events": page}
        if start + size < len(events):
            answer["nextToken"] = f"mltp-{start + size}"
        return json.dumps(answer), {"Content-Type": _JSON_CONTENT_TYPE[0]}

    StepFunctionResponse.get_execution_history = get_execution_history
    StepFunctionResponse._mltp_history_pages = True


_HISTORY_CHANGED = threading.Condition()
_history_version = [0]


def install_history_signal() -> None:
    """Each event the interpreter adds to an execution's history wakes the
    `HistoryClock`s sleeping meanwhile. Idempotent."""
    from moto.stepfunctions.parser.asl.eval.event.event_manager import EventManager

    original = getattr(EventManager, "_mltp_original_add_event", EventManager.add_event)

    @functools.wraps(original)
    def add_event(self, *args, **kwargs):
        try:
            return original(self, *args, **kwargs)
        finally:
            with _HISTORY_CHANGED:
                _history_version[0] += 1
                _HISTORY_CHANGED.notify_all()

    EventManager._mltp_original_add_event = original
    EventManager.add_event = add_event


class HistoryClock:
    """The waiter's clock in a local run (follow.Watcher's `now` and `sleep`):
    a sleep ends as soon as the emulator adds an event to a history, so each
    step change is shown at once and a quiet run is polled at the interval the
    waiter asks for. A few milliseconds more let the rest of a burst of events
    (a state's exit, the next one's entry and its task) land in the same poll."""

    SETTLE_SECONDS = 0.02

    def __init__(self):
        self.seen = _history_version[0]

    def now(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        until = time.monotonic() + seconds
        with _HISTORY_CHANGED:
            woken = _HISTORY_CHANGED.wait_for(lambda: _history_version[0] != self.seen, timeout=seconds)
            self.seen = _history_version[0]
        if woken:
            time.sleep(max(0.0, min(self.SETTLE_SECONDS, until - time.monotonic())))


# Programs parsed when a definition was validated (CreateStateMachine,
# UpdateStateMachine) and not run yet, by definition: at most a few.
_VALIDATED: dict[str, Any] = {}
_VALIDATED_LOCK = threading.Lock()
_VALIDATED_KEPT = 4


def install_parse_reuse() -> None:
    """moto's interpreter parses a definition with its ANTLR parser twice:
    to validate it when the state machine is created or updated, and again
    when an execution starts (some 0.2 s each once the parser is warm, the
    first parse of a process 0.6 s). The program the validation built is
    handed to the next execution of that same definition instead, once: each
    program is still run at most once, exactly as its own parse would have
    built it (the parse depends on the definition's text alone), and a
    definition that fails to parse fails its CreateStateMachine as before.
    Idempotent."""
    from moto.stepfunctions.parser import models as parser_models
    from moto.stepfunctions.parser.asl.parse.asl_parser import AmazonStateLanguageParser
    from moto.stepfunctions.parser.backend.execution_worker import ExecutionWorker

    if getattr(ExecutionWorker, "_mltp_parse_reuse", False):
        return

    class ValidatingParser(AmazonStateLanguageParser):
        """What the backend's validation calls: the parse, with its program kept."""

        @staticmethod
        def parse(definition: str):
            program, tree = AmazonStateLanguageParser.parse(definition)
            with _VALIDATED_LOCK:
                _VALIDATED.pop(definition, None)
                _VALIDATED[definition] = program
                while len(_VALIDATED) > _VALIDATED_KEPT:
                    del _VALIDATED[next(iter(_VALIDATED))]
            return program, tree

    original = ExecutionWorker._get_evaluation_entrypoint

    @functools.wraps(original)
    def entrypoint(self):
        definition = self._evaluation_details.state_machine_details.definition
        with _VALIDATED_LOCK:
            program = _VALIDATED.pop(definition, None)
        return program if program is not None else original(self)

    parser_models.AmazonStateLanguageParser = ValidatingParser
    ExecutionWorker._get_evaluation_entrypoint = entrypoint
    ExecutionWorker._mltp_parse_reuse = True


def install_sfn_patches(sync_poll_seconds: float = 0.5) -> None:
    orig = getattr(task_factory_mod, "_mltp_orig_for", task_factory_mod.state_task_service_for)
    task_factory_mod._mltp_orig_for = orig

    def state_task_service_for(service_name: str):
        if service_name == "sagemaker":
            return StateTaskServiceSageMaker()
        if service_name == "aws-sdk":
            return StateTaskServiceAwsSdkFixed()
        return orig(service_name)

    task_factory_mod.state_task_service_for = state_task_service_for
    # .sync: our resolver waits itself (for the job's end, or sync_poll_seconds for a
    # job it does not run), so moto's own sleep between two calls of it goes
    global _SYNC_POLL_SECONDS
    _SYNC_POLL_SECONDS = sync_poll_seconds
    cb_mod._DELAY_SECONDS_SYNC_CONDITION_CHECK = 0.0
    # the program validation parsed runs the next execution of its definition
    install_parse_reuse()
    # one client per service for the interpreter's tasks, not one per task
    install_shared_clients()
    # GetExecutionHistory in pages, and the waiter woken by each new event
    install_history_pages()
    install_history_signal()
    # nicer aws-sdk error names: "SageMaker.SageMakerException" instead of "sagemaker.sagemakerException"
    aws_sdk_mod._SERVICE_ERROR_NAMES.update({"sagemaker": "SageMaker", "s3": "S3"})
    # `$.….false_positive_rate.value` must parse (old jsonpath-ng lexes `false` as a boolean)
    fix_jsonpath_keyword_prefixes()
    # `$..FinalMetricDataList[?(...)]` with no match is [] on AWS, an error in moto
    fix_indefinite_path_misses()
    # the parser logs every exception with a full repr of the state tree at ERROR/WARNING
    logging.getLogger("moto.stepfunctions.parser").setLevel(logging.CRITICAL)


# --------------------------------------------------------------------------- server bootstrap


def stop_local_moto(server) -> None:
    """Stops the server and puts moto's process-wide settings back.

    The server's loop looks at its stop flag every 0.5 s, or as soon as a
    connection arrives: an empty connection or two make it stop at once
    instead of costing every local run half a second."""
    import socket

    from moto.core.config import default_user_config

    address = server.get_host_and_port()
    stopper = threading.Thread(target=server.stop, name="mltp-moto-stop", daemon=True)
    stopper.start()
    while stopper.is_alive():
        try:
            socket.create_connection(address, timeout=1).close()
        except OSError:
            pass
        stopper.join(0.02)
    default_user_config["stepfunctions"] = {"execute_state_machine": False}
    os.environ.pop("MOTO_PORT", None)


def start_local_moto():
    """Start ThreadedMotoServer on a free port with SFN execution enabled. Returns (server, endpoint)."""
    from moto.core.config import default_user_config
    from moto.server import ThreadedMotoServer

    install_logs_extensions()
    srv = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    srv.start()
    port = srv.get_host_and_port()[1]
    # The interpreter's boto_client_for() talks to http://localhost:$MOTO_PORT (default 5000)
    os.environ["MOTO_PORT"] = str(port)
    # Same effect as POST /moto-api/config {"stepfunctions": {"execute_state_machine": true}}
    # (in-process, so we can just set the dict). Must be set BEFORE create_state_machine:
    # the flag selects a *different backend dict* (stepfunctions_parser_backends).
    default_user_config["stepfunctions"] = {"execute_state_machine": True}
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # silence per-request access log
    return srv, f"http://127.0.0.1:{port}"


# --------------------------------------------------------------------------- CloudWatch Logs: saved queries, exports


def install_logs_extensions() -> None:
    """moto has no Logs Insights saved queries; `deploy` saves three per model
    (PutQueryDefinition). This adds PutQueryDefinition, DescribeQueryDefinitions
    and DeleteQueryDefinition to moto's Logs API, with AWS's request and answer
    shapes (an update names the queryDefinitionId; a name prefix filters), kept
    per account and region in the backend. It also makes CreateExportTask honour
    logStreamNamePrefix, as AWS does (moto exports every stream of the group),
    which `mltp logs --export` uses to export one job's streams. Idempotent."""
    import uuid

    from moto.logs.responses import LogsResponse

    if getattr(LogsResponse, "_mltp_query_definitions", False):
        return

    def _store(self) -> dict:
        backend = self.logs_backend
        if not hasattr(backend, "mltp_query_definitions"):
            backend.mltp_query_definitions = {}
        return backend.mltp_query_definitions

    def put_query_definition(self) -> str:
        store = _store(self)
        query_id = self._get_param("queryDefinitionId") or str(uuid.uuid4())
        if self._get_param("queryDefinitionId") and query_id not in store:
            from moto.logs.exceptions import ResourceNotFoundException

            raise ResourceNotFoundException("The specified query definition does not exist.")
        store[query_id] = {
            "queryDefinitionId": query_id,
            "name": self._get_param("name"),
            "queryString": self._get_param("queryString"),
            "logGroupNames": self._get_param("logGroupNames") or [],
            "lastModified": int(datetime.datetime.now().timestamp() * 1000),
        }
        return json.dumps({"queryDefinitionId": query_id})

    def describe_query_definitions(self) -> str:
        prefix = self._get_param("queryDefinitionNamePrefix") or ""
        found = [q for q in _store(self).values() if q["name"].startswith(prefix)]
        return json.dumps({"queryDefinitions": sorted(found, key=lambda q: q["name"])})

    def delete_query_definition(self) -> str:
        removed = _store(self).pop(self._get_param("queryDefinitionId"), None)
        return json.dumps({"success": removed is not None})

    export_all_streams = LogsResponse.create_export_task
    export_lock = threading.Lock()

    def create_export_task(self):
        prefix = self._get_param("logStreamNamePrefix")
        group = self.logs_backend.groups.get(self._get_param("logGroupName"))
        if not prefix or group is None:
            return export_all_streams(self)
        with export_lock:
            streams = group.streams
            group.streams = {name: stream for name, stream in streams.items() if name.startswith(prefix)}
            try:
                return export_all_streams(self)
            finally:
                group.streams = streams

    LogsResponse.create_export_task = create_export_task
    LogsResponse.put_query_definition = put_query_definition
    LogsResponse.describe_query_definitions = describe_query_definitions
    LogsResponse.delete_query_definition = delete_query_definition
    LogsResponse._mltp_query_definitions = True


def set_model_package_creation_time(arn: str, when: datetime.datetime) -> bool:
    """Put a restored model package's creation time back (the API cannot set it);
    the local registry store (registry_store.restore) calls this. True when found."""
    from moto.sagemaker.models import sagemaker_backends

    for account in list(sagemaker_backends.keys()):
        for region in list(sagemaker_backends[account].keys()):
            package = sagemaker_backends[account][region].model_packages.get(arn)
            if package is not None:
                # moto keeps naive UTC times: an aware one would break its sorting.
                current = package.creation_time
                if getattr(current, "tzinfo", None) is None and when.tzinfo is not None:
                    when = when.astimezone(datetime.timezone.utc).replace(tzinfo=None)
                package.creation_time = when
                return True
    return False
