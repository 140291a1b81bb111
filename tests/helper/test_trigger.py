"""Retraining when new data lands, against moto over HTTP.

moto stores Lambda functions, schedules and bucket notifications but does not
run them, so the handler (`mltp.trigger_handler`, the very file the function
zip holds) is called in-process with event payloads in the shapes AWS
documents, talking to moto's S3 and Step Functions over HTTP."""

import datetime as dt
from concurrent.futures import ThreadPoolExecutor
import json
import urllib.parse
import uuid
import zipfile
import io
from pathlib import Path

import boto3
import pytest
from click.testing import CliRunner

from mltp import config as config_mod
from mltp import naming
from mltp import trigger as trigger_mod
from mltp import trigger_handler as handler_mod
from mltp.aws import Clients
from mltp.cli import main
from mltp.context import make_context
from mltp.errors import InvalidInput

REGION = "ap-northeast-2"
ACCOUNT = "123456789012"
UTC = dt.timezone.utc


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def client(service: str, endpoint: str):
    return boto3.client(service, region_name=REGION, endpoint_url=endpoint)


def make_bucket(endpoint: str, name: str) -> str:
    client("s3", endpoint).create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": REGION})
    return name


def configure(repo: Path, name: str, bucket: str, data_bucket: str, retrain: str) -> None:
    path = repo / "config.yaml"
    original = path.with_suffix(".orig")
    if not original.exists():
        original.write_text(path.read_text())
    text = original.read_text().replace("name: fraud-detection\n", f"name: {name}\n", 1)
    text = text.replace("bucket: mlops-artifacts", f"bucket: {bucket}")
    text = text.replace("    inputs: []\n", f"    inputs:\n      - name: raw\n        source: s3://{data_bucket}/fraud/raw/\n"
                                            f"      - name: labels\n        source: s3://{data_bucket}/fraud/labels/\n")
    path.write_text(text + f"\nretrain: {retrain}\n")


class Model:
    """A model repo with retraining set, its buckets, and its deployed state machine."""

    def __init__(self, repo: Path, endpoint: str, retrain: str = "{on_inputs: [raw], quiet_minutes: 10}",
                 name: str = "", data: str = "", edit=None):
        self.endpoint = endpoint
        self.name = name or unique("m")
        self.bucket = make_bucket(endpoint, unique("art"))
        self.data = data or make_bucket(endpoint, unique("data"))
        configure(repo, self.name, self.bucket, self.data, retrain)
        if edit:  # a last change to config.yaml's text
            (repo / "config.yaml").write_text(edit((repo / "config.yaml").read_text()))
        self.repo = repo
        self.ctx = make_context(config_mod.load(repo), run_name="jenkins-fraud-main-7", env={})
        self.clients = Clients(REGION, endpoint)
        self.machine_arn = client("stepfunctions", endpoint).create_state_machine(
            name=self.ctx.state_machine, roleArn=f"arn:aws:iam::{ACCOUNT}:role/StepFunctionsExecution",
            definition=json.dumps({"StartAt": "W", "States": {"W": {"Type": "Wait", "Seconds": 3600, "End": True}}}),
        )["stateMachineArn"]

    def settings(self) -> handler_mod.Settings:
        return handler_mod.Settings(trigger_mod.environment(self.ctx, self.machine_arn))

    def record_good_run(self) -> dict:
        good = naming.execution_input(self.ctx.config, self.ctx.state_machine, "jenkins-fraud-main-7", "c0de" * 16,
                                      register=True, git_commit="abc123", build_url="https://ci/job/7/", branch="main")
        trigger_mod.record_good_run(self.ctx, self.clients, good.to_dict())
        return good.to_dict()

    def put(self, key: str, bucket: str = "") -> None:
        self.clients.s3.put_object(Bucket=bucket or self.data, Key=key, Body=b"x")

    def handle(self, event: dict, now: dt.datetime = None) -> dict:
        return handler_mod.handle(event, self.clients.s3, self.clients.sfn, self.settings(), now=now)

    def executions(self, status: str = None) -> list:
        kwargs = {"statusFilter": status} if status else {}
        return self.clients.sfn.list_executions(stateMachineArn=self.machine_arn, **kwargs)["executions"]


def s3_event(bucket: str, keys, when: dt.datetime, sequencer: str = "0055AED6DCD90281E5") -> dict:
    """An S3 event notification as AWS documents it (event structure 2.1):
    object keys URL-encoded, one record per object."""
    return {"Records": [{
        "eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": REGION,
        "eventTime": when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z",
        "eventName": "ObjectCreated:Put",
        "userIdentity": {"principalId": "AWS:AIDAEXAMPLE"},
        "requestParameters": {"sourceIPAddress": "203.0.113.7"},
        "responseElements": {"x-amz-request-id": "C3D13FE58DE4C810", "x-amz-id-2": "FMyUVURIY8/IgAtTv8xRjskZQpcIZ9KG4V5Wp6S7S/JRWeUWerMUE5JgHvANOjpD"},
        "s3": {"s3SchemaVersion": "1.0", "configurationId": "mltp-test",
               "bucket": {"name": bucket, "ownerIdentity": {"principalId": "A3NL1KOZZKExample"}, "arn": f"arn:aws:s3:::{bucket}"},
               "object": {"key": urllib.parse.quote_plus(key, safe="/"), "size": 1024, "eTag": "d41d8cd98f00b204e9800998ecf8427e",
                          "sequencer": f"{sequencer}{index:04X}"}},
    } for index, key in enumerate(keys)]}


def eventbridge_event(bucket: str, key: str, when: dt.datetime) -> dict:
    """The EventBridge form ("Object Created"), keys not encoded."""
    return {"version": "0", "id": str(uuid.uuid4()), "detail-type": "Object Created", "source": "aws.s3",
            "account": ACCOUNT, "time": when.strftime("%Y-%m-%dT%H:%M:%SZ"), "region": REGION,
            "resources": [f"arn:aws:s3:::{bucket}"],
            "detail": {"version": "0", "bucket": {"name": bucket},
                       "object": {"key": key, "size": 5, "etag": "b1946ac92492d2347c6235b4d2611184", "sequencer": "00617F08299329D189"},
                       "request-id": "N4N7GDK58NMKJ12R", "requester": ACCOUNT, "reason": "PutObject"}}


SCHEDULE = {"version": "0", "id": "53dc4d37-cffa-4f76-80c9-8b7d4a4d2eaa", "detail-type": "Scheduled Event",
            "source": "aws.events", "account": ACCOUNT, "time": "2026-11-26T14:00:00Z", "region": REGION,
            "resources": [f"arn:aws:events:{REGION}:{ACCOUNT}:rule/mltp-trigger"], "detail": {}}


