"""`notify`: EventBridge rules for the model's runs and versions, an SNS topic
as their target (notifications.py).

Against moto over HTTP: deploy creates, keeps and removes exactly this model's
rules; the rules' patterns are tried with EventBridge's own TestEventPattern on
events in their documented shapes (and the local matcher must agree); the
input transformer is run by moto's EventBridge on a queue target beside the
topic and must give the text the local run writes. A local run writes what it
would have sent; preflight reads the topic's policy."""

import json
import subprocess
import sys
import uuid
from pathlib import Path

import boto3
import pytest

from mltp import config as config_mod
from mltp import deploy as deploy_mod
from mltp import notifications, policies, preflight
from mltp.aws import Clients
from mltp.context import make_context
from test_deploy import stand_in  # noqa: F401  (fixture)

REGION = "ap-northeast-2"
ACCOUNT = "123456789012"
TOPIC = f"arn:aws:sns:{REGION}:{ACCOUNT}:ml-alerts"


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


EXAMPLE_CONFIG = (Path(__file__).resolve().parents[2] / "examples" / "fraud-detection" / "config.yaml").read_text()


def configure(repo: Path, name: str, notify: str = None) -> None:
    """The example's config.yaml as shipped, with this name and `notify` section."""
    path = repo / "config.yaml"
    text = EXAMPLE_CONFIG.replace("name: fraud-detection\n", f"name: {name}\n", 1)
    if notify is not None:
        text += notify
    path.write_text(text)


def deploy(repo: Path, endpoint: str, env=None):
    ctx = make_context(config_mod.load(repo), env=env if env is not None else {})
    return deploy_mod.deploy(ctx, Clients(REGION, endpoint))


def events_client(endpoint: str):
    return boto3.client("events", region_name=REGION, endpoint_url=endpoint)


def rules_of(endpoint: str, prefix: str) -> dict:
    return {r["Name"]: r for r in events_client(endpoint).list_rules(NamePrefix=prefix)["Rules"]}


# --------------------------------------------------------------------------- config


@pytest.mark.parametrize("notify, line, message", [
    ("notify:\n  topic_arn: arn:aws:sqs:ap-northeast-2:123456789012:q\n", "notify.topic_arn",
     "must be the ARN of an SNS topic"),
    ("notify:\n  topic_arn: arn:aws:sns:us-east-1:123456789012:ml-alerts\n", "notify.topic_arn",
     "must be a topic of aws.region ap-northeast-2"),
    (f"notify:\n  topic_arn: {TOPIC}\n  events: [failed, deployed]\n", "notify.events[1]",
     'must be one of failed, registered, approved, rejected, not "deployed"'),
    (f"notify:\n  topic_arn: {TOPIC}\n  events: []\n", "notify.events", ""),
    ("notify:\n  events: [failed]\n", "notify", "topic_arn"),
])
def test_a_bad_notify_section_is_one_line_naming_file_line_and_key(example_repo, notify, line, message):
    configure(example_repo, "fraud-detection", notify)
    ran = subprocess.run([sys.executable, "-m", "mltp.cli", "validate", str(example_repo)], capture_output=True, text=True)
    assert ran.returncode == 2, ran.stdout + ran.stderr
    assert "Traceback" not in ran.stderr
    problem = [x for x in ran.stderr.splitlines() if f": {line}" in x]
    assert problem and "config.yaml:" in problem[0] and message in problem[0], ran.stderr


def test_events_default_to_all_four(example_repo):
    configure(example_repo, "fraud-detection", f"notify:\n  topic_arn: {TOPIC}\n")
    config = config_mod.load(example_repo)
    assert config.notify.events == ("failed", "registered", "approved", "rejected")
    assert [r.name for r in notifications.wanted_rules(config, REGION, ACCOUNT)] == [
        "mltp-fraud-detection-notify-failed", "mltp-fraud-detection-notify-stopped",
        "mltp-fraud-detection-notify-registered", "mltp-fraud-detection-notify-approved",
        "mltp-fraud-detection-notify-rejected"]


