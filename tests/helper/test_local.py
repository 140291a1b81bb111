"""`mltp run REPO --local` end to end, as a user runs it: a subprocess that
starts the embedded emulator and runs the scripts as local processes.

The tiny model (tests/fixtures/tiny) is pure Python, so each run takes seconds;
its MODE variables make a step raise, miss an import, or write a bad
evaluation.json. The example model runs once, for real.

The situations the parity suite (test_parity.py) runs locally too are run once
per session and shared (local_runs.py): the tests here read the run the parity
suite compares with the state machine's, so what both check is one run.
"""

import json
import re
import shutil
import subprocess
import sys
import tarfile
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from local_runs import JENKINS_VARS, shared_run
from local_runs import run_local as _run_local

ROOT = Path(__file__).resolve().parents[2]
TINY = ROOT / "tests" / "fixtures" / "tiny"
EXAMPLE = ROOT / "examples" / "fraud-detection"
__all__ = ["JENKINS_VARS", "run_local", "tiny"]  # what test_local_registry.py and test_spot.py import


def run_local(repo: Path, *args: str, run_name: str = "local-test", timeout: int = 240):
    return _run_local(repo, *args, run_name=run_name, timeout=timeout)


def tiny(tmp_path: Path, **modes: str) -> Path:
    repo = tmp_path / "tiny"
    shutil.copytree(TINY, repo)
    text = (repo / "config.yaml").read_text()
    for step, mode in modes.items():
        text = re.sub(rf"(  {step}:\n(?:    .*\n)*?    environment: {{MODE: )ok}}", rf"\g<1>{mode}}}", text)
    (repo / "config.yaml").write_text(text)
    return repo


def test_tiny_model_passes_and_registers(tmp_path_factory):
    proc, error, report = shared_run(tmp_path_factory, "pass")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert error == ""
    for step in ("Preprocessing", "Training", "Evaluation", "Register"):
        assert re.search(rf"^\s+\+\d\d:\d\d\s+{step}\s+succeeded", proc.stdout, re.M), (step, proc.stdout)
    assert re.search(r"^auc\s+0\.93\s+>= 0\.9\s+pass", proc.stdout, re.M), proc.stdout
    assert re.search(r"^\s+\+\d\d:\d\d\s+Gate\s+passed\s+auc 0\.93 >= 0\.9$", proc.stdout, re.M), proc.stdout
    # Locally there is no AWS console to link to, and the definition's own states stay hidden.
    assert "http" not in proc.stdout.replace(re.search(r"emulator at (\S+)", proc.stdout).group(1), "")
    for internal in ("ReadEvaluation", "ShouldRegister", "Registered", "MetricGateFailed"):
        assert internal not in proc.stdout
    markdown = (report / "report.md").read_text()
    assert "unknown" not in markdown  # no placeholder text
    # no placeholder links: the only links are the job logs kept beside the report
    links = re.findall(r"\]\(([^)]*)\)", markdown)
    assert len(links) == 3 and all(re.fullmatch(r"logs/tiny-model-(prep|train|eval)-\w+\.log", x) for x in links), links
    assert all((report / x).is_file() for x in links)
    assert re.search(r"\| Started \| \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC \|", markdown), markdown
    assert [line.split(" | ")[0] for line in markdown.splitlines() if line.startswith("| ") and " | succeeded | " in line
            or " | passed | " in line] == ["| Preprocessing", "| Training", "| Evaluation", "| Gate", "| Register"]
    assert (report / "report.html").is_file()
    data = json.loads((report / "report.json").read_text())
    assert data["status"] == "passed" and data["exit_code"] == 0
    assert ":model-package/tiny-model/1" in json.dumps(data)
    cases = ET.parse(report / "junit.xml").getroot().iter("testcase")
    assert [c.get("name") for c in cases] == ["auc >= 0.9"] or len(list(ET.parse(report / "junit.xml").getroot().iter("testcase"))) == 1
    assert "PASSED" in (report / "summary.txt").read_text()
    evaluation = json.loads((report / "evaluation.json").read_text())
    assert evaluation["metrics"]["auc"]["value"] == 0.93
    with tarfile.open(report / "model.tar.gz") as tar:
        assert json.load(tar.extractfile("model.json")) == {"score": 0.93}