def now() -> dt.datetime:
    return dt.datetime.now(UTC)


# --------------------------------------------------------------------------- the handler


def test_retrain_input_equals_what_mltp_derives(example_repo, aws_env):
    model = Model(example_repo, aws_env)
    good = model.record_good_run()
    pointer = json.loads(model.clients.s3.get_object(Bucket=model.bucket, Key=trigger_mod.pointer_key(model.ctx))["Body"].read())
    derived = handler_mod.retrain_input(pointer, "retrain-20261126T140000-0123456789")
    expected = naming.execution_input(model.ctx.config, model.ctx.state_machine, "retrain-20261126T140000-0123456789",
                                      "c0de" * 16, register=True, git_commit="abc123", build_url="https://ci/job/7/",
                                      branch="main").to_dict()
    assert derived == expected
    assert derived["CodeS3Uri"] == good["CodeS3Uri"]  # the last good run's code
    # ... but its own spot checkpoints: a retrain never resumes from the last good run's
    assert derived["CheckpointS3Uri"].endswith("/runs/retrain-20261126T140000-0123456789/checkpoints/")
    assert derived["CheckpointS3Uri"] != good["CheckpointS3Uri"]


def test_burst_of_1000_objects_starts_one_run_after_the_quiet_period(example_repo, aws_env):
    model = Model(example_repo, aws_env)
    model.record_good_run()
    start = now()
    keys = [f"fraud/raw/2026-11-26/part-{i:04d}.csv" for i in range(1000)]
    # S3 sends one notification per object, and Lambda runs them concurrently.
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(lambda key: model.handle(s3_event(model.data, [key], now()), now=start), keys))
    assert {r["action"] for r in results} == {"waiting"}, results[:3]
    assert model.executions() == []
    assert model.handle(SCHEDULE, now=now() + dt.timedelta(minutes=5))["action"] == "waiting"
    later = now() + dt.timedelta(minutes=11)
    first = model.handle(SCHEDULE, now=later)
    assert first["action"] == "started" and first["run"].startswith("retrain-")
    again = model.handle(SCHEDULE, now=later + dt.timedelta(minutes=1))
    assert again["action"] == "idle"
    runs = model.executions()
    assert [r["name"] for r in runs] == [first["run"]]
    started = json.loads(model.clients.sfn.describe_execution(executionArn=runs[0]["executionArn"])["input"])
    assert started["RunName"] == first["run"] and started["Register"] is True
    assert started["GitCommit"] == "abc123"


def test_marker_starts_at_once_and_a_duplicate_delivery_starts_nothing(example_repo, aws_env):
    model = Model(example_repo, aws_env, retrain="{on_inputs: [raw], marker: _SUCCESS}")
    model.record_good_run()
    when = now()
    parts = model.handle(s3_event(model.data, ["fraud/raw/day=1/part-0.csv"], when))
    assert parts["action"] == "ignored"  # not the marker
    marker = s3_event(model.data, ["fraud/raw/day=1/_SUCCESS"], when)
    first = model.handle(marker)
    assert first["action"] == "started"
    duplicate = model.handle(marker)  # S3 delivers at least once
    assert duplicate["action"] == "ignored" and "already consumed" in duplicate["reason"]
    assert len(model.executions()) == 1
    # A redelivery racing ahead of the consumed record still names the same run.
    model.clients.s3.delete_object(Bucket=model.bucket, Key=trigger_mod.state_prefix(model.ctx) + "consumed.json")
    raced = model.handle(marker)
    assert raced == {"action": "already-started", "run": first["run"]}
    assert len(model.executions()) == 1


def test_keys_that_do_not_match_start_nothing(example_repo, aws_env):
    model = Model(example_repo, aws_env)
    model.record_good_run()
    when = now()
    events = [
        s3_event(model.data, ["fraud/labels/x.csv"], when),  # an input not in on_inputs
        s3_event(model.data, ["fraud/rawish/x.csv"], when),  # a prefix that only looks alike
        s3_event(model.data, ["fraud/raw/"], when),  # a folder placeholder
        s3_event("another-bucket", ["fraud/raw/x.csv"], when),
        s3_event(model.bucket, [trigger_mod.state_prefix(model.ctx) + "pending.json"], when),  # our own state
        {"Service": "Amazon S3", "Event": "s3:TestEvent", "Time": "2026-11-26T14:00:00.000Z", "Bucket": model.data},
    ]
    for event in events:
        assert model.handle(event)["action"] == "ignored", event
    assert model.handle(SCHEDULE, now=now() + dt.timedelta(hours=1))["action"] == "idle"
    assert model.executions() == []


def test_url_encoded_keys_and_eventbridge_events_match(example_repo, aws_env):
    model = Model(example_repo, aws_env, retrain="{on_inputs: [raw], marker: _SUCCESS}")
    model.record_good_run()
    event = s3_event(model.data, ["fraud/raw/day 1/_SUCCESS"], now())
    assert "day+1" in event["Records"][0]["s3"]["object"]["key"]
    assert model.handle(event)["action"] == "started"
    other = Model(example_repo, aws_env, retrain="{on_inputs: [raw], marker: _SUCCESS}")
    other.record_good_run()
    assert other.handle(eventbridge_event(other.data, "fraud/raw/day 2/_SUCCESS", now()))["action"] == "started"


def test_nothing_starts_while_a_retrain_runs(example_repo, aws_env):
    model = Model(example_repo, aws_env, retrain="{on_inputs: [raw], marker: _SUCCESS}")
    model.record_good_run()
    first = model.handle(s3_event(model.data, ["fraud/raw/day=1/_SUCCESS"], now()))
    assert first["action"] == "started"
    assert [e["name"] for e in model.executions("RUNNING")] == [first["run"]]
    second = model.handle(s3_event(model.data, ["fraud/raw/day=2/_SUCCESS"], now() + dt.timedelta(seconds=5)))
    assert second["action"] == "waiting" and first["run"] in second["reason"]
    assert len(model.executions()) == 1
    model.clients.sfn.stop_execution(executionArn=model.executions()[0]["executionArn"])
    # The next sweep after that run ended starts the waiting data's run.
    swept = model.handle(SCHEDULE, now=now() + dt.timedelta(minutes=1))
    assert swept["action"] == "started" and swept["run"] != first["run"]
    assert len(model.executions()) == 2


