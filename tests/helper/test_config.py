"""config.yaml loading: defaults, typed objects, the shipped schema, and limits."""

import json
import shutil
import tracemalloc
from pathlib import Path

import jsonschema
import pytest
import yaml

from mltp import config as config_mod
from mltp.config_schema import SCHEMA, json_schema
from mltp.errors import InvalidInput

ROOT = Path(__file__).resolve().parents[2]
BASE = ROOT / "tests" / "fixtures" / "base"
EXAMPLE = ROOT / "examples" / "fraud-detection"


def load_text(tmp_path, text):
    (tmp_path / "config.yaml").write_text(text)
    return config_mod.load(tmp_path)


def test_shipped_schema_equals_the_definition():
    shipped = json.loads((ROOT / "resources" / "mltp" / "config.schema.json").read_text())
    assert shipped == json_schema(), "run `make schema` to refresh resources/mltp/config.schema.json"


@pytest.mark.parametrize("repo", [BASE, EXAMPLE])
def test_valid_configs_pass_the_shipped_schema(repo):
    shipped = json.loads((ROOT / "resources" / "mltp" / "config.schema.json").read_text())
    jsonschema.Draft202012Validator.check_schema(shipped)
    jsonschema.validate(yaml.safe_load((repo / "config.yaml").read_text()), shipped)


def test_defaults_match_the_contract():
    cfg = config_mod.load(BASE)
    assert cfg.aws.prefix == "mltp"
    assert cfg.aws.kms_key_id is None and cfg.aws.tags == {}
    pre, train, ev = cfg.steps.all()
    assert (pre.script, train.script, ev.script) == ("preprocessing.py", "train.py", "evaluation.py")
    assert (pre.instance_type, train.instance_type, ev.instance_type) == ("ml.m5.xlarge", "ml.m5.xlarge", "ml.m5.large")
    assert (pre.max_runtime_minutes, train.max_runtime_minutes, ev.max_runtime_minutes) == (60, 120, 30)
    assert all(s.framework == "sklearn" and s.framework_version == "1.2-1" for s in cfg.steps.all())
    assert all(s.instance_count == 1 and s.volume_size_gb == 30 for s in cfg.steps.all())
    assert pre.inputs == () and pre.arguments == () and train.hyperparameters == {}
    assert cfg.registry.model_package_group == cfg.name
    assert cfg.registry.approval_status == "PendingManualApproval"
    assert cfg.registry.inference.instance_types == ("ml.m5.large",)
    assert cfg.registry.inference.content_types == ("text/csv",)
    assert cfg.schedule is None
    assert cfg.retrain is None and cfg.logs.retention_days == 30


def test_framework_version_default_follows_framework(tmp_path):
    text = (BASE / "config.yaml").read_text() + "steps:\n  training:\n    framework: xgboost\n"
    cfg = load_text(tmp_path, text)
    assert cfg.steps.training.framework_version == "1.7-1"


def test_example_config_is_typed():
    cfg = config_mod.load(EXAMPLE)
    assert cfg.name == "fraud-detection"
    assert cfg.gate[0].metric == "auc" and cfg.gate[0].min == 0.9
    assert cfg.line_of("gate") is not None
    assert all(isinstance(v, (str, int, float, bool)) for v in cfg.steps.training.hyperparameters.values())


def test_environment_and_tags_become_strings(tmp_path):
    text = (BASE / "config.yaml").read_text().replace(
        "  states_role_arn", "  tags: {team: fds, cost-center: 1234, on: true}\n  states_role_arn"
    ) + "steps:\n  training:\n    environment: {THREADS: 4, DEBUG: false}\n"
    cfg = load_text(tmp_path, text)
    assert cfg.aws.tags == {"team": "fds", "cost-center": "1234", "on": "true"}
    assert cfg.steps.training.environment == {"THREADS": "4", "DEBUG": "false"}