def test_missed_gate_exits_3_naming_metric_value_and_rule(tmp_path_factory):
    """The training score set to 0.42 in config.yaml (local_runs.SITUATIONS)."""
    proc, error, report = shared_run(tmp_path_factory, "gate missed")
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert "auc" in error and "0.42" in error and ">= 0.9" in error
    assert re.search(r"^\s+\+\d\d:\d\d\s+Gate\s+failed\s+auc 0\.42 < 0\.9$", proc.stdout, re.M), proc.stdout
    assert "MetricGateFailed" not in proc.stdout + proc.stderr
    assert json.loads((report / "report.json").read_text())["status"] == "gate_failed"
    failures = list(ET.parse(report / "junit.xml").getroot().iter("failure"))
    assert len(failures) == 1


def test_a_script_that_raises_exits_4_with_its_last_lines(tmp_path_factory):
    proc, error, report = shared_run(tmp_path_factory, "failing script")
    assert proc.returncode == 4, proc.stdout + proc.stderr
    assert "Training" in error and "train.py" in error
    assert "ValueError: training broke on purpose" in proc.stdout + proc.stderr
    assert (proc.stdout + proc.stderr).count("Traceback (most recent call last)") == 1  # the script's, from its log, once
    # The last line names the step, the script and the exception; so do summary.txt and the error file.
    last = (proc.stdout + proc.stderr).strip().splitlines()[-1]
    assert last == "mltp: run failed at Training: train.py: ValueError: training broke on purpose", last
    assert error.strip() == "run failed at Training: train.py: ValueError: training broke on purpose"
    summary = (report / "summary.txt").read_text()
    assert summary == "tiny-model run local-test: FAILED: run failed at Training: train.py: ValueError: training broke on purpose\n"
    # The log's paths into the repo are relative to it (the toolkit's own log names the environment's
    # interpreter in the helper's cache, as on AWS it names the container's).
    assert str(report.parents[2]) not in (report / "report.md").read_text()
    assert "sagemaker-training-toolkit" in (report / "report.md").read_text()
    assert (report / "report.json").exists()
    # `mltp logs --local` reads the same run back from the files it kept.
    repo = report.parents[2]
    logs = subprocess.run([sys.executable, "-m", "mltp.cli", "logs", ".", "--local"], cwd=repo,
                          capture_output=True, text=True, timeout=60)
    assert logs.returncode == 0, logs.stderr
    assert logs.stdout.startswith("logs of local run local-test (failed): ")
    training = [line.split("| ", 1)[1] for line in logs.stdout.splitlines() if line.split("|", 1)[0].split()[-1:] == ["Training"]]
    assert "ValueError: training broke on purpose" in training and training[-1] == "failed"
    assert any(line.endswith("Preprocessing  | succeeded") for line in logs.stdout.splitlines())


def test_a_missing_import_names_the_package(tmp_path_factory):
    """The repo held six earlier runs' job folders before this run (local_runs.SITUATIONS)."""
    proc, error, report = shared_run(tmp_path_factory, "missing package")
    work = report.parents[2] / ".mltp" / "work"
    assert proc.returncode == 4
    assert "xgboost_not_installed_here" in error and "not installed" in error
    # .mltp/work/ keeps the last 5 runs, this one included.
    assert sorted(p.name for p in work.iterdir()) == ["local-test", "old-2", "old-3", "old-4", "old-5"]


def test_a_requirements_txt_that_does_not_install_fails_the_first_step_naming_it(tmp_path_factory):
    """As on AWS, where mltp's processing entry installs it before preprocessing.py:
    exit 4, one line naming requirements.txt and pip's reason."""
    proc, error, _ = shared_run(tmp_path_factory, "requirements.txt that fails to install")
    assert proc.returncode == 4, proc.stdout + proc.stderr
    assert "local: requirements.txt did not install" in proc.stdout  # said while the environment was built
    assert error.startswith("run failed at Preprocessing: "), error
    # The line the job's log gives, as on AWS (the parity suite holds both to it).
    assert error.startswith("run failed at Preprocessing: requirements.txt failed to install (pip exited with code 1: "
                            "ERROR: No matching distribution found for mltp-no-such-package-anywhere==0.0.1)"), error
    assert error.count("\n") <= 1


def test_no_evaluation_json_exits_4_naming_the_file(tmp_path):
    proc, error, _ = run_local(tiny(tmp_path, evaluation="no-json"))
    assert proc.returncode == 4, proc.stdout + proc.stderr
    assert "evaluation.py wrote no evaluation.json" in error