def test_a_branch_run_does_not_block_a_retrain(example_repo, aws_env):
    model = Model(example_repo, aws_env, retrain="{on_inputs: [raw], marker: _SUCCESS}")
    model.record_good_run()
    model.clients.sfn.start_execution(stateMachineArn=model.machine_arn, name="jenkins-fraud-main-8", input="{}")
    assert model.handle(s3_event(model.data, ["fraud/raw/_SUCCESS"], now()))["action"] == "started"


def test_without_a_good_run_nothing_starts(example_repo, aws_env):
    model = Model(example_repo, aws_env, retrain="{on_inputs: [raw], marker: _SUCCESS}")
    result = model.handle(s3_event(model.data, ["fraud/raw/_SUCCESS"], now()))
    assert result["action"] == "skipped" and "no successful default-branch run" in result["reason"]
    assert model.executions() == []


# --------------------------------------------------------------------------- install, status, remove


OTHER_LAMBDA = "arn:aws:lambda:ap-northeast-2:123456789012:function:someone-elses"


def other_notifications(endpoint: str, bucket: str) -> dict:
    sqs = client("sqs", endpoint)
    queue = sqs.create_queue(QueueName=unique("q"))["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    config = {
        "QueueConfigurations": [{"Id": "audit", "QueueArn": queue_arn, "Events": ["s3:ObjectRemoved:*"]}],
        "LambdaFunctionConfigurations": [{"Id": "thumbnails", "LambdaFunctionArn": OTHER_LAMBDA,
                                          "Events": ["s3:ObjectCreated:*"],
                                          "Filter": {"Key": {"FilterRules": [{"Name": "prefix", "Value": "images/"}]}}}],
    }
    client("s3", endpoint).put_bucket_notification_configuration(Bucket=bucket, NotificationConfiguration=config)
    return config


def notifications(endpoint: str, bucket: str) -> dict:
    config = client("s3", endpoint).get_bucket_notification_configuration(Bucket=bucket)
    config.pop("ResponseMetadata", None)
    return config


def ids(config: dict, kind: str = "LambdaFunctionConfigurations") -> list:
    return sorted(c["Id"] for c in config.get(kind, []))


def test_install_is_idempotent_and_keeps_other_notifications(example_repo, aws_env):
    model = Model(example_repo, aws_env)
    other_notifications(aws_env, model.data)
    first = trigger_mod.install(model.ctx, model.clients)
    assert first.outcome == "created", first.summary()
    config = notifications(aws_env, model.data)
    assert ids(config) == sorted(["thumbnails", f"mltp.{model.name}.raw"])
    assert ids(config, "QueueConfigurations") == ["audit"]
    ours = [c for c in config["LambdaFunctionConfigurations"] if c["Id"].startswith("mltp.")][0]
    assert ours["Events"] == ["s3:ObjectCreated:*"]
    assert {r["Name"].lower(): r["Value"] for r in ours["Filter"]["Key"]["FilterRules"]} == {"prefix": "fraud/raw/"}

    function = model.clients.lambda_.get_function(FunctionName=f"mltp-trigger-{model.name}")["Configuration"]
    assert function["Runtime"] == "python3.12" and function["Handler"] == "trigger_handler.handler"
    assert function["Environment"]["Variables"]["MLTP_STATE_MACHINE_ARN"] == model.machine_arn
    assert function["Environment"]["Variables"]["MLTP_QUIET_SECONDS"] == "600"
    code = model.clients.lambda_.get_function(FunctionName=f"mltp-trigger-{model.name}")
    assert function["CodeSha256"] == trigger_mod.code_sha256(trigger_mod.code_zip())
    assert code["Configuration"]["Role"].endswith(f":role/mltp-trigger-{model.name}")
    rule = model.clients.events.describe_rule(Name=f"mltp-trigger-{model.name}-sweep")
    assert rule["ScheduleExpression"] == "rate(1 minute)"
    targets = model.clients.events.list_targets_by_rule(Rule=rule["Name"])["Targets"]
    assert [t["Arn"] for t in targets] == [function["FunctionArn"]]
    policy = json.loads(model.clients.lambda_.get_policy(FunctionName=function["FunctionName"])["Policy"])
    principals = sorted(json.dumps(s["Principal"]) for s in policy["Statement"])
    assert len(principals) == 2 and any("s3.amazonaws.com" in p for p in principals)

    second = trigger_mod.install(model.ctx, model.clients)
    assert second.outcome == "unchanged", second.summary()
    assert {o for _, o in second.lines} == {"unchanged"}
    assert notifications(aws_env, model.data) == config

    # Watching one more input updates only what changed.
    path = example_repo / "config.yaml"
    path.write_text(path.read_text().replace("retrain: {on_inputs: [raw],", "retrain: {on_inputs: [raw, labels],"))
    model.ctx = make_context(config_mod.load(example_repo), env={})
    third = trigger_mod.install(model.ctx, model.clients)
    assert third.outcome == "updated"
    assert dict(third.lines)[f"notification on s3://{model.data}"] == "updated"
    assert dict(third.lines)[f"function mltp-trigger-{model.name}"] == "updated"
    assert ids(notifications(aws_env, model.data)) == sorted(["thumbnails", f"mltp.{model.name}.raw", f"mltp.{model.name}.labels"])

    removed = trigger_mod.remove(model.ctx, model.clients)
    assert removed.outcome == "removed"
    after = notifications(aws_env, model.data)
    assert ids(after) == ["thumbnails"] and ids(after, "QueueConfigurations") == ["audit"]
    again = trigger_mod.remove(model.ctx, model.clients)
    assert again.outcome == "absent" and {o for _, o in again.lines} == {"absent"}