def test_branch_sagemaker_role_is_optional_and_of_the_same_account(tmp_path):
    assert config_mod.load(BASE).aws.branch_sagemaker_role_arn is None
    base = (BASE / "config.yaml").read_text()
    good = base.replace("  states_role_arn",
                        "  branch_sagemaker_role_arn: arn:aws:iam::123456789012:role/SageMakerBranches\n  states_role_arn")
    assert load_text(tmp_path, good).aws.branch_sagemaker_role_arn == "arn:aws:iam::123456789012:role/SageMakerBranches"
    for value, says in (("arn:aws:iam::210987654321:role/Other", "must be a role of the same account as aws.sagemaker_role_arn"),
                        ("SageMakerBranches", "must be an IAM role ARN")):
        text = base.replace("  states_role_arn", f"  branch_sagemaker_role_arn: {value}\n  states_role_arn")
        with pytest.raises(InvalidInput) as info:
            load_text(tmp_path, text)
        (detail,) = info.value.details
        assert "config.yaml:7: aws.branch_sagemaker_role_arn: " in detail and says in detail, detail


def test_alias_bomb_is_refused_without_expanding(tmp_path):
    bomb = "a: &a [x, x, x, x, x, x, x, x, x]\n"
    for prev, name in zip("abcdefgh", "bcdefghi"):
        bomb += f"{name}: &{name} [" + ", ".join([f"*{prev}"] * 9) + "]\n"
    # Refused before expanding: expansion would hold 9**9 references (gigabytes), so
    # the memory the refusal took says whether it expanded, whatever the machine's load.
    tracemalloc.start()
    try:
        with pytest.raises(InvalidInput) as info:
            load_text(tmp_path, bomb)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 64 * 2**20, peak
    assert "expands to more than" in info.value.details[0]


def test_oversized_file_is_refused(tmp_path):
    with pytest.raises(InvalidInput) as info:
        load_text(tmp_path, "description: " + "x" * 300_000 + "\n")
    assert "larger than 256 KiB" in " ".join(info.value.lines())


def test_huge_config_is_refused_before_it_is_read(tmp_path):
    """A 1 GB config.yaml (sparse: no disk used) is refused from its size alone."""

    repo = tmp_path / "repo"
    shutil.copytree(BASE, repo)
    with open(repo / "config.yaml", "r+b") as handle:
        handle.truncate(1024 ** 3)
    tracemalloc.start()
    try:
        with pytest.raises(InvalidInput) as info:
            config_mod.load(repo)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert \
        info.value.message.endswith("file is larger than 256 KiB; a config.yaml is a page of settings")
    assert peak < 5 * 1024 * 1024


def test_merge_keys_are_supported(tmp_path):
    text = (BASE / "config.yaml").read_text() + (
        "x-defaults: &d {instance_type: ml.m5.2xlarge}\n"
    )
    with pytest.raises(InvalidInput) as info:
        load_text(tmp_path, text)
    assert "unknown key 'x-defaults'" in info.value.details[0]
    text = (BASE / "config.yaml").read_text() + (
        "steps:\n  training: &t\n    instance_type: ml.m5.2xlarge\n  evaluation:\n    <<: *t\n    instance_count: 1\n"
    )
    cfg = load_text(tmp_path, text)
    assert cfg.steps.evaluation.instance_type == "ml.m5.2xlarge"


def test_all_errors_are_reported_with_lines(tmp_path):
    text = "version: 1\nname: ok-name\naws: {}\ngate:\n  - metric: auc\n    min: high\n"
    with pytest.raises(InvalidInput) as info:
        load_text(tmp_path, text)
    lines = info.value.details
    assert any(l.endswith("aws: missing required key 'bucket'") and ":3:" in l for l in lines)
    assert any(":6: gate[0].min: must be a number" in l for l in lines)
    assert len(lines) == 5  # region, bucket, two roles, min


def test_schema_has_no_unknown_top_level_keys():
    assert set(SCHEMA["properties"]) == {"version", "name", "description", "aws", "steps", "gate", "registry", "schedule",
                                         "retrain", "logs", "notify"}