def test_a_metric_that_is_not_a_number_fails_the_gate_as_on_aws(tmp_path_factory):
    """{"auc": {"value": "high"}}: the state machine's Gate (IsNumeric) fails it,
    so the local run does too: exit 3 naming the value, not a job failure."""
    proc, error, report = shared_run(tmp_path_factory, "metric not a number")
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert re.search(r"^auc\s+not a number\s+>= 0\.9\s+FAIL", proc.stdout, re.M), proc.stdout
    assert 'auc "high" is not a number (needs >= 0.9)' in error, error
    assert json.loads((report / "report.json").read_text())["status"] == "gate_failed"


def test_a_train_py_that_writes_no_model_exits_4_and_registers_nothing(tmp_path_factory):
    proc, error, report = shared_run(tmp_path_factory, "empty model")
    assert proc.returncode == 4, proc.stdout + proc.stderr
    assert "the training script wrote no model: model.tar.gz holds no file" in error, error
    data = json.loads((report / "report.json").read_text())
    assert data["status"] != "passed" and ":model-package/" not in json.dumps(data)


def test_an_oversized_evaluation_json_names_the_file_and_the_limit(tmp_path):
    proc, error, _ = run_local(tiny(tmp_path, evaluation="huge-json"))
    assert proc.returncode == 4, proc.stdout + proc.stderr
    assert re.search(r"evaluation\.json written by evaluation\.py is \d+ bytes, over the limit of 128 KiB", error), error


def test_invalid_config_exits_2_before_starting_anything(tmp_path):
    repo = tiny(tmp_path)
    path = repo / "config.yaml"
    path.write_text(path.read_text().replace("min: 0.9", "minimum: 0.9"))
    proc, error, report = run_local(repo)
    assert proc.returncode == 2
    assert error.startswith("config.yaml:19: gate[0]: a rule needs min, max or both (and 1 more problem)")
    assert "emulator" not in proc.stdout
    assert not report.exists()


def test_the_example_model_runs_locally(tmp_path):
    repo = tmp_path / "fraud-detection"
    shutil.copytree(EXAMPLE, repo, ignore=shutil.ignore_patterns(".mltp"))
    proc, error, report = run_local(repo, run_name="example", timeout=600)  # scikit-learn: minutes on a loaded machine
    assert proc.returncode == 0, proc.stdout + proc.stderr
    data = json.loads((report / "report.json").read_text())
    assert data["status"] == "passed"
    assert {"report.md", "junit.xml", "summary.txt", "model.tar.gz", "evaluation.json"} <= {p.name for p in report.iterdir()}


SAGEMAKER_STYLE = ROOT / "tests" / "fixtures" / "sagemaker-style"


def test_metric_definitions_read_the_training_log_and_gate_the_run(tmp_path):
    """A training script that prints its metrics, as scripts written for SageMaker's
    estimators with metric_definitions do (tests/fixtures/sagemaker-style/metric-definitions):
    the last value of each is in the report, and the gate rule with source: training
    reads it (Gate line, gate table, report.json)."""
    repo = tmp_path / "metric-definitions"
    shutil.copytree(SAGEMAKER_STYLE / "metric-definitions", repo)
    proc, error, report = run_local(repo)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    log = next((report / "logs").glob("metric-lines-train-*.log")).read_text()
    # The expected values, read from the job's log here independently: the last match of each.
    expected = {"train_loss": float(re.findall(r"train_loss=([0-9.]+);", log)[-1]),
                "validation:accuracy": float(re.findall(r"validation:accuracy=([0-9.]+)", log)[-1]),
                "validation:f1": float(re.findall(r"validation f1: ([0-9.]+)", log)[-1])}
    assert len(re.findall(r"train_loss=", log)) == 4  # one per epoch: the last one counts
    data = json.loads((report / "report.json").read_text())
    assert data["training_metrics"] == [{"name": name, "value": value} for name, value in expected.items()]
    assert data["gate"][1] == {"metric": "train_loss", "rule": "<= 0.45", "value": expected["train_loss"], "passed": True}
    assert re.search(rf"^\s+\+\d\d:\d\d\s+Gate\s+passed\s+accuracy [0-9.]+ >= 0\.7, train_loss {expected['train_loss']:g} "
                     rf"<= 0\.45$", proc.stdout, re.M), proc.stdout
    markdown = (report / "report.md").read_text()
    assert "## Training metrics" in markdown and f"| validation:f1 | {expected['validation:f1']:.4g} |" in markdown
    assert "metric.train_loss=" + repr(expected["train_loss"]) in (report / "outcome.txt").read_text()