def test_the_function_zip_holds_the_handler_and_the_cache_rules_and_is_reproducible(tmp_path):
    """The handler and cache_rules.py (the step cache's one implementation),
    importing nothing beyond the standard library and boto3: imported here from
    the unpacked zip by an interpreter that sees neither mltp nor site-packages."""
    import ast
    import subprocess
    import sys

    data = trigger_mod.code_zip()
    assert data == trigger_mod.code_zip()
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        assert archive.namelist() == ["trigger_handler.py", "cache_rules.py"]
        archive.extractall(tmp_path)
    imported = set()
    for name in ("trigger_handler.py", "cache_rules.py"):
        for node in ast.walk(ast.parse((tmp_path / name).read_text())):
            if isinstance(node, ast.Import):
                imported |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom):
                imported |= {node.module.split(".")[0]} if node.module else {alias.name for alias in node.names}
    assert imported <= {"datetime", "hashlib", "json", "os", "re", "time", "urllib", "typing", "boto3", "botocore",
                        "cache_rules"}, imported
    probe = ("import sys; sys.path.insert(0, sys.argv[1]); import trigger_handler, cache_rules; "
             "assert trigger_handler.cache_rules is cache_rules; assert 'mltp' not in sys.modules")
    done = subprocess.run([sys.executable, "-I", "-S", "-c", probe, str(tmp_path)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_install_on_a_branch_is_refused_before_any_aws_call(example_repo, aws_env, monkeypatch):
    model = Model(example_repo, aws_env)
    monkeypatch.setenv("BRANCH_NAME", "feature-x")
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # nothing listens: a call would exit 5
    result = CliRunner().invoke(main, ["trigger", "install", str(example_repo)])
    assert result.exit_code == 2, result.output
    assert "default branch only" in result.output and "Traceback" not in result.output


def test_install_needs_retrain_in_the_config(example_repo, aws_env):
    result = CliRunner().invoke(main, ["trigger", "install", str(example_repo)])
    assert result.exit_code == 2 and "retrain: not set" in result.output, result.output


def test_install_needs_the_state_machine(example_repo, aws_env):
    model = Model(example_repo, aws_env)
    model.clients.sfn.delete_state_machine(stateMachineArn=model.machine_arn)
    with pytest.raises(InvalidInput, match="mltp deploy"):
        trigger_mod.install(model.ctx, model.clients)


def test_cli_install_status_remove(example_repo, aws_env):
    model = Model(example_repo, aws_env, retrain="{on_inputs: [raw], marker: _SUCCESS}")
    runner = CliRunner()
    installed = runner.invoke(main, ["trigger", "install", str(example_repo)])
    assert installed.exit_code == 0, installed.output
    assert installed.output.startswith(f"trigger install: created mltp-trigger-{model.name}")
    suffix = [c for c in notifications(aws_env, model.data)["LambdaFunctionConfigurations"]][0]["Filter"]["Key"]["FilterRules"]
    assert {r["Name"].lower(): r["Value"] for r in suffix} == {"prefix": "fraud/raw/", "suffix": "_SUCCESS"}
    status = runner.invoke(main, ["trigger", "status", str(example_repo)])
    assert status.exit_code == 0, status.output
    assert "(current)" in status.output and "no successful default-branch run recorded yet" in status.output
    model.record_good_run()
    model.handle(s3_event(model.data, ["fraud/raw/_SUCCESS"], now()))
    status = runner.invoke(main, ["trigger", "status", str(example_repo)])
    assert "last good run jenkins-fraud-main-7 (commit abc123" in status.output
    assert "step cache: not recorded for that run (an earlier mltp)" in status.output  # its input has no Cache
    assert "last retrain: retrain-" in status.output
    policy = runner.invoke(main, ["trigger", "policy", str(example_repo)])
    assert json.loads(policy.output)["Statement"][2]["Resource"] == model.machine_arn
    removed = runner.invoke(main, ["trigger", "remove", str(example_repo)])
    assert removed.exit_code == 0 and removed.output.startswith("trigger remove: removed"), removed.output
    assert "function: not installed" in runner.invoke(main, ["trigger", "status", str(example_repo)]).output


def test_install_waits_for_a_new_role_to_reach_lambda(example_repo, aws_env, monkeypatch):
    """IAM is eventually consistent: Lambda refuses a role it cannot see yet
    ("cannot be assumed"); install retries instead of failing the build."""
    model = Model(example_repo, aws_env)
    role = f"arn:aws:iam::{ACCOUNT}:role/{unique('late')}"
    naps = []

    def role_appears(seconds):  # the role becomes visible while install waits
        naps.append(seconds)
        if len(naps) == 2:
            model.clients.iam.create_role(RoleName=role.rsplit("/", 1)[1],
                                          AssumeRolePolicyDocument=json.dumps(trigger_mod.LAMBDA_TRUST))

    monkeypatch.setattr(trigger_mod, "_sleep", role_appears)
    report = trigger_mod.install(model.ctx, model.clients, role_arn=role)
    assert report.outcome in ("created", "updated") and naps == [5.0, 5.0]
    assert dict(report.lines)[f"role {role}"] == "given"
    function = model.clients.lambda_.get_function(FunctionName=f"mltp-trigger-{model.name}")["Configuration"]
    assert function["Role"] == role
    again = trigger_mod.install(model.ctx, model.clients, role_arn=role)
    assert again.outcome == "unchanged", again.summary()
    assert naps == [5.0, 5.0]  # nothing waited for the second time


def test_install_gives_up_on_a_role_that_never_appears(example_repo, aws_env, monkeypatch):
    model = Model(example_repo, aws_env)
    monkeypatch.setattr(trigger_mod, "_sleep", lambda seconds: None)
    monkeypatch.setattr(trigger_mod, "ROLE_PROPAGATION_TRIES", 3)
    result = CliRunner().invoke(main, ["trigger", "install", str(example_repo), "--role-arn",
                                       f"arn:aws:iam::{ACCOUNT}:role/never-created"])
    assert result.exit_code == 5, result.output
    assert "trigger function mltp-trigger-" in result.output and "cannot be assumed" in result.output


def test_the_lambda_entry_point_reads_its_environment(example_repo, aws_env, monkeypatch, capsys):
    """handler(event, context) as Lambda calls it: settings from the environment
    install sets, boto3's default clients (pointed at moto by AWS_ENDPOINT_URL)."""
    model = Model(example_repo, aws_env, retrain="{on_inputs: [raw], marker: _SUCCESS}")
    model.record_good_run()
    for key, value in trigger_mod.environment(model.ctx, model.machine_arn).items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    result = handler_mod.handler(s3_event(model.data, ["fraud/raw/_SUCCESS"], now()), None)
    assert result["action"] == "started"
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1]) == result
    assert [e["name"] for e in model.executions()] == [result["run"]]


@pytest.mark.parametrize("text, expected", [
    ("2026-11-26T14:00:00.123Z", "2026-11-26T14:00:00.123000+00:00"),
    ("2026-11-26T15:26:38.66+00:00", "2026-11-26T15:26:38.660000+00:00"),   # the zone's digits are not the fraction's
    ("2026-11-26T15:26:19.901234567+01:00", "2026-11-26T15:26:19.901234+01:00"),
    ("2026-11-26T14:00:00Z", "2026-11-26T14:00:00+00:00"),
])
def test_event_times_parse_on_every_python(text, expected):
    """fromisoformat before 3.11 takes exactly 3 or 6 fraction digits: the handler evens them out."""
    from mltp.trigger_handler import parse_time

    assert parse_time(text).isoformat() == expected


