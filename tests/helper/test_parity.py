"""Parity suite (issue 10, item 7): for each case, a local run and the same
model run as on AWS end with the same exit code and the same one-line message.

- local: `mltp run . --local`, as a user runs it (a subprocess); the line is
  what it writes to MLTP_ERROR_FILE (the Jenkins step's error line);
- AWS: the rendered state machine on moto's ASL interpreter, through the AWS
  command path, with SageMaker's jobs reporting failures as SageMaker does
  (parity_aws.py says how); the line is the one the CLI would write.

The tiny model (tests/fixtures/tiny) picks each case through its MODE variables;
cases it has no mode for edit the copy's config or evaluation.py.
"""

import json
import os
import re
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TINY = ROOT / "tests" / "fixtures" / "tiny"
HERE = Path(__file__).resolve().parent
JENKINS_VARS = ("BRANCH_NAME", "CHANGE_ID", "BRANCH_IS_PRIMARY", "BUILD_TAG", "BUILD_URL", "GIT_COMMIT",
                "AWS_ENDPOINT_URL", "MLTP_RUN_NAME", "MLTP_CONFIG", "MLTP_REPORT_DIR", "MLTP_ERROR_FILE")

# An evaluation.py mode the fixture lacks: a file that is not JSON at all.
_NOT_JSON = '''elif mode == "not-json":
    with open(os.path.join(out, "evaluation.json"), "w") as f:
        f.write("{'metrics': oops")
elif mode == "infinite":  # valid JSON that every parser reads as Infinity
    with open(os.path.join(out, "evaluation.json"), "w") as f:
        f.write('{"metrics": {"auc": {"value": 1e999}}}')
elif mode == "model-quality":
    with open(os.path.join(out, "evaluation.json"), "w") as f:
        json.dump({"regression_metrics": {"mse": {"value": 4.3}}, "binary_classification_metrics": {
            "auc": {"value": model["score"]}, "confusion_matrix": {"0": {"0": 1}}}}, f)
'''


def _set_mode(text: str, step: str, mode: str) -> str:
    return re.sub(rf"(  {step}:\n(?:    .*\n)*?    environment: {{MODE: )ok}}", rf"\g<1>{mode}}}", text)


def _repo(tmp: Path, name: str, modes=None, config_edit=None, requirements=None) -> Path:
    repo = tmp / name / "tiny"
    shutil.copytree(TINY, repo)
    evaluation = repo / "evaluation.py"
    evaluation.write_text(evaluation.read_text().replace("else:\n", _NOT_JSON + "else:\n", 1))
    text = (repo / "config.yaml").read_text()
    for step, mode in (modes or {}).items():
        text = _set_mode(text, step, mode)
    if config_edit:
        text = config_edit(text)
    (repo / "config.yaml").write_text(text)
    if requirements is not None:
        (repo / "requirements.txt").write_text(requirements)
    return repo


def _training_metric(regex: str, bound: str):
    """A config edit: tiny's train.py prints `train_loss=<1 - score>` last (0.07); the gate
    reads it from the training job's metrics (steps.training.metric_definitions)."""
    def edit(text: str) -> str:
        text = text.replace("    hyperparameters: {score: 0.93, label: tiny}\n",
                            "    hyperparameters: {score: 0.93, label: tiny}\n    metric_definitions:\n"
                            f"      - {{name: train_loss, regex: '{regex}'}}\n", 1)
        return text + f"  - metric: train_loss\n    source: training\n    {bound}\n"
    return edit


# (case, tiny modes, config edit, requirements.txt, expected exit code, a part of the message)
CASES = [
    ("pass", {}, None, None, 0, ""),
    ("gate missed", {}, lambda t: t.replace("score: 0.93", "score: 0.42"), None, 3, "auc = 0.42, needs >= 0.9"),
    ("metric missing", {}, lambda t: t.replace("metric: auc", "metric: roc_auc"), None, 3, "missing"),
    ("metric not a number", {"evaluation": "bad-json"}, None, None, 3, '"high" is not a number'),
    ("malformed evaluation.json", {"evaluation": "not-json"}, None, None, 4, "not valid JSON"),
    ("metric 1e999 (Infinity)", {"evaluation": "infinite"}, None, None, 3, "Infinity is not a finite number"),
    ("failing script", {"training": "raise"}, None, None, 4, "ValueError: training broke on purpose"),
    ("missing package", {"preprocessing": "missing-import"}, None, None, 4, "xgboost_not_installed_here"),
    ("requirements.txt that fails to install", {}, None, "mltp-parity-no-such-package==0.0.0\n", 4,
     "requirements.txt"),
    ("empty model", {"training": "no-model"}, None, None, 4, "the training script wrote no model"),
    ("empty preprocessing output", {"preprocessing": "empty-validation"}, None, None, 4,
     "preprocessing left its output 'validation' empty (/opt/ml/processing/output/validation), and training reads "
     "it as channel 'validation': write at least one file there"),
    ("model-quality format, per-rule path", {"evaluation": "model-quality"},
     lambda t: t + "  - metric: mse\n    max: 5\n    path: regression_metrics.mse.value\n", None, 0, ""),
    ("training metric passes (and is registered)", {}, _training_metric("train_loss=([0-9.]+)", "max: 0.1"), None, 0, ""),
    ("training metric missed", {}, _training_metric("train_loss=([0-9.]+)", "max: 0.05"), None, 3,
     "train_loss = 0.07, needs <= 0.05"),
    ("training metric missing", {}, _training_metric("val_loss=([0-9.]+)", "max: 0.05"), None, 3,
     "train_loss is missing from the training job's metrics (needs <= 0.05)"),
]


