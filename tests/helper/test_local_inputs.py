"""Local runs of a repo written the SageMaker way (tests/fixtures/literal-paths:
literal /opt/ml/processing paths for its input, outputs, model and evaluation),
and local data for S3 inputs: `inputs[].local`, `--input NAME=PATH`,
`--fetch-inputs` (from a second moto server standing in for real AWS), and the
refusal of an input with no data (exit 2, before anything starts)."""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import boto3
import pytest

from mltp.local import sandbox

ROOT = Path(__file__).resolve().parents[2]
LITERAL = ROOT / "tests" / "fixtures" / "literal-paths"
TINY = ROOT / "tests" / "fixtures" / "tiny"
STRIPPED = ("BRANCH_NAME", "CHANGE_ID", "BRANCH_IS_PRIMARY", "BUILD_TAG", "BUILD_URL", "GIT_COMMIT",
            "AWS_ENDPOINT_URL", "MLTP_RUN_NAME", "MLTP_CONFIG", "MLTP_REPORT_DIR", "MLTP_ERROR_FILE",
            "MLTP_NO_SANDBOX", "MLTP_FETCH_INPUTS")
AVAILABLE, REASON = sandbox.probe()
needs_namespaces = pytest.mark.skipif(not AVAILABLE, reason=f"this machine has no private mount namespaces: {REASON}")
NOTICE = "local: no private /opt/ml per job"


def run_local(repo: Path, *args: str, run_name: str = "local-test", env: dict = None, timeout: int = 240):
    full = {k: v for k, v in os.environ.items() if k not in STRIPPED}
    full.update(env or {})
    full["MLTP_ERROR_FILE"] = str(repo / "error.txt")
    proc = subprocess.run([sys.executable, "-m", "mltp.cli", "run", ".", *args, "--run-name", run_name],
                          cwd=repo, env=full, capture_output=True, text=True, timeout=timeout)
    error = (repo / "error.txt").read_text() if (repo / "error.txt").exists() else ""
    return proc, error, repo / ".mltp" / "runs" / run_name


def literal(tmp_path: Path, **replace: str) -> Path:
    repo = tmp_path / "literal"
    shutil.copytree(LITERAL, repo)
    path = repo / "config.yaml"
    text = path.read_text()
    for old, new in replace.items():
        assert old in text
        text = text.replace(old, new)
    path.write_text(text)
    return repo


@needs_namespaces
def test_scripts_with_literal_sagemaker_paths_run_locally(tmp_path):
    host_opt = sorted(os.listdir("/opt")) if os.path.isdir("/opt") else None
    repo = literal(tmp_path)
    proc, error, report = run_local(repo, "--local")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert error == "" and NOTICE not in proc.stdout
    assert "local: input 'points': 1 file from data (config.yaml:17) at s3://literal-paths-data/points/" in proc.stdout
    assert re.search(r"^mse\s+0\.0\d+\s+<= 0\.5\s+pass", proc.stdout, re.M), proc.stdout
    evaluation = json.loads((report / "evaluation.json").read_text())
    assert 0 < evaluation["metrics"]["mse"]["value"] < 0.5
    # The splits were written to the configured folders of the job's own /opt/ml.
    work = repo / ".mltp" / "work" / "local-test"
    (prep,) = [p for p in work.iterdir() if p.is_dir() and "-prep-" in p.name]
    for split in ("train", "validation", "test"):
        assert (prep / "opt" / "ml" / "processing" / split / f"{split}.csv").is_file()
    assert (prep / "opt" / "ml" / "processing" / "data" / "points.csv").is_file()
    (ev,) = [p for p in work.iterdir() if p.is_dir() and "-eval-" in p.name]
    assert (ev / "opt" / "ml" / "processing" / "evaluation" / "evaluation.json").is_file()
    assert (sorted(os.listdir("/opt")) if os.path.isdir("/opt") else None) == host_opt  # nothing created on the host


def test_without_namespaces_the_log_names_the_literal_paths_once(tmp_path):
    repo = literal(tmp_path)
    proc, error, _ = run_local(repo, "--local", env={"MLTP_NO_SANDBOX": "1"})
    assert proc.stdout.count(NOTICE) == 1, proc.stdout
    line = next(line for line in proc.stdout.splitlines() if line.startswith(NOTICE))
    assert "(MLTP_NO_SANDBOX is set)" in line
    # And, once, that processing scripts then start in their job's folder instead of /.
    assert proc.stdout.count("local: with no namespace a job has no / of its own: processing scripts start in "
                             "their job's folder .mltp/work/<run>/<job>/root/ instead of /") == 1, proc.stdout
    for path in ("/opt/ml/processing/data", "/opt/ml/processing/train", "/opt/ml/processing/evaluation",
                 "/opt/ml/processing/model"):
        assert path in line
    # The script's literal path does not exist: the step fails as a failing script does.
    assert proc.returncode == 4, proc.stdout + proc.stderr
    assert "Preprocessing" in error and "/opt/ml/processing/data/points.csv" in proc.stdout + error


