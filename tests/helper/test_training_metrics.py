"""steps.training.metric_definitions and gate rules with `source: training`
(issue 19.6): the config's checks, the log reading the local run does, the gate
on training metrics, and the emulator answering an indefinite path as AWS does.
The rendering is checked in test_definition.py (the "training metrics" variant,
against botocore's CreateTrainingJob shape), a whole local run in
test_local.py, and both sides' outcome in test_parity.py."""

import datetime
import types
from pathlib import Path

import pytest

from mltp import config as config_mod
from mltp import gate, training_metrics
from mltp.config import GateRule, MetricDefinition
from mltp.errors import InvalidInput

ROOT = Path(__file__).resolve().parents[2]
BASE = (ROOT / "tests" / "fixtures" / "base" / "config.yaml").read_text()


def load(tmp_path, steps: str, gate_rules: str = ""):
    text = BASE + gate_rules + "steps:\n  training:\n" + steps
    (tmp_path / "config.yaml").write_text(text)
    return config_mod.load(tmp_path)


def problems(tmp_path, steps: str, gate_rules: str = ""):
    with pytest.raises(InvalidInput) as caught:
        load(tmp_path, steps, gate_rules)
    return [line.replace(f"{tmp_path}/", "") for line in caught.value.details]


# --------------------------------------------------------------------------- config


def test_definitions_and_training_rules_load_typed(tmp_path):
    cfg = load(tmp_path, "    metric_definitions:\n"
                         "      - {name: train_loss, regex: 'train_loss=([0-9.]+)'}\n"
                         "      - {name: 'validation:auc', regex: 'auc: (\\S+)'}\n",
               "  - {metric: train_loss, source: training, max: 0.3}\n"
               "  - {metric: train_loss, source: training, beat_champion: true}\n")
    assert cfg.steps.training.metric_definitions == (
        MetricDefinition("train_loss", "train_loss=([0-9.]+)"), MetricDefinition("validation:auc", "auc: (\\S+)"))
    assert [(r.metric, r.source) for r in cfg.gate] == [
        ("auc", "evaluation"), ("train_loss", "training"), ("train_loss", "training")]
    assert cfg.gate[2].better == "lower"  # its threshold rule has max only


def test_without_definitions_nothing_changes(tmp_path):
    cfg = load(tmp_path, "    script: train.py\n")
    assert cfg.steps.training.metric_definitions == () and cfg.gate[0].source == "evaluation"


def test_each_regex_must_compile_and_have_a_group(tmp_path):
    found = problems(tmp_path, "    metric_definitions:\n"
                               "      - {name: a, regex: 'loss=[0-9.]+'}\n"
                               "      - {name: b, regex: 'loss=([0-9.]+'}\n"
                               "      - {name: a, regex: 'x=(1)'}\n")
    assert found == [
        "config.yaml:14: steps.training.metric_definitions[0].regex: has no capture group: the metric's value is "
        "the regex's first group, e.g. 'loss=([0-9.eE+-]+)'",
        "config.yaml:15: steps.training.metric_definitions[1].regex: does not compile as a regular expression "
        "(missing ), unterminated subpattern at position 5)",
        "config.yaml:16: steps.training.metric_definitions[2].name: metric 'a' is defined twice "
        "(metric_definitions[0] has it)"]


def test_sagemaker_s_limits(tmp_path):
    """botocore's CreateTrainingJob shape: MetricName 1-255, MetricRegex 1-500, both `.+`
    (one line), at most 40 definitions."""
    import botocore.session

    shapes = botocore.session.get_session().get_service_model("sagemaker")
    assert shapes.shape_for("MetricName").metadata == {"min": 1, "max": 255, "pattern": ".+"}
    assert shapes.shape_for("MetricRegex").metadata == {"min": 1, "max": 500, "pattern": ".+"}
    assert shapes.shape_for("MetricDefinitionList").metadata["max"] == 40

    many = "".join(f"      - {{name: m{i}, regex: 'm{i}=(.+)'}}\n" for i in range(41))
    (only,) = problems(tmp_path, "    metric_definitions:\n" + many)
    assert only.startswith("config.yaml:13: steps.training.metric_definitions: takes at most 40 items"), only
    found = problems(tmp_path, "    metric_definitions:\n"
                               f"      - {{name: {'n' * 256}, regex: 'x=(1)'}}\n"
                               f"      - {{name: ok, regex: '{'(1)' + 'x' * 498}'}}\n"
                               "      - {name: two, regex: \"a=(1)\\nb\"}\n"
                               "      - {name: '', regex: 'a=(1)'}\n")
    text = "\n".join(found)
    assert "metric_definitions[0].name: must be at most 255 characters long" in text
    assert "metric_definitions[1].regex: must be at most 500 characters long" in text
    assert "metric_definitions[2].regex: " in text and "must be a one-line regular expression" in text
    assert 'metric_definitions[3].name: "" must be one line of text' in text


