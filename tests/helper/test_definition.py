"""The state machine definition: valid ASL, valid API calls, deterministic, and the
gate and registration behave as docs/contract.md section 10 says when an interpreter runs it.

Every variant is rendered once (module fixture): the SageMaker SDK import costs
about 3 s, a render afterwards well under 0.1 s."""

import dataclasses
import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import yaml

import asl
from mltp import config as config_mod
from mltp import gate
from mltp import naming
from mltp import training_metrics

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "fraud-detection"
BASE = ROOT / "tests" / "fixtures" / "base"

STATE_NAMES = {"Preprocessing", "Training", "Evaluation", "ReadEvaluation", "MetricSections", "GateMetrics",
               "Gate", "MetricGateFailed",
               "ShouldRegister", "NotRegistered", "CopyModel", "CopyEvaluation", "Register", "Registered",
               "ReusePreprocessing", "ReuseTraining", "ReuseEvaluation"}


def _example() -> dict:
    return yaml.safe_load((EXAMPLE / "config.yaml").read_text())


def _variant(change) -> dict:
    data = _example()
    change(data)
    return data


def _kms(d):
    d["aws"]["kms_key_id"] = "alias/mlops"


def _no_tags(d):
    d["aws"].pop("tags")


def _xgboost(d):
    for role in ("preprocessing", "training", "evaluation"):
        d["steps"][role].update(framework="xgboost", framework_version="1.7-1")


def _pytorch(d):
    d["steps"]["training"].update(framework="pytorch", framework_version="2.1", instance_type="ml.g4dn.xlarge",
                                  instance_count=2, hyperparameters={"epochs": 3, "lr": 0.001, "amp": True, "optimizer": "adam"})
    d["registry"] = {"inference": {"instance_types": ["ml.g4dn.xlarge", "ml.m5.large"],
                                   "content_types": ["application/json"], "response_types": ["application/json"]}}


IMAGE = "123456789012.dkr.ecr.ap-northeast-2.amazonaws.com/fraud/train:1.4"


def _image(d):
    for role in ("preprocessing", "training", "evaluation"):
        step = d["steps"][role]
        step.pop("framework_version", None)
        step.update(framework="image", image_uri=IMAGE)


def _inputs_arguments_environment(d):
    pre, train, ev = (d["steps"][r] for r in ("preprocessing", "training", "evaluation"))
    pre["inputs"] = [{"name": "raw", "source": "s3://mlops-data/fraud/transactions/"},
                     {"name": "lookup_tables", "source": "s3://mlops-data/fraud/lookup.csv"}]
    pre["arguments"] = ["--sample", 0.5, "--seed", "7"]
    pre["environment"] = {"LOG_LEVEL": "debug", "SAMPLE": 0.5}
    pre["volume_size_gb"] = 100
    pre["instance_count"] = 2
    train["environment"] = {"OMP_NUM_THREADS": 4, "FLAG": True}
    train["script"] = "src/train.py"
    ev["arguments"] = ["--threshold", "0.5"]
    ev["environment"] = {"REPORT": "full"}
    ev["script"] = "src/evaluation.py"


def _gate_rules(d):
    d["gate"] = [{"metric": "auc", "min": 0.9}, {"metric": "false_positive_rate", "max": 0.05},
                 {"metric": "recall", "min": 0.5, "max": 1}, {"metric": "f1-score", "min": 0.7}]


def _max_only(d):
    d["gate"] = [{"metric": "false_positive_rate", "max": 0.05}]
    d["registry"]["approval_status"] = "Approved"
    d["registry"]["model_package_group"] = "fraud-models"
    d["description"] = "Fraud model.\nTrained weekly;\n\tgated on FPR"


def _training_metrics(d):
    d["steps"]["training"]["metric_definitions"] = [
        {"name": "train_loss", "regex": r"train_loss=([0-9.eE+-]+)"},
        {"name": "validation:auc", "regex": r"validation auc: ([0-9.]+)"},
        {"name": "train-acc", "regex": r"acc=([0-9.]+)"}]
    d["gate"] += [{"metric": "train_loss", "source": "training", "max": 0.3},
                  {"metric": "train-acc", "source": "training", "min": 0.5}]


def _china(d):
    d["aws"]["region"] = "cn-north-1"
    for key in ("sagemaker_role_arn", "states_role_arn"):
        d["aws"][key] = d["aws"][key].replace("arn:aws:", "arn:aws-cn:")


def _channels(d):
    """Outputs, channels and test data as a SageMaker notebook may set them."""
    d["steps"]["preprocessing"]["outputs"] = {"train": None, "test": "/opt/ml/processing/test", "baseline": None}
    d["steps"]["training"]["channels"] = {
        "train": "train", "holdout": "test",
        "lookup": {"source": "s3://mlops-data/fraud/lookup/", "content_type": "text/csv"}}
    d["steps"]["evaluation"]["test_from"] = "baseline"
def _spot(d):
    d["steps"]["training"]["max_runtime_minutes"] = 90
    d["steps"]["training"]["spot"] = {"max_wait_minutes": 240}
    d["steps"]["training"]["environment"] = {"EPOCHS": 3}