def test_the_longest_model_name_gives_rule_names_eventbridge_takes():
    name = "a" * 40
    assert max(len(n) for n in notifications.rule_names(name)) <= 64


# --------------------------------------------------------------------------- deploy keeps the rules


def test_deploy_creates_keeps_narrows_and_removes_only_this_model_s_rules(example_repo, aws_env, stand_in):
    name = unique("nt")
    other = name + "-x"  # a model whose rules share the listing prefix `mltp-<name>-`
    configure(example_repo, other, f"notify:\n  topic_arn: {TOPIC}\n")
    deploy(example_repo, aws_env)
    configure(example_repo, name, f"notify:\n  topic_arn: {TOPIC}\n")

    created = deploy(example_repo, aws_env)
    assert dict(created.notifications) == {n: "created" for n in notifications.rule_names(name)}
    assert "notify: created rule mltp-%s-notify-failed" % name in created.summary()
    found = rules_of(aws_env, f"mltp-{name}-notify-")
    assert set(found) == set(notifications.rule_names(name))
    targets = events_client(aws_env).list_targets_by_rule(Rule=f"mltp-{name}-notify-approved")["Targets"]
    assert [(t["Id"], t["Arn"]) for t in targets] == [("mltp-sns", TOPIC)]
    pattern = json.loads(found[f"mltp-{name}-notify-approved"]["EventPattern"])
    group = config_mod.load(example_repo).registry.model_package_group
    assert pattern["detail"] == {"ModelPackageGroupName": [group], "ModelApprovalStatus": ["Approved"]}

    again = deploy(example_repo, aws_env)
    assert set(dict(again.notifications).values()) == {"unchanged"}

    configure(example_repo, name, f"notify:\n  topic_arn: {TOPIC}\n  events: [failed]\n")
    narrowed = dict(deploy(example_repo, aws_env).notifications)
    assert narrowed == {f"mltp-{name}-notify-failed": "unchanged", f"mltp-{name}-notify-stopped": "unchanged",
                        f"mltp-{name}-notify-registered": "removed", f"mltp-{name}-notify-approved": "removed",
                        f"mltp-{name}-notify-rejected": "removed"}

    configure(example_repo, name, f"notify:\n  topic_arn: {TOPIC[:-1]}X\n  events: [failed]\n")
    moved = dict(deploy(example_repo, aws_env).notifications)
    assert moved[f"mltp-{name}-notify-failed"] == "updated"
    assert events_client(aws_env).list_targets_by_rule(Rule=f"mltp-{name}-notify-failed")["Targets"][0]["Arn"] == TOPIC[:-1] + "X"

    configure(example_repo, name)  # notify removed: the rules go
    removed = deploy(example_repo, aws_env)
    assert set(dict(removed.notifications).values()) == {"removed"}
    assert not set(notifications.rule_names(name)) & set(rules_of(aws_env, f"mltp-{name}-notify-"))
    assert set(rules_of(aws_env, f"mltp-{other}-notify-")) == set(notifications.rule_names(other))  # untouched


def test_a_branch_build_never_touches_the_rules(example_repo, aws_env, stand_in):
    name = unique("nt")
    configure(example_repo, name, f"notify:\n  topic_arn: {TOPIC}\n")
    deploy(example_repo, aws_env)
    configure(example_repo, name, f"notify:\n  topic_arn: arn:aws:sns:{REGION}:{ACCOUNT}:attacker\n")
    branch = deploy(example_repo, aws_env, env={"BRANCH_NAME": "feature-x"})
    assert branch.notifications == ()
    targets = events_client(aws_env).list_targets_by_rule(Rule=f"mltp-{name}-notify-failed")["Targets"]
    assert targets[0]["Arn"] == TOPIC