def test_a_training_rule_names_a_definition_and_one_source_per_metric(tmp_path):
    found = problems(tmp_path, "    metric_definitions:\n      - {name: train_loss, regex: 'loss=([0-9.]+)'}\n",
                     "  - {metric: nope, source: training, max: 1}\n"
                     "  - {metric: train_loss, source: training, max: 1, path: a.b}\n"
                     "  - {metric: auc, source: training, beat_champion: true}\n")
    assert found == [
        "config.yaml:11: gate[1].metric: 'nope' is not a metric of steps.training.metric_definitions (which defines: "
        "train_loss); a rule with source: training reads one of those",
        "config.yaml:12: gate[2].path: path reads evaluation.json: a rule with source: training has none",
        "config.yaml:13: gate[3].metric: 'auc' is not a metric of steps.training.metric_definitions (which defines: "
        "train_loss); a rule with source: training reads one of those",
        "config.yaml:13: gate[3].source: metric 'auc' reads source evaluation in gate[0]: the rules of one metric "
        "read one value (give both the same source)"]
    assert "'auc' is not a metric of steps.training.metric_definitions (which is empty)" in "\n".join(
        problems(tmp_path, "    script: train.py\n", "  - {metric: auc, source: training, beat_champion: true}\n"))


def test_validate_says_it_on_one_line_with_exit_2(tmp_path):
    from click.testing import CliRunner

    from mltp.cli import main

    (tmp_path / "config.yaml").write_text(BASE + "steps:\n  training:\n    metric_definitions:\n"
                                                 "      - {name: loss, regex: 'loss=[0-9]+'}\n")
    for script in ("preprocessing.py", "train.py", "evaluation.py"):
        (tmp_path / script).write_text("print('ok')\n")
    result = CliRunner().invoke(main, ["validate", str(tmp_path)])
    assert result.exit_code == 2, result.output
    assert "config.yaml:14: steps.training.metric_definitions[0].regex: has no capture group" in result.output
    assert "Traceback" not in result.output


# --------------------------------------------------------------------------- the log


DEFINITIONS = [{"Name": "loss", "Regex": r"loss=([-0-9.eE+]+)"}, {"Name": "validation:auc", "Regex": r"auc: (\S+)"},
               {"Name": "never", "Regex": r"never=(\d+)"}]


def test_the_last_value_of_each_metric_counts():
    log = ["epoch=0 loss=0.9", "epoch=1 loss=0.5 auc: 0.71", "noise loss=", "auc: high (not a number: ignored)",
           "epoch=2 loss=1e-3", "loss=nan (not finite: ignored)", "auc: 0.8"]
    assert training_metrics.last_values(DEFINITIONS, log) == {"loss": 0.001, "validation:auc": 0.8}
    assert training_metrics.last_values([], log) == {}
    # A definition validation would refuse is left out rather than failing the job.
    assert training_metrics.last_values([{"Name": "x", "Regex": "loss=[0-9]"}], log) == {}


def test_metric_data_list_round_trip():
    when = datetime.datetime(2026, 1, 2, 3, 4, 5)
    items = training_metrics.metric_data_list({"validation:auc": 0.8, "loss": 0.1}, ["loss", "validation:auc", "never"], when)
    assert items == [{"MetricName": "loss", "Value": 0.1, "Timestamp": when},
                     {"MetricName": "validation:auc", "Value": 0.8, "Timestamp": when}]
    assert training_metrics.from_metric_data(items + [{"MetricName": "odd", "Value": "x"}, "junk"]) == {
        "loss": 0.1, "validation:auc": 0.8}
    assert training_metrics.from_metric_data(None) == {}