# --------------------------------------------------------------------------- several models on one bucket


def rename_input(old: str, new: str):
    """A config edit: the input `old` is called `new`, and retrain watches it."""
    def edit(text: str) -> str:
        return text.replace(f"      - name: {old}\n", f"      - name: {new}\n").replace(
            "retrain: {on_inputs: [raw],", f"retrain: {{on_inputs: [{new}],")
    return edit


def test_a_model_whose_name_is_a_prefix_of_another_leaves_its_notifications_alone(example_repo, aws_env):
    """`fraud` and `fraud-detection` watching one bucket: installing or removing
    one never touches the other's notification (they were matched by prefix)."""
    base = unique("m")
    longer = Model(example_repo, aws_env, name=f"{base}-detection")
    trigger_mod.install(longer.ctx, longer.clients)
    shorter = Model(example_repo, aws_env, name=base, data=longer.data, retrain="{on_inputs: [labels], quiet_minutes: 10}")
    before = ids(notifications(aws_env, longer.data))
    assert before == [f"mltp.{base}-detection.raw"]
    installed = trigger_mod.install(shorter.ctx, shorter.clients)
    assert dict(installed.lines)[f"notification on s3://{longer.data}"] == "created", installed.summary()
    assert ids(notifications(aws_env, longer.data)) == sorted([f"mltp.{base}-detection.raw", f"mltp.{base}.labels"])
    removed = trigger_mod.remove(shorter.ctx, shorter.clients)
    assert dict(removed.lines)[f"notification on s3://{longer.data}"] == "removed"
    assert ids(notifications(aws_env, longer.data)) == [f"mltp.{base}-detection.raw"]
    assert trigger_mod.install(longer.ctx, longer.clients).outcome == "unchanged"


def test_ids_of_two_models_never_collide(example_repo, aws_env):
    """`fraud` + input `detection-raw` and `fraud-detection` + input `raw` had one Id."""
    base = unique("m")
    first = Model(example_repo, aws_env, name=base, edit=rename_input("raw", "detection-raw"))
    second = Model(example_repo, aws_env, name=f"{base}-detection", data=first.data)
    assert trigger_mod.notification_id(first.ctx, "detection-raw") != trigger_mod.notification_id(second.ctx, "raw")
    trigger_mod.install(first.ctx, first.clients)
    trigger_mod.install(second.ctx, second.clients)
    config = notifications(aws_env, first.data)
    functions = {c["Id"]: c["LambdaFunctionArn"].rsplit(":", 1)[-1] for c in config["LambdaFunctionConfigurations"]}
    assert functions == {f"mltp.{base}.detection-raw": f"mltp-trigger-{base}",
                         f"mltp.{base}-detection.raw": f"mltp-trigger-{base}-detection"}
    assert trigger_mod.install(first.ctx, first.clients).outcome == "unchanged"
    trigger_mod.remove(second.ctx, second.clients)
    assert ids(notifications(aws_env, first.data)) == [f"mltp.{base}.detection-raw"]


def test_old_ids_are_migrated_exactly_and_only_on_our_function(example_repo, aws_env):
    """An entry of the old form `mltp-<name>-<input>` is ours only when its Id is
    exactly one of our inputs' and it invokes our function: another model's
    old entry with the same-looking Id stays."""
    base = unique("m")
    model = Model(example_repo, aws_env, name=base)
    trigger_mod.install(model.ctx, model.clients)
    config = notifications(aws_env, model.data)
    ours = config["LambdaFunctionConfigurations"][0]
    theirs_arn = ours["LambdaFunctionArn"].replace(f"mltp-trigger-{base}", f"mltp-trigger-{base}-detection")
    legacy = dict(ours, Id=f"mltp-{base}-raw")
    other_legacy = dict(ours, Id=f"mltp-{base}-detection-raw", LambdaFunctionArn=theirs_arn,
                        Filter={"Key": {"FilterRules": [{"Name": "prefix", "Value": "other/"}]}})
    lookalike = dict(ours, Id=f"mltp-{base}-rawish", Filter={"Key": {"FilterRules": [{"Name": "prefix", "Value": "x/"}]}})
    client("s3", aws_env).put_bucket_notification_configuration(
        Bucket=model.data, NotificationConfiguration={"LambdaFunctionConfigurations": [legacy, other_legacy, lookalike]})
    again = trigger_mod.install(model.ctx, model.clients)
    assert dict(again.lines)[f"notification on s3://{model.data}"] == "updated", again.summary()
    assert ids(notifications(aws_env, model.data)) == sorted([f"mltp.{base}.raw", f"mltp-{base}-detection-raw",
                                                              f"mltp-{base}-rawish"])
    trigger_mod.remove(model.ctx, model.clients)
    assert ids(notifications(aws_env, model.data)) == sorted([f"mltp-{base}-detection-raw", f"mltp-{base}-rawish"])


def test_a_concurrent_install_that_overwrites_ours_is_redone(example_repo, aws_env, monkeypatch):
    """S3 has no conditional write for notifications: another installer that read
    the configuration before our put writes its stale merge right after it.
    Reading back finds our entry gone, and the read-modify-write is redone
    without losing the other's entry."""
    model = Model(example_repo, aws_env)
    other_notifications(aws_env, model.data)
    s3 = model.clients.s3
    stale = notifications(aws_env, model.data)  # what the other installer read
    stale["LambdaFunctionConfigurations"].append(
        {"Id": "their-trigger", "LambdaFunctionArn": OTHER_LAMBDA, "Events": ["s3:ObjectCreated:*"],
         "Filter": {"Key": {"FilterRules": [{"Name": "prefix", "Value": "theirs/"}]}}})
    real_put = s3.put_bucket_notification_configuration
    puts = []

    def racing_put(**kwargs):
        real_put(**kwargs)
        puts.append(kwargs["NotificationConfiguration"])
        if len(puts) == 1:  # the other installer's put lands right after ours
            client("s3", aws_env).put_bucket_notification_configuration(Bucket=model.data,
                                                                        NotificationConfiguration=stale)

    monkeypatch.setattr(s3, "put_bucket_notification_configuration", racing_put)
    naps = []
    monkeypatch.setattr(trigger_mod, "_backoff", naps.append)
    report = trigger_mod.install(model.ctx, model.clients)
    assert len(puts) == 2 and naps == [0.5, 1.0], (puts, naps)
    assert dict(report.lines)[f"notification on s3://{model.data}"] == "created"
    assert ids(notifications(aws_env, model.data)) == sorted(["thumbnails", "their-trigger", f"mltp.{model.name}.raw"])


