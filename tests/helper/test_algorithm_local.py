"""The built-in XGBoost algorithm run locally: tests/fixtures/builtin-xgboost
end to end with `mltp run --local` (no train.py; evaluation.py loads
`xgboost-model` from model.tar.gz as SageMaker's examples do), and the local
implementation (mltp/algorithms/xgboost_algorithm.py) on a job folder laid out
as SageMaker lays out /opt/ml, in the xgboost 1.7-1 environment a local run
uses (built once, cached like the other local environments)."""

import csv
import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from mltp.algorithms import xgboost_algorithm
from mltp.local import envs, sandbox

ROOT = Path(__file__).resolve().parents[2]
FIXTURE = ROOT / "tests" / "fixtures" / "builtin-xgboost"
PROGRAM = Path(xgboost_algorithm.__file__)
STRIPPED = ("BRANCH_NAME", "CHANGE_ID", "BRANCH_IS_PRIMARY", "BUILD_TAG", "BUILD_URL", "GIT_COMMIT",
            "AWS_ENDPOINT_URL", "MLTP_RUN_NAME", "MLTP_CONFIG", "MLTP_REPORT_DIR", "MLTP_ERROR_FILE",
            "MLTP_NO_SANDBOX", "MLTP_FETCH_INPUTS")
AVAILABLE, REASON = sandbox.probe()
needs_namespaces = pytest.mark.skipif(not AVAILABLE, reason=f"this machine has no private mount namespaces: {REASON}")


@pytest.fixture(scope="module")
def xgboost_python() -> str:
    """The interpreter of the local environment of xgboost 1.7-1 (no requirements.txt)."""
    return envs.prepare("xgboost", "1.7-1", None, say=lambda line: None).python


def _rows():
    with open(FIXTURE / "data" / "shells.csv", newline="") as handle:
        rows = list(csv.reader(handle))[1:]
    return [[row[-1]] + row[:-1] for row in rows]


def _job(tmp_path: Path, hyperparameters: dict, channels: dict, files: dict) -> Path:
    """A job folder as SageMaker lays out /opt/ml for an algorithm-mode job."""
    base = tmp_path / "ml"
    (base / "input" / "config").mkdir(parents=True)
    (base / "input" / "config" / "hyperparameters.json").write_text(json.dumps(hyperparameters))
    (base / "input" / "config" / "inputdataconfig.json").write_text(json.dumps(channels))
    for relative, text in files.items():
        path = base / "input" / "data" / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return base


def _train(python: str, base: Path, version: str = "1.7-1") -> subprocess.CompletedProcess:
    return subprocess.run([python, str(PROGRAM), str(base), version], capture_output=True, text=True, timeout=300)


def _csv(rows) -> str:
    return "".join(",".join(row) + "\n" for row in rows)


def _libsvm(rows) -> str:
    return "".join(row[0] + " " + " ".join(f"{i}:{v}" for i, v in enumerate(row[1:])) + "\n" for row in rows)


# --------------------------------------------------------------------------- the whole pipeline