def test_the_runner_records_the_job_s_metrics_as_sagemaker_does(tmp_path):
    """The local job's log read with the request's MetricDefinitions: the emulated
    job's FinalMetricDataList, which DescribeTrainingJob (the Gate, the report) reads."""
    from mltp.local.runner import LocalJobRunner

    runner = LocalJobRunner(clients=None, workdir=tmp_path, sandboxed=False)
    (tmp_path / "job-train-1.log").write_text("loss=0.4\nauc: 0.7\nloss=0.2\n")
    job = types.SimpleNamespace(final_metric_data_list=[{"MetricName": "train:progress", "Value": 100.0}],
                                creation_time=datetime.datetime(2026, 1, 1))
    runner._record_metrics("job-train-1", {"AlgorithmSpecification": {"MetricDefinitions": DEFINITIONS}}, job)
    assert [(m["MetricName"], m["Value"]) for m in job.final_metric_data_list] == [("loss", 0.2), ("validation:auc", 0.7)]
    runner._record_metrics("job-train-1", {"AlgorithmSpecification": {}}, job)
    assert job.final_metric_data_list == []  # no definitions: no made-up metric either


# --------------------------------------------------------------------------- the gate


RULES = (GateRule("auc", min=0.9), GateRule("loss", max=0.3, source="training"),
         GateRule("loss", beat_champion=True, better="lower", source="training"))


def test_training_rules_read_the_training_metrics():
    results = gate.evaluate(RULES, {"auc": 0.95, "loss": 0.0}, {"Version": 1, "Metrics": {"loss": 0.25}},
                            training={"loss": 0.2})
    assert [(r.passed, r.value) for r in results] == [(True, 0.95), (True, 0.2), (True, 0.2)]
    missed = gate.evaluate(RULES, {"auc": 0.95}, training={"loss": 0.31})
    assert missed[1].reason == "0.31 > max 0.3"
    missing = gate.evaluate(RULES, {"auc": 0.95, "loss": 0.1}, training={"validation:auc": 0.7})
    assert missing[1].reason == "missing from the training job's metrics, which has: validation:auc"
    assert not missing[1].passed
    assert gate.evaluate(RULES[:2], {"auc": 0.95})[1].reason == "missing from the training job's metrics, which has no metric"


def test_the_state_machine_reads_a_training_metric_where_the_result_selector_put_it():
    assert gate.value_path("loss", RULES) == "$.jobs.training.metrics.loss[0]"
    assert gate.value_path("auc", RULES) == "$.gate.values.auc.value"
    assert training_metrics.result_selector(RULES) == {
        "loss.$": "$..FinalMetricDataList[?(@.MetricName == 'loss')].Value"}
    state = {"jobs": {"training": {"metrics": {"loss": [0.2]}}}}
    assert training_metrics.state_values(state, RULES) == {"loss": 0.2}
    assert training_metrics.state_values({"jobs": {"training": {"metrics": {"loss": []}}}}, RULES) == {}
    # evaluation.json's own 'loss' is not what a training rule reads.
    assert gate.report_values({"metrics": {"loss": {"value": 0.0}, "auc": {"value": 0.9}}}, RULES) == {"auc": 0.9}


def test_the_emulator_answers_an_indefinite_path_that_matches_nothing_with_an_empty_list():
    """As Step Functions (Jayway JsonPath) does; moto raises. A definite path still raises."""
    from mltp.local import emulator
    from moto.stepfunctions.parser.asl.component.common.string import string_expression
    from moto.stepfunctions.parser.asl.utils import json_path

    emulator.fix_indefinite_path_misses()
    extract = string_expression.extract_json
    described = {"TrainingJobArn": "arn", "FinalMetricDataList": [{"MetricName": "loss", "Value": 0.2}]}
    assert extract(training_metrics.selector_path("loss"), described) == [0.2]
    assert extract(training_metrics.selector_path("acc"), described) == []
    assert extract(training_metrics.selector_path("loss"), {"TrainingJobArn": "arn"}) == []
    with pytest.raises(json_path.NoSuchJsonPathError):
        extract("$.jobs.training.metrics.loss[0]", {"jobs": {"training": {"metrics": {"loss": []}}}})
    assert emulator.fix_indefinite_path_misses() in (True, False)  # idempotent
    assert extract(training_metrics.selector_path("acc"), described) == []
