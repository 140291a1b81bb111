"""The local emulator's fixes to moto's Step Functions interpreter, unit by unit.

jsonpath-ng before its BOOL fix (1.8.0, what the lock installs on Python < 3.11)
lexes the `false` of `false_positive_rate` as a boolean literal, so moto cannot
parse `$.evaluation.report.metrics.false_positive_rate.value` and the gate's
IsPresent on it is false. Newer jsonpath-ng lexes it right, so these tests put
the old lexer rule back (monkeypatch) where the lexer is built from its rule
functions (jsonpath-ng before 1.16); the gate itself runs on moto everywhere."""

import json
import re
import time

import pytest

from mltp import gate
from mltp.config import GateRule
from mltp.local import emulator

jsonpath_parser = pytest.importorskip("jsonpath_ng.ext.parser")
from moto.stepfunctions.parser.asl.utils.json_path import extract_json  # noqa: E402

METRICS = {"metrics": {"false_positive_rate": {"value": 0.0007}, "true_positive_rate": {"value": 0.81},
                       "falsey": 1, "truex": 2, "auc": {"value": 0.96}}}


@pytest.fixture
def old_jsonpath_lexer(monkeypatch):
    """jsonpath-ng's BOOL rule as 1.8.0 has it: any `true`/`false`, even inside a name."""
    rule = jsonpath_parser.ExtendedJsonPathLexer.t_BOOL
    monkeypatch.setattr(rule, "regex", r"true|false", raising=False)
    if not emulator._jsonpath_lexes_prefix_as_bool():
        # jsonpath-ng 1.16 (Python >= 3.11) lexes from precomputed tables, and has the fix
        pytest.skip("this jsonpath-ng does not build its lexer from the rule functions")


def test_old_lexer_cannot_parse_a_member_named_false_something(old_jsonpath_lexer):
    with pytest.raises(Exception, match="BOOL"):
        extract_json("$.metrics.false_positive_rate.value", METRICS)


def test_fix_makes_names_starting_with_true_or_false_parse(old_jsonpath_lexer):
    assert emulator.fix_jsonpath_keyword_prefixes() is True
    assert not emulator._jsonpath_lexes_prefix_as_bool()
    assert emulator.fix_jsonpath_keyword_prefixes() is False  # once is enough
    assert extract_json("$.metrics.false_positive_rate.value", METRICS) == 0.0007
    assert extract_json("$.metrics.true_positive_rate.value", METRICS) == 0.81
    assert extract_json("$.metrics['false_positive_rate'].value", METRICS) == 0.0007
    assert extract_json("$.metrics.falsey", METRICS) == 1
    assert extract_json("$.metrics.truex", METRICS) == 2
    # true/false as literals in a filter still are booleans
    flags = {"items": [{"ok": True, "n": 1}, {"ok": False, "n": 2}]}
    assert extract_json("$.items[?(@.ok == false)].n", flags) == [2]
    assert extract_json("$.items[?(@.ok == true)].n", flags) == [1]


@pytest.mark.parametrize("text,literal", [
    ("false", "false"), ("true", "true"), ("false)", "false"), ("true]", "true"), ("true ", "true"),
    ("false_positive_rate", None), ("true_positive_rate", None), ("falsey", None), ("trueName", None),
    ("true-x", None), ("false@", None), ("true0", None),
])
def test_the_fixed_bool_rule_matches_only_whole_words(text, literal):
    match = re.match(emulator._JSONPATH_BOOL, text)
    assert (match.group() if match else None) == literal


def test_fix_leaves_a_correct_lexer_alone():
    emulator.fix_jsonpath_keyword_prefixes()
    assert emulator.fix_jsonpath_keyword_prefixes() is False