@pytest.mark.parametrize("spec,ok", [("H 3 * * 1", True), ("@daily", True), ("H(0-29)/10 * * * *", True),
                                     ("0 3 * *", False), ("every day", False), ("61-x * * * *", False)])
def test_cron_specs(spec, ok):
    assert (config_mod.cron_problem(spec) is None) == ok


def test_instance_type_lists_come_from_botocore_and_are_cached(tmp_path, monkeypatch):
    import botocore.session

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    config_mod._instance_type_lists.cache_clear()
    try:
        lists = config_mod._instance_type_lists()
        model = botocore.session.get_session().get_service_model("sagemaker")
        for shape in config_mod._INSTANCE_SHAPES:
            assert lists[shape] == list(model.shape_for(shape).enum) and lists[shape]
        (cached,) = (tmp_path / "mltp").glob("sagemaker-instance-types-*.json")
        assert json.loads(cached.read_text()) == lists
        config_mod._instance_type_lists.cache_clear()
        cached.write_text(json.dumps({"TrainingInstanceType": ["ml.m5.xlarge"]}))
        assert config_mod._instance_types("TrainingInstanceType") == ["ml.m5.xlarge"]  # read, not recomputed
    finally:
        config_mod._instance_type_lists.cache_clear()


# --------------------------------------------------------------------------- retrain and logs (issue 12)

INPUTS = ("steps:\n  preprocessing:\n    inputs:\n      - name: raw\n        source: s3://data-bucket/fraud/raw/\n"
          "      - name: labels\n        source: s3://data-bucket/fraud/labels/\n")


def test_retrain_with_a_quiet_period_or_a_marker(tmp_path):
    base = (BASE / "config.yaml").read_text() + INPUTS
    quiet = load_text(tmp_path, base + "retrain: {on_inputs: [raw, labels], quiet_minutes: 5}\nlogs: {retention_days: 90}\n")
    assert [i.name for i in quiet.retrain.on_inputs] == ["raw", "labels"]
    assert quiet.retrain.on_inputs[0].source == "s3://data-bucket/fraud/raw/"
    assert (quiet.retrain.quiet_minutes, quiet.retrain.marker) == (5, None)
    assert quiet.logs.retention_days == 90
    marker = load_text(tmp_path, base + "retrain:\n  on_inputs: [raw]\n  marker: _SUCCESS\n")
    assert (marker.retrain.quiet_minutes, marker.retrain.marker) == (None, "_SUCCESS")
    default = load_text(tmp_path, base + "retrain: {on_inputs: [raw]}\n")
    assert default.retrain.quiet_minutes == 10


@pytest.mark.parametrize("tail,line,message", [
    ("retrain:\n  on_inputs: [raw, rwa]\n", "retrain.on_inputs[1]",
     "'rwa' is not an input of steps.preprocessing.inputs; it must be one of raw, labels (did you mean 'raw'?)"),
    ("retrain:\n  on_inputs: [raw]\n  quiet_minutes: 5\n  marker: _SUCCESS\n", "retrain.marker",
     "set quiet_minutes or marker, not both"),
    ("retrain:\n  on_inputs: []\n", "retrain.on_inputs", "needs at least 1 item(s)"),
    ("retrain:\n  quiet_minutes: 5\n", "retrain", "missing required key 'on_inputs'"),
    ("retrain:\n  on_inputs: [raw]\n  quiet_minutes: 0\n", "retrain.quiet_minutes", "must be at least 1"),
    ("retrain:\n  on_inputs: [raw]\n  marker: done/_SUCCESS\n", "retrain.marker", "must be an object name without '/'"),
    ("retrain:\n  on_inputs: [raw]\n  quiet_minute: 5\n", "retrain.quiet_minute", "unknown key 'quiet_minute' (did you mean 'quiet_minutes'?)"),
    ("logs:\n  retention_days: 31\n", "logs.retention_days", "must be one of 1, 3, 5, 7, 14, 30"),
    ("logs:\n  retension_days: 30\n", "logs.retension_days", "unknown key 'retension_days' (did you mean 'retention_days'?)"),
])
def test_retrain_and_logs_problems_name_line_and_key(tmp_path, tail, line, message):
    base = (BASE / "config.yaml").read_text() + INPUTS
    with pytest.raises(InvalidInput) as info:
        load_text(tmp_path, base + tail)
    details = info.value.details
    assert len(details) == 1, details
    first_tail_line = len((base).splitlines()) + 1
    where, key, text = details[0].split(": ", 2)
    assert key == line and message in text, details
    assert int(where.rsplit(":", 1)[1]) >= first_tail_line


