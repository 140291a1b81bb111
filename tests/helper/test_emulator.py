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