def test_a_configuration_that_keeps_changing_gives_up_with_exit_5(example_repo, aws_env, monkeypatch):
    model = Model(example_repo, aws_env)
    s3 = model.clients.s3
    real_put = s3.put_bucket_notification_configuration

    def always_overwritten(**kwargs):
        real_put(**kwargs)
        client("s3", aws_env).put_bucket_notification_configuration(Bucket=model.data, NotificationConfiguration={})

    monkeypatch.setattr(s3, "put_bucket_notification_configuration", always_overwritten)
    monkeypatch.setattr(trigger_mod, "_backoff", lambda seconds: None)
    with pytest.raises(trigger_mod.AwsRefused, match="kept changing"):
        trigger_mod.install(model.ctx, model.clients)


# --------------------------------------------------------------------------- the function's permissions


def statements(model) -> dict:
    policy = json.loads(model.clients.lambda_.get_policy(FunctionName=f"mltp-trigger-{model.name}")["Policy"])
    return {s["Sid"]: s for s in policy["Statement"]}


def test_permission_ids_are_exact_and_stale_ones_go(example_repo, aws_env):
    """Buckets `x.y` and `x-y` had one Sid: moving the input from one to the
    other kept the old permission and said unchanged. Now the Sid is the bucket
    name as it is, the new bucket gets its permission and the old one is removed."""
    uid = uuid.uuid4().hex[:8]
    dashed = make_bucket(aws_env, f"d{uid}-x")
    dotted = make_bucket(aws_env, f"d{uid}.x")
    model = Model(example_repo, aws_env, data=dashed)
    trigger_mod.install(model.ctx, model.clients)
    assert set(statements(model)) == {"mltp-schedule", f"mltp-s3-{dashed}"}
    path = example_repo / "config.yaml"
    path.write_text(path.read_text().replace(f"s3://{dashed}/fraud/", f"s3://{dotted}/fraud/"))
    model.ctx = make_context(config_mod.load(example_repo), env={})
    moved = trigger_mod.install(model.ctx, model.clients)
    lines = dict(moved.lines)
    assert lines[f"permission for s3://{dotted}"] == "created", moved.summary()
    assert lines[f"stale permission mltp-s3-{dashed}"] == "removed"
    found = statements(model)
    assert set(found) == {"mltp-schedule", f"mltp-s3-{dotted}"}
    assert json.dumps(found[f"mltp-s3-{dotted}"]["Condition"]).count(f"arn:aws:s3:::{dotted}") == 1
    assert trigger_mod.install(model.ctx, model.clients).outcome == "unchanged"


def test_a_permission_with_our_sid_but_another_source_is_replaced(example_repo, aws_env):
    model = Model(example_repo, aws_env)
    trigger_mod.install(model.ctx, model.clients)
    lam = model.clients.lambda_
    sid = f"mltp-s3-{model.data}"
    lam.remove_permission(FunctionName=f"mltp-trigger-{model.name}", StatementId=sid)
    lam.add_permission(FunctionName=f"mltp-trigger-{model.name}", StatementId=sid, Action="lambda:InvokeFunction",
                       Principal="s3.amazonaws.com", SourceArn="arn:aws:s3:::someone-elses-bucket")
    again = trigger_mod.install(model.ctx, model.clients)
    assert dict(again.lines)[f"permission for s3://{model.data}"] == "updated", again.summary()
    condition = json.dumps(statements(model)[sid]["Condition"])
    assert f"arn:aws:s3:::{model.data}" in condition and "someone-elses-bucket" not in condition
    assert trigger_mod.install(model.ctx, model.clients).outcome == "unchanged"


def test_the_handler_ignores_writes_under_the_models_own_area(example_repo, aws_env):
    """Defence in depth behind validate: a function whose watched prefix covers
    the model's own area (installed before validate refused that, or by hand)
    never counts the runs' own writes as new data."""
    model = Model(example_repo, aws_env, retrain="{on_inputs: [raw], marker: _SUCCESS}")
    model.record_good_run()
    env = trigger_mod.environment(model.ctx, model.machine_arn)
    env["MLTP_WATCH"] = json.dumps([{"input": "raw", "bucket": model.bucket, "prefix": ""}])
    settings = handler_mod.Settings(env)
    own = f"{model.ctx.config.aws.prefix}/{model.name}/runs/retrain-1/preprocessing/train/_SUCCESS"
    result = handler_mod.handle(s3_event(model.bucket, [own], now()), model.clients.s3, model.clients.sfn, settings)
    assert result["action"] == "ignored", result
    assert model.executions() == []
    outside = handler_mod.handle(s3_event(model.bucket, ["landing/_SUCCESS"], now()), model.clients.s3,
                                 model.clients.sfn, settings)
    assert outside["action"] == "started", outside


# --------------------------------------------------------------------------- the step cache


def cache_on(*steps):
    """A config edit: these steps have `cache: true`."""
    def edit(text: str) -> str:
        for step in steps:
            text = text.replace(f"  {step}:\n    script:", f"  {step}:\n    cache: true\n    script:", 1)
        return text
    return edit


ROLES = ("preprocessing", "training", "evaluation")