def _run_gate(rules, metrics) -> str:
    """Run Pass(evaluation) -> Choice(the gate) on moto's interpreter; the state it ends in."""
    import boto3
    from moto import mock_aws

    report = {"metrics": {k: {"value": v} for k, v in metrics.items()}}
    definition = {
        "StartAt": "ReadEvaluation",
        "States": {
            "ReadEvaluation": {"Type": "Pass", "Parameters": {"report.$": "States.StringToJson($.body)"},
                               "ResultPath": "$.evaluation", "Next": "Gate"},
            "Gate": {"Type": "Choice", "Choices": [dict(gate.choice_rule(rules, "$.evaluation.report.metrics"), Next="Passed")],
                     "Default": "MetricGateFailed"},
            "Passed": {"Type": "Succeed"},
            "MetricGateFailed": {"Type": "Fail", "Error": "MetricGateFailed"},
        },
    }
    # One backend per run: moto 5.1 cannot start a second execution next to a finished one.
    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}):
        sfn = boto3.client("stepfunctions", region_name="us-east-1")
        machine = sfn.create_state_machine(name="gate", definition=json.dumps(definition),
                                           roleArn="arn:aws:iam::123456789012:role/sfn")["stateMachineArn"]
        arn = sfn.start_execution(stateMachineArn=machine, input=json.dumps({"body": json.dumps(report)}))["executionArn"]
        deadline = time.monotonic() + 30
        while sfn.describe_execution(executionArn=arn)["status"] == "RUNNING" and time.monotonic() < deadline:
            time.sleep(0.05)
        events = sfn.get_execution_history(executionArn=arn)["events"]
        return [e["stateEnteredEventDetails"]["name"] for e in events if "stateEnteredEventDetails" in e][-1]