VARIANTS = {
    "example": _example(),
    "kms": _variant(_kms),
    "no tags": _variant(_no_tags),
    "xgboost": _variant(_xgboost),
    "pytorch": _variant(_pytorch),
    "image": _variant(_image),
    "inputs, arguments, environment": _variant(_inputs_arguments_environment),
    "four gate rules": _variant(_gate_rules),
    "max only": _variant(_max_only),
    "china partition": _variant(_china),
    "channels": _variant(_channels),
    "training metrics": _variant(_training_metrics),
    "spot": _variant(_spot),
}


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    """name -> (config, definition dict, rendered text, definition without the null safety net)."""
    from mltp import definition

    configs = {"fixture base": config_mod.load(BASE)}
    for name, data in VARIANTS.items():
        repo = tmp_path_factory.mktemp(name.replace(" ", "-").replace(",", ""))
        (repo / "config.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
        configs[name] = config_mod.load(repo)
    out = {}
    safety_net = definition._drop_nulls
    before_safety_net = []

    def recording_safety_net(value):
        if isinstance(value, dict) and "StartAt" in value:  # the whole definition, not a recursive call
            before_safety_net.append(json.loads(json.dumps(value)))
        return safety_net(value)

    definition._drop_nulls = recording_safety_net
    try:
        for name, cfg in configs.items():
            text = definition.render(cfg)
            out[name] = (cfg, json.loads(text), text, before_safety_net.pop())
    finally:
        definition._drop_nulls = safety_net
    return out


NAMES = ["fixture base", *VARIANTS]


def sample_input(cfg, **overrides) -> dict:
    data = naming.execution_input(
        cfg, cfg.name, "jenkins-fraud-detection-main-42", "0123456789abcdef" * 4, True,
        git_commit="9f2c1e0b7d4a3c5e6f8091a2b3c4d5e6f7081920",
        build_url="https://jenkins.example.com/job/fraud-detection/job/main/42/", branch="main",
    ).to_dict()
    data.update(overrides)
    return data


EXECUTION_ID = "arn:aws:states:ap-northeast-2:123456789012:execution:fraud-detection:jenkins-fraud-detection-main-42"


def sample_state(cfg, **overrides) -> dict:
    """The state data when Register runs: the input, plus evaluation.json with every gate metric."""
    data = sample_input(cfg, **overrides)
    data["evaluation"] = {"report": {"metrics": {r.metric: {"value": 0.5} for r in cfg.gate}},
                          "ETag": '"0123456789abcdef0123456789abcdef"'}  # ReadEvaluation keeps the object's ETag
    data["gate"] = {"values": gate.merged_entries(data["evaluation"]["report"])}  # what GateMetrics leaves
    # What the Training task's ResultSelector leaves for rules with source: training.
    data["jobs"] = {"training": {"metrics": {m: [0.25] for m in training_metrics.gated(cfg.gate)}}}
    return data


# --------------------------------------------------------------------------- validity


# statelint runs on Python 3.10+ only (requirements-dev.txt): on 3.9 these two are skipped.
needs_statelint = pytest.mark.skipif(sys.version_info < (3, 10), reason="statelint needs Python 3.10+")


@needs_statelint
@pytest.mark.parametrize("name", NAMES)
def test_statelint_finds_no_problem(rendered, name):
    from statelint.linter import Linter

    cfg, definition, text, _ = rendered[name]
    # statelint's path grammar has no filter expressions, which Step Functions takes in
    # Parameters and ResultSelector paths (its Paths page: `$.jar[?(@.a >= 5)]`); the
    # Training task picks gated training metrics with one each (training_metrics.selector_path).
    # Only those fields' complaints are set aside, each by its exact field name.
    known = {f'Field "{name}.$" of ResultSelector at "State Machine.States.Training.metrics" is not a JSONPath '
             f'or intrinsic function expression' for name in training_metrics.gated(cfg.gate)}
    assert [p for p in Linter.validate(definition) if p not in known] == []
    assert [p for p in Linter.validate(text) if p not in known] == []


@needs_statelint
def test_statelint_is_not_blind(rendered):
    from statelint.linter import Linter

    _, definition, _, _ = rendered["example"]
    broken = json.loads(json.dumps(definition))
    broken["States"]["Gate"]["Default"] = "Nowhere"
    del broken["States"]["Registered"]
    assert len(Linter.validate(broken)) >= 2


@pytest.mark.parametrize("name", NAMES)
def test_task_parameters_are_valid_api_requests(rendered, name):
    cfg, definition, _, _ = rendered[name]
    ctx = asl.context(sample_input(cfg), EXECUTION_ID, sample_state(cfg))
    seen = set()
    for state, task in asl.task_states(definition):
        params = asl.resolve(task["Parameters"], ctx)
        assert asl.api_errors(task["Resource"], params) == [], f"{state}:\n{asl.dumps(params)}"
        seen.add(asl.operation(task["Resource"]).name)
    assert seen == {"CreateProcessingJob", "CreateTrainingJob", "GetObject", "CopyObject", "CreateModelPackage"}


def test_the_api_check_catches_what_aws_would_refuse(rendered):
    """The validator is strict enough to matter: a Jenkins BUILD_URL of a branch with
    '/' holds '%', which CustomerMetadataProperties refuses; metadata_value fixes it."""
    from mltp import definition as definition_mod

    cfg, definition, _, _ = rendered["example"]
    register = definition["States"]["Register"]
    url = "https://jenkins.example.com/job/fraud-detection/job/feature%252Fx/7/"
    bad = asl.resolve(register["Parameters"], asl.context(sample_input(cfg, BuildUrl=url, GitCommit=""), EXECUTION_ID,
                                                          sample_state(cfg, BuildUrl=url, GitCommit="")))
    errors = asl.api_errors(register["Resource"], bad)
    assert any("CustomerMetadataProperties.BuildUrl" in e for e in errors), errors
    assert any("CustomerMetadataProperties.GitCommit" in e for e in errors), errors
    fixed = sample_input(cfg, BuildUrl=naming.metadata_value(url), GitCommit=naming.metadata_value(""))
    good = asl.resolve(register["Parameters"], asl.context(fixed, EXECUTION_ID, dict(sample_state(cfg), **fixed)))
    assert asl.api_errors(register["Resource"], good) == []
    training = definition["States"]["Training"]
    params = asl.resolve(training["Parameters"], asl.context(sample_input(cfg), EXECUTION_ID))
    params.pop("RoleArn")
    params["StoppingCondition"]["MaxRuntimeInSeconds"] = "3600"
    params["HyperParameters"]["x" * 300] = "1"
    errors = asl.api_errors(training["Resource"], params)
    assert len(errors) >= 3, errors


@pytest.mark.parametrize("name", NAMES)
def test_no_null_anywhere(rendered, name):
    _, definition, _, raw = rendered[name]
    assert asl.nulls(definition) == []
    # Not even before the safety net: the SDK objects are configured not to emit any.
    assert asl.nulls(raw) == [] and raw == definition


@pytest.mark.parametrize("name", NAMES)
def test_only_execution_input_varies_between_runs(rendered, name):
    """Run-specific values come from $$.Execution.Input (keys of naming.ExecutionInput);
    nothing of a run, and no build-time stand-in, is baked into the definition."""
    cfg, definition, text, _ = rendered[name]
    keys = set(naming.ExecutionInput.__dataclass_fields__)
    used = set()

    def walk(value):
        if isinstance(value, dict):
            for k, v in value.items():
                if k.endswith(".$"):
                    assert "$$.Execution.Input" in v or v.startswith("$.") or v.startswith("States."), (k, v)
                    if "$$.Execution.Input" in v:
                        for key in keys:
                            if f".Input.{key}" in v or f".Input['{key}']" in v:
                                used.add(key)
                walk(v)
        elif isinstance(value, list):
            for v in value:
                walk(v)

    walk(definition["States"])
    # Register: the Choice; Branch and EvaluationS3Uri (the run's evaluation.json, which
    # Register names only as its registry copy): for people; Champion: the Gate reads it
    # as state data ($.Champion.Bars); Cache: the Reuse<Step> choices read it as state data
    # ($.Cache.reuse.<Step>); CheckpointS3Uri: spot training's only.
    # The folder of each default output has its own key, used when it is an output;
    # PreprocessingS3Uri holds the folders of any other.
    unused = {"Branch", "Register", "Champion", "EvaluationS3Uri", "Cache"}
    if not cfg.steps.training.spot:
        unused.add("CheckpointS3Uri")
    outputs = set(cfg.steps.preprocessing.outputs)
    keys_of = {"train": "TrainDataS3Uri", "validation": "ValidationDataS3Uri", "test": "TestDataS3Uri"}
    unused |= {key for name, key in keys_of.items() if name not in outputs}
    if outputs <= set(keys_of):
        unused.add("PreprocessingS3Uri")
    assert used == keys - unused
    assert "$$.Execution.Input['Register']" in text
    sample = sample_input(cfg)
    for key in ("RunName", "PreprocessingJobName", "CodeS3Uri", "ModelArtifactS3Uri", "EvaluationKey"):
        assert sample[key] not in text
    layout = f"{cfg.aws.prefix}/{cfg.name}/"  # code and runs live under it, per run or content hash
    for stand_in in ("placeholder", "mltp-offline", "sagemaker-scikit-learn-20", layout):
        assert stand_in not in text


# --------------------------------------------------------------------------- the states


def test_flow_and_state_names(rendered):
    _, d, _, _ = rendered["example"]
    states = d["States"]
    assert set(states) == STATE_NAMES and d["StartAt"] == "ReusePreprocessing"
    nxt = {name: s.get("Next") for name, s in states.items()}
    # The step cache: a Choice before each job skips it when Cache.reuse names it.
    for step, after in (("Preprocessing", "ReuseTraining"), ("Training", "ReuseEvaluation"),
                        ("Evaluation", "ReadEvaluation")):
        choice = states["Reuse" + step]
        assert choice["Type"] == "Choice" and choice["Default"] == step and nxt[step] == after
        assert choice["Choices"] == [{"Variable": f"$.Cache.reuse.{step}", "IsPresent": True, "Next": after}]
    assert nxt["Evaluation"] == "ReadEvaluation" and nxt["ReadEvaluation"] == "MetricSections"
    assert nxt["MetricSections"] == "GateMetrics" and nxt["GateMetrics"] == "Gate"
    for name in ("MetricSections", "GateMetrics"):  # as the local check merges them (gate.merge_states)
        assert {k: v for k, v in states[name].items() if k != "Next"} == gate.merge_states()[name]
    assert nxt["CopyModel"] == "CopyEvaluation" and nxt["CopyEvaluation"] == "Register"
    assert nxt["Register"] == "Registered"
    gate_state = states["Gate"]
    assert gate_state["Type"] == "Choice" and len(gate_state["Choices"]) == 1
    assert gate_state["Choices"][0]["Next"] == "ShouldRegister" and gate_state["Default"] == "MetricGateFailed"
    failed = states["MetricGateFailed"]
    assert failed["Type"] == "Fail" and failed["Error"] == "MetricGateFailed"
    assert "auc >= 0.9" in failed["Cause"] and "false_positive_rate <= 0.05" in failed["Cause"]
    should = states["ShouldRegister"]
    assert should["Choices"] == [{"Variable": "$$.Execution.Input['Register']", "BooleanEquals": True, "Next": "CopyModel"}]
    assert should["Default"] == "NotRegistered"
    assert states["NotRegistered"]["Type"] == states["Registered"]["Type"] == "Succeed"


def test_result_paths_keep_state_data_small_and_the_arn_in_the_output(rendered):
    from mltp import definition as definition_mod

    _, d, _, _ = rendered["example"]
    s = d["States"]
    assert (s["Preprocessing"]["ResultPath"], s["Preprocessing"]["ResultSelector"]) == (
        "$.jobs.preprocessing", {"ProcessingJobArn.$": "$.ProcessingJobArn"})
    assert (s["Training"]["ResultPath"], s["Training"]["ResultSelector"]) == (
        "$.jobs.training", {"TrainingJobArn.$": "$.TrainingJobArn"})
    assert s["Evaluation"]["ResultPath"] == "$.jobs.evaluation"
    assert s["ReadEvaluation"]["Resource"] == "arn:aws:states:::aws-sdk:s3:getObject"
    assert s["ReadEvaluation"]["ResultPath"] == "$.evaluation"
    assert s["ReadEvaluation"]["ResultSelector"] == {"report.$": "States.StringToJson($.Body)",
                                                     "sections": {name: {} for name in gate.SECTIONS},
                                                     "ETag.$": "$.ETag"}
    assert s["ReadEvaluation"]["Parameters"] == {"Bucket.$": "$$.Execution.Input['EvaluationBucket']",
                                                 "Key.$": "$$.Execution.Input['EvaluationKey']"}
    gate_paths = {c["Variable"] for rule in s["Gate"]["Choices"][0]["And"] for c in rule["And"]}
    assert gate_paths == {"$.gate.values.auc.value", "$.gate.values.false_positive_rate.value"}
    for name, part in (("CopyModel", "model"), ("CopyEvaluation", "evaluation")):
        assert s[name]["Resource"] == "arn:aws:states:::aws-sdk:s3:copyObject"
        assert (s[name]["ResultPath"], s[name]["ResultSelector"]) == (
            f"$.registry.{part}", {"ETag.$": "$.CopyObjectResult.ETag"})
    assert s["Register"]["ResultPath"] == "$.register" == definition_mod.REGISTER_PATH
    assert definition_mod.MODEL_PACKAGE_ARN_PATH == "$.register.ModelPackageArn"


def test_gate_covers_every_rule(rendered):
    from mltp import gate

    cfg, d, _, _ = rendered["four gate rules"]
    assert d["States"]["Gate"]["Choices"][0] == dict(gate.choice_rule(cfg.gate), Next="ShouldRegister")
    paths = [rule["And"][0]["Variable"] for rule in d["States"]["Gate"]["Choices"][0]["And"]]
    assert paths[-1] == "$.gate.values['f1-score'].value" and len(paths) == 4
    _, d, _, _ = rendered["max only"]
    (only,) = d["States"]["Gate"]["Choices"][0]["And"]
    assert [next(k for k in c if k != "Variable") for c in only["And"]] == [
        "IsPresent", "IsNumeric", "NumericGreaterThanEquals", "NumericLessThanEquals",  # finite (1e999 is Infinity)
        "NumericLessThanEquals"]


def test_processing_jobs(rendered):
    cfg, d, _, _ = rendered["example"]
    pre, ev = d["States"]["Preprocessing"], d["States"]["Evaluation"]
    assert pre["Resource"] == "arn:aws:states:::sagemaker:createProcessingJob.sync" == ev["Resource"]
    p = pre["Parameters"]
    image = "366743142698.dkr.ecr.ap-northeast-2.amazonaws.com/sagemaker-scikit-learn:1.2-1-cpu-py3"
    assert p["AppSpecification"] == {"ImageUri": image,
                                     "ContainerEntrypoint": ["python3", "/opt/ml/processing/input/code/.mltp/processing_entry.py", 
                                                             "/opt/ml/processing/input/code/preprocessing.py"]}
    assert p["ProcessingJobName.$"] == "$$.Execution.Input['PreprocessingJobName']"
    (code,) = p["ProcessingInputs"]
    assert code["InputName"] == "code" and code["S3Input"]["LocalPath"] == "/opt/ml/processing/input/code"
    assert code["S3Input"]["S3DataType"] == "S3Prefix" and code["S3Input"]["S3Uri.$"] == "$$.Execution.Input['CodeS3Uri']"
    outputs = {o["OutputName"]: (o["S3Output"]["LocalPath"], o["S3Output"]["S3Uri.$"]) for o in p["ProcessingOutputConfig"]["Outputs"]}
    assert outputs == {
        "train": ("/opt/ml/processing/output/train", "$$.Execution.Input['TrainDataS3Uri']"),
        "validation": ("/opt/ml/processing/output/validation", "$$.Execution.Input['ValidationDataS3Uri']"),
        "test": ("/opt/ml/processing/output/test", "$$.Execution.Input['TestDataS3Uri']"),
    }
    assert p["Environment"] == {"MLTP_INPUT_DIR": "/opt/ml/processing/input", "MLTP_OUTPUT_DIR": "/opt/ml/processing/output"}
    assert p["ProcessingResources"]["ClusterConfig"] == {"InstanceCount": 1, "InstanceType": "ml.m5.xlarge", "VolumeSizeInGB": 30}
    assert p["StoppingCondition"] == {"MaxRuntimeInSeconds": 30 * 60}
    assert p["RoleArn"] == cfg.aws.sagemaker_role_arn
    assert p["Tags"] == [{"Key": "cost-center", "Value": "1234"}, {"Key": "team", "Value": "fds"}]
    assert "ContainerArguments" not in p["AppSpecification"]
    e = ev["Parameters"]
    # processing scripts start through mltp's entry point (installs requirements.txt); the evaluation
    # script also runs under mltp's guard; both are shipped in the code bundle (same outcome locally and on AWS)
    assert e["AppSpecification"]["ContainerEntrypoint"] == [
        "python3", "/opt/ml/processing/input/code/.mltp/processing_entry.py", "/opt/ml/processing/input/code/.mltp/evaluation_guard.py", "/opt/ml/processing/input/code/evaluation.py"]
    inputs = {i["InputName"]: (i["S3Input"]["LocalPath"], i["S3Input"]["S3Uri.$"], i["S3Input"]["S3DataType"]) for i in e["ProcessingInputs"]}
    assert inputs == {
        "code": ("/opt/ml/processing/input/code", "$$.Execution.Input['CodeS3Uri']", "S3Prefix"),
        "model": ("/opt/ml/processing/model", "$$.Execution.Input['ModelArtifactS3Uri']", "S3Prefix"),
        "test": ("/opt/ml/processing/input/test", "$$.Execution.Input['TestDataS3Uri']", "S3Prefix"),
    }
    (out,) = e["ProcessingOutputConfig"]["Outputs"]
    assert (out["OutputName"], out["S3Output"]["LocalPath"], out["S3Output"]["S3Uri.$"]) == (
        "evaluation", "/opt/ml/processing/output", "$$.Execution.Input['EvaluationOutputS3Uri']")
    assert e["Environment"]["MLTP_MODEL_DIR"] == "/opt/ml/processing/model"
    assert e["ProcessingResources"]["ClusterConfig"]["InstanceType"] == "ml.m5.large"


def test_processing_inputs_arguments_and_environment(rendered):
    _, d, _, _ = rendered["inputs, arguments, environment"]
    p = d["States"]["Preprocessing"]["Parameters"]
    assert p["AppSpecification"]["ContainerArguments"] == ["--sample", "0.5", "--seed", "7"]
    inputs = [(i["InputName"], i["S3Input"]["LocalPath"], i["S3Input"].get("S3Uri")) for i in p["ProcessingInputs"]]
    assert inputs == [
        ("code", "/opt/ml/processing/input/code", None),
        ("raw", "/opt/ml/processing/input/raw", "s3://mlops-data/fraud/transactions/"),
        ("lookup_tables", "/opt/ml/processing/input/lookup_tables", "s3://mlops-data/fraud/lookup.csv"),
    ]
    assert p["Environment"] == {"MLTP_INPUT_DIR": "/opt/ml/processing/input", "MLTP_OUTPUT_DIR": "/opt/ml/processing/output",
                                "LOG_LEVEL": "debug", "SAMPLE": "0.5"}
    assert p["ProcessingResources"]["ClusterConfig"] == {"InstanceCount": 2, "InstanceType": "ml.m5.xlarge", "VolumeSizeInGB": 100}
    e = d["States"]["Evaluation"]["Parameters"]
    assert e["AppSpecification"]["ContainerArguments"] == ["--threshold", "0.5"]
    assert e["AppSpecification"]["ContainerEntrypoint"] == [
        "python3", "/opt/ml/processing/input/code/.mltp/processing_entry.py", "/opt/ml/processing/input/code/.mltp/evaluation_guard.py",
        "/opt/ml/processing/input/code/src/evaluation.py"]
    assert e["Environment"]["REPORT"] == "full"
    t = d["States"]["Training"]["Parameters"]
    assert t["Environment"] == {"OMP_NUM_THREADS": "4", "FLAG": "true"}
    assert t["HyperParameters"]["sagemaker_program"] == '"src/train.py"'


def test_training_job(rendered):
    cfg, d, _, _ = rendered["example"]
    t = d["States"]["Training"]
    assert t["Resource"] == "arn:aws:states:::sagemaker:createTrainingJob.sync"
    p = t["Parameters"]
    assert p["TrainingJobName.$"] == "$$.Execution.Input['TrainingJobName']"
    assert p["AlgorithmSpecification"] == {
        "TrainingImage": "366743142698.dkr.ecr.ap-northeast-2.amazonaws.com/sagemaker-scikit-learn:1.2-1-cpu-py3",
        "TrainingInputMode": "File"}
    assert p["HyperParameters"] == {
        "max_iter": "200", "learning_rate": "0.1", "max_depth": "6", "min_samples_leaf": "20", "l2_regularization": "0.0",
        "sagemaker_program": '"train.py"',
        "sagemaker_submit_directory.$": "States.Format('\"{}\"', $$.Execution.Input.SourceDirS3Uri)",
        "sagemaker_job_name.$": "States.Format('\"{}\"', $$.Execution.Input.TrainingJobName)",
        "sagemaker_container_log_level": "20",
        "sagemaker_region": '"ap-northeast-2"',
    }
    channels = {c["ChannelName"]: c["DataSource"]["S3DataSource"] for c in p["InputDataConfig"]}
    assert channels == {
        "train": {"S3DataType": "S3Prefix", "S3DataDistributionType": "FullyReplicated", "S3Uri.$": "$$.Execution.Input['TrainDataS3Uri']"},
        "validation": {"S3DataType": "S3Prefix", "S3DataDistributionType": "FullyReplicated",
                       "S3Uri.$": "$$.Execution.Input['ValidationDataS3Uri']"},
    }
    assert p["OutputDataConfig"] == {"S3OutputPath.$": "$$.Execution.Input['ModelOutputS3Uri']"}
    assert p["ResourceConfig"] == {"InstanceCount": 1, "InstanceType": "ml.m5.xlarge", "VolumeSizeInGB": 30}
    assert p["StoppingCondition"] == {"MaxRuntimeInSeconds": 60 * 60}
    assert p["RoleArn"] == cfg.aws.sagemaker_role_arn
    assert "Environment" not in p and "DebugHookConfig" not in p and "ProfilerConfig" not in p
    # The JSON encoding the SDK gives script-mode hyperparameters, applied at run time.
    ctx = asl.context(sample_input(cfg), EXECUTION_ID)
    resolved = asl.resolve(p, ctx)["HyperParameters"]
    assert json.loads(resolved["sagemaker_submit_directory"]) == sample_input(cfg)["SourceDirS3Uri"]
    assert json.loads(resolved["sagemaker_job_name"]) == sample_input(cfg)["TrainingJobName"]


def test_outputs_channels_and_test_data_follow_the_config(rendered):
    """One ProcessingOutput per output, one Channel per channel (ContentType when
    given; an s3:// source as is), evaluation's test data from test_from; at run
    time each output's folder is <run>/preprocessing/<name>/."""
    cfg, d, _, _ = rendered["channels"]
    ctx = asl.context(sample_input(cfg), EXECUTION_ID)
    run = sample_input(cfg)["PreprocessingS3Uri"]
    assert run.endswith("/runs/jenkins-fraud-detection-main-42/preprocessing/")
    pre = asl.resolve(d["States"]["Preprocessing"]["Parameters"], ctx)
    assert [(o["OutputName"], o["S3Output"]["LocalPath"], o["S3Output"]["S3Uri"])
            for o in pre["ProcessingOutputConfig"]["Outputs"]] == [
        ("train", "/opt/ml/processing/output/train", run + "train/"),
        ("test", "/opt/ml/processing/test", run + "test/"),
        ("baseline", "/opt/ml/processing/output/baseline", run + "baseline/")]
    training = asl.resolve(d["States"]["Training"]["Parameters"], ctx)
    assert training["InputDataConfig"] == [
        {"ChannelName": "train", "DataSource": {"S3DataSource": {
            "S3DataType": "S3Prefix", "S3DataDistributionType": "FullyReplicated", "S3Uri": run + "train/"}}},
        {"ChannelName": "holdout", "DataSource": {"S3DataSource": {
            "S3DataType": "S3Prefix", "S3DataDistributionType": "FullyReplicated", "S3Uri": run + "test/"}}},
        {"ChannelName": "lookup", "ContentType": "text/csv", "DataSource": {"S3DataSource": {
            "S3DataType": "S3Prefix", "S3DataDistributionType": "FullyReplicated",
            "S3Uri": "s3://mlops-data/fraud/lookup/"}}}]
    evaluation = asl.resolve(d["States"]["Evaluation"]["Parameters"], ctx)
    test = [i for i in evaluation["ProcessingInputs"] if i["InputName"] == "test"]
    assert [(i["S3Input"]["S3Uri"], i["S3Input"]["LocalPath"]) for i in test] == [
        (run + "baseline/", "/opt/ml/processing/input/test")]


def test_default_outputs_and_channels_render_as_before(rendered):
    """A config that spells the defaults out renders the bytes of one that does not."""
    from mltp import definition

    cfg = rendered["example"][0]
    spelled = dataclasses.replace(cfg, steps=dataclasses.replace(cfg.steps, evaluation=dataclasses.replace(
        cfg.steps.evaluation, test_from="test")))
    assert definition.render_fresh(spelled) == rendered["example"][2]
    assert [c.name for c in cfg.steps.training.channels] == ["train", "validation"]
    assert cfg.steps.evaluation.test_from == "test"
def test_spot_training_renders_what_create_training_job_takes(rendered):
    """Managed spot: EnableManagedSpotTraining, a wait at least the run (SageMaker's rule),
    and checkpoints under the run's own prefix, checked against botocore's shapes."""
    from mltp import spot

    cfg, d, _, _ = rendered["spot"]
    p = d["States"]["Training"]["Parameters"]
    assert p["EnableManagedSpotTraining"] is True
    assert p["StoppingCondition"] == {"MaxRuntimeInSeconds": 90 * 60, "MaxWaitTimeInSeconds": 240 * 60}
    assert p["CheckpointConfig"] == {"S3Uri.$": "$$.Execution.Input['CheckpointS3Uri']",
                                     "LocalPath": spot.CHECKPOINT_LOCAL_PATH}
    assert p["Environment"] == {"EPOCHS": "3"}
    for run_input in (sample_input(cfg), naming.execution_input(cfg, f"{cfg.name}--feature-x", "pr-7", "0" * 64,
                                                                False).to_dict()):
        resolved = asl.resolve(p, asl.context(run_input, EXECUTION_ID))
        assert asl.api_errors("arn:aws:states:::sagemaker:createTrainingJob.sync", resolved) == []
        stopping = resolved["StoppingCondition"]
        assert stopping["MaxWaitTimeInSeconds"] >= stopping["MaxRuntimeInSeconds"]
        # Under the run, where the run's job role writes already (policies.py), for branches too.
        assert resolved["CheckpointConfig"]["S3Uri"] == run_input["ModelOutputS3Uri"][:-len("model/")] + "checkpoints/"
    op = asl.operation("arn:aws:states:::sagemaker:createTrainingJob.sync")
    members = op.input_shape.members
    assert members["EnableManagedSpotTraining"].type_name == "boolean"
    assert set(p["CheckpointConfig"]) - {"S3Uri.$"} <= set(members["CheckpointConfig"].members)
    assert "MaxWaitTimeInSeconds" in members["StoppingCondition"].members
    # Without spot nothing of it is rendered.
    plain = rendered["example"][1]["States"]["Training"]["Parameters"]
    assert not {"EnableManagedSpotTraining", "CheckpointConfig"} & set(plain)
    assert "MaxWaitTimeInSeconds" not in plain["StoppingCondition"]


def test_kms_and_tags_only_when_set(rendered):
    _, plain, _, _ = rendered["example"]
    _, kms, _, _ = rendered["kms"]
    _, untagged, _, _ = rendered["no tags"]
    for name in ("Preprocessing", "Evaluation"):
        p, k = plain["States"][name]["Parameters"], kms["States"][name]["Parameters"]
        assert "KmsKeyId" not in p["ProcessingOutputConfig"] and "VolumeKmsKeyId" not in p["ProcessingResources"]["ClusterConfig"]
        assert k["ProcessingOutputConfig"]["KmsKeyId"] == "alias/mlops"
        assert k["ProcessingResources"]["ClusterConfig"]["VolumeKmsKeyId"] == "alias/mlops"
    t, k = plain["States"]["Training"]["Parameters"], kms["States"]["Training"]["Parameters"]
    assert "KmsKeyId" not in t["OutputDataConfig"] and "VolumeKmsKeyId" not in t["ResourceConfig"]
    assert k["OutputDataConfig"]["KmsKeyId"] == "alias/mlops" and k["ResourceConfig"]["VolumeKmsKeyId"] == "alias/mlops"
    for name in ("Preprocessing", "Training", "Evaluation"):
        assert "Tags" in plain["States"][name]["Parameters"]
        assert "Tags" not in untagged["States"][name]["Parameters"]
    # A version in a model package group takes its group's tags and no Tags argument.
    assert "Tags" not in plain["States"]["Register"]["Parameters"]


def test_frameworks_pick_their_images(rendered):
    _, d, _, _ = rendered["xgboost"]
    xgb = "366743142698.dkr.ecr.ap-northeast-2.amazonaws.com/sagemaker-xgboost:1.7-1"
    assert d["States"]["Preprocessing"]["Parameters"]["AppSpecification"]["ImageUri"] == xgb
    assert d["States"]["Training"]["Parameters"]["AlgorithmSpecification"]["TrainingImage"] == xgb
    assert d["States"]["Register"]["Parameters"]["InferenceSpecification"]["Containers"][0]["Image"] == xgb

    _, d, _, _ = rendered["pytorch"]
    train = d["States"]["Training"]["Parameters"]
    assert train["AlgorithmSpecification"]["TrainingImage"] == "763104351884.dkr.ecr.ap-northeast-2.amazonaws.com/pytorch-training:2.1-gpu-py310"
    assert train["ResourceConfig"]["InstanceCount"] == 2
    assert {k: v for k, v in train["HyperParameters"].items() if not k.startswith("sagemaker_")} == {
        "epochs": "3", "lr": "0.001", "amp": "true", "optimizer": '"adam"'}
    spec = d["States"]["Register"]["Parameters"]["InferenceSpecification"]
    assert spec["Containers"][0]["Image"] == "763104351884.dkr.ecr.ap-northeast-2.amazonaws.com/pytorch-inference:2.1-gpu-py310"
    assert spec["SupportedRealtimeInferenceInstanceTypes"] == ["ml.g4dn.xlarge", "ml.m5.large"]
    assert spec["SupportedContentTypes"] == spec["SupportedResponseMIMETypes"] == ["application/json"]

    _, d, _, _ = rendered["image"]
    assert d["States"]["Preprocessing"]["Parameters"]["AppSpecification"]["ImageUri"] == IMAGE
    assert d["States"]["Evaluation"]["Parameters"]["AppSpecification"]["ImageUri"] == IMAGE
    train = d["States"]["Training"]["Parameters"]
    assert train["AlgorithmSpecification"]["TrainingImage"] == IMAGE
    assert train["HyperParameters"]["sagemaker_program"] == '"train.py"'
    assert "sagemaker_submit_directory.$" in train["HyperParameters"]
    assert d["States"]["Register"]["Parameters"]["InferenceSpecification"]["Containers"][0]["Image"] == IMAGE


def test_register(rendered):
    cfg, d, _, _ = rendered["example"]
    r = d["States"]["Register"]
    assert r["Resource"] == "arn:aws:states:::aws-sdk:sagemaker:createModelPackage"
    p = r["Parameters"]
    assert p["ModelPackageGroupName"] == "fraud-detection" and p["ModelApprovalStatus"] == "PendingManualApproval"
    assert p["ModelPackageDescription"] == cfg.description
    (container,) = p["InferenceSpecification"]["Containers"]
    assert container["Image"] == "366743142698.dkr.ecr.ap-northeast-2.amazonaws.com/sagemaker-scikit-learn:1.2-1-cpu-py3"
    assert container["ModelDataUrl.$"] == "$$.Execution.Input['RegistryModelS3Uri']"  # the copy, not the run's
    assert container["Environment"] == {
        "SAGEMAKER_PROGRAM": "train.py", "SAGEMAKER_SUBMIT_DIRECTORY.$": "$$.Execution.Input['SourceDirS3Uri']",
        "SAGEMAKER_CONTAINER_LOG_LEVEL": "20", "SAGEMAKER_REGION": "ap-northeast-2"}
    assert p["InferenceSpecification"]["SupportedContentTypes"] == ["text/csv"]
    assert p["InferenceSpecification"]["SupportedResponseMIMETypes"] == ["text/csv"]
    assert p["InferenceSpecification"]["SupportedRealtimeInferenceInstanceTypes"] == ["ml.m5.large"]
    assert p["ModelMetrics"] == {"ModelQuality": {"Statistics": {
        "ContentType": "application/json", "S3Uri.$": "$$.Execution.Input['RegistryEvaluationS3Uri']"}}}
    assert p["CustomerMetadataProperties"] == {"RunName.$": "$$.Execution.Input['RunName']",
                                               "GitCommit.$": "$$.Execution.Input['GitCommit']",
                                               "BuildUrl.$": "$$.Execution.Input['BuildUrl']",
                                               "metric:auc.$": "States.Format('{}', $.gate.values.auc.value)",
                                               "metric:false_positive_rate.$":
                                                   "States.Format('{}', $.gate.values.false_positive_rate.value)"}
    resolved = asl.resolve(p, asl.context(sample_input(cfg), EXECUTION_ID, sample_state(cfg)))
    assert resolved["CustomerMetadataProperties"]["metric:auc"] == "0.5"
    assert p["ClientToken.$"] == "States.Hash($$.Execution.Id, 'MD5')"
    assert "Tags" not in p  # on the group (deploy), as CreateModelPackage.Tags documents
    _, d, _, _ = rendered["max only"]
    p = d["States"]["Register"]["Parameters"]
    assert p["ModelPackageGroupName"] == "fraud-models" and p["ModelApprovalStatus"] == "Approved"
    assert p["ModelPackageDescription"] == "Fraud model. Trained weekly; gated on FPR"


def test_registration_copies_the_artifacts_out_of_the_jobs_reach(rendered):
    """CopyModel and CopyEvaluation put the run's model.tar.gz and evaluation.json under
    registry/<run>/ (only the states role writes there, policies.py); evaluation.json
    only while it is still the object the Gate read (its ETag); with a KMS key the
    copies are encrypted with it."""
    cfg, d, _, _ = rendered["example"]
    states = d["States"]
    resolved = {name: asl.resolve(states[name]["Parameters"], asl.context(sample_input(cfg), EXECUTION_ID, sample_state(cfg)))
                for name in ("CopyModel", "CopyEvaluation")}
    data = sample_input(cfg)
    assert resolved["CopyModel"] == {"Bucket": cfg.aws.bucket, "Key": data["RegistryModelKey"],
                                     "CopySource": data["ModelArtifactCopySource"]}
    assert resolved["CopyEvaluation"] == {"Bucket": cfg.aws.bucket, "Key": data["RegistryEvaluationKey"],
                                          "CopySource": data["EvaluationCopySource"],
                                          "CopySourceIfMatch": sample_state(cfg)["evaluation"]["ETag"]}
    assert data["ModelArtifactCopySource"] == data["ModelArtifactS3Uri"][len("s3://"):]
    assert data["RegistryModelS3Uri"] == f"s3://{cfg.aws.bucket}/{data['RegistryModelKey']}"
    assert data["RegistryModelKey"] == f"{cfg.aws.prefix}/{cfg.name}/registry/{data['RunName']}/model.tar.gz"
    for name in ("CopyModel", "CopyEvaluation"):
        assert states[name]["Retry"][0]["ErrorEquals"] == ["S3.S3Exception", "S3.SdkClientException"]
    kms_cfg, kms, _, _ = rendered["kms"]
    for name in ("CopyModel", "CopyEvaluation"):
        parameters = kms["States"][name]["Parameters"]
        assert (parameters["ServerSideEncryption"], parameters["SSEKMSKeyId"]) == ("aws:kms", kms_cfg.aws.kms_key_id)


def test_retries(rendered):
    _, d, _, _ = rendered["example"]
    for name in ("Preprocessing", "Training", "Evaluation"):
        retry = d["States"][name]["Retry"]
        assert [r["ErrorEquals"] for r in retry] == [["SageMaker.AmazonSageMakerException"], ["SageMaker.ResourceLimitExceededException"]]
        assert all(r["MaxAttempts"] >= 2 and r["BackoffRate"] > 1 for r in retry)
    assert d["States"]["ReadEvaluation"]["Retry"][0]["ErrorEquals"] == ["S3.S3Exception", "S3.SdkClientException"]
    assert d["States"]["Register"]["Retry"][0]["ErrorEquals"] == ["SageMaker.SageMakerException", "SageMaker.SdkClientException"]
    for name, state in d["States"].items():
        for retrier in state.get("Retry", []):
            # A failed job (States.TaskFailed) must not rerun the script; no catch-alls.
            assert not {"States.ALL", "States.TaskFailed", "States.Timeout"} & set(retrier["ErrorEquals"]), name
        assert "Catch" not in state


def test_partition_follows_the_config_region(rendered):
    _, d, _, _ = rendered["china partition"]
    resources = sorted(s["Resource"] for s in d["States"].values() if "Resource" in s)
    assert all(r.startswith("arn:aws-cn:states:::") for r in resources), resources
    assert ".amazonaws.com.cn/" in d["States"]["Training"]["Parameters"]["AlgorithmSpecification"]["TrainingImage"]


# --------------------------------------------------------------------------- determinism


def test_same_config_same_bytes(rendered):
    from mltp import definition

    for name, (cfg, _, text, _) in rendered.items():
        assert definition.render(cfg) == text, name
        assert text.endswith("}\n") and json.loads(text)
        assert text == json.dumps(json.loads(text), indent=2, sort_keys=True) + "\n" and text.isascii()


_OFFLINE_RENDER = textwrap.dedent("""
    import json, os, socket, sys, time
    def refuse(*args, **kwargs):
        raise OSError("network access during render")
    socket.socket.connect = refuse
    socket.create_connection = refuse
    socket.getaddrinfo = refuse
    start = time.perf_counter()
    from mltp import config, definition, gate
    took = time.perf_counter() - start
    before_build = sorted(m for m in ("sagemaker", "stepfunctions", "boto3") if m in sys.modules)
    before = dict(os.environ, SAGEMAKER_SUPPRESS_V2_WARNING="1")  # set on purpose, for the SDK import
    texts = [definition.render(config.load(repo)) for repo in sys.argv[1:]]
    assert dict(os.environ) == before, ("render changed the environment", {k: (before.get(k), os.environ.get(k)) for k in set(before) | set(os.environ) if before.get(k) != os.environ.get(k)})
    after_build = sorted(m for m in ("sagemaker", "stepfunctions") if m in sys.modules)
    sys.stdout.write(json.dumps({"texts": texts, "import_seconds": took, "before_build": before_build, "after_build": after_build}))
""")


def test_render_is_hermetic_across_processes_and_machines(rendered, tmp_path):
    """Another process with another hash seed, no network, no credentials, and a machine
    whose AWS and SageMaker SDK settings would change a naive render: same bytes.
    And importing mltp.definition does not import the SDKs: building does."""
    sdk_defaults = tmp_path / "sagemaker-config.yaml"
    sdk_defaults.write_text(yaml.safe_dump({"SchemaVersion": "1.0", "SageMaker": {
        "PythonSDK": {"Modules": {"Session": {"DefaultS3Bucket": "someone-elses-bucket"}}},
        "ProcessingJob": {"Tags": [{"Key": "injected", "Value": "yes"}], "ProcessingOutputConfig": {"KmsKeyId": "alias/x"}},
        "TrainingJob": {"Tags": [{"Key": "injected", "Value": "yes"}], "ResourceConfig": {"VolumeKmsKeyId": "alias/x"}},
    }}))
    aws_config = tmp_path / "aws-config"
    aws_config.write_text("[default]\nregion = cn-north-1\n[profile other]\nregion = us-gov-west-1\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "SAGEMAKER_"))}
    env.update(PYTHONHASHSEED="12345", AWS_PROFILE="does-not-exist", AWS_DEFAULT_REGION="cn-north-1",
               AWS_CONFIG_FILE=str(aws_config), SAGEMAKER_USER_CONFIG_OVERRIDE=str(sdk_defaults),
               # an empty helper cache: a definition another run of the same code left in the
               # agent's cache would be a hit, and this process would render nothing
               MLTP_CACHE_DIR=str(tmp_path / "mltp-cache"))
    done = subprocess.run([sys.executable, "-c", _OFFLINE_RENDER, str(EXAMPLE), str(BASE)],
                          env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["texts"] == [rendered["example"][2], rendered["fixture base"][2]]
    assert result["before_build"] == [] and result["import_seconds"] < 1.5, result
    assert result["after_build"] == ["sagemaker", "stepfunctions"]
    assert "IPython" not in done.stderr and "sagemaker.config INFO" not in done.stderr, done.stderr


def test_render_leaves_the_environment_alone(rendered, monkeypatch):
    from mltp import definition

    monkeypatch.setenv("AWS_PROFILE", "mine")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    monkeypatch.delenv("AWS_REGION", raising=False)
    before = dict(os.environ, SAGEMAKER_SUPPRESS_V2_WARNING="1")
    definition.render(rendered["example"][0])
    assert dict(os.environ) == before


# --------------------------------------------------------------------------- running it


@asl.needs_many_executions
def test_an_interpreter_runs_the_definition_as_the_contract_says(rendered, monkeypatch):
    """moto's Step Functions interpreter (ported from LocalStack) runs the definition:
    the gate passes at its bounds, a missing or non-numeric metric fails it with
    MetricGateFailed (not a runtime error), Register=false ends in NotRegistered, and
    the model package ARN ends up at $.register.ModelPackageArn."""
    import boto3
    from moto import mock_aws

    cfg, _, text, _ = rendered["example"]
    for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}.items():
        monkeypatch.setenv(key, value)
    for key in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_CONFIG_FILE"):
        monkeypatch.delenv(key, raising=False)
    asl.patch_moto_get_object_body(monkeypatch)
    from mltp.local import emulator

    emulator.fix_jsonpath_keyword_prefixes()  # as `mltp run --local` does (old jsonpath-ng)
    good = {"auc": 0.9, "false_positive_rate": 0.05}  # both at their bounds
    runs = [
        ("at-bounds", good, True, "SUCCEEDED"),
        ("missing", {"auc": 0.99}, True, "MetricGateFailed"),
        ("not-numeric", {"auc": "0.99", "false_positive_rate": 0.01}, True, "MetricGateFailed"),
        ("below", {"auc": 0.89, "false_positive_rate": 0.01}, True, "MetricGateFailed"),
        ("branch", good, False, "SUCCEEDED"),
    ]
    region = cfg.aws.region
    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}):
        s3 = boto3.client("s3", region_name=region)
        sm = boto3.client("sagemaker", region_name=region)
        sfn = boto3.client("stepfunctions", region_name=region)
        s3.create_bucket(Bucket=cfg.aws.bucket, CreateBucketConfiguration={"LocationConstraint": region})
        sm.create_model_package_group(ModelPackageGroupName=cfg.registry.model_package_group)
        machine = sfn.create_state_machine(name=cfg.name, definition=asl.for_emulator(text),
                                           roleArn=cfg.aws.states_role_arn)["stateMachineArn"]
        executions = {}
        for run, metrics, register, _ in runs:
            data = naming.execution_input(cfg, cfg.name, run, "ab" * 32, register, git_commit="9f2c1e0",
                                          build_url="https://jenkins.example.com/job/x/1/", branch="main")
            body = {"metrics": {k: {"value": v} for k, v in metrics.items()}}
            s3.put_object(Bucket=data.EvaluationBucket, Key=data.EvaluationKey, Body=json.dumps(body).encode())
            s3.put_object(Bucket=data.EvaluationBucket, Key=data.ModelArtifactCopySource.split("/", 1)[1],
                          Body=b"model of " + run.encode())
            arn = sfn.start_execution(stateMachineArn=machine, name=run, input=json.dumps(data.to_dict()))["executionArn"]
            executions[run] = (arn, data)
        outcomes = {}
        deadline = time.monotonic() + 60
        while len(outcomes) < len(runs) and time.monotonic() < deadline:
            for run, (arn, _) in executions.items():
                described = sfn.describe_execution(executionArn=arn)
                if described["status"] != "RUNNING":
                    outcomes[run] = described
            time.sleep(0.05)
        for run, _, _, expected in runs:
            described = outcomes[run]
            assert (described.get("error") or described["status"]) == expected, (run, described)
        failed = outcomes["missing"]
        assert failed["status"] == "FAILED" and "false_positive_rate <= 0.05" in failed["cause"]

        output = json.loads(outcomes["at-bounds"]["output"])
        arn = output["register"]["ModelPackageArn"]
        assert arn.startswith(f"arn:aws:sagemaker:{region}:") and "model-package/fraud-detection/" in arn
        # evaluation.json, with the sections it lacks as empty objects (MetricSections), held once.
        assert output["evaluation"] == {"report": {
            **{name: {} for name in gate.SECTIONS},
            "metrics": {"auc": {"value": 0.9}, "false_positive_rate": {"value": 0.05}}},
            "ETag": s3.head_object(Bucket=cfg.aws.bucket, Key=executions["at-bounds"][1].EvaluationKey)["ETag"]}
        assert output["gate"] == {"values": {"auc": {"value": 0.9}, "false_positive_rate": {"value": 0.05}}}
        assert set(output["jobs"]) == {"preprocessing", "training", "evaluation"}
        package = sm.describe_model_package(ModelPackageName=arn)
        assert package["CustomerMetadataProperties"]["RunName"] == "at-bounds"
        # Registered from the registry copies, which hold the run's bytes; the copy's ETag is in the output.
        passed = executions["at-bounds"][1]
        assert package["ModelMetrics"]["ModelQuality"]["Statistics"]["S3Uri"] == passed.RegistryEvaluationS3Uri
        assert package["InferenceSpecification"]["Containers"][0]["ModelDataUrl"] == passed.RegistryModelS3Uri
        assert "/registry/at-bounds/" in passed.RegistryModelS3Uri
        copy = s3.get_object(Bucket=cfg.aws.bucket, Key=passed.RegistryModelKey)
        assert copy["Body"].read() == b"model of at-bounds"
        assert output["registry"]["model"] == {"ETag": copy["ETag"]}
        evaluation_copy = s3.get_object(Bucket=cfg.aws.bucket, Key=passed.RegistryEvaluationKey)
        assert json.loads(evaluation_copy["Body"].read())["metrics"]["auc"] == {"value": 0.9}
        assert output["registry"]["evaluation"] == {"ETag": evaluation_copy["ETag"]}
        for run in ("missing", "branch"):  # nothing copied for a run that does not register
            assert s3.list_objects_v2(Bucket=cfg.aws.bucket, Prefix=executions[run][1].RegistryModelKey)["KeyCount"] == 0
        branch = json.loads(outcomes["branch"]["output"])
        assert "register" not in branch
        history = sfn.get_execution_history(executionArn=executions["branch"][0])["events"]
        entered = [e["stateEnteredEventDetails"]["name"] for e in history if "stateEnteredEventDetails" in e]
        assert entered[-2:] == ["ShouldRegister", "NotRegistered"]
        packages = sm.list_model_packages(ModelPackageGroupName=cfg.registry.model_package_group)["ModelPackageSummaryList"]
        assert len(packages) == 1  # only the run that passed and registers

        training = sm.describe_training_job(TrainingJobName=executions["at-bounds"][1].TrainingJobName)
        hps = training["HyperParameters"]
        assert json.loads(hps["sagemaker_submit_directory"]) == executions["at-bounds"][1].SourceDirS3Uri
        assert json.loads(hps["sagemaker_program"]) == "train.py"


