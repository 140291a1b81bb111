"""The metric gate: one rule set, evaluated in Python and as the state machine's Choice.

The Python evaluation and the ASL condition must agree on every case: the ASL side
is checked here with a small interpreter of the Choice operators it uses (And,
IsPresent, IsNumeric, NumericGreaterThanEquals, NumericLessThanEquals), evaluated
left to right with short-circuit as Step Functions does; test_definition.py runs the
real definition on moto's interpreter for a few of the same cases."""

import json
import re

import pytest

import asl
from mltp import gate
from mltp.config import GateRule
from mltp.errors import RunFailed

METRICS_PATH = "$.evaluation.report.metrics"

AUC = GateRule("auc", min=0.9)
FPR = GateRule("false_positive_rate", max=0.05)
BAND = GateRule("calibration", min=0.1, max=0.9)
DASHED = GateRule("f1-score", min=0.5)

# (id, rules, metrics, expected pass per rule)
CASES = [
    ("pass", [AUC], {"auc": 0.95}, [True]),
    ("fail below min", [AUC], {"auc": 0.85}, [False]),
    ("min is inclusive", [AUC], {"auc": 0.9}, [True]),
    ("max is inclusive", [FPR], {"false_positive_rate": 0.05}, [True]),
    ("fail above max", [FPR], {"false_positive_rate": 0.0500001}, [False]),
    ("missing metric", [AUC, FPR], {"auc": 0.95}, [True, False]),
    ("no metrics at all", [AUC], {}, [False]),
    ("string value", [AUC], {"auc": "0.95"}, [False]),
    ("boolean value", [AUC], {"auc": True}, [False]),
    ("null value", [AUC], {"auc": None}, [False]),
    ("object value", [AUC], {"auc": {"value": 0.95}}, [False]),
    ("integer value", [GateRule("count", min=10)], {"count": 10}, [True]),
    ("several rules, all hold", [AUC, FPR, DASHED], {"auc": 0.91, "false_positive_rate": 0.01, "f1-score": 0.7}, [True, True, True]),
    ("several rules, one misses", [AUC, FPR, DASHED], {"auc": 0.91, "false_positive_rate": 0.2, "f1-score": 0.7}, [True, False, True]),
    ("band inside", [BAND], {"calibration": 0.5}, [True]),
    ("band at both bounds", [BAND, GateRule("other", min=0.1, max=0.1)], {"calibration": 0.1, "other": 0.1}, [True, True]),
    ("band below", [BAND], {"calibration": 0.05}, [False]),
    ("band above", [BAND], {"calibration": 0.95}, [False]),
    ("negative bound", [GateRule("delta", min=-1, max=0)], {"delta": -0.5}, [True]),
    ("extra metrics ignored", [AUC], {"auc": 0.95, "loss": "n/a"}, [True]),
    # JSON parsers read 1e999 as Infinity: a number to IsNumeric, and >= any min.
    ("1e999 (Infinity) above a min", [AUC], {"auc": float("inf")}, [False]),
    ("-1e999 (-Infinity) below a max", [FPR], {"false_positive_rate": float("-inf")}, [False]),
    ("NaN in a band", [BAND], {"calibration": float("nan")}, [False]),
    ("Infinity in one rule of several", [AUC, FPR], {"auc": 0.95, "false_positive_rate": float("-inf")}, [True, False]),
]


