"""Container paths in config.yaml (docs/contract.md, 2.3): inputs[].destination,
steps.preprocessing.outputs, steps.evaluation.model_destination, test_destination
and output. Validation (the hostile cases are in tests/fixtures/invalid/path-*),
the typed config, and the rendered definition: the jobs' LocalPaths and the
MLTP_* variables follow the config, and a config that spells out the defaults
renders the very bytes of one that leaves them out."""

import copy
import json
from pathlib import Path

import pytest
import yaml

import asl
from mltp import config as config_mod
from mltp import definition
from mltp.errors import InvalidInput

ROOT = Path(__file__).resolve().parents[2]
LITERAL = ROOT / "tests" / "fixtures" / "literal-paths"
EXAMPLE = ROOT / "examples" / "fraud-detection"

DEFAULTS = {
    "preprocessing": {"outputs": {"train": "/opt/ml/processing/output/train",
                                  "validation": "/opt/ml/processing/output/validation",
                                  "test": "/opt/ml/processing/output/test"}},
    "evaluation": {"model_destination": "/opt/ml/processing/model",
                   "test_destination": "/opt/ml/processing/input/test",
                   "output": "/opt/ml/processing/output"},
}


def _repo(tmp_path: Path, data: dict, source: Path = EXAMPLE) -> Path:
    repo = tmp_path / "repo"
    if not repo.exists():
        import shutil

        shutil.copytree(source, repo, ignore=lambda d, names: [n for n in names if n == ".mltp"])
    (repo / "config.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    return repo


def _example() -> dict:
    return yaml.safe_load((EXAMPLE / "config.yaml").read_text())


def test_defaults_are_todays_paths(tmp_path):
    cfg = config_mod.load(EXAMPLE)
    pre, ev = cfg.steps.preprocessing, cfg.steps.evaluation
    assert pre.outputs == DEFAULTS["preprocessing"]["outputs"]
    assert (ev.model_destination, ev.test_destination, ev.output) == tuple(DEFAULTS["evaluation"].values())
    assert definition.container_paths(pre) == DEFAULTS["preprocessing"]["outputs"]
    assert definition.container_paths(ev) == {"model": "/opt/ml/processing/model", "test": "/opt/ml/processing/input/test",
                                              "output": "/opt/ml/processing/output"}
    data = _example()
    data["steps"]["preprocessing"]["inputs"] = [{"name": "raw", "source": "s3://mlops-data/raw/"}]
    (item,) = config_mod.load(_repo(tmp_path, data)).steps.preprocessing.inputs
    assert (item.destination, item.path, item.local) == ("/opt/ml/processing/input/raw", "/opt/ml/processing/input/raw", None)


def test_spelled_out_defaults_render_the_same_bytes(tmp_path):
    """A default config renders as before this feature: spelling every default
    out changes nothing, and test_definition pins those defaults' values."""
    plain = _example()
    plain["steps"]["preprocessing"]["inputs"] = [{"name": "raw", "source": "s3://mlops-data/raw/"}]
    spelled = copy.deepcopy(plain)
    spelled["steps"]["preprocessing"]["inputs"][0]["destination"] = "/opt/ml/processing/input/raw"
    for role, values in DEFAULTS.items():
        spelled["steps"][role].update(copy.deepcopy(values))
    first = definition.render_fresh(config_mod.load(_repo(tmp_path / "a", plain)))
    second = definition.render_fresh(config_mod.load(_repo(tmp_path / "b", spelled)))
    assert first == second
    moved = copy.deepcopy(spelled)
    moved["steps"]["evaluation"]["output"] = "/opt/ml/processing/evaluation"
    assert definition.render_fresh(config_mod.load(_repo(tmp_path / "c", moved))) != first


@pytest.fixture(scope="module")
def literal():
    cfg = config_mod.load(LITERAL)
    return cfg, json.loads(definition.render_fresh(cfg))


def test_the_jobs_use_the_configured_paths(literal):
    _, d = literal
    p = d["States"]["Preprocessing"]["Parameters"]
    inputs = [(i["InputName"], i["S3Input"]["LocalPath"]) for i in p["ProcessingInputs"]]
    assert inputs == [("code", "/opt/ml/processing/input/code"), ("points", "/opt/ml/processing/data")]
    outputs = {o["OutputName"]: o["S3Output"]["LocalPath"] for o in p["ProcessingOutputConfig"]["Outputs"]}
    assert outputs == {"train": "/opt/ml/processing/train", "validation": "/opt/ml/processing/validation",
                       "test": "/opt/ml/processing/test"}
    assert p["Environment"] == {"MLTP_INPUT_DIR": "/opt/ml/processing/input", "MLTP_OUTPUT_DIR": "/opt/ml/processing/output"}
    e = d["States"]["Evaluation"]["Parameters"]
    inputs = {i["InputName"]: i["S3Input"]["LocalPath"] for i in e["ProcessingInputs"]}
    assert inputs == {"code": "/opt/ml/processing/input/code", "model": "/opt/ml/processing/model",
                      "test": "/opt/ml/processing/test"}
    (out,) = e["ProcessingOutputConfig"]["Outputs"]
    assert out["S3Output"]["LocalPath"] == "/opt/ml/processing/evaluation"
    # The guard finds evaluation.json and model.tar.gz through these (evaluation_guard).
    assert e["Environment"]["MLTP_OUTPUT_DIR"] == "/opt/ml/processing/evaluation"
    assert e["Environment"]["MLTP_MODEL_DIR"] == "/opt/ml/processing/model"


def test_the_requests_with_configured_paths_are_valid_api_calls(literal):
    cfg, d = literal
    from test_definition import EXECUTION_ID, sample_input, sample_state

    ctx = asl.context(sample_input(cfg), EXECUTION_ID, sample_state(cfg))
    for state, task in asl.task_states(d):
        params = asl.resolve(task["Parameters"], ctx)
        assert asl.api_errors(task["Resource"], params) == [], f"{state}:\n{asl.dumps(params)}"


@pytest.mark.parametrize("change, key, message", [
    (lambda s: s["evaluation"].update(test_destination="/opt/ml/processing/model"), "steps.evaluation.test_destination",
     "is the same folder as steps.evaluation.model_destination"),
    (lambda s: s["preprocessing"].update(outputs={"train": "/opt/ml/processing/input/code/train", "test": None}),
     "steps.preprocessing.outputs.train", "lies inside the code folder /opt/ml/processing/input/code"),
    (lambda s: s["preprocessing"].update(outputs={"train": "/opt/ml/processing/input", "test": None}),
     "steps.preprocessing.outputs.train", "contains the code folder /opt/ml/processing/input/code"),
    (lambda s: s["preprocessing"].update(inputs=[
        {"name": "a", "source": "s3://mlops-data/a/", "destination": "/opt/ml/processing/input"},
        {"name": "b", "source": "s3://mlops-data/b/"}]),
     "steps.preprocessing.inputs[0].destination", "contains steps.preprocessing.inputs[1].destination"),
    (lambda s: s["preprocessing"].update(outputs={"train": None, "test": "/opt/ml/processing/output"}),
     "steps.preprocessing.outputs.test", "contains steps.preprocessing.outputs.train"),
    (lambda s: s["evaluation"].update(output="/opt/ml/processing/./evaluation"), "steps.evaluation.output",
     "must be a normalised path"),
    (lambda s: s["evaluation"].update(model_destination="/opt/ml/processing"), "steps.evaluation.model_destination",
     "must be an absolute path under /opt/ml/processing/"),
    (lambda s: s["evaluation"].update(model_destination="/opt/ml/processingx/model"), "steps.evaluation.model_destination",
     "must be an absolute path under /opt/ml/processing/"),
    (lambda s: s["training"].update(output="/opt/ml/processing/x"), "steps.training.output", "unknown key 'output'"),
])
def test_bad_paths_exit_2_naming_file_line_and_key(tmp_path, change, key, message):
    data = _example()
    change(data["steps"])
    with pytest.raises(InvalidInput) as raised:
        config_mod.load(_repo(tmp_path, data))
    assert raised.value.exit_code == 2
    (line,) = raised.value.details
    assert line.startswith("config.yaml:") or ":" in line.split(" ")[0]
    where, rest = line.split(": ", 1)
    assert where.rsplit(":", 1)[1].isdigit(), line  # file:line
    assert rest.startswith(key + ": ") and message in rest, line


def test_an_input_may_hold_the_code_folder_as_on_sagemaker(tmp_path):
    """SKLearnProcessor scripts read `/opt/ml/processing/input/<file>`: the input's
    folder holds the code folder, as SageMaker's own processors arrange it."""
    data = _example()
    data["steps"]["preprocessing"]["inputs"] = [
        {"name": "raw", "source": "s3://mlops-data/raw/", "destination": "/opt/ml/processing/input"}]
    cfg = config_mod.load(_repo(tmp_path, data))
    assert cfg.steps.preprocessing.inputs[0].destination == "/opt/ml/processing/input"


def test_paths_of_different_steps_may_coincide(tmp_path):
    """Each job has its own container: only folders of one step must be apart."""
    data = _example()
    data["steps"]["preprocessing"]["outputs"] = {"train": None, "test": "/opt/ml/processing/test"}
    data["steps"]["evaluation"]["test_destination"] = "/opt/ml/processing/test"
    cfg = config_mod.load(_repo(tmp_path, data))
    assert cfg.steps.preprocessing.outputs["test"] == cfg.steps.evaluation.test_destination


def test_values_of_a_config_outside_the_repo_are_not_echoed(tmp_path):
    data = _example()
    data["steps"]["evaluation"]["output"] = "/opt/ml/processing/secret-name/../x"
    repo = _repo(tmp_path, _example())
    outside = tmp_path / "elsewhere.yaml"
    outside.write_text(yaml.safe_dump(data))
    with pytest.raises(InvalidInput) as raised:
        config_mod.load(repo, str(outside))
    text = "\n".join(raised.value.lines())
    assert "steps.evaluation.output" in text and "secret-name" not in text