def test_without_namespaces_scripts_that_read_the_variables_still_run(tmp_path):
    repo = tmp_path / "tiny"
    shutil.copytree(TINY, repo)
    proc, error, _ = run_local(repo, "--local", env={"MLTP_NO_SANDBOX": "1"})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.count(NOTICE) == 1


def test_input_override_replaces_the_configured_local_data(tmp_path):
    repo = literal(tmp_path)
    noisy = tmp_path / "noisy" / "points.csv"  # a folder's files keep their names under the source prefix
    noisy.parent.mkdir()
    noisy.write_text("x,y\n" + "".join(f"{i / 10:.1f},{(-1) ** i * 5}\n" for i in range(60)))
    proc, error, report = run_local(repo, "--local", "--input", f"points={noisy.parent}")
    assert f"local: input 'points': 1 file from {noisy.parent} (--input) at s3://literal-paths-data/points/" in proc.stdout
    # On AWS the job would read these rows from the source URI; here the gate misses on them.
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert json.loads((report / "evaluation.json").read_text())["metrics"]["mse"]["value"] > 20


def test_a_single_file_source_uri_is_served_as_that_object(tmp_path):
    repo = literal(tmp_path, **{"s3://literal-paths-data/points/": "s3://literal-paths-data/points/points.csv"})
    proc, _, _ = run_local(repo, "--local", "--input", f"points={LITERAL / 'data' / 'points.csv'}",
                           env={"MLTP_NO_SANDBOX": "0"})
    if AVAILABLE:
        assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "at s3://literal-paths-data/points/points.csv" in proc.stdout


@pytest.mark.parametrize("args, message", [
    (("--input", "pionts=data"), "--input pionts=...: 'pionts' is not an input of steps.preprocessing.inputs; it must be one of points"),
    (("--input", "points=does/not/exist.csv"), "--input points: input 'points': does/not/exist.csv is not a file or folder"),
    (("--input", "points"), "--input points: expected NAME=PATH"),
])
def test_bad_input_options_exit_2_before_anything_starts(tmp_path, args, message):
    repo = literal(tmp_path)
    proc, error, _ = run_local(repo, "--local", *args)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert message in proc.stderr and "Traceback" not in proc.stderr
    assert "emulator" not in proc.stdout and not (repo / ".mltp" / "work").exists()


def test_input_options_need_local(tmp_path):
    proc, _, _ = run_local(literal(tmp_path), "--input", "points=data")
    assert proc.returncode == 2
    assert "--input and --fetch-inputs apply to local runs only: add --local" in proc.stderr


def test_an_s3_input_without_local_data_is_refused_naming_it_and_its_uri(tmp_path):
    repo = literal(tmp_path, **{"        local: data\n": ""})
    proc, error, _ = run_local(repo, "--local")
    assert proc.returncode == 2, proc.stdout + proc.stderr
    expected = ("config.yaml:15: steps.preprocessing.inputs[0]: input 'points' (s3://literal-paths-data/points/) has no "
                "data for a local run: set steps.preprocessing.inputs[0].local, pass --input points=PATH, or "
                "--fetch-inputs to copy it from S3 with your AWS credentials")
    assert expected in proc.stderr and error.strip() == expected
    assert "emulator" not in proc.stdout and not (repo / ".mltp" / "work").exists()


def test_a_local_path_that_does_not_exist_is_refused(tmp_path):
    repo = literal(tmp_path, **{"local: data\n": "local: missing\n"})
    proc, _, _ = run_local(repo, "--local")
    assert proc.returncode == 2
    assert "config.yaml:17: input 'points': missing is not a file or folder" in proc.stderr