def test_the_jenkins_policy_covers_the_rules_and_the_topic_when_notify_is_set(example_repo):
    """The rules are granted without `notify` too: a deploy after `notify` was
    removed takes them down. The topic only with it."""
    configure(example_repo, "fraud-detection")
    plain = json.dumps(policies.policy(config_mod.load(example_repo), "jenkins").document())
    assert "events:DeleteRule" in plain and "sns:" not in plain
    configure(example_repo, "fraud-detection", f"notify:\n  topic_arn: {TOPIC}\n")
    document = policies.policy(config_mod.load(example_repo), "jenkins").document()
    rules = next(s for s in document["Statement"] if s.get("Sid") == "NotifyRules")
    assert sorted(rules["Resource"]) == sorted(f"arn:aws:events:{REGION}:{ACCOUNT}:rule/{n}"
                                               for n in notifications.rule_names("fraud-detection"))
    topic = next(s for s in document["Statement"] if s.get("Sid") == "NotifyTopic")
    assert topic["Resource"] in (TOPIC, [TOPIC]) and topic["Action"] in ("sns:GetTopicAttributes", ["sns:GetTopicAttributes"])


# --------------------------------------------------------------------------- the rules against documented events


def execution(status, machine="fraud-detection", error=None, cause=None):
    arn = f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:{machine}"
    return notifications.execution_event(REGION, ACCOUNT, arn, "retrain-20261203-abc", status, error, cause,
                                         1764750000000, 1764753600000)


def package(status, group="fraud-detection", version=7):
    return notifications.package_event(REGION, ACCOUNT, group, version,
                                       f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:model-package/{group}/{version}",
                                       status, 1764753600000)


# (event, the rules of model fraud-detection that must match it)
CASES = [
    (execution("FAILED", error="MetricGateFailed", cause="auc = 0.85, needs >= 0.9"), {"failed"}),
    (execution("FAILED", machine="fraud-detection--feature-x", error="States.TaskFailed", cause="x"), {"failed"}),
    (execution("TIMED_OUT"), {"stopped"}),
    (execution("ABORTED", machine="fraud-detection--pr-12"), {"stopped"}),
    (execution("SUCCEEDED"), set()),
    (execution("FAILED", machine="fraud-detection-v2", error="e", cause="c"), set()),  # another model
    (execution("FAILED", machine="fraud", error="e", cause="c"), set()),
    (package("PendingManualApproval"), {"registered"}),
    (package("Approved"), {"approved"}),
    (package("Rejected"), {"rejected"}),
    (package("Approved", group="fraud-detection-v2"), set()),
]