def test_the_gate_on_moto_reads_metrics_named_false_or_true_something(monkeypatch):
    """On the jsonpath-ng this Python has, patched as `mltp run --local` patches it."""
    for key in ("AWS_ENDPOINT_URL", "AWS_PROFILE", "AWS_CONFIG_FILE"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    rules = [GateRule("auc", min=0.9), GateRule("false_positive_rate", max=0.05), GateRule("true_positive_rate", min=0.5)]
    emulator.fix_jsonpath_keyword_prefixes()
    assert _run_gate(rules, {"auc": 0.96, "false_positive_rate": 0.0007, "true_positive_rate": 0.81}) == "Passed"
    assert _run_gate(rules, {"auc": 0.96, "false_positive_rate": 0.2, "true_positive_rate": 0.81}) == "MetricGateFailed"
    assert _run_gate(rules, {"auc": 0.96, "true_positive_rate": 0.81}) == "MetricGateFailed"


# --------------------------------------------------------------------------- following a run cheaply


@pytest.fixture
def local_moto(monkeypatch):
    """The emulator as a local run starts it (patches included), and clients of it."""
    import boto3

    for key in ("AWS_ENDPOINT_URL", "AWS_PROFILE", "AWS_CONFIG_FILE"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    server, endpoint = emulator.start_local_moto()
    emulator.install_sfn_patches(sync_poll_seconds=0.2)
    try:
        yield lambda service: boto3.client(service, region_name="us-east-1", endpoint_url=endpoint)
    finally:
        emulator.stop_local_moto(server)


def _finished(sfn, definition: dict, name: str, wait: float = 30) -> str:
    machine = sfn.create_state_machine(name=name, definition=json.dumps(definition),
                                       roleArn="arn:aws:iam::123456789012:role/sfn")["stateMachineArn"]
    arn = sfn.start_execution(stateMachineArn=machine, input="{}")["executionArn"]
    deadline = time.monotonic() + wait
    while sfn.describe_execution(executionArn=arn)["status"] == "RUNNING" and time.monotonic() < deadline:
        time.sleep(0.05)
    return arn


def _pass_chain(count: int) -> dict:
    return {"StartAt": "S0", "States": {f"S{i}": dict({"Type": "Pass", "Result": {"i": i}},
                                                        **({"Next": f"S{i + 1}"} if i < count - 1 else {"End": True}))
                                         for i in range(count)}}


def test_the_history_comes_in_pages_as_on_aws(local_moto):
    """GetExecutionHistory: maxResults events at most (100 by default), a nextToken
    while more follow, reverseOrder newest first, InvalidToken for a token of
    nobody's; botocore's paginator reads the whole history, each event once."""
    from botocore.exceptions import ClientError

    sfn = local_moto("stepfunctions")
    arn = _finished(sfn, _pass_chain(80), "pages")
    everything = [e for page in sfn.get_paginator("get_execution_history").paginate(executionArn=arn)
                  for e in page["events"]]
    ids = [e["id"] for e in everything]
    assert ids == list(range(1, len(ids) + 1)) and len(ids) > 160  # entered and exited per state
    assert everything[-1]["type"] == "ExecutionSucceeded"

    first = sfn.get_execution_history(executionArn=arn)
    assert len(first["events"]) == 100 and first["nextToken"]
    page = sfn.get_execution_history(executionArn=arn, maxResults=25, nextToken=first["nextToken"])
    assert [e["id"] for e in page["events"]] == list(range(101, 126))
    last = sfn.get_execution_history(executionArn=arn, maxResults=1000)
    assert len(last["events"]) == len(ids) and "nextToken" not in last
    newest = sfn.get_execution_history(executionArn=arn, maxResults=3, reverseOrder=True)
    assert [e["id"] for e in newest["events"]] == [len(ids), len(ids) - 1, len(ids) - 2]
    with pytest.raises(ClientError) as refused:
        sfn.get_execution_history(executionArn=arn, nextToken="not-a-token")
    assert refused.value.response["Error"]["Code"] == "InvalidToken"


def test_the_waiter_reads_a_run_one_page_a_poll(local_moto):
    """mltp's HistoryReader (the waiter's) on the paged answer: each event once, in
    order, and a poll after the end reads the newest page again and nothing new."""
    from mltp.follow import HistoryReader

    sfn = local_moto("stepfunctions")
    arn = _finished(sfn, _pass_chain(20), "reader")
    reader = HistoryReader(sfn, arn, page_size=7)
    read = reader.poll()
    assert [e["id"] for e in read] == list(range(1, len(read) + 1)) and read[-1]["type"] == "ExecutionSucceeded"
    assert reader.poll() == []


def test_the_history_clock_wakes_at_the_next_event(local_moto):
    """A local run's waiter sleeps on emulator.HistoryClock: a new history event
    ends the sleep at once; with none, it lasts as asked."""
    sfn = local_moto("stepfunctions")
    clock = emulator.HistoryClock()
    started = time.monotonic()
    clock.sleep(0.3)
    assert time.monotonic() - started >= 0.25  # nothing happened: the whole interval
    definition = {"StartAt": "Later", "States": {"Later": {"Type": "Wait", "Seconds": 1, "Next": "Done"},
                                                  "Done": {"Type": "Succeed"}}}
    machine = sfn.create_state_machine(name="clock", definition=json.dumps(definition),
                                       roleArn="arn:aws:iam::123456789012:role/sfn")["stateMachineArn"]
    clock.sleep(0)  # what happened so far is seen
    sfn.start_execution(stateMachineArn=machine, input="{}")
    started = time.monotonic()
    clock.sleep(20)
    assert time.monotonic() - started < 10  # woken by ExecutionStarted, not by the timeout


def test_a_sync_task_wakes_when_the_local_job_ends(local_moto):
    """`sagemaker:createProcessingJob.sync` on the emulator: the interpreter waits
    for the local runner's end of the job, then reads its status once, instead of
    describing the job every poll interval."""
    from moto.sagemaker.models import SageMakerModelBackend

    described = []
    original = SageMakerModelBackend.describe_processing_job
    creates = SageMakerModelBackend.create_processing_job, SageMakerModelBackend.create_training_job

    def counting(self, *args, **kwargs):
        described.append(time.monotonic())
        return original(self, *args, **kwargs)

    emulator.install_sagemaker_backend_hook(lambda kind, name, request, job: time.sleep(1.5))
    SageMakerModelBackend.describe_processing_job = counting
    try:
        sfn = local_moto("stepfunctions")
        job = {"ProcessingJobName": "sync-job", "RoleArn": "arn:aws:iam::123456789012:role/sm",
               "AppSpecification": {"ImageUri": "123456789012.dkr.ecr.us-east-1.amazonaws.com/x:1"},
               "ProcessingResources": {"ClusterConfig": {"InstanceCount": 1, "InstanceType": "ml.m5.large",
                                                         "VolumeSizeInGB": 1}}}
        definition = {"StartAt": "Job", "States": {"Job": {
            "Type": "Task", "Resource": "arn:aws:states:::sagemaker:createProcessingJob.sync",
            "Parameters": job, "End": True}}}
        arn = _finished(sfn, definition, "sync")
        assert sfn.describe_execution(executionArn=arn)["status"] == "SUCCEEDED"
    finally:
        SageMakerModelBackend.describe_processing_job = original
        SageMakerModelBackend.create_processing_job, SageMakerModelBackend.create_training_job = creates
    # 1.5 s of job: at 0.2 s a poll that is 7 or more; woken by the job's end, 1 or 2
    assert 1 <= len(described) <= 3


def test_the_emulator_imports_no_batch_backend_until_one_is_asked_for(tmp_path):
    """The interpreter's Batch integration needs moto.batch.utils only; Batch's
    backend (and EC2's with it) loads the first time the package is asked for
    what it holds, as moto's server does for a Batch request."""
    import subprocess
    import sys

    code = ("import sys; import mltp.local.emulator; "
            "assert 'moto.batch.models' not in sys.modules and 'moto.ec2' not in sys.modules; "
            "from moto.batch.utils import JobStatus; assert JobStatus.SUCCEEDED; "
            "from moto.backends import get_backend; backends = get_backend('batch'); "
            "assert 'moto.batch.models' in sys.modules and backends['123456789012']['us-east-1'] is not None; "
            "import moto.batch; assert moto.batch.batch_backends is backends; print('ok')")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                            env=dict(__import__("os").environ, MLTP_CACHE_DIR=str(tmp_path)))
    assert result.stdout.strip() == "ok", result.stderr


def test_an_execution_runs_the_program_its_definitions_validation_parsed(local_moto):
    """CreateStateMachine parses the definition to validate it; the next
    execution of that definition runs the program that parse built instead of
    parsing it again, and takes it: it is run once, a later execution parses
    its own. A definition that does not parse is refused as before. (One
    execution per test: moto before 5.2 cannot start a second one in a
    process.)"""
    from botocore.exceptions import ClientError
    from moto.stepfunctions.parser.asl.parse import asl_parser

    parses = []
    original = asl_parser.AmazonStateLanguageParser.parse

    def counting(definition):
        parses.append(definition)
        return original(definition)

    asl_parser.AmazonStateLanguageParser.parse = staticmethod(counting)
    try:
        sfn = local_moto("stepfunctions")
        definition = json.dumps(_pass_chain(3))
        machine = sfn.create_state_machine(name="reuse", definition=definition,
                                           roleArn="arn:aws:iam::123456789012:role/sfn")["stateMachineArn"]
        assert parses == [definition] and definition in emulator._VALIDATED
        arn = sfn.start_execution(stateMachineArn=machine, input="{}")["executionArn"]
        deadline = time.monotonic() + 30
        while sfn.describe_execution(executionArn=arn)["status"] == "RUNNING" and time.monotonic() < deadline:
            time.sleep(0.05)
        done = sfn.describe_execution(executionArn=arn)
        assert done["status"] == "SUCCEEDED" and json.loads(done["output"]) == {"i": 2}
        assert parses == [definition]  # the kept program ran ...
        assert definition not in emulator._VALIDATED  # ... and is gone: a later execution parses its own
        with pytest.raises(ClientError) as refused:
            sfn.create_state_machine(name="broken", definition=json.dumps({"StartAt": "Nowhere", "States": {}}),
                                     roleArn="arn:aws:iam::123456789012:role/sfn")
        assert refused.value.response["Error"]["Message"].startswith("ASLParserException")  # moto's answer
    finally:
        asl_parser.AmazonStateLanguageParser.parse = original


def test_the_interpreters_tasks_share_one_client_per_service(local_moto):
    """Every aws-sdk task calls the emulator through one client per service
    (moto built a new one per task); the answers are the same."""
    import botocore.client

    made = []
    original = botocore.client.ClientCreator.create_client

    def counting(self, service_name, *args, **kwargs):
        made.append(service_name)
        return original(self, service_name, *args, **kwargs)

    s3 = local_moto("s3")
    s3.create_bucket(Bucket="shared-clients")
    chain = {"StartAt": "L0", "States": {
        f"L{i}": dict({"Type": "Task", "Resource": "arn:aws:states:::aws-sdk:s3:listBuckets",
                       "ResultSelector": {"names.$": "$.Buckets[*].Name"}},
                      **({"Next": f"L{i + 1}"} if i < 3 else {"End": True})) for i in range(4)}}
    botocore.client.ClientCreator.create_client = counting
    try:
        sfn = local_moto("stepfunctions")
        made.clear()
        arn = _finished(sfn, chain, "clients")
    finally:
        botocore.client.ClientCreator.create_client = original
    done = sfn.describe_execution(executionArn=arn)
    assert done["status"] == "SUCCEEDED", done
    assert "shared-clients" in json.loads(done["output"])["names"]
    assert made.count("s3") <= 1  # four tasks, one client (none if an earlier test made it)


def test_a_history_page_is_what_motos_serializer_writes(local_moto):
    """Each event of a page is serialized once and kept: the page reads exactly
    as moto's serializer writes the whole page (a run with tasks, a Choice, a
    failure caught, a Fail), at every poll."""
    from moto.core.responses import ActionResult
    from moto.stepfunctions.parser.models import stepfunctions_parser_backends
    from moto.stepfunctions.responses import StepFunctionResponse

    sfn = local_moto("stepfunctions")
    local_moto("s3").create_bucket(Bucket="history-serialized")
    definition = {"StartAt": "List", "States": {
        "List": {"Type": "Task", "Resource": "arn:aws:states:::aws-sdk:s3:listBuckets",
                 "ResultSelector": {"names.$": "$.Buckets[*].Name"}, "Next": "Missing"},
        "Missing": {"Type": "Task", "Resource": "arn:aws:states:::aws-sdk:s3:getObject",
                    "Parameters": {"Bucket": "history-serialized", "Key": "none"},
                    "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "Which"}],
                    "End": True},
        "Which": {"Type": "Choice", "Choices": [{"Variable": "$.error", "IsPresent": True, "Next": "Stop"}],
                  "Default": "Done"},
        "Done": {"Type": "Succeed"},
        "Stop": {"Type": "Fail", "Error": "Stopped", "Cause": "the object is missing"}}}
    arn = _finished(sfn, definition, "serialized")
    assert sfn.describe_execution(executionArn=arn)["status"] == "FAILED"
    polls = [sfn.get_execution_history(executionArn=arn, maxResults=5) for _ in range(2)]
    events = [e for page in sfn.get_paginator("get_execution_history").paginate(executionArn=arn, maxResults=4)
              for e in page["events"]]
    assert polls[0]["events"] == polls[1]["events"] == events[:5] and polls[0]["nextToken"]

    region = arn.split(":")[3]
    backend = stepfunctions_parser_backends["123456789012"][region]
    raw = emulator._history_events(backend, arn)

    class Page(StepFunctionResponse):  # moto's own serializer, as the operation answers
        def _get_action(self):
            return "GetExecutionHistory"

    page = Page()
    page.headers, page.response_headers = {}, {}
    _, _, body = page.serialized(ActionResult({"events": raw}))
    whole = sfn.get_execution_history(executionArn=arn, maxResults=1000)
    ours = json.loads(json.dumps(whole["events"], default=lambda v: v.timestamp()))
    theirs = json.loads(body)["events"]
    assert len(theirs) == len(ours) > 10
    assert ours == theirs
