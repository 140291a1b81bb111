"""examples/house-prices: scripts written for SageMaker run under mltp unchanged.

Its preprocessing and evaluation scripts read and write SageMaker's literal
/opt/ml/processing paths, evaluation.json is in SageMaker's model-quality
format, and evaluation.py imports a package only requirements.txt provides.
The test renders it for AWS and runs it locally, end to end, as a user does.
"""

import json
import shutil
import subprocess
import sys
from pathlib import Path


from mltp import config as config_module
from mltp import definition

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "house-prices"
SCRIPTS = ("preprocessing.py", "train.py", "evaluation.py")


def test_the_scripts_know_nothing_of_mltp():
    for name in SCRIPTS:
        text = (EXAMPLE / name).read_text()
        assert "MLTP_" not in text and "mltp" not in text.lower(), name
    for name in ("preprocessing.py", "evaluation.py"):
        assert '"/opt/ml/processing"' in (EXAMPLE / name).read_text(), name
    assert "regression_metrics" in (EXAMPLE / "evaluation.py").read_text()
    assert "tabulate" in (EXAMPLE / "requirements.txt").read_text()


def _states(cfg):
    return json.loads(definition.render(cfg))["States"]


def _walk(value):
    if isinstance(value, dict):
        yield value
        for item in value.values():
            yield from _walk(item)
    elif isinstance(value, list):
        for item in value:
            yield from _walk(item)


def test_rendered_for_aws_the_jobs_use_the_configured_paths():
    cfg = config_module.load(EXAMPLE)
    states = _states(cfg)
    requests = [s["Parameters"] for s in _walk(states) if isinstance(s.get("Parameters"), dict)
                and "ProcessingInputs" in s["Parameters"]]
    local_paths = {i["S3Input"]["LocalPath"] for r in requests for i in r["ProcessingInputs"] if "S3Input" in i}
    assert {"/opt/ml/processing/input/houses", "/opt/ml/processing/model", "/opt/ml/processing/test"} <= local_paths
    outputs = {o["S3Output"]["LocalPath"] for r in requests for o in r["ProcessingOutputConfig"]["Outputs"]}
    assert {"/opt/ml/processing/train", "/opt/ml/processing/validation", "/opt/ml/processing/test",
            "/opt/ml/processing/evaluation"} <= outputs
    text = json.dumps(states)
    assert "regression_metrics" in text  # the gate reads SageMaker's model-quality keys


def test_it_runs_locally_unchanged(tmp_path):
    repo = tmp_path / "house-prices"
    shutil.copytree(EXAMPLE, repo, ignore=shutil.ignore_patterns(".mltp"))
    before = {name: (repo / name).read_bytes() for name in SCRIPTS}
    proc = subprocess.run([sys.executable, "-m", "mltp.cli", "run", ".", "--local", "--run-name", "example"],
                          cwd=repo, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = repo / ".mltp" / "runs" / "example"
    data = json.loads((report / "report.json").read_text())
    assert data["status"] == "passed", data
    evaluation = json.loads((report / "evaluation.json").read_text())
    assert evaluation["regression_metrics"]["mse"]["value"] < 700
    assert evaluation["regression_metrics"]["r2"]["value"] >= 0.95
    logs = "\n".join(p.read_text() for p in (report / "logs").glob("*.log"))
    assert "metric" in logs and "r2" in logs  # evaluation.py's tabulate table: requirements.txt was installed
    assert {name: (repo / name).read_bytes() for name in SCRIPTS} == before
