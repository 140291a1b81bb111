"""Preprocessing outputs, training channels and evaluation's test data
(docs/contract.md, 3.2 to 3.4): config.yaml's forms and defaults, the refusals
(exit 2 at file, line and key), the IAM read grant of an s3:// channel, a local
run's data for it, the runner's channel setup as SageMaker makes it, and the one
line for an output preprocessing left empty. The end-to-end runs of the two
SageMaker-style fixtures (forest-channels, census-like) are at the end."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from mltp import config as config_mod
from mltp.errors import InvalidInput

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures"

HEAD = """version: 1
name: chan-model
aws:
  region: eu-west-1
  bucket: chan-artifacts
  sagemaker_role_arn: arn:aws:iam::123456789012:role/SageMakerExecution
  states_role_arn: arn:aws:iam::123456789012:role/StepFunctionsExecution
  branch_sagemaker_role_arn: arn:aws:iam::123456789012:role/SageMakerBranch
gate:
  - metric: auc
    min: 0.9
steps:
"""


def _load(tmp_path: Path, steps: str):
    (tmp_path / "config.yaml").write_text(HEAD + steps)
    return config_mod.load(tmp_path)


def _refused(tmp_path: Path, steps: str):
    with pytest.raises(InvalidInput) as raised:
        _load(tmp_path, steps)
    assert raised.value.exit_code == 2
    return raised.value.details


def _line(steps: str, needle: str) -> int:
    return (HEAD + steps).splitlines().index(next(l for l in (HEAD + steps).splitlines() if needle in l)) + 1


# --------------------------------------------------------------------------- forms and defaults


def test_defaults_are_train_validation_test_with_training_reading_all_but_test(tmp_path):
    cfg = _load(tmp_path, "  training: {}\n")
    assert cfg.steps.preprocessing.outputs == {name: f"/opt/ml/processing/output/{name}"
                                               for name in ("train", "validation", "test")}
    assert [(c.name, c.output, c.s3_uri, c.content_type) for c in cfg.steps.training.channels] == [
        ("train", "train", None, None), ("validation", "validation", None, None)]
    assert cfg.steps.evaluation.test_from == "test"


def test_a_list_of_outputs_takes_the_default_paths_and_names_the_whole_set(tmp_path):
    cfg = _load(tmp_path, "  preprocessing:\n    outputs: [train, test, baseline]\n")
    assert cfg.steps.preprocessing.outputs == {"train": "/opt/ml/processing/output/train",
                                               "test": "/opt/ml/processing/output/test",
                                               "baseline": "/opt/ml/processing/output/baseline"}
    assert [c.name for c in cfg.steps.training.channels] == ["train", "baseline"]
    assert cfg.steps.evaluation.test_from == "test"


def test_a_mapping_of_outputs_gives_paths_null_is_the_default(tmp_path):
    cfg = _load(tmp_path, "  preprocessing:\n    outputs:\n      train: /opt/ml/processing/train\n      test:\n")
    assert cfg.steps.preprocessing.outputs == {"train": "/opt/ml/processing/train",
                                               "test": "/opt/ml/processing/output/test"}
    assert [c.name for c in cfg.steps.training.channels] == ["train"]


def test_channels_as_a_list_and_as_a_mapping_with_s3_and_content_type(tmp_path):
    cfg = _load(tmp_path, "  preprocessing:\n    outputs: [train, test]\n  training:\n    channels: [train, test]\n")
    assert [(c.name, c.output) for c in cfg.steps.training.channels] == [("train", "train"), ("test", "test")]
    cfg = _load(tmp_path, """  training:
    channels:
      training: train
      lookup: s3://chan-data/lookup/
      extra: {source: s3://chan-data/extra/, content_type: text/csv, local: data/extra}
      val: {source: validation, content_type: application/x-parquet}
  evaluation:
    test_from: validation
""")
    assert [(c.name, c.output, c.s3_uri, c.content_type, c.local) for c in cfg.steps.training.channels] == [
        ("training", "train", None, None, None),
        ("lookup", None, "s3://chan-data/lookup/", None, None),
        ("extra", None, "s3://chan-data/extra/", "text/csv", "data/extra"),
        ("val", "validation", None, "application/x-parquet", None)]
    assert cfg.steps.evaluation.test_from == "validation"


# --------------------------------------------------------------------------- refusals


@pytest.mark.parametrize("steps, needle, key, message", [
    ("  training:\n    channels: [train, tset]\n", "channels:", "steps.training.channels[1]",
     "'tset' is not an output of steps.preprocessing.outputs; it must be one of train, validation, test "
     "(did you mean 'test'?)"),
    ("  training:\n    channels:\n      train: trian\n", "train: trian", "steps.training.channels.train",
     "'trian' is not an output of steps.preprocessing.outputs"),
    ("  training:\n    channels:\n      x: {source: extra, content_type: text/csv}\n", "x: {source",
     "steps.training.channels.x.source", "'extra' is not an output of steps.preprocessing.outputs"),
    ("  evaluation:\n    test_from: holdout\n", "test_from", "steps.evaluation.test_from",
     "'holdout' is not an output of steps.preprocessing.outputs; it must be one of train, validation, test"),
    ("  preprocessing:\n    outputs: [train, validation]\n", "outputs:", "steps.preprocessing.outputs",
     "there is no output named test for the evaluation's test data; set steps.evaluation.test_from to one of "
     "train, validation"),
    ("  preprocessing:\n    outputs: [test]\n  evaluation: {test_from: test}\n", "outputs:",
     "steps.preprocessing.outputs", "training gets every output except test as a channel, and there is none"),
    ("  preprocessing:\n    outputs: [train, Test, test]\n", "outputs:", "steps.preprocessing.outputs[1]",
     '"Test" must be 1 to 64 of a-z, 0-9, \'_\' and \'-\', starting with a letter'),
    ("  preprocessing:\n    outputs:\n      test: /opt/ml/processing/train\n      Bad.Name: null\n", "Bad.Name",
     "steps.preprocessing.outputs.Bad.Name", "must be 1 to 64 of a-z, 0-9, '_' and '-', starting with a letter"),
    ("  preprocessing:\n    outputs: [train, train, test]\n", "outputs:", "steps.preprocessing.outputs",
     "has non-unique elements"),
    ("  preprocessing:\n    outputs: {}\n", "outputs:", "steps.preprocessing.outputs", "needs at least 1 entry(s)"),
    ("  preprocessing:\n    outputs: []\n", "outputs:", "steps.preprocessing.outputs", "needs at least 1 item(s)"),
    ("  training:\n    channels:\n      x: s3://chan-artifacts/mltp/chan-model/registry/\n", "x: s3://",
     "steps.training.channels.x", "overlaps the model's own S3 area s3://chan-artifacts/mltp/chan-model/"),
    ("  training:\n    channels:\n      x: s3://chan-artifacts/mltp/\n", "x: s3://",
     "steps.training.channels.x", "overlaps the model's own S3 area"),
    ("  training:\n    channels:\n      x: s3://chan-data/a*/\n", "x: s3://", "steps.training.channels.x",
     "without *, ?, $, { or }"),
    ("  training:\n    channels:\n      x: {source: train, local: data}\n", "x: {source", "steps.training.channels.x.local",
     "local serves an s3:// source in a local run"),
    ("  training:\n    channels:\n      x: {source: train, content_type: csv}\n", "x: {source",
     "steps.training.channels.x.content_type", "must be a MIME type"),
    ("  training:\n    channels:\n      x: {content_type: text/csv}\n", "x: {content", "steps.training.channels.x",
     "missing required key 'source'"),
])
def test_what_names_nothing_is_refused_at_file_line_and_key(tmp_path, steps, needle, key, message):
    details = _refused(tmp_path, steps)
    assert len(details) == 1, details
    (detail,) = details
    where, rest = detail.split(": ", 1)
    assert where.endswith(f"config.yaml:{_line(steps, needle)}") and rest.startswith(f"{key}: "), detail
    assert message in detail, detail


def test_the_cli_exits_2_naming_the_channel(tmp_path):
    (tmp_path / "config.yaml").write_text(HEAD + "  training:\n    channels: [train, holdout]\n")
    for name in ("preprocessing.py", "train.py", "evaluation.py"):
        (tmp_path / name).write_text("print('x')\n")
    proc = subprocess.run([sys.executable, "-m", "mltp.cli", "validate", str(tmp_path)], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "steps.training.channels[1]: 'holdout' is not an output of steps.preprocessing.outputs" in proc.stderr
    assert "Traceback" not in proc.stderr


# --------------------------------------------------------------------------- IAM and local data


def test_both_job_roles_may_read_an_s3_channel_and_nothing_more(tmp_path):
    from mltp import policies

    cfg = _load(tmp_path, "  training:\n    channels:\n      train: train\n      lookup: s3://chan-data/lookup/\n")
    for role in ("sagemaker", "branch-sagemaker"):
        statements = {s.sid: s for s in policies.policy(cfg, role).statements}
        assert statements["ReadInput1"].actions == ("s3:GetObject",)
        assert statements["ReadInput1"].resources == ("arn:aws:s3:::chan-data/lookup/*",)
        assert statements["ListInput1"].condition == {"StringLike": {"s3:prefix": ["lookup/*"]}}
        assert "ReadInput2" not in statements
    plain = _load(tmp_path, "  training: {}\n")
    assert not any(s.sid.startswith("ReadInput") for s in policies.policy(plain, "sagemaker").statements)


def test_a_local_run_serves_an_s3_channel_from_its_local_key_or_says_what_is_missing(tmp_path):
    from mltp.local import inputs

    (tmp_path / "data" / "extra").mkdir(parents=True)
    (tmp_path / "data" / "extra" / "a.csv").write_text("1\n")
    steps = ("  training:\n    channels:\n      train: train\n"
             "      extra: {source: s3://chan-data/extra/, content_type: text/csv, local: data/extra}\n")
    found, to_fetch = inputs.resolve(_load(tmp_path, steps), {}, fetch=False)
    assert [(f.item.name, f.item.source, f.path) for f in found] == [
        ("extra", "s3://chan-data/extra/", (tmp_path / "data" / "extra").resolve())]
    assert to_fetch == []
    steps = "  training:\n    channels:\n      train: train\n      lookup: s3://chan-data/lookup/\n"
    cfg = _load(tmp_path, steps)
    with pytest.raises(InvalidInput) as raised:
        inputs.resolve(cfg, {}, fetch=False)
    assert raised.value.exit_code == 2
    assert str(raised.value).endswith(
        f"config.yaml:{_line(steps, 'lookup:')}: steps.training.channels.lookup: channel 'lookup' "
        "(s3://chan-data/lookup/) has no data for a local run: set steps.training.channels.lookup.local, or "
        "--fetch-inputs to copy it from S3 with your AWS credentials")
    assert [item.name for item in inputs.resolve(cfg, {}, fetch=True)[1]] == ["lookup"]


# --------------------------------------------------------------------------- the runner's channels


def test_the_runner_sets_up_channels_as_sagemaker_does(moto_endpoint, tmp_path, monkeypatch):
    """inputdataconfig.json as SageMaker writes it (ContentType only when given),
    each channel's data at input/data/<name>; an empty channel fails the job."""
    import io
    import tarfile

    from mltp.aws import Clients
    from mltp.local.runner import JobFailed, LocalJobRunner

    clients = Clients("eu-west-1", moto_endpoint)
    s3 = clients.s3
    s3.create_bucket(Bucket="chan-runner", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    for key in ("run/preprocessing/train/a.csv", "run/preprocessing/train/sub/b.csv", "run/preprocessing/test/t.csv",
                "lookup/l.csv"):
        s3.put_object(Bucket="chan-runner", Key=key, Body=b"1,2\n")
    packed = io.BytesIO()
    with tarfile.open(fileobj=packed, mode="w:gz") as tar:
        info = tarfile.TarInfo("train.py")
        info.size = 1
        tar.addfile(info, io.BytesIO(b"\n"))
    s3.put_object(Bucket="chan-runner", Key="code/sourcedir.tar.gz", Body=packed.getvalue())

    def channel(name, uri, content_type=None):
        item = {"ChannelName": name, "DataSource": {"S3DataSource": {
            "S3DataType": "S3Prefix", "S3DataDistributionType": "FullyReplicated", "S3Uri": uri}}}
        if content_type:
            item["ContentType"] = content_type
        return item

    request = {
        "HyperParameters": {"sagemaker_program": '"train.py"',
                            "sagemaker_submit_directory": '"s3://chan-runner/code/sourcedir.tar.gz"'},
        "InputDataConfig": [channel("train", "s3://chan-runner/run/preprocessing/train/"),
                            channel("test", "s3://chan-runner/run/preprocessing/test/"),
                            channel("lookup", "s3://chan-runner/lookup/", "text/csv")],
        "OutputDataConfig": {"S3OutputPath": "s3://chan-runner/model/"},
        "ResourceConfig": {"InstanceType": "ml.m5.xlarge", "InstanceCount": 1},
    }
    seen = {}

    def execute(self, kind, job_name, command, env, cwd, req, **kwargs):
        base = Path(env["SAGEMAKER_BASE_DIR"])
        seen["config"] = json.loads((base / "input" / "config" / "inputdataconfig.json").read_text())
        seen["data"] = sorted(p.relative_to(base / "input" / "data").as_posix()
                              for p in (base / "input" / "data").rglob("*") if p.is_file())
        (base / "model" / "m.txt").write_text("model")

    monkeypatch.setattr(LocalJobRunner, "_execute", execute)
    runner = LocalJobRunner(clients, tmp_path / "work", sandboxed=False)
    runner("training", "chan-model-train-000000000001", request, None)
    plain = {"TrainingInputMode": "File", "S3DistributionType": "FullyReplicated", "RecordWrapperType": "None"}
    assert seen["config"] == {"train": plain, "test": plain, "lookup": dict(plain, ContentType="text/csv")}
    assert list(seen["config"]) == ["train", "test", "lookup"]
    assert seen["data"] == ["lookup/l.csv", "test/t.csv", "train/a.csv", "train/sub/b.csv"]
    s3.head_object(Bucket="chan-runner", Key="model/chan-model-train-000000000001/output/model.tar.gz")

    request["InputDataConfig"].append(channel("validation", "s3://chan-runner/run/preprocessing/validation/"))
    with pytest.raises(JobFailed) as failed:
        runner("training", "chan-model-train-000000000002", request, None)
    assert str(failed.value) == "ClientError: no data found at s3://chan-runner/run/preprocessing/validation/"


# --------------------------------------------------------------------------- an empty output


@pytest.mark.parametrize("reason", [
    "ClientError: no data found at s3://b/mltp/chan-model/runs/r1/preprocessing/validation/",  # the local runner
    'ClientError: No S3 objects found under S3 URL "s3://b/mltp/chan-model/runs/r1/preprocessing/validation/" '
    'given in input data source. Please ensure that the bucket exists in the selected region (eu-west-1), that '
    'objects exist under that S3 prefix, and that the role "arn:aws:iam::123456789012:role/SageMakerExecution" '
    'has "s3:ListBucket" permissions on bucket "b".',  # SageMaker
])
def test_an_empty_output_is_one_line_naming_the_output_and_the_step(tmp_path, reason):
    from mltp.follow.diagnosis import empty_output

    cfg = _load(tmp_path, "  training:\n    channels:\n      valid: validation\n      train: train\n")
    assert empty_output(cfg, "Training", reason) == (
        "preprocessing left its output 'validation' empty (/opt/ml/processing/output/validation), and training "
        "reads it as channel 'valid': write at least one file there, or drop the output; nothing at "
        "s3://b/mltp/chan-model/runs/r1/preprocessing/validation/")
    test_reason = reason.replace("validation/", "test/")
    assert "evaluation reads it as its test data" in empty_output(cfg, "Evaluation", test_reason)
    assert empty_output(cfg, "Preprocessing", reason) is None
    assert empty_output(cfg, "Training", "ClientError: no data found at s3://b/elsewhere/") is None
    assert empty_output(cfg, "Training", reason.replace("validation/", "other/")) is None


# --------------------------------------------------------------------------- end to end, SageMaker-style scripts


def _run_local(tmp_path: Path, fixture: str):
    from test_local_inputs import STRIPPED

    repo = tmp_path / fixture
    shutil.copytree(FIXTURES / fixture, repo)
    env = {k: v for k, v in os.environ.items() if k not in STRIPPED}
    env["MLTP_ERROR_FILE"] = str(repo / "error.txt")
    proc = subprocess.run([sys.executable, "-m", "mltp.cli", "run", ".", "--local", "--run-name", "channels"],
                          cwd=repo, env=env, capture_output=True, text=True, timeout=600)
    report = repo / ".mltp" / "runs" / "channels"
    logs = "\n".join(p.read_text() for p in sorted((report / "logs").glob("*.log"))) if report.is_dir() else ""
    return proc, report, logs


def _needs_namespaces():
    from mltp.local import sandbox

    available, reason = sandbox.probe()
    return pytest.mark.skipif(not available, reason=f"literal /opt/ml paths need private mount namespaces: {reason}")


@_needs_namespaces()
def test_a_forest_trained_on_train_and_test_channels_and_one_from_s3_runs_unchanged(tmp_path):
    """fit({"train", "test"}) as SageMaker's random-forest notebooks call it, plus an
    S3 channel with its content type: SM_CHANNEL_TEST and SM_CHANNEL_COLUMNS are set,
    SM_CHANNELS lists the three, inputdataconfig.json carries the ContentType. The
    test channel and the evaluation read the output `holdout`, whose folder in S3 the
    state machine makes from PreprocessingS3Uri: had it gone elsewhere, training
    would have found no data there."""
    proc, report, logs = _run_local(tmp_path, "forest-channels")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "local: input 'columns': 1 file from data/extra" in proc.stdout
    assert "channels: ['columns', 'test', 'train'] content type of columns: text/csv" in logs
    evaluation = json.loads((report / "evaluation.json").read_text())
    assert evaluation["metrics"]["accuracy"]["value"] >= 0.8 and evaluation["columns"] == ["x1", "x2"]


@_needs_namespaces()
def test_a_census_like_model_without_validation_runs_unchanged(tmp_path):
    """Preprocessing writes train and test only: training gets the train channel
    alone (no SM_CHANNEL_VALIDATION), evaluation the test output."""
    proc, report, logs = _run_local(tmp_path, "census-like")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "channels: ['train'] validation channel: None" in logs
    assert json.loads((report / "report.json").read_text())["status"] == "passed"
