"""Parity suite (issue 10, item 7): for each case, a local run and the same
model run as on AWS end with the same exit code and the same one-line message.

- local: `mltp run . --local`, as a user runs it (a subprocess); the line is
  what it writes to MLTP_ERROR_FILE (the Jenkins step's error line);
- AWS: the rendered state machine on moto's ASL interpreter, through the AWS
  command path, with SageMaker's jobs reporting failures as SageMaker does
  (parity_aws.py says how); the line is the one the CLI would write.

The tiny model (tests/fixtures/tiny) picks each case through its MODE variables;
cases it has no mode for edit the copy's config or evaluation.py
(local_runs.make_repo). Each case is a test of its own, so parallel workers
share the cases out; its two sides run at once. The AWS sides of a worker's
cases run one after another in one long-lived process (parity_aws.py
--serve, which says what each case gets afresh), so its imports and start are
paid once per worker, not once per case. The local side of a case
test_local.py checks too is the one run of that situation both read
(local_runs.SITUATIONS).
"""

import json
import os
import re
import select
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from local_runs import JENKINS_VARS, RUN_NAME, SITUATIONS, Situation, make_repo, run_local, shared_run

HERE = Path(__file__).resolve().parent


def _training_metric(regex: str, bound: str):
    """A config edit: tiny's train.py prints `train_loss=<1 - score>` last (0.07); the gate
    reads it from the training job's metrics (steps.training.metric_definitions)."""
    def edit(text: str) -> str:
        text = text.replace("    hyperparameters: {score: 0.93, label: tiny}\n",
                            "    hyperparameters: {score: 0.93, label: tiny}\n    metric_definitions:\n"
                            f"      - {{name: train_loss, regex: '{regex}'}}\n", 1)
        return text + f"  - metric: train_loss\n    source: training\n    {bound}\n"
    return edit


# (case, the situation: a shared one's name or a Situation of its own, expected exit code, a part of the message)
CASES = [
    ("pass", "pass", 0, ""),
    ("gate missed", "gate missed", 3, "auc = 0.42, needs >= 0.9"),
    ("metric missing", Situation(config_edit=lambda t: t.replace("metric: auc", "metric: roc_auc")), 3, "missing"),
    ("metric not a number", "metric not a number", 3, '"high" is not a number'),
    ("malformed evaluation.json", Situation(modes={"evaluation": "not-json"}), 4, "not valid JSON"),
    ("metric 1e999 (Infinity)", Situation(modes={"evaluation": "infinite"}), 3, "Infinity is not a finite number"),
    ("failing script", "failing script", 4, "ValueError: training broke on purpose"),
    ("missing package", "missing package", 4, "xgboost_not_installed_here"),
    ("requirements.txt that fails to install", "requirements.txt that fails to install", 4, "requirements.txt"),
    ("empty model", "empty model", 4, "the training script wrote no model"),
    ("empty preprocessing output", Situation(modes={"preprocessing": "empty-validation"}), 4,
     "preprocessing left its output 'validation' empty (/opt/ml/processing/output/validation), and training reads "
     "it as channel 'validation': write at least one file there"),
    ("model-quality format, per-rule path", Situation(
        modes={"evaluation": "model-quality"},
        config_edit=lambda t: t + "  - metric: mse\n    max: 5\n    path: regression_metrics.mse.value\n"), 0, ""),
    ("training metric passes (and is registered)",
     Situation(config_edit=_training_metric("train_loss=([0-9.]+)", "max: 0.1")), 0, ""),
    ("training metric missed", Situation(config_edit=_training_metric("train_loss=([0-9.]+)", "max: 0.05")), 3,
     "train_loss = 0.07, needs <= 0.05"),
    ("training metric missing", Situation(config_edit=_training_metric("val_loss=([0-9.]+)", "max: 0.05")), 3,
     "train_loss is missing from the training job's metrics (needs <= 0.05)"),
]


def _local(situation, tmp_path: Path, tmp_path_factory):
    """The local side: the shared run of a named situation, else a run of its own."""
    if isinstance(situation, str):
        proc, error, _ = shared_run(tmp_path_factory, situation)
    else:
        proc, error, _ = run_local(make_repo(tmp_path / "local" / "tiny", situation))
    return {"exit_code": proc.returncode, "error": error.strip()}, proc.stdout + proc.stderr


class AwsSide:
    """This worker's parity_aws.py --serve process, started at its first case; a case
    that breaks it off (a timeout, the process gone) ends it and the next case starts
    another."""

    TIMEOUT = 300

    def __init__(self):
        self.proc = None

    def run(self, repo: Path):
        log = repo.parent / "aws-side.log"
        if self.proc is None or self.proc.poll() is not None:
            env = {k: v for k, v in os.environ.items() if k not in JENKINS_VARS}
            self.proc = subprocess.Popen([sys.executable, str(HERE / "parity_aws.py"), "--serve"],
                                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, text=True)
        answer = ""
        try:
            self.proc.stdin.write(json.dumps({"repo": str(repo), "run_name": RUN_NAME, "log": str(log)}) + "\n")
            self.proc.stdin.flush()
            if select.select([self.proc.stdout], [], [], self.TIMEOUT)[0]:
                answer = self.proc.stdout.readline()
        except BrokenPipeError:
            pass
        output = log.read_text(errors="replace") if log.exists() else ""
        found = re.match(r"PARITY (.*)$", answer)
        if not found:
            self.proc.kill()
            self.close()
        assert found, f"the AWS side gave no answer: {answer!r}\n{output[-3000:]}"
        return json.loads(found.group(1)), output

    def close(self):
        """Ends the process the way it ends its cases: at the end of its input (waited for,
        so its CPU is counted with this module's)."""
        if self.proc is not None:
            try:
                self.proc.stdin.close()
                self.proc.wait(timeout=60)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()
            self.proc = None


@pytest.fixture(scope="module")
def aws_side():
    side = AwsSide()
    yield side
    side.close()


@pytest.mark.parametrize("situation,expected_code,expected_part", [
    pytest.param(c[1], c[2], c[3], id=c[0]) for c in CASES])
def test_local_and_aws_end_alike(situation, expected_code, expected_part, tmp_path, tmp_path_factory, aws_side):
    repo = make_repo(tmp_path / "aws" / "tiny", SITUATIONS[situation] if isinstance(situation, str) else situation)
    with ThreadPoolExecutor(max_workers=2) as pool:  # both sides at once
        aws_side = pool.submit(aws_side.run, repo)
        local, local_log = _local(situation, tmp_path, tmp_path_factory)
        aws, aws_log = aws_side.result()
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