@needs_namespaces
def test_a_script_less_training_step_runs_locally_end_to_end(tmp_path, xgboost_python):
    repo = tmp_path / "builtin-xgboost"
    shutil.copytree(FIXTURE, repo, ignore=shutil.ignore_patterns(".mltp"))
    assert not (repo / "train.py").exists()
    env = {k: v for k, v in os.environ.items() if k not in STRIPPED}
    proc = subprocess.run([sys.executable, "-m", "mltp.cli", "run", ".", "--local", "--run-name", "builtin"],
                          cwd=repo, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = repo / ".mltp" / "runs" / "builtin"
    data = json.loads((report / "report.json").read_text())
    assert data["status"] == "passed", data
    assert json.loads((report / "evaluation.json").read_text())["regression_metrics"]["mse"]["value"] < 0.5
    log = next((report / "logs").glob("*-train-*.log")).read_text()
    assert "[0]#011train-rmse:" in log and "#011validation-rmse:" in log and "[39]#011" in log
    assert "sagemaker-training-toolkit" not in log  # algorithm mode: no toolkit, no script
    with tarfile.open(report / "model.tar.gz") as tar:
        assert tar.getnames() == ["xgboost-model"]
        tar.extractall(tmp_path / "model")
    # 1.7-1 saves with save_model: a Booster loads it (AWS's examples' evaluate.py)
    loaded = subprocess.run([xgboost_python, "-c", "import xgboost; b = xgboost.Booster(); "
                             "b.load_model('xgboost-model'); print(b.num_boosted_rounds())"],
                            cwd=tmp_path / "model", capture_output=True, text=True)
    assert loaded.stdout.strip() == "40", loaded.stderr


# --------------------------------------------------------------------------- the local implementation


def test_csv_label_first_with_validation_metrics(tmp_path, xgboost_python):
    rows = _rows()
    base = _job(tmp_path, {"num_round": "6", "objective": "reg:squarederror", "eval_metric": "rmse,mae",
                           "max_depth": "2", "learning_rate": "0.5"},
                {"train": {"ContentType": "text/csv", "TrainingInputMode": "File"},
                 "validation": {"ContentType": "text/csv; label_size=1", "TrainingInputMode": "File"}},
                {"train/part-1.csv": _csv(rows[:100]), "train/more/part-2.csv": _csv(rows[100:180]),
                 "validation/v.csv": _csv(rows[180:])})
    proc = _train(xgboost_python, base)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Train matrix has 180 rows and 3 columns" in proc.stdout
    lines = [line for line in proc.stdout.splitlines() if line.startswith("[")]
    assert len(lines) == 6
    fields = lines[0].split("#011")
    assert fields[0] == "[0]" and [f.split(":")[0] for f in fields[1:]] == \
        ["train-rmse", "train-mae", "validation-rmse", "validation-mae"]
    assert all(len(f.split(":")[1].split(".")[1]) == 5 for f in fields[1:])  # five decimals, as the container
    assert (base / "model" / "xgboost-model").is_file() and not (base / "output" / "failure").exists()


def test_libsvm_is_the_default_and_early_stopping_keeps_the_best(tmp_path, xgboost_python):
    rows = _rows()
    base = _job(tmp_path, {"num_round": "200", "eta": "0.9", "max_depth": "6", "early_stopping_rounds": "3",
                           "eval_metric": "rmse"},
                {"train": {"TrainingInputMode": "File"}, "validation": {"TrainingInputMode": "File"}},
                {"train/t.libsvm": _libsvm(rows[:180]), "validation/v.libsvm": _libsvm(rows[180:])})
    proc = _train(xgboost_python, base)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rounds = [line for line in proc.stdout.splitlines() if line.startswith("[")]
    assert 3 < len(rounds) < 200  # stopped early
    check = subprocess.run([xgboost_python, "-c", "import xgboost; b = xgboost.Booster(); "
                            f"b.load_model({str(base / 'model' / 'xgboost-model')!r}); print(b.num_boosted_rounds())"],
                           capture_output=True, text=True)
    scores = [float(line.split("validation-rmse:")[1]) for line in rounds]
    assert int(check.stdout) == scores.index(min(scores)) + 1  # the best round's model (save_best)


def test_versions_before_1_3_pickle_the_booster(tmp_path, xgboost_python):
    rows = _rows()
    base = _job(tmp_path, {"num_round": "3"}, {"train": {"ContentType": "text/csv"}},
                {"train/t.csv": _csv(rows)})
    proc = _train(xgboost_python, base, version="1.2-1")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    check = subprocess.run([xgboost_python, "-c", "import pickle; "
                            f"print(type(pickle.load(open({str(base / 'model' / 'xgboost-model')!r}, 'rb'))).__name__)"],
                           capture_output=True, text=True)
    assert check.stdout.strip() == "Booster", check.stderr


@pytest.mark.parametrize("hyperparameters, channels, files, reason", [
    ({"eta": "0.1"}, {"train": {}}, {"train/t.libsvm": "1 0:1\n"},
     "ClientError: The built-in XGBoost algorithm needs the hyperparameter num_round"),
    ({"num_round": "2", "max_depth": "-1"}, {"train": {}}, {"train/t.libsvm": "1 0:1\n"},
     "ClientError: Hyperparameter max_depth: -1 is not in [0, inf)"),
    ({"num_round": "2"}, {"train": {"ContentType": "text/csv"}, "validation": {"ContentType": "text/csv"}},
     {"train/t.csv": "1,2\n0,3\n", "validation/.hidden": "1,2\n"},
     "ClientError: Hidden file found in the data path! Remove that before training."),
    ({"num_round": "2"}, {"train": {"ContentType": "application/json"}}, {"train/t.json": "{}"},
     "ClientError: application/json is not an accepted ContentType: text/csv, text/libsvm"),
    ({"num_round": "2"}, {"train": {"ContentType": "application/x-parquet"}}, {"train/t.parquet": "x"},
     "ClientError: ContentType application/x-parquet is accepted by the algorithm on SageMaker but not reproduced"),
    ({"num_round": "2"}, {"train": {"ContentType": "text/csv"}}, {"train/t.csv": "1,a\n"},
     "ClientError: Line 1 '1,a...' of file 't.csv' is not 'CSV' format"),
    ({"num_round": "2"}, {"train": {}, "test": {}}, {"train/t.libsvm": "1 0:1\n", "test/t.libsvm": "1 0:1\n"},
     "ClientError: Extraneous channel found: test"),
    ({"num_round": "2"}, {"train": {}, "validation": {}}, {"train/t.libsvm": "1 0:1\n", "validation/empty": ""},
     "ClientError: No data in validation channel path"),
])
def test_a_bad_input_fails_with_the_containers_reason(tmp_path, xgboost_python, hyperparameters, channels, files,
                                                      reason):
    base = _job(tmp_path, hyperparameters, channels, files)
    proc = _train(xgboost_python, base)
    assert proc.returncode != 0
    written = (base / "output" / "failure").read_text()
    assert written.startswith(reason), written
    assert "Traceback" not in proc.stderr


# --------------------------------------------------------------------------- through the local job runner


def _algorithm_request(s3, bucket: str, files: dict, hyperparameters: dict) -> dict:
    from mltp import algorithms

    s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": "ap-northeast-2"})
    for key, text in files.items():
        s3.put_object(Bucket=bucket, Key=key, Body=text.encode())
    channels = sorted({key.split("/")[0] for key in files})
    return {
        "AlgorithmSpecification": {"TrainingImage": algorithms.image_uri("xgboost", "1.7-1", "ap-northeast-2"),
                                   "TrainingInputMode": "File"},
        "HyperParameters": hyperparameters,
        "InputDataConfig": [{"ChannelName": name, "DataSource": {"S3DataSource": {
            "S3DataType": "S3Prefix", "S3Uri": f"s3://{bucket}/{name}/", "S3DataDistributionType": "FullyReplicated"}}}
            for name in channels],
        "OutputDataConfig": {"S3OutputPath": f"s3://{bucket}/model"},
        "ResourceConfig": {"InstanceType": "ml.m5.xlarge", "InstanceCount": 1, "VolumeSizeInGB": 30},
        "StoppingCondition": {"MaxRuntimeInSeconds": 300},
    }


def test_the_runner_knows_the_algorithm_by_its_image_and_uploads_the_model(aws_env, tmp_path, xgboost_python):
    """No sagemaker_program: the runner runs the algorithm's local implementation
    (here without a namespace, the job's folder as its base), packs
    xgboost-model into model.tar.gz and uploads it where SageMaker puts it."""
    import io

    from mltp.aws import Clients
    from mltp.local import envs as envs_module
    from mltp.local.runner import LocalJobRunner

    env = envs_module.prepare("xgboost", "1.7-1", None, say=lambda line: None)
    assert env.python == xgboost_python
    clients = Clients("ap-northeast-2", aws_env)
    rows = _rows()
    request = _algorithm_request(clients.s3, "algo-ok", {"train/t.libsvm": _libsvm(rows[:180]),
                                                         "validation/v.libsvm": _libsvm(rows[180:])},
                                 {"num_round": "4", "max_depth": "2"})
    runner = LocalJobRunner(clients, tmp_path / "work", environments={"training": env}, sandboxed=False)
    runner("training", "m-train-0123456789ab", request, None)
    body = clients.s3.get_object(Bucket="algo-ok", Key="model/m-train-0123456789ab/output/model.tar.gz")["Body"]
    with tarfile.open(fileobj=io.BytesIO(body.read())) as tar:
        assert tar.getnames() == ["xgboost-model"]
    log = (tmp_path / "work" / "m-train-0123456789ab.log").read_text()
    assert "[3]#011train-rmse:" in log and "#011validation-rmse:" in log


def test_the_runner_reports_the_algorithms_own_failure_reason(aws_env, tmp_path, xgboost_python):
    from mltp.aws import Clients
    from mltp.local import envs as envs_module
    from mltp.local.runner import JobFailed, LocalJobRunner

    env = envs_module.prepare("xgboost", "1.7-1", None, say=lambda line: None)
    clients = Clients("ap-northeast-2", aws_env)
    request = _algorithm_request(clients.s3, "algo-bad", {"train/t.libsvm": "1 0:1\n", "train/.seen": "x"},
                                 {"num_round": "4"})
    runner = LocalJobRunner(clients, tmp_path / "work", environments={"training": env}, sandboxed=False)
    with pytest.raises(JobFailed) as failed:
        runner("training", "m-train-0123456789ab", request, None)
    assert str(failed.value) == "ClientError: Hidden file found in the data path! Remove that before training."
