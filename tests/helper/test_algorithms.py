"""Built-in algorithms (steps.training.algorithm, mltp/algorithms): the image
table against the SageMaker SDK's own lookup, what validate refuses, the
hyperparameter checks of the built-in XGBoost algorithm, and the training job
rendered for AWS (checked against botocore's CreateTrainingJob shape)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import asl
from mltp import algorithms
from mltp import config as config_mod
from mltp.algorithms import images, xgboost_algorithm
from mltp.errors import InvalidInput

ROOT = Path(__file__).resolve().parents[2]
FIXTURE = ROOT / "tests" / "fixtures" / "builtin-xgboost"


def _config(tmp_path, change=None) -> Path:
    data = yaml.safe_load((FIXTURE / "config.yaml").read_text())
    if change:
        change(data)
    repo = tmp_path / "repo"
    repo.mkdir(exist_ok=True)
    for name in ("preprocessing.py", "evaluation.py"):
        (repo / name).write_bytes((FIXTURE / name).read_bytes())
    (repo / "config.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    return repo


def _problems(tmp_path, change):
    with pytest.raises(InvalidInput) as info:
        config_mod.load(_config(tmp_path, change))
    return info.value.details


def _training(data):
    return data["steps"]["training"]


# --------------------------------------------------------------------------- the image table


def test_the_image_table_gives_what_the_sdk_gives(monkeypatch):
    """Every version and region of the SDK's xgboost table, both scopes: the
    table here (read without importing the SDK) answers as retrieve does."""
    os.environ.setdefault("SAGEMAKER_SUPPRESS_V2_WARNING", "1")
    import functools

    from sagemaker import image_uris, utils

    # The SDK reads botocore's endpoint file on every call: read once, same answers.
    monkeypatch.setattr(utils, "_botocore_resolver", functools.lru_cache(maxsize=None)(utils._botocore_resolver))

    config = image_uris.config_for_framework("xgboost")
    checked = 0
    for scope in ("training", "inference"):
        table = config[scope]["versions"]
        assert sorted(table) == sorted(images.versions("xgboost")), "regenerate: python -m mltp.algorithms.images"
        for version, entry in table.items():
            assert sorted(entry["registries"]) == images.regions("xgboost", version), version
            for region in entry["registries"]:
                expected = image_uris.retrieve("xgboost", region, version=version, image_scope=scope)
                assert images.uri("xgboost", version, region) == expected, (scope, version, region)
                checked += 1
    assert checked > 500
    assert algorithms.image_uri("xgboost", "1.7-1", "eu-west-1") == \
        "141502667606.dkr.ecr.eu-west-1.amazonaws.com/sagemaker-xgboost:1.7-1"
    assert algorithms.image_uri("xgboost", "1.0-1", "cn-north-1").endswith(
        ".dkr.ecr.cn-north-1.amazonaws.com.cn/sagemaker-xgboost:1.0-1-cpu-py3")


def test_the_lookup_does_not_import_the_sdk():
    code = ("import sys; from mltp import algorithms; "
            "print(algorithms.image_uri('xgboost', '1.5-1', 'us-east-1')); "
            "print('sagemaker' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.5-1", "False"]


def test_an_image_names_its_algorithm_and_version():
    found = algorithms.from_image(algorithms.image_uri("xgboost", "1.2-2", "ap-northeast-2"))
    assert found is not None and found[0].name == "xgboost" and found[1] == "1.2-2"
    assert algorithms.from_image("683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.2-1") is None
    assert "1" not in algorithms.get("xgboost").versions  # the older closed algorithm


# --------------------------------------------------------------------------- validate


def test_the_fixture_loads_without_a_script(tmp_path):
    cfg = config_mod.load(_config(tmp_path))
    training = cfg.steps.training
    assert training.algorithm == "xgboost" and training.script == ""
    assert (training.framework, training.framework_version) == ("xgboost", "1.7-1")


def test_the_version_defaults_to_the_algorithms(tmp_path):
    cfg = config_mod.load(_config(tmp_path, lambda d: _training(d).pop("framework_version")))
    assert cfg.steps.training.framework_version == algorithms.get("xgboost").default_version


def test_validate_refuses_an_algorithm_with_a_script(tmp_path):
    details = _problems(tmp_path, lambda d: _training(d).update(script="train.py"))
    assert len(details) == 1 and ": steps.training.script: " in details[0] and "not both" in details[0]
    assert details[0].startswith(str(Path("repo") / "config.yaml")) or "config.yaml:" in details[0]


def test_validate_refuses_an_unknown_algorithm(tmp_path):
    details = _problems(tmp_path, lambda d: _training(d).update(algorithm="xgbost"))
    assert any("steps.training.algorithm: must be one of xgboost" in line and "xgbost" in line for line in details)


def test_validate_refuses_a_version_the_algorithm_has_not(tmp_path):
    details = _problems(tmp_path, lambda d: _training(d).update(framework_version="1.7-9"))
    assert len(details) == 1
    assert "steps.training.framework_version: the built-in algorithm 'xgboost' has no version '1.7-9'" in details[0]
    details = _problems(tmp_path, lambda d: _training(d).update(framework_version="1"))
    assert "has no version '1'" in details[0]


def test_validate_refuses_other_frameworks_and_images_beside_an_algorithm(tmp_path):
    details = _problems(tmp_path, lambda d: _training(d).update(framework="sklearn"))
    assert any("steps.training.framework:" in line and "own xgboost image" in line for line in details)
    image = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/mine:1"
    details = _problems(tmp_path, lambda d: _training(d).update(image_uri=image))
    assert any("steps.training.image_uri:" in line for line in details)


def test_validate_checks_the_hyperparameters_at_their_lines(tmp_path):
    def change(d):
        _training(d)["hyperparameters"].update(eta=1.5, colour="red", max_depth="deep")

    details = _problems(tmp_path, change)
    text = "\n".join(details)
    assert "steps.training.hyperparameters.eta: 1.5 is not in [0, 1]" in text
    assert "steps.training.hyperparameters.colour: is not a hyperparameter of the built-in XGBoost algorithm" in text
    assert "steps.training.hyperparameters.max_depth: must be a whole number, not 'deep'" in text
    assert all(line.split(":")[1].isdigit() for line in details), details  # file:line: key: ...


def test_validate_needs_num_round(tmp_path):
    details = _problems(tmp_path, lambda d: _training(d)["hyperparameters"].pop("num_round"))
    assert len(details) == 1 and "steps.training.hyperparameters: " in details[0] and "num_round" in details[0]


def test_validate_exits_2_naming_file_line_and_key(tmp_path):
    repo = _config(tmp_path, lambda d: _training(d).update(script="train.py"))
    proc = subprocess.run([sys.executable, "-m", "mltp.cli", "validate", str(repo)], capture_output=True, text=True)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "config.yaml:" in proc.stderr and "steps.training.script" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.parametrize("hyperparameters, expected", [
    ({"num_round": 10}, []),
    ({"num_round": "10", "learning_rate": "0.1", "reg_lambda": 2}, []),
    ({"num_round": 0}, [("num_round", "0 is not in [1, inf)")]),
    ({"num_round": 2.5}, [("num_round", "must be a whole number, not '2.5'")]),
    ({"num_round": 5, "subsample": 0}, [("subsample", "0 is not in (0, 1]")]),
    ({"num_round": 5, "objective": "reg:nonsense"}, [("objective", "'reg:nonsense' is not one of aft_loss_distribution, "
                                                    + ", ".join(xgboost_algorithm.OBJECTIVES[1:]))]),
    ({"num_round": 5, "objective": "multi:softprob"}, [("objective", "multi:softprob needs the hyperparameter num_class")]),
    ({"num_round": 5, "num_class": 3}, [("num_class", "is only used with a multi-class objective (multi:softmax, multi:softprob)")]),
    ({"num_round": 5, "eval_metric": "rmse,auc"}, [("eval_metric", "auc needs a binary: or rank: objective")]),
    ({"num_round": 5, "objective": "binary:logistic", "eval_metric": "auc,error@0.7,f1"}, []),
    ({"num_round": 5, "eval_metric": "rmse@2"}, [("eval_metric", "'rmse@2': only error, ndcg and map take a threshold '@t'")]),
    ({"num_round": 5, "eta": 0.1, "learning_rate": 0.2}, [("learning_rate", "sets eta a second time (it is an alias of eta)")]),
    ({"num_round": 5, "save_model_on_termination": True}, []),
    ({"num_round": 5, "monotone_constraints": "(1,-1)"}, [("monotone_constraints", "needs tree_method exact or hist")]),
    ({"eta": 0.1}, [("", "the built-in XGBoost algorithm needs the hyperparameter num_round")]),
])
def test_hyperparameter_checks(hyperparameters, expected):
    assert xgboost_algorithm.hyperparameter_problems(hyperparameters) == expected


def test_checked_values_are_typed_and_aliases_resolved():
    typed, problems = xgboost_algorithm.check({"num_round": "12", "learning_rate": "0.25", "max_depth": "4",
                                               "objective": "binary:logistic"})
    assert problems == []
    assert typed == {"num_round": 12, "eta": 0.25, "max_depth": 4, "objective": "binary:logistic"}


# --------------------------------------------------------------------------- rendered for AWS


def test_the_training_job_runs_the_algorithm_image_in_algorithm_mode(tmp_path):
    from mltp import definition
    from test_definition import EXECUTION_ID, sample_input, sample_state

    def change(d):
        _training(d)["hyperparameters"].update(save_model_on_termination=False)
        d["gate"] = [{"metric": "mse", "max": 0.5}]  # where sample_state puts the metrics

    cfg = config_mod.load(_config(tmp_path, change))
    rendered = json.loads(definition.render(cfg))
    training = rendered["States"]["Training"]["Parameters"]
    assert training["AlgorithmSpecification"] == {
        "TrainingImage": "141502667606.dkr.ecr.eu-west-1.amazonaws.com/sagemaker-xgboost:1.7-1",
        "TrainingInputMode": "File"}
    assert training["HyperParameters"] == {"objective": "reg:squarederror", "num_round": "40", "max_depth": "3",
                                           "eta": "0.3", "eval_metric": "rmse", "save_model_on_termination": "false"}
    assert not any(name.startswith("sagemaker_") for name in training["HyperParameters"])
    assert [c["ChannelName"] for c in training["InputDataConfig"]] == ["train", "validation"]
    container = rendered["States"]["Register"]["Parameters"]["InferenceSpecification"]["Containers"][0]
    assert container["Image"] == training["AlgorithmSpecification"]["TrainingImage"]
    assert "Environment" not in container  # no script to serve with: the algorithm's own serving
    ctx = asl.context(sample_input(cfg), EXECUTION_ID, sample_state(cfg))
    for state, task in asl.task_states(rendered):
        params = asl.resolve(task["Parameters"], ctx)
        assert asl.api_errors(task["Resource"], params) == [], f"{state}:\n{asl.dumps(params)}"