class CachedModel(Model):
    """A model whose steps use the cache, with data in its two inputs."""

    def __init__(self, repo: Path, endpoint: str, steps=ROLES):
        super().__init__(repo, endpoint, retrain="{on_inputs: [raw], marker: _SUCCESS}", edit=cache_on(*steps))
        self.put_data()

    def put_data(self, extra: str = "") -> None:
        """The producer's export: the same bytes every time unless `extra` adds an object."""
        self.clients.s3.put_object(Bucket=self.data, Key="fraud/raw/day=1/part-0.csv", Body=b"amount,label\n1,0\n")
        self.clients.s3.put_object(Bucket=self.data, Key="fraud/labels/labels.csv", Body=b"id,label\n1,0\n")
        if extra:
            self.clients.s3.put_object(Bucket=self.data, Key=f"fraud/raw/day=1/{extra}", Body=extra.encode())
        self.clients.s3.put_object(Bucket=self.data, Key="fraud/raw/day=1/_SUCCESS", Body=b"")

    def plan(self, when: dt.datetime = None, state_machine: str = "", unreadable: bool = False):
        """The plan `mltp start` makes now (mltp.plan, the helper's side);
        `unreadable`: the one it falls back to when the cache cannot be read."""
        from mltp import bundle, cache_index, plan, repo

        cfg = self.ctx.config
        files = bundle.make(repo.check(cfg)[0]).files
        index = cache_index.S3Index(self.clients, cfg, state_machine or self.ctx.state_machine)
        inputs = {} if unreadable else plan.s3_input_digests(self.clients, cfg)
        return plan.make(cfg, files, inputs, index, no_cache=unreadable, now=when)

    def good_run(self, run: str = "jenkins-fraud-main-7", finished: dt.datetime = None, records: bool = True) -> dict:
        """What `mltp start` and `mltp wait` leave behind after a passed
        default-branch run: its input with the plan's Cache, its outputs, a
        record per step with the cache on, and last-good.json."""
        found = self.plan()
        execution = naming.execution_input(self.ctx.config, self.ctx.state_machine, run, "c0de" * 16, register=True,
                                           git_commit="abc123", build_url="https://ci/job/7/", branch="main").to_dict()
        execution.update(found.input_overrides())
        if records:
            self.keep(execution, found, self.ctx.state_machine, finished)
        trigger_mod.record_good_run(self.ctx, self.clients, execution)
        return execution

    def keep(self, execution: dict, found, state_machine: str, finished: dt.datetime = None) -> None:
        """A step's outputs where the run wrote them, and its record (cache_index, as `mltp wait` writes it)."""
        from mltp import cache_index

        index = cache_index.S3Index(self.clients, self.ctx.config, state_machine)
        for step in found.steps:
            if not step.enabled:
                continue
            for name in cache_index.DATA_KEYS[step.role]:
                bucket, key = trigger_mod.split_s3(execution[name])
                self.clients.s3.put_object(Bucket=bucket, Key=key + ("part" if key.endswith("/") else ""), Body=b"o")
            record = cache_index.record_for(self.ctx.config, state_machine, step.role, step.key.key,
                                            step.key.parts, execution, now=finished)
            index.write(record)

    def retrain(self, when: dt.datetime = None) -> tuple:
        """The producer's marker lands: the handler starts a run; its result and input."""
        when = when or now()
        result = self.handle(s3_event(self.data, ["fraud/raw/day=1/_SUCCESS"], when), now=when)
        assert result["action"] == "started", result
        arn = next(e["executionArn"] for e in self.executions() if e["name"] == result["run"])
        return result, json.loads(self.clients.sfn.describe_execution(executionArn=arn)["input"])


def test_a_retrain_on_unchanged_data_reuses_every_step_as_mltp_start_would(example_repo, aws_env):
    """The producer exports the same bytes again (the same ETags): no step's key
    changed, so the retrain takes every step from the last good run, and its
    `Cache` is the one `mltp start` would pass at that moment."""
    model = CachedModel(example_repo, aws_env)
    good = model.good_run()
    pointer = json.loads(model.clients.s3.get_object(Bucket=model.bucket, Key=trigger_mod.pointer_key(model.ctx))["Body"].read())
    assert pointer["cache"]["inputs"] == [{"name": "raw", "source": f"s3://{model.data}/fraud/raw/"},
                                          {"name": "labels", "source": f"s3://{model.data}/fraud/labels/"}]
    assert {role: step["cache"] for role, step in pointer["cache"]["steps"].items()} == dict.fromkeys(ROLES, True)
    assert "step cache: retrains reuse unchanged steps of Preprocessing, Training, Evaluation" in \
        trigger_mod.status(model.ctx, model.clients)
    model.put_data()
    when = now()
    result, started = model.retrain(when)
    assert result["cached"] == dict.fromkeys(("Preprocessing", "Training", "Evaluation"), "jenkins-fraud-main-7")
    helper = model.plan(when)
    assert started["Cache"] == helper.cache_input()
    assert started["Cache"]["reuse"] == {"Preprocessing": "jenkins-fraud-main-7", "Training": "jenkins-fraud-main-7",
                                         "Evaluation": "jenkins-fraud-main-7"}
    assert started["Cache"]["keys"] == good["Cache"]["keys"]
    for key, value in helper.input_overrides().items():
        assert started[key] == value, key
    assert started["TrainDataS3Uri"] == good["TrainDataS3Uri"] and started["ModelArtifactS3Uri"] == good["ModelArtifactS3Uri"]
    assert started["RunName"] == result["run"] and started["CheckpointS3Uri"].endswith(f"/runs/{result['run']}/checkpoints/")


def test_a_retrain_on_new_data_reruns_every_step(example_repo, aws_env):
    model = CachedModel(example_repo, aws_env)
    good = model.good_run()
    model.put_data(extra="part-1.csv")
    when = now()
    result, started = model.retrain(when)
    assert result["cached"] == {}
    cache = started["Cache"]
    assert cache["reuse"] == {} and cache["cached"] == ["Preprocessing", "Training", "Evaluation"]
    assert cache["inputs_listed"] is True
    assert all(cache["keys"][state] != good["Cache"]["keys"][state] for state in cache["keys"])
    assert cache == model.plan(when).cache_input()
    assert started["TrainDataS3Uri"].endswith(f"/runs/{result['run']}/preprocessing/train/")


def test_a_step_without_the_cache_runs_while_an_unchanged_one_is_reused(example_repo, aws_env):
    """Preprocessing without the cache runs again; training's key (preprocessing's
    key, i.e. the same data, code and config) did not change: it is reused."""
    model = CachedModel(example_repo, aws_env, steps=("training", "evaluation"))
    good = model.good_run()
    model.put_data()
    result, started = model.retrain()
    assert started["Cache"]["reuse"] == {"Training": "jenkins-fraud-main-7", "Evaluation": "jenkins-fraud-main-7"}
    assert started["Cache"]["cached"] == ["Training", "Evaluation"]
    assert started["TrainDataS3Uri"].endswith(f"/runs/{result['run']}/preprocessing/train/")
    assert started["ModelArtifactS3Uri"] == good["ModelArtifactS3Uri"]


def test_an_expired_record_is_not_used(example_repo, aws_env):
    model = CachedModel(example_repo, aws_env)
    model.good_run(finished=now() - dt.timedelta(days=31))
    model.put_data()
    when = now()
    result, started = model.retrain(when)
    assert started["Cache"]["reuse"] == {} and result["cached"] == {}
    helper = model.plan(when)
    assert started["Cache"] == helper.cache_input()
    assert helper.steps[0].reason == "jenkins-fraud-main-7 had this key but is 31 days old, over cache_expire_days 30"