def test_a_rule_with_a_path_reads_it_in_the_gate_and_in_register(tmp_path):
    from mltp import definition

    text = (BASE / "config.yaml").read_text().replace(
        "  - metric: auc\n    min: 0.8", "  - metric: mse\n    max: 5\n    path: regression_metrics.mse.value\n"
                                        "  - metric: auc\n    min: 0.8")
    (tmp_path / "config.yaml").write_text(text)
    cfg = config_mod.load(tmp_path)
    d = definition.build_definition(cfg)
    paths = [rule["And"][0]["Variable"] for rule in d["States"]["Gate"]["Choices"][0]["And"]]
    assert paths == ["$.evaluation.report.regression_metrics.mse.value", "$.gate.values.auc.value"]
    metadata = d["States"]["Register"]["Parameters"]["CustomerMetadataProperties"]
    assert metadata["metric:mse.$"] == "States.Format('{}', $.evaluation.report.regression_metrics.mse.value)"
    assert metadata["metric:auc.$"] == "States.Format('{}', $.gate.values.auc.value)"


def test_training_metrics_are_passed_through_and_gated_by_name(rendered):
    """metric_definitions reach CreateTrainingJob as AlgorithmSpecification.MetricDefinitions
    (botocore's shape checks them in test_task_parameters_are_valid_api_requests); a rule
    with source: training reads its metric from FinalMetricDataList by name, through the
    Training task's ResultSelector, and Register records the value the Gate read."""
    cfg, d, _, _ = rendered["training metrics"]
    states = d["States"]
    training = states["Training"]
    assert training["Parameters"]["AlgorithmSpecification"]["MetricDefinitions"] == [
        {"Name": "train_loss", "Regex": r"train_loss=([0-9.eE+-]+)"},
        {"Name": "validation:auc", "Regex": r"validation auc: ([0-9.]+)"},
        {"Name": "train-acc", "Regex": r"acc=([0-9.]+)"}]
    assert training["ResultSelector"] == {
        "TrainingJobArn.$": "$.TrainingJobArn",
        "metrics": {"train_loss.$": "$..FinalMetricDataList[?(@.MetricName == 'train_loss')].Value",
                    "train-acc.$": "$..FinalMetricDataList[?(@.MetricName == 'train-acc')].Value"}}
    rules = states["Gate"]["Choices"][0]["And"]
    assert [rule["And"][0]["Variable"] for rule in rules] == [
        "$.gate.values.auc.value", "$.gate.values.false_positive_rate.value",
        "$.jobs.training.metrics.train_loss[0]", "$.jobs.training.metrics['train-acc'][0]"]
    assert rules[2]["And"][-1] == {"Variable": "$.jobs.training.metrics.train_loss[0]", "NumericLessThanEquals": 0.3}
    properties = states["Register"]["Parameters"]["CustomerMetadataProperties"]
    assert properties["metric:train-acc.$"] == "States.Format('{}', $.jobs.training.metrics['train-acc'][0])"
    # Without metric definitions nothing changes: no MetricDefinitions, the selector as before.
    _, plain, _, _ = rendered["example"]
    assert "MetricDefinitions" not in plain["States"]["Training"]["Parameters"]["AlgorithmSpecification"]
    assert plain["States"]["Training"]["ResultSelector"] == {"TrainingJobArn.$": "$.TrainingJobArn"}