def test_retrain_without_inputs_says_so(tmp_path):
    with pytest.raises(InvalidInput) as info:
        load_text(tmp_path, (BASE / "config.yaml").read_text() + "retrain: {on_inputs: [raw]}\n")
    assert "steps.preprocessing.inputs is empty" in info.value.details[0]


def test_retrain_null_is_off(tmp_path):
    assert load_text(tmp_path, (BASE / "config.yaml").read_text() + "retrain: null\n").retrain is None


def test_retrain_inputs_must_not_overlap(tmp_path):
    text = (BASE / "config.yaml").read_text() + (
        "steps:\n  preprocessing:\n    inputs:\n      - name: all\n        source: s3://data-bucket/fraud/\n"
        "      - name: raw\n        source: s3://data-bucket/fraud/raw/\n"
        "retrain:\n  on_inputs: [all, raw]\n")
    with pytest.raises(InvalidInput) as info:
        load_text(tmp_path, text)
    assert len(info.value.details) == 1
    assert "retrain.on_inputs[1]: 'raw' (s3://data-bucket/fraud/raw/) lies inside 'all'" in info.value.details[0]
    # The same prefix in two buckets, or side by side, is fine.
    load_text(tmp_path, text.replace("s3://data-bucket/fraud/raw/", "s3://other-bucket/fraud/raw/"))


@pytest.mark.parametrize("path", ["regression_metrics.mse.value", "mse", "custom.eval-set.error_1"])
def test_a_gate_rule_reads_its_own_path(tmp_path, path):
    text = (BASE / "config.yaml").read_text().replace("min: 0.8", f"min: 0.8\n    path: {path}")
    cfg = load_text(tmp_path, text)
    assert cfg.gate[0].path == path and cfg.gate[0].metric == "auc"


@pytest.mark.parametrize("path", ["regression_metrics..mse", ".mse", "mse.", "metrics[0].value", "$.metrics.auc",
                                  "metrics.a b", "''"])
def test_a_malformed_gate_path_names_file_line_and_key(tmp_path, path):
    text = (BASE / "config.yaml").read_text().replace("min: 0.8", f"min: 0.8\n    path: {path}")
    with pytest.raises(InvalidInput) as info:
        load_text(tmp_path, text)
    assert info.value.exit_code == 2
    (detail,) = info.value.details
    shown = json.dumps(yaml.safe_load(f"x: {path}")["x"])
    assert detail.startswith(f"{tmp_path / 'config.yaml'}:11: gate[0].path: {shown} must be a dotted path into "
                             "evaluation.json such as regression_metrics.mse.value"), detail


def test_the_rules_of_one_metric_read_one_path(tmp_path):
    text = (BASE / "config.yaml").read_text().replace(
        "min: 0.8", "min: 0.8\n    path: a.auc.value\n  - metric: auc\n    beat_champion: true\n    path: b.auc.value")
    with pytest.raises(InvalidInput) as info:
        load_text(tmp_path, text)
    (detail,) = info.value.details
    assert detail.endswith(":14: gate[1].path: metric 'auc' already reads 'a.auc.value' (gate[0]): "
                           "the rules of one metric read one value"), detail
    # Given on one rule, the path is the metric's: the champion rule reads it too.
    cfg = load_text(tmp_path, text.replace("    path: b.auc.value\n", ""))
    assert [r.path for r in cfg.gate] == ["a.auc.value", "a.auc.value"]