def test_each_rule_matches_exactly_its_events_in_eventbridge_and_locally(aws_env):
    """Each rule on moto's EventBridge with a queue as its target; every case is
    put as an event; what reached each queue is what the rule matched. The local
    matcher must agree case by case."""
    name = unique("nt")
    rules = notifications.rules("fraud-detection", "fraud-detection", REGION, ACCOUNT)
    client = events_client(aws_env)
    sqs = boto3.client("sqs", region_name=REGION, endpoint_url=aws_env)
    bus = client.create_event_bus(Name=name)["EventBusArn"]  # its own bus: no other test's rules see these
    queues = {}
    for rule in rules:
        url = sqs.create_queue(QueueName=f"{name}-{rule.name.rsplit('-', 1)[-1]}")["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        client.put_rule(Name=rule.name, EventBusName=name, EventPattern=json.dumps(rule.pattern), State="ENABLED")
        client.put_targets(Rule=rule.name, EventBusName=name, Targets=[{"Id": "q", "Arn": arn}])
        queues[rule.name] = url
    for index, (event, _) in enumerate(CASES):
        detail = dict(event["detail"], case=index)
        client.put_events(Entries=[{"Source": event["source"], "DetailType": event["detail-type"], "EventBusName": bus,
                                    "Detail": json.dumps(detail), "Resources": event["resources"]}])
    for rule in rules:
        received = set()
        while True:
            messages = sqs.receive_message(QueueUrl=queues[rule.name], MaxNumberOfMessages=10).get("Messages", [])
            if not messages:
                break
            received |= {json.loads(m["Body"])["detail"]["case"] for m in messages}
        short = rule.name.rsplit("-", 1)[-1]
        assert received == {i for i, (_, expected) in enumerate(CASES) if short in expected}, rule.name
        for index, (event, _) in enumerate(CASES):
            assert notifications.matches(rule.pattern, event) == (index in received), (rule.name, event["detail"])


def test_eventbridge_fills_the_message_as_the_local_run_does(aws_env):
    """moto's EventBridge runs the rule's input transformer for a queue target
    (it delivers to no topic); the text must equal what `render` makes. The
    rules sit on an event bus of their own: other tests' scheduled rules on the
    shared server's default bus are not this test's (moto cannot send an event
    through a schedule rule)."""
    name = unique("nt")
    sqs = boto3.client("sqs", region_name=REGION, endpoint_url=aws_env)
    client = events_client(aws_env)
    bus = client.create_event_bus(Name=name)["EventBusArn"].rsplit("/", 1)[-1]
    for index, (rule, event) in enumerate((
            (notifications.rules(name, name, REGION, ACCOUNT)[0],
             execution("FAILED", machine=name, error="MetricGateFailed", cause="auc = 0.85, needs >= 0.9")),
            (notifications.rules(name, name, REGION, ACCOUNT)[1], execution("ABORTED", machine=name + "--pr-3")),
            (notifications.rules(name, name, REGION, ACCOUNT)[2], package("PendingManualApproval", group=name)))):
        queue = sqs.create_queue(QueueName=f"{name}-{index}")["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        client.put_rule(Name=rule.name, EventPattern=json.dumps(rule.pattern), State="ENABLED", EventBusName=bus)
        target = rule.target(TOPIC)
        target.update(Id="queue", Arn=queue_arn)
        client.put_targets(Rule=rule.name, Targets=[target], EventBusName=bus)
        client.put_events(Entries=[{"Source": event["source"], "DetailType": event["detail-type"], "EventBusName": bus,
                                    "Detail": json.dumps(event["detail"]), "Resources": event["resources"]}])
        body = sqs.receive_message(QueueUrl=queue, WaitTimeSeconds=1)["Messages"][0]["Body"]
        sent = json.loads(body) if body.startswith('"') else body
        assert sent == notifications.render(rule, event)
        assert "<" not in sent.replace("<=", "").replace(">=", "")  # every placeholder filled
    assert "run retrain-20261203-abc FAILED: MetricGateFailed: auc = 0.85, needs >= 0.9" in notifications.render(
        notifications.rules(name, name, REGION, ACCOUNT)[0], execution("FAILED", machine=name, error="MetricGateFailed",
                                                                    cause="auc = 0.85, needs >= 0.9"))


# --------------------------------------------------------------------------- preflight reads the topic


def test_topic_policy_check():
    allowed = {"Statement": [{"Effect": "Allow", "Principal": {"Service": "events.amazonaws.com"},
                              "Action": "sns:Publish", "Resource": TOPIC}]}
    assert notifications.topic_problem(json.dumps(allowed), TOPIC) is None
    owner_only = {"Statement": [{"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": ["SNS:Publish"],
                                 "Resource": TOPIC, "Condition": {"StringEquals": {"AWS:SourceOwner": ACCOUNT}}}]}
    assert "does not let EventBridge" in notifications.topic_problem(json.dumps(owner_only), TOPIC)
    other_topic = {"Statement": [dict(allowed["Statement"][0], Resource=TOPIC + "-other")]}
    assert notifications.topic_problem(json.dumps(other_topic), TOPIC)


def test_preflight_says_what_to_add_to_the_topic_policy(example_repo, aws_env):
    sns = boto3.client("sns", region_name=REGION, endpoint_url=aws_env)
    topic = sns.create_topic(Name=unique("alerts"))["TopicArn"]
    configure(example_repo, "fraud-detection", f"notify:\n  topic_arn: {topic}\n")
    config = config_mod.load(example_repo)
    checker = preflight.Preflight(config, Clients(REGION, aws_env))
    checker._notify_topic()
    assert checker.checks[-1].status == preflight.FAILED
    assert '"Principal": {"Service": "events.amazonaws.com"}' in checker.checks[-1].text
    sns.set_topic_attributes(TopicArn=topic, AttributeName="Policy",
                             AttributeValue=json.dumps({"Version": "2012-10-17",
                                                        "Statement": [notifications.topic_statement(topic)]}))
    checker._notify_topic()
    assert checker.checks[-1].status == preflight.OK
    configure(example_repo, "fraud-detection", f"notify:\n  topic_arn: {topic}-gone\n")
    missing = preflight.Preflight(config_mod.load(example_repo), Clients(REGION, aws_env))
    missing._notify_topic()
    assert missing.checks[-1].status == preflight.FAILED and "not found" in missing.checks[-1].text


# --------------------------------------------------------------------------- a local run says what it would send


def test_a_local_run_writes_what_it_would_have_sent(tmp_path, monkeypatch):
    import shutil

    repo = tmp_path / "tiny"
    shutil.copytree(Path(__file__).resolve().parents[1] / "fixtures" / "tiny", repo)
    text = (repo / "config.yaml").read_text()
    region = next(line.split(":", 1)[1].strip() for line in text.splitlines() if line.strip().startswith("region:"))
    topic = f"arn:aws:sns:{region}:{ACCOUNT}:ml-alerts"
    (repo / "config.yaml").write_text(text + f"notify:\n  topic_arn: {topic}\n  events: [failed, registered]\n")
    env = {k: v for k, v in __import__("os").environ.items() if not k.startswith(("AWS_", "MLTP_", "BUILD_", "BRANCH_", "GIT_"))}
    ran = subprocess.run([sys.executable, "-m", "mltp.cli", "run", ".", "--local", "--run-name", "n1"], cwd=repo,
                         env=env, capture_output=True, text=True, timeout=600)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    sent = json.loads((repo / ".mltp" / "runs" / "n1" / "notifications.json").read_text())
    assert [n["event"] for n in sent] == ["registered"]
    assert sent[0]["topic_arn"] == topic and "version 1 of" in sent[0]["message"]
    assert f"notify (registered): would send to {topic}: " in ran.stdout


def test_a_local_gate_miss_would_send_the_gate_line(tmp_path, example_repo):
    configure(example_repo, "fraud-detection", f"notify:\n  topic_arn: {TOPIC}\n")
    config = config_mod.load(example_repo)
    report = {"status": "gate_failed", "run": "r7", "state_machine": "fraud-detection",
              "execution_arn": f"arn:aws:states:{REGION}:{ACCOUNT}:execution:fraud-detection:r7",
              "message": "metric gate failed: auc = 0.85, needs >= 0.9",
              "started": "2026-12-03T08:00:00+00:00", "ended": "2026-12-03T08:10:00+00:00", "model_package": None}
    (tmp_path / "report.json").write_text(json.dumps(report))
    sent = notifications.local_notifications(config, tmp_path, REGION, ACCOUNT)
    assert [n["rule"] for n in sent] == ["mltp-fraud-detection-notify-failed"]
    assert sent[0]["message"].startswith("mltp fraud-detection: run r7 FAILED: MetricGateFailed: metric gate failed: "
                                         "auc = 0.85, needs >= 0.9. State machine arn:aws:states:")
    assert json.loads((tmp_path / "notifications.json").read_text()) == sent
    report.update(status="stopped", message="stopped")
    (tmp_path / "report.json").write_text(json.dumps(report))
    stopped = notifications.local_notifications(config, tmp_path, REGION, ACCOUNT)
    assert [n["rule"] for n in stopped] == ["mltp-fraud-detection-notify-stopped"] and "ended ABORTED" in stopped[0]["message"]