def test_fetch_inputs_copies_the_real_source_with_the_users_credentials(tmp_path, moto_endpoint):
    """The session's moto server stands in for real AWS; the run's own emulator is
    another one, inside mltp. The data reaches the run only through the fetch."""
    bucket = "real-data-fetch-inputs"
    real = {"AWS_ACCESS_KEY_ID": "AKIAFETCHINPUTSTEST1", "AWS_SECRET_ACCESS_KEY": "fetch-inputs-real-secret-0123456789"}
    s3 = boto3.client("s3", region_name="eu-west-1", endpoint_url=moto_endpoint, aws_access_key_id=real["AWS_ACCESS_KEY_ID"],
                      aws_secret_access_key=real["AWS_SECRET_ACCESS_KEY"])
    s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    s3.put_object(Bucket=bucket, Key="points/points.csv", Body=(LITERAL / "data" / "points.csv").read_bytes())
    s3.put_object(Bucket=bucket, Key="points/extra/readme.txt", Body=b"kept with its relative path")
    repo = literal(tmp_path, **{"s3://literal-paths-data/points/": f"s3://{bucket}/points/", "        local: data\n": ""})
    proc, error, report = run_local(repo, "--local", "--fetch-inputs",
                                    env=dict(real, AWS_ENDPOINT_URL=moto_endpoint, MLTP_NO_SANDBOX="0"))
    cache = repo / ".mltp" / "inputs" / "points"
    assert (cache / "points.csv").read_bytes() == (LITERAL / "data" / "points.csv").read_bytes()
    assert (cache / "extra" / "readme.txt").read_text() == "kept with its relative path"
    out = proc.stdout
    fetched = out.index(f"local: fetched 2 objects of input 'points' from s3://{bucket}/points/")
    assert fetched < out.index("local: AWS emulator at")  # before the emulator starts
    assert "local: input 'points': 2 files from .mltp/inputs/points (S3)" in out
    if AVAILABLE:
        assert proc.returncode == 0, out + proc.stderr
    # The credentials are written nowhere under .mltp/.
    for path in (repo / ".mltp").rglob("*"):
        if path.is_file():
            assert real["AWS_SECRET_ACCESS_KEY"].encode() not in path.read_bytes(), path


def test_fetch_inputs_refused_by_aws_exits_5(tmp_path, moto_endpoint):
    repo = literal(tmp_path, **{"s3://literal-paths-data/points/": "s3://no-such-bucket-fetch-inputs/points/",
                                "        local: data\n": ""})
    proc, error, _ = run_local(repo, "--local", "--fetch-inputs", env={"AWS_ENDPOINT_URL": moto_endpoint,
                                                                      "AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "y"})
    assert proc.returncode == 5, proc.stdout + proc.stderr
    assert "--fetch-inputs: reading input 'points' at s3://no-such-bucket-fetch-inputs/points/: AWS refused: NoSuchBucket" in error
    assert "emulator" not in proc.stdout


def test_a_channel_and_an_input_of_the_same_name_are_fetched_apart(tmp_path, moto_endpoint):
    """`--fetch-inputs` keeps an input's copy in .mltp/inputs/<name>/ and an S3
    channel's in .mltp/channels/<name>/: a channel named like an input reads its
    own source, not the input's data (fetched first or last)."""
    from mltp.aws import Clients
    from mltp.config import load
    from mltp.local import inputs as local_inputs

    bucket = "real-data-same-names"
    s3 = boto3.client("s3", region_name="eu-west-1", endpoint_url=moto_endpoint,
                      aws_access_key_id="testing", aws_secret_access_key="testing")
    s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    s3.put_object(Bucket=bucket, Key="points/points.csv", Body=b"the input's data")
    s3.put_object(Bucket=bucket, Key="lookup/points.csv", Body=b"the channel's data")
    repo = literal(tmp_path, **{"s3://literal-paths-data/points/": f"s3://{bucket}/points/", "        local: data\n": "",
                                "    hyperparameters: {epochs: 1}\n":
                                    "    hyperparameters: {epochs: 1}\n"
                                    f"    channels: {{train: train, validation: validation, points: s3://{bucket}/lookup/}}\n"})
    config = load(repo)
    found, to_fetch = local_inputs.resolve(config, {}, fetch=True)
    assert found == [] and [item.name for item in to_fetch] == ["points", "points"]
    clients = Clients("eu-west-1", moto_endpoint)
    fetched = local_inputs.fetch(clients, to_fetch, config)
    assert [(f.path, (f.path / "points.csv").read_bytes()) for f in fetched] == [
        ((repo / ".mltp" / "inputs" / "points").resolve(), b"the input's data"),
        ((repo / ".mltp" / "channels" / "points").resolve(), b"the channel's data")]
    assert local_inputs.fetch(clients, list(reversed(to_fetch)), config)[1].path == fetched[0].path