def _local(repo: Path):
    env = {k: v for k, v in os.environ.items() if k not in JENKINS_VARS}
    env["MLTP_ERROR_FILE"] = str(repo / "error.txt")
    proc = subprocess.run([sys.executable, "-m", "mltp.cli", "run", ".", "--local", "--run-name", "parity"],
                          cwd=repo, env=env, capture_output=True, text=True, timeout=300)
    error = (repo / "error.txt").read_text().strip() if (repo / "error.txt").exists() else ""
    return {"exit_code": proc.returncode, "error": error}, proc.stdout + proc.stderr


def _aws(repo: Path):
    env = {k: v for k, v in os.environ.items() if k not in JENKINS_VARS}
    proc = subprocess.run([sys.executable, str(HERE / "parity_aws.py"), str(repo), "parity"],
                          cwd=repo, env=env, capture_output=True, text=True, timeout=300)
    found = re.search(r"^PARITY (.*)$", proc.stdout, re.M)
    assert found, proc.stdout[-3000:] + proc.stderr[-3000:]
    return json.loads(found.group(1)), proc.stdout + proc.stderr


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory):
    """Both sides of every case, two processes at a time."""
    tmp = tmp_path_factory.mktemp("parity")
    jobs = []
    for index, (case, modes, edit, requirements, _, _) in enumerate(CASES):
        jobs.append((case, "local", _repo(tmp, f"{index}-local", modes, edit, requirements)))
        jobs.append((case, "aws", _repo(tmp, f"{index}-aws", modes, edit, requirements)))
    with ThreadPoolExecutor(max_workers=2) as pool:
        done = list(pool.map(lambda job: (job[0], job[1], (_local if job[1] == "local" else _aws)(job[2])), jobs))
    out = {}
    for case, side, result in done:
        out.setdefault(case, {})[side] = result
    return out


@pytest.mark.parametrize("case,expected_code,expected_part", [
    pytest.param(c[0], c[4], c[5], id=c[0]) for c in CASES])
def test_local_and_aws_end_alike(outcomes, case, expected_code, expected_part):
    (local, local_log), (aws, aws_log) = outcomes[case]["local"], outcomes[case]["aws"]
    assert local == aws, f"local: {local}\naws:   {aws}\n--- local output\n{local_log[-2500:]}\n--- aws\n{aws_log[-2500:]}"
    assert local["exit_code"] == expected_code, local_log[-3000:]
    assert expected_part in local["error"], local


# --------------------------------------------------------------------------- why the lines agree


def _failure(reason, tail):
    from mltp import outcome as out

    failure = out.Failure(step="Preprocessing", error="States.TaskFailed")
    failure.reason, failure.log_tail = reason, tail
    return failure


PROCESSING_LOG = ["Traceback (most recent call last):",
                  '  File "/opt/ml/processing/input/code/preprocessing.py", line 5, in <module>',
                  "    mode = fail_if_asked('preprocessing')",
                  '  File "/opt/ml/processing/input/code/tinylib.py", line 10, in fail_if_asked',
                  "    import xgboost_not_installed_here",
                  "ModuleNotFoundError: No module named 'xgboost_not_installed_here'"]


@pytest.mark.parametrize("reason", [
    "AlgorithmError: See job logs for more information",  # SageMaker, a processing job
    "AlgorithmError: preprocessing.py needs the Python package 'xgboost_not_installed_here', which is not installed",
])
def test_a_failed_script_is_described_by_its_log_whatever_the_reason_says(reason):
    from mltp.follow import _died_of

    assert _died_of(_failure(reason, PROCESSING_LOG)) == (
        "preprocessing.py: ModuleNotFoundError: No module named 'xgboost_not_installed_here' (a package the script "
        "needs is not installed where it ran: list it in requirements.txt)")


def test_the_scripts_traceback_wins_over_the_toolkits():
    from mltp.follow import _died_of

    log = ["Traceback (most recent call last):", '  File "/opt/ml/code/train.py", line 7, in <module>',
           "ValueError: training broke on purpose",
           "Traceback (most recent call last):",
           '  File "/usr/local/lib/python3.9/site-packages/sagemaker_training/process.py", line 1, in run',
           "sagemaker_training.errors.ExecuteUserScriptError: ExecuteUserScriptError:", "ExitCode 1"]
    reason = 'AlgorithmError: ExecuteUserScriptError:\nExitCode 1\nErrorMessage ""\nCommand "python3 train.py"'
    assert _died_of(_failure(reason, log)) == "train.py: ValueError: training broke on purpose"


def test_the_guards_refusal_is_the_line_and_other_failures_keep_their_reason():
    from mltp.follow import _died_of

    guard = ["evaluating", "mltp: the training script wrote no model: model.tar.gz holds no file"]
    assert _died_of(_failure("AlgorithmError: See job logs for more information", guard)) == (
        "the training script wrote no model: model.tar.gz holds no file")
    assert _died_of(_failure("ClientError: no data found at s3://b/k", PROCESSING_LOG)) == (
        "ClientError: no data found at s3://b/k")
