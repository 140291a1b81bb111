"""Champion rules (`beat_champion: true, by: X`): config, the Python verdict, the
state machine's verdict on moto's ASL interpreter, and the comparison table."""

import json
import time

import pytest

from mltp import gate
from mltp.config import GateRule
from mltp.errors import InvalidInput
from mltp.local import emulator
from test_config import load_text

BEAT = GateRule("auc", beat_champion=True, by=0.005)
LOWER = GateRule("false_positive_rate", beat_champion=True, by=0.001, better="lower")
CHAMPION = {"Version": 3, "Arn": "arn:aws:sagemaker:r:1:model-package/m/3",
            "Metrics": {"auc": 0.94, "false_positive_rate": 0.01}}
CHAMPION["Bars"] = gate.champion_bars([BEAT, LOWER], CHAMPION)
NONE = {"Reason": "no Approved version in model package group m"}

CASES = [
    ("beats by the margin", [BEAT], {"auc": 0.945}, CHAMPION, [True]),
    ("better, but not by the margin", [BEAT], {"auc": 0.944}, CHAMPION, [False]),
    ("worse", [BEAT], {"auc": 0.93}, CHAMPION, [False]),
    ("no champion passes", [BEAT], {"auc": 0.5}, NONE, [True]),
    ("champion without the metric passes", [BEAT], {"auc": 0.5},
     {"Version": 1, "Metrics": {}, "Bars": {}}, [True]),
    ("missing metric fails even so", [BEAT], {}, CHAMPION, [False]),
    ("lower is better", [LOWER], {"false_positive_rate": 0.009}, CHAMPION, [True]),
    ("lower, not by the margin", [LOWER], {"false_positive_rate": 0.0095}, CHAMPION, [False]),
    ("with a threshold rule", [GateRule("auc", min=0.9), BEAT], {"auc": 0.95}, CHAMPION, [True, True]),
]


@pytest.mark.parametrize("rules,metrics,champion,expected", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_python_verdict(rules, metrics, champion, expected):
    assert [r.passed for r in gate.evaluate(rules, metrics, champion)] == expected


def test_reasons_name_the_bar_and_the_champion():
    (missed,) = gate.evaluate([BEAT], {"auc": 0.944}, CHAMPION)
    assert missed.reason == "0.944 < 0.945 (champion v3: 0.94)"
    (free,) = gate.evaluate([BEAT], {"auc": 0.5}, NONE)
    assert free.reason == "no champion to beat: no Approved version in model package group m"
    assert BEAT.describe() == ">= champion + 0.005" and LOWER.describe() == "<= champion - 0.001"


def test_bar_has_no_float_noise():
    rule = GateRule("auc", beat_champion=True, by=0.01)
    assert gate.champion_bar(rule, {"Metrics": {"auc": 0.93}}) == 0.94
    assert gate.evaluate([rule], {"auc": 0.94}, {"Version": 1, "Metrics": {"auc": 0.93}})[0].passed


def _run_gate(rules, metrics, champion) -> str:
    """Pass(evaluation) -> Choice(the gate) on moto's interpreter, with the
    champion in the execution input as `mltp start` puts it; the state it ends in."""
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
    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}):
        sfn = boto3.client("stepfunctions", region_name="us-east-1")
        machine = sfn.create_state_machine(name="gate", definition=json.dumps(definition),
                                           roleArn="arn:aws:iam::123456789012:role/sfn")["stateMachineArn"]
        body = {"body": json.dumps(report), "Champion": champion}
        arn = sfn.start_execution(stateMachineArn=machine, input=json.dumps(body))["executionArn"]
        deadline = time.monotonic() + 30
        while sfn.describe_execution(executionArn=arn)["status"] == "RUNNING" and time.monotonic() < deadline:
            time.sleep(0.05)
        events = sfn.get_execution_history(executionArn=arn)["events"]
        return [e["stateEnteredEventDetails"]["name"] for e in events if "stateEnteredEventDetails" in e][-1]


@pytest.mark.parametrize("rules,metrics,champion,expected", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_the_state_machine_decides_as_python_does(rules, metrics, champion, expected, monkeypatch):
    for key in ("AWS_ENDPOINT_URL", "AWS_PROFILE", "AWS_CONFIG_FILE"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    emulator.fix_jsonpath_keyword_prefixes()
    assert _run_gate(rules, metrics, champion) == ("Passed" if all(expected) else "MetricGateFailed")


def test_a_run_started_without_champion_passes_champion_rules(monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    assert _run_gate([BEAT], {"auc": 0.1}, None) == "Passed"


def test_compare_rows():
    rows = gate.compare([GateRule("auc", min=0.9), GateRule("false_positive_rate", max=0.05), BEAT],
                        {"auc": 0.95, "false_positive_rate": 0.02}, CHAMPION)
    assert [(r["metric"], r["verdict"], r["better"]) for r in rows] == [
        ("auc", "better", "higher"), ("false_positive_rate", "worse", "lower")]
    assert rows[0]["delta"] == pytest.approx(0.01)
    assert gate.compare([BEAT], {"auc": 0.9}, NONE) == []


BASE = """version: 1
name: ok-name
aws: {region: eu-west-1, bucket: b-bucket, sagemaker_role_arn: "arn:aws:iam::123456789012:role/a", states_role_arn: "arn:aws:iam::123456789012:role/b"}
gate:
"""


def test_config_reads_champion_rules_and_infers_direction(tmp_path):
    cfg = load_text(tmp_path, BASE + "  - {metric: auc, min: 0.9}\n  - {metric: auc, beat_champion: true, by: 0.005}\n"
                    "  - {metric: fpr, max: 0.05}\n  - {metric: fpr, beat_champion: true}\n"
                    "  - {metric: loss, beat_champion: true, better: lower}\n")
    champion_rules = [r for r in cfg.gate if r.beat_champion]
    assert [(r.metric, r.by, r.better) for r in champion_rules] == [("auc", 0.005, "higher"), ("fpr", 0.0, "lower"),
                                                                    ("loss", 0.0, "lower")]


@pytest.mark.parametrize("rules,message", [
    ("  - {metric: auc, min: 0.9, beat_champion: true}\n", "config.yaml:5: gate[0].beat_champion: a champion rule takes no min or max"),
    ("  - {metric: auc, min: 0.9, by: 0.1}\n", "config.yaml:5: gate[0].by: by applies to champion rules only"),
    ("  - {metric: auc, beat_champion: true}\n  - {metric: auc, beat_champion: true, by: 1}\n",
     "config.yaml:6: gate[1].metric: metric 'auc' already has a champion rule (gate[0])"),
    ("  - {metric: auc, beat_champion: true, by: -1}\n", "config.yaml:5: gate[0].by: "),
    ("  - {metric: auc, beat_champion: true, better: up}\n", "config.yaml:5: gate[0].better: "),
])
def test_bad_champion_rules_name_file_line_and_key(tmp_path, rules, message):
    with pytest.raises(InvalidInput) as info:
        load_text(tmp_path, BASE + rules)
    assert "/" + message in info.value.details[0], info.value.details