@pytest.mark.parametrize("rules,metrics,expected", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_evaluate(rules, metrics, expected):
    results = gate.evaluate(rules, metrics)
    assert [r.passed for r in results] == expected
    assert [r.metric for r in results] == [r.metric for r in rules]
    for result, rule in zip(results, rules):
        assert result.rule == rule.describe()
        value = metrics.get(rule.metric)
        if gate.is_number(value):
            assert result.value == value
        else:
            assert result.value is None
        assert result.reason and result.metric in result.describe()
    assert gate.passed(results) == all(expected)


@pytest.mark.parametrize("rules,metrics,expected", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_choice_rule_agrees_with_evaluate(rules, metrics, expected):
    state_data = {"evaluation": {"report": {"metrics": {k: {"value": v} for k, v in metrics.items()}}}}
    condition = gate.choice_rule(rules, METRICS_PATH)
    assert holds(condition, state_data) == all(expected)
    # Each rule alone, too: the per-rule verdicts match, not just the conjunction.
    for rule, verdict in zip(rules, expected):
        assert holds(gate.choice_rule([rule], METRICS_PATH), state_data) == verdict


@pytest.mark.parametrize("value, shown", [(float("inf"), "Infinity"), (float("-inf"), "-Infinity"),
                                          (float("nan"), "NaN")])
def test_a_non_finite_value_fails_every_kind_of_rule_with_one_message(value, shown):
    """1e999 in evaluation.json: the same words whatever the rule, champion rules
    with no champion to beat included, and the rendered Choice agrees."""
    assert json.loads('{"v": 1e999}')["v"] == float("inf")  # what every JSON parser here makes of it
    champion = GateRule("auc", beat_champion=True, better="higher")
    for rule, bar in ((AUC, None), (FPR, None), (champion, None), (champion, {"Version": 3, "Metrics": {"auc": 0.9}})):
        (result,) = gate.evaluate([rule], {rule.metric: value}, bar)
        assert not result.passed and result.reason == f"{shown} is not a finite number", (rule, result)
        state = {"evaluation": {"report": {"metrics": {rule.metric: {"value": value}}}},
                 "Champion": {"Bars": gate.champion_bars([rule], bar)}}
        assert holds(gate.choice_rule([rule], METRICS_PATH), state) is False, rule
    # With no champion, a champion rule still holds for a finite value or none at all.
    assert gate.evaluate([champion], {"auc": 0.5}, None)[0].passed
    assert holds(gate.choice_rule([champion], METRICS_PATH),
                 {"evaluation": {"report": {"metrics": {}}}, "Champion": {"Bars": {}}}) is True


def test_reasons_say_what_is_wrong():
    missing, text, low, ok = gate.evaluate([AUC, FPR, BAND, GateRule("x", max=1)],
                                           {"false_positive_rate": "high", "calibration": 0.05, "x": 1})
    assert missing.reason == "missing from evaluation.json, which has: calibration, false_positive_rate, x"
    assert text.reason == '"high" is not a number'
    assert low.reason == "0.05 < min 0.1"
    assert ok.reason == "1 <= 1" and ok.passed
    assert missing.describe().startswith("auc >= 0.9: FAILED (missing from evaluation.json, which has: ")


def test_a_missing_metric_lists_what_evaluation_json_has_closest_first():
    (result,) = gate.evaluate([GateRule("auc", min=0.9)], {"accuracy": 0.9, "roc_auc": 0.95, "f1": 0.7, "AUC_val": 0.9})
    assert result.reason == "missing from evaluation.json, which has: AUC_val, roc_auc, accuracy, f1"
    (empty,) = gate.evaluate([GateRule("auc", min=0.9)], {})
    assert empty.reason == "missing from evaluation.json, which has no metric"


def test_choice_rule_shape():
    condition = gate.choice_rule([AUC, BAND, DASHED], METRICS_PATH)
    assert list(condition) == ["And"] and len(condition["And"]) == 3
    auc, band, dashed = (c["And"] for c in condition["And"])
    path = "$.evaluation.report.metrics.auc.value"
    assert auc == [
        {"Variable": path, "IsPresent": True},
        {"Variable": path, "IsNumeric": True},
        {"Variable": path, "NumericGreaterThanEquals": -1.7976931348623157e308},  # finite: 1e999 reads as Infinity
        {"Variable": path, "NumericLessThanEquals": 1.7976931348623157e308},
        {"Variable": path, "NumericGreaterThanEquals": 0.9},
    ]
    assert [next(k for k in c if k != "Variable") for c in band] == [
        "IsPresent", "IsNumeric", "NumericGreaterThanEquals", "NumericLessThanEquals",
        "NumericGreaterThanEquals", "NumericLessThanEquals"]
    # A name with '-' is not a plain JSONPath member name: bracket notation.
    assert dashed[0]["Variable"] == "$.evaluation.report.metrics['f1-score'].value"
    json.dumps(condition)  # plain JSON, no SDK objects


def test_choice_rule_needs_rules_with_bounds():
    with pytest.raises(ValueError):
        gate.choice_rule([], METRICS_PATH)
    with pytest.raises(ValueError):
        gate.choice_rule([GateRule("auc")], METRICS_PATH)


def test_describe_rules():
    assert gate.describe_rules([AUC, FPR, BAND]) == "auc >= 0.9, false_positive_rate <= 0.05, calibration >= 0.1 and <= 0.9"


# --------------------------------------------------------------------------- evaluation.json


def test_parse_evaluation_reads_the_model_quality_convention():
    text = json.dumps({
        "metrics": {
            "auc": {"value": 0.941, "standard_deviation": 0.01},
            "false_positive_rate": {"value": 0},
            # SageMaker's binary classification report has entries without a value.
            "confusion_matrix": {"0": {"0": 10, "1": 2}, "1": {"0": 1, "1": 7}},
        },
        "other": "ignored",
    })
    assert gate.parse_evaluation(text) == {"auc": 0.941, "false_positive_rate": 0.0}


@pytest.mark.parametrize("text,message", [
    ("", "not valid JSON"),
    ("{'metrics': {}}", "not valid JSON"),
    ('{"metrics": {"auc": {"value": NaN}}}', "NaN is not valid JSON"),
    ('{"metrics": {"auc": {"value": Infinity}}}', "Infinity is not valid JSON"),
    ("[1, 2]", "must be a JSON object"),
    ('{"auc": {"value": 0.9}}', 'has none of "metrics", "regression_metrics"'),
    ('{"metrics": [0.9]}', '"metrics" must be an object'),
    ('{"metrics": {"auc": 0.94}}', "metrics.auc must be an object"),
])
def test_parse_evaluation_rejects_malformed_files(text, message):
    with pytest.raises(gate.EvaluationError) as caught:
        gate.parse_evaluation(text, source="s3://b/evaluation.json")
    assert message in "\n".join(caught.value.lines())
    assert caught.value.message.startswith("s3://b/evaluation.json: ")
    assert isinstance(caught.value, RunFailed) and caught.value.exit_code == 4


@pytest.mark.parametrize("value", ['"0.9"', "true", "null", "[0.9]", '{"v": 1}'])
def test_parse_evaluation_rejects_values_that_are_not_numbers(value):
    text = '{"metrics": {"auc": {"value": %s}, "loss": {"value": "high"}}}' % value
    with pytest.raises(gate.EvaluationError) as caught:
        gate.parse_evaluation(text)
    lines = caught.value.lines()
    assert lines[0] == "evaluation.json: 2 malformed metrics"
    assert f"metrics.auc.value must be a number, not {json.dumps(json.loads(value))}" in lines
    assert 'metrics.loss.value must be a number, not "high"' in lines


# --------------------------------------------------------------------------- a tiny Choice interpreter


_SEGMENT = re.compile(r"\.([A-Za-z_][A-Za-z0-9_]*)|\['([^']+)'\]")
_MISSING = object()


def lookup(path, data):
    assert path.startswith("$"), path
    rest, value = path[1:], data
    while rest:
        match = _SEGMENT.match(rest)
        assert match, f"unsupported path {path}"
        name = match.group(1) or match.group(2)
        if not isinstance(value, dict) or name not in value:
            return _MISSING
        value, rest = value[name], rest[match.end():]
    return value


def holds(rule, data):
    """Step Functions Choice semantics for the operators the gate uses: And evaluates
    its operands in order and stops at the first false one; a comparison on a
    missing variable is a runtime error (so the gate must never reach one)."""
    if "And" in rule:
        return all(holds(r, data) for r in rule["And"])  # all() short-circuits like SFN
    if "Or" in rule:
        return any(holds(r, data) for r in rule["Or"])
    if "Not" in rule:
        return not holds(rule["Not"], data)
    value = lookup(rule["Variable"], data)
    if "IsPresent" in rule:
        return (value is not _MISSING) == rule["IsPresent"]
    if value is _MISSING:
        raise AssertionError(f"States.Runtime: {rule['Variable']} is not present")
    # IsNumeric is true for any JSON number, Infinity (from 1e999) and NaN too.
    numeric = isinstance(value, (int, float)) and not isinstance(value, bool)
    if "IsNumeric" in rule:
        return numeric == rule["IsNumeric"]
    if not numeric:
        raise AssertionError(f"States.Runtime: {rule['Variable']} is not a number")
    if "NumericGreaterThanEquals" in rule:
        return value >= rule["NumericGreaterThanEquals"]
    if "NumericLessThanEquals" in rule:
        return value <= rule["NumericLessThanEquals"]
    for op, compare in (("NumericGreaterThanEqualsPath", float.__ge__), ("NumericLessThanEqualsPath", float.__le__)):
        if op in rule:
            return compare(float(value), float(lookup(rule[op], data)))
    raise AssertionError(f"operator not modelled: {rule}")


# --------------------------------------------------------------------------- a real ASL interpreter


@asl.needs_many_executions
def test_a_real_interpreter_agrees_on_every_case(monkeypatch):
    """The generated Choice, run by moto's Step Functions interpreter (its
    execute_state_machine setting), decides every case of the table exactly as
    gate.evaluate does: the whole rule set and each rule alone."""
    import time

    import boto3
    from moto import mock_aws

    from mltp.local import emulator

    # as `mltp run --local` does: old jsonpath-ng cannot parse `….false_positive_rate.value`
    emulator.fix_jsonpath_keyword_prefixes()
    for key in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_CONFIG_FILE"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}):
        sfn = boto3.client("stepfunctions", region_name="eu-west-1")
        started = []
        for index, (case_id, rules, metrics, expected) in enumerate(CASES):
            checks = [(rules, all(expected))] + [([rule], verdict) for rule, verdict in zip(rules, expected)]
            for sub, (subset, verdict) in enumerate(checks):
                assert gate.passed(gate.evaluate(subset, metrics)) == verdict
                definition = {
                    "StartAt": "Gate",
                    "States": {
                        "Gate": {"Type": "Choice", "Choices": [dict(gate.choice_rule(subset, METRICS_PATH), Next="Passed")],
                                 "Default": "Missed"},
                        "Passed": {"Type": "Succeed"},
                        "Missed": {"Type": "Fail", "Error": "MetricGateFailed", "Cause": "gate"},
                    },
                }
                arn = sfn.create_state_machine(name=f"gate-{index}-{sub}", definition=json.dumps(definition),
                                               roleArn="arn:aws:iam::123456789012:role/StepFunctions")["stateMachineArn"]
                data = {"evaluation": {"report": {"metrics": {k: {"value": v} for k, v in metrics.items()}}}}
                execution = sfn.start_execution(stateMachineArn=arn, name="run", input=json.dumps(data))["executionArn"]
                started.append((case_id, subset, verdict, execution))
        deadline = time.monotonic() + 60
        for case_id, subset, verdict, execution in started:
            while True:
                described = sfn.describe_execution(executionArn=execution)
                if described["status"] != "RUNNING" or time.monotonic() > deadline:
                    break
                time.sleep(0.02)
            expected_status = "SUCCEEDED" if verdict else "FAILED"
            assert described["status"] == expected_status, (case_id, [r.metric for r in subset], described)
            if not verdict:
                assert described.get("error") == "MetricGateFailed", (case_id, described)


# --------------------------------------------------------------------------- where the values are (issue 10, item 6)

MSE = GateRule("mse", max=5)
R2 = GateRule("r2", min=0.5)
MSE_AT = GateRule("mse", max=5, path="regression_metrics.mse.value")
DEPTH = GateRule("error", max=0.1, path="custom.eval-set.error")

# (id, rules, evaluation.json, expected pass per rule)
FORMATS = [
    ("mltp's metrics", [AUC], {"metrics": {"auc": {"value": 0.95}}}, [True]),
    ("regression_metrics", [MSE, R2], {"regression_metrics": {"mse": {"value": 4.3, "standard_deviation": 0.1},
                                                              "r2": {"value": 0.4}}}, [True, False]),
    ("binary_classification_metrics, with entries without a value",
     [AUC, GateRule("recall", min=0.5)],
     {"binary_classification_metrics": {"confusion_matrix": {"0": {"0": 1, "1": 2}, "1": {"0": 0, "1": 1}},
                                        "auc": {"value": 0.93, "standard_deviation": "NaN"},
                                        "recall": {"value": 1.0}}}, [True, True]),
    ("multiclass_classification_metrics", [GateRule("accuracy", min=0.8)],
     {"multiclass_classification_metrics": {"accuracy": {"value": 0.79}}}, [False]),
    ("metrics wins over a model-quality section", [AUC],
     {"metrics": {"auc": {"value": 0.5}}, "binary_classification_metrics": {"auc": {"value": 0.99}}}, [False]),
    ("a section fills what metrics lacks", [AUC, MSE],
     {"metrics": {"auc": {"value": 0.95}}, "regression_metrics": {"mse": {"value": 1}}}, [True, True]),
    ("regression wins over binary", [AUC],
     {"regression_metrics": {"auc": {"value": 0.95}}, "binary_classification_metrics": {"auc": {"value": 0.1}}}, [True]),
    ("an entry is taken whole: no value in the winner", [AUC],
     {"metrics": {"auc": {"standard_deviation": 0.1}}, "binary_classification_metrics": {"auc": {"value": 0.99}}}, [False]),
    ("missing everywhere", [AUC], {"regression_metrics": {"mse": {"value": 1}}}, [False]),
    ("no section at all", [AUC], {"auc": {"value": 0.95}}, [False]),
    ("not a number in a section", [MSE], {"regression_metrics": {"mse": {"value": "4.3"}}}, [False]),
    ("null value", [MSE], {"regression_metrics": {"mse": {"value": None}}}, [False]),
    ("an entry that is not an object", [MSE], {"regression_metrics": {"mse": 4.3}}, [False]),
    ("per-rule path", [MSE_AT], {"regression_metrics": {"mse": {"value": 4.3}}}, [True]),
    ("per-rule path wins over metrics", [MSE_AT],
     {"metrics": {"mse": {"value": 1}}, "regression_metrics": {"mse": {"value": 9}}}, [False]),
    ("per-rule path, missing", [MSE_AT], {"metrics": {"mse": {"value": 1}}}, [False]),
    ("per-rule path into a number", [MSE_AT], {"regression_metrics": {"mse": 4.3}}, [False]),
    ("per-rule path anywhere, names with '-'", [DEPTH, AUC],
     {"custom": {"eval-set": {"error": 0.05}}, "metrics": {"auc": {"value": 0.95}}}, [True, True]),
    ("per-rule path to a string", [DEPTH], {"custom": {"eval-set": {"error": "low"}}}, [False]),
    ("champion rule reads the path", [MSE_AT, GateRule("mse", beat_champion=True, better="lower",
                                                       path="regression_metrics.mse.value")],
     {"regression_metrics": {"mse": {"value": 4.3}}}, [True, True]),
]


@pytest.mark.parametrize("rules,report,expected", [c[1:] for c in FORMATS], ids=[c[0] for c in FORMATS])
def test_values_are_read_where_sagemaker_puts_them(rules, report, expected):
    values = gate.report_values(report, rules)
    assert gate.metric_values(json.dumps(report), rules=rules) == values
    assert [r.passed for r in gate.evaluate(rules, values, {"Reason": "first version"})] == expected


def test_the_reasons_name_what_is_missing():
    (result,) = gate.evaluate([MSE_AT], gate.report_values({"metrics": {"mse": {"value": 1}}}, [MSE_AT]))
    assert result.reason == "missing from evaluation.json (path regression_metrics.mse.value)"
    (result,) = gate.evaluate([AUC], gate.report_values({"regression_metrics": {"mse": {"value": 1},
                                                                                "r2": {"value": 1}}}))
    assert result.reason == "missing from evaluation.json, which has: mse, r2"
    (result,) = gate.evaluate([MSE], gate.report_values({"regression_metrics": {"mse": {"value": "4.3"}}}))
    assert result.reason == '"4.3" is not a number'


def test_the_guard_knows_the_sections_of_the_gate():
    from mltp import evaluation_guard

    assert evaluation_guard.SECTIONS == gate.SECTIONS


@asl.needs_many_executions
def test_the_state_machine_reads_the_values_as_the_local_check_does(monkeypatch):
    """The rendered MetricSections, GateMetrics and Gate states, on moto's
    interpreter, from the state data ReadEvaluation leaves, decide every FORMATS
    case as gate.evaluate does, and the value Register records for each metric
    (CustomerMetadataProperties metric:<m>) is the one the local check read."""
    import time

    import boto3
    from moto import mock_aws

    from mltp.local import emulator

    emulator.fix_jsonpath_keyword_prefixes()
    for key in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_CONFIG_FILE"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}):
        sfn = boto3.client("stepfunctions", region_name="eu-west-1")
        started = []
        for index, (case_id, rules, report, expected) in enumerate(FORMATS):
            metrics = []
            for rule in rules:
                if rule.metric not in metrics:
                    metrics.append(rule.metric)
            states = gate.merge_states()
            states["MetricSections"]["Next"] = "GateMetrics"
            states["GateMetrics"]["Next"] = "Gate"
            states.update({
                "Gate": {"Type": "Choice", "Choices": [dict(gate.choice_rule(rules), Next="Record")], "Default": "Missed"},
                "Record": {"Type": "Pass", "End": True, "Parameters": {
                    f"{m}.$": f"States.Format('{{}}', {gate.value_path(m, rules)})" for m in metrics}},
                "Missed": {"Type": "Fail", "Error": "MetricGateFailed", "Cause": "gate"},
            })
            definition = {"StartAt": "MetricSections", "States": states}
            arn = sfn.create_state_machine(name=f"formats-{index}", definition=json.dumps(definition),
                                           roleArn="arn:aws:iam::123456789012:role/StepFunctions")["stateMachineArn"]
            # What ReadEvaluation's ResultSelector leaves ($.evaluation), and no champion bars.
            data = {"evaluation": {"report": report, "sections": gate.SECTION_DEFAULTS, "ETag": '"e"'},
                    "Champion": {"Bars": {}}}
            execution = sfn.start_execution(stateMachineArn=arn, name="run", input=json.dumps(data))["executionArn"]
            started.append((case_id, rules, report, all(expected), execution))
        deadline = time.monotonic() + 60
        for case_id, rules, report, verdict, execution in started:
            while True:
                described = sfn.describe_execution(executionArn=execution)
                if described["status"] != "RUNNING" or time.monotonic() > deadline:
                    break
                time.sleep(0.02)
            assert described["status"] == ("SUCCEEDED" if verdict else "FAILED"), (case_id, described)
            if verdict:
                values = gate.report_values(report, rules)
                assert json.loads(described["output"]) == {m: str(values[m]) for m in json.loads(described["output"])}
            else:
                assert described.get("error") == "MetricGateFailed", (case_id, described)


@pytest.mark.parametrize("body, said", [
    (b'{"metrics": {"auc": {"value": 0.9}}, "x": "\xff"}', "is not UTF-8 text (byte 43 is 0xff)"),
    (b'{"metrics": ' + b"[" * 60_000 + b"]" * 60_000 + b"}", "is not valid JSON (nested too deeply to read)"),  # under 128 KiB
])
def test_the_guard_and_wait_refuse_unreadable_evaluation_json_in_one_line(body, said, tmp_path, capsys):
    """Not UTF-8, or nested deeper than a JSON parser goes: the evaluation job's
    guard refuses it in one line (before: a traceback), and wait's reader raises
    EvaluationError (exit 4), never a RecursionError or UnicodeDecodeError."""
    import io

    from mltp import evaluation_guard

    (tmp_path / "evaluation.json").write_bytes(body)
    with pytest.raises(SystemExit) as exited:
        evaluation_guard.check_evaluation(str(tmp_path), "evaluation.py")
    assert exited.value.code == 1
    assert capsys.readouterr().err.startswith(f"mltp: evaluation.json written by evaluation.py {said}")
    with pytest.raises(gate.EvaluationError) as caught:
        gate.metric_values(gate.read_evaluation(io.BytesIO(body), "s3://b/e.json"), "s3://b/e.json")
    assert said.split(" (")[0].replace("is not valid JSON", "not valid JSON") in caught.value.message
    assert caught.value.exit_code == 4


def test_wait_reads_at_most_the_limit_of_an_evaluation_json():
    import io

    big = io.BytesIO(b'{"metrics": {}, "pad": "' + b"x" * (2 * 1024 * 1024) + b'"}')
    with pytest.raises(gate.EvaluationError, match="over the limit of 1024 KiB"):
        gate.read_evaluation(big, "s3://b/e.json")
    assert big.tell() == 1024 * 1024 + 1