def test_a_branch_s_record_is_never_used_by_the_default_branch_s_retrain(example_repo, aws_env):
    """A branch's records sit under branches/<slug>/cache/, which the function
    never reads; one planted among the default branch's records (same key, its
    outputs in the branch's run folder) is not the default branch's: ignored."""
    model = CachedModel(example_repo, aws_env)
    branch = f"{model.name}--feature"
    model.good_run(records=False)
    found = model.plan(state_machine=branch)
    execution = naming.execution_input(model.ctx.config, branch, "jenkins-fraud-feature-3", "c0de" * 16,
                                       register=False).to_dict()
    model.keep(execution, found, branch)
    planted = f"{model.ctx.config.aws.prefix}/{model.name}/branches/feature/cache/"
    listed = model.clients.s3.list_objects_v2(Bucket=model.bucket, Prefix=planted)["Contents"]
    assert len(listed) == 3  # the branch's own records
    for item in listed:
        body = model.clients.s3.get_object(Bucket=model.bucket, Key=item["Key"])["Body"].read()
        model.clients.s3.put_object(Bucket=model.bucket, Key=item["Key"].replace("branches/feature/", ""), Body=body)
        moved = json.loads(body)
        moved["state_machine"] = model.name  # claims the default branch's, names the branch's outputs
        model.clients.s3.put_object(Bucket=model.bucket, Body=json.dumps(moved).encode(),
                                    Key=item["Key"].replace("branches/feature/", "").replace(".json", "-x.json"))
    model.put_data()
    when = now()
    result, started = model.retrain(when)
    assert started["Cache"]["reuse"] == {} and result["cached"] == {}
    assert started["Cache"] == model.plan(when).cache_input()
    assert "/branches/" not in started["TrainDataS3Uri"]


def test_a_pointer_from_before_the_cache_starts_with_an_empty_cache(example_repo, aws_env):
    """last-good.json written by an older mltp (no `cache`): the run starts as before, reusing nothing."""
    model = CachedModel(example_repo, aws_env)
    model.good_run()
    key = trigger_mod.pointer_key(model.ctx)
    pointer = json.loads(model.clients.s3.get_object(Bucket=model.bucket, Key=key)["Body"].read())
    del pointer["cache"]
    model.clients.s3.put_object(Bucket=model.bucket, Key=key, Body=json.dumps(pointer).encode())
    model.put_data()
    result, started = model.retrain()
    assert started["Cache"] == {} and "cached" not in result


def test_a_cache_that_cannot_be_read_runs_every_step(example_repo, aws_env):
    """The cache is a saving, not a must: an input the function cannot list
    (here its bucket is gone) starts the run with no step reused, and says why."""
    model = CachedModel(example_repo, aws_env)
    model.good_run()
    listed = model.clients.s3.list_objects_v2(Bucket=model.data).get("Contents", [])
    model.clients.s3.delete_objects(Bucket=model.data, Delete={"Objects": [{"Key": o["Key"]} for o in listed]})
    model.clients.s3.delete_bucket(Bucket=model.data)
    result, started = model.retrain()
    assert result["cache"] == "cannot read the step cache (NoSuchBucket); every step runs", result
    assert started["Cache"] == model.plan(unreadable=True).cache_input()
    assert started["Cache"]["reuse"] == {} and started["Cache"]["cached"] == []
    assert started["Cache"]["inputs_listed"] is False


def test_a_listing_over_the_time_budget_gives_the_cache_up(example_repo, aws_env, monkeypatch):
    """The function has 60 s: an input too large to list in the budget starts
    the run anyway, reusing nothing, instead of timing out on every sweep."""
    model = CachedModel(example_repo, aws_env)
    model.good_run()
    model.put_data()
    monkeypatch.setattr(handler_mod, "CACHE_SECONDS", -1.0)
    result, started = model.retrain()
    assert result["cache"] == "cannot read the step cache (listing took over -1 s); every step runs", result
    assert started["Cache"] == model.plan(unreadable=True).cache_input()
    assert started["Cache"]["reuse"] == {} and started["Cache"]["cached"] == []


def test_the_function_names_records_and_runs_as_mltp_does(example_repo, aws_env):
    from mltp import cache_index, cache_rules

    model = CachedModel(example_repo, aws_env)
    model.good_run()
    pointer = json.loads(model.clients.s3.get_object(Bucket=model.bucket, Key=trigger_mod.pointer_key(model.ctx))["Body"].read())
    assert handler_mod.cache_prefix(pointer) == cache_index.S3Index(model.clients, model.ctx.config, model.name).prefix
    assert handler_mod.run_prefix(pointer, "r-1") == naming.run_prefix(model.ctx.config, "r-1", model.name)
    for name in ("r", "retrain-20261126T140000-0123456789", "jenkins-x_y-7", "-r", "r-", "a/b", "a b", "x" * 80,
                 "x" * 81, "", "é", "..", "a.b"):
        assert cache_rules.is_run_name(name) == (bool(name) and naming.run_name(name) == name), name


def test_the_trigger_role_reads_the_default_branch_s_cache_and_nothing_more(example_repo, aws_env):
    """With a step's cache on: the records under cache/ (not a branch's), listing
    cache/, runs/ and the inputs; no object of a run, and no write to the cache."""
    import iam_check
    from mltp import policies

    model = CachedModel(example_repo, aws_env)
    own = f"arn:aws:s3:::{model.bucket}/{model.ctx.config.aws.prefix}/{model.name}/"
    for document in (trigger_mod.role_policy(model.ctx, model.machine_arn),
                     policies.policy(model.ctx.config, "trigger").document()):
        assert iam_check.allows(document, "s3:GetObject", f"{own}cache/training/k/r.json")
        assert not iam_check.allows(document, "s3:PutObject", f"{own}cache/training/k/r.json")
        assert not iam_check.allows(document, "s3:GetObject", f"{own}branches/feature/cache/training/k/r.json")
        assert not iam_check.allows(document, "s3:GetObject", f"{own}runs/r/model/model.tar.gz")
        assert not iam_check.allows(document, "s3:GetObject", f"arn:aws:s3:::{model.data}/fraud/raw/day=1/part-0.csv")
    plain = Model(example_repo, aws_env)  # no step with the cache: no statement for it
    assert not [s for s in trigger_mod.role_policy(plain.ctx, plain.machine_arn)["Statement"] if "StepCache" in s["Sid"]]
