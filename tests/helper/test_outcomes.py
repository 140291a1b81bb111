"""The same outcome locally and on AWS (issue 9; the table is in docs/runs-and-reports.md,
"Same outcome locally and on AWS"). The local path is covered end to end in
test_local.py. Here the AWS path: moto's Step Functions interpreter runs the
rendered definition on a synced code prefix; the evaluation job it creates is
then executed exactly as SageMaker would run it (its ContainerEntrypoint, on the
code downloaded from the prefix), and must refuse what the local run refuses,
with the same line; a metric that is not a number must end in MetricGateFailed
(exit 3), as it does locally."""

import json
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest

import asl
from mltp import bundle as bundle_mod
from mltp import config as config_mod
from mltp import naming
from mltp import repo as repo_mod
from mltp import sync as sync_mod
from mltp.aws import Clients
from mltp.evaluation_guard import EVALUATION_LIMIT

ROOT = Path(__file__).resolve().parents[2]
TINY = ROOT / "tests" / "fixtures" / "tiny"
CODE_DIR = "/opt/ml/processing/input/code/"


def wait_for(sfn, arn, seconds=60):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        described = sfn.describe_execution(executionArn=arn)
        if described["status"] != "RUNNING":
            return described
        time.sleep(0.05)
    raise AssertionError(f"{arn} still running")


pytestmark = asl.needs_many_executions


@pytest.fixture(scope="module")
def aws_run(tmp_path_factory):
    """Render the tiny model's definition, sync its code, run one execution per
    case in moto's interpreter; yields what each case needs."""
    import boto3
    from moto import mock_aws

    from mltp import definition

    monkeypatch = pytest.MonkeyPatch()
    for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}.items():
        monkeypatch.setenv(key, value)
    for key in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_CONFIG_FILE"):
        monkeypatch.delenv(key, raising=False)
    asl.patch_moto_get_object_body(monkeypatch)
    repo = tmp_path_factory.mktemp("tiny") / "tiny"
    import shutil

    shutil.copytree(TINY, repo)
    cfg = config_mod.load(repo)
    region = cfg.aws.region
    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}):
        s3 = boto3.client("s3", region_name=region)
        sm = boto3.client("sagemaker", region_name=region)
        sfn = boto3.client("stepfunctions", region_name=region)
        s3.create_bucket(Bucket=cfg.aws.bucket, CreateBucketConfiguration={"LocationConstraint": region})
        sm.create_model_package_group(ModelPackageGroupName=cfg.registry.model_package_group)
        built = bundle_mod.make(repo_mod.list_files(repo))
        sync_mod.sync(cfg, Clients(region), repo_mod.list_files(repo), bundle=built)
        text = definition.render(cfg)
        machine = sfn.create_state_machine(name=cfg.name, definition=asl.for_emulator(text),
                                           roleArn=cfg.aws.states_role_arn)["stateMachineArn"]
        results = {}
        for run, evaluation in (("string-metric", {"metrics": {"auc": {"value": "0.95"}}}),
                                ("number-metric", {"metrics": {"auc": {"value": 0.95}}})):
            data = naming.execution_input(cfg, cfg.name, run, built.content_hash, True)
            s3.put_object(Bucket=data.EvaluationBucket, Key=data.EvaluationKey, Body=json.dumps(evaluation).encode())
            # what the training job leaves, which CopyModel copies to the registry
            s3.put_object(Bucket=data.EvaluationBucket, Key=data.ModelArtifactCopySource.split("/", 1)[1], Body=b"model")
            arn = sfn.start_execution(stateMachineArn=machine, name=run, input=json.dumps(data.to_dict()))["executionArn"]
            results[run] = (wait_for(sfn, arn), data)
        job = sm.describe_processing_job(ProcessingJobName=results["number-metric"][1].EvaluationJobName)
        code = tmp_path_factory.mktemp("container-code")
        prefix = naming.code_prefix(cfg, built.content_hash) + "src/"
        for item in s3.list_objects_v2(Bucket=cfg.aws.bucket, Prefix=prefix)["Contents"]:
            target = code / item["Key"][len(prefix):]
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(s3.get_object(Bucket=cfg.aws.bucket, Key=item["Key"])["Body"].read())
        packages = sm.list_model_packages(ModelPackageGroupName=cfg.registry.model_package_group)
    monkeypatch.undo()
    yield {"results": results, "job": job, "code": code, "packages": packages["ModelPackageSummaryList"]}


def run_evaluation_job(aws_run, tmp_path, model_files, mode):
    """The evaluation job as SageMaker runs it: its entrypoint, its environment,
    the code from S3 at /opt/ml/processing/input/code (mapped to a folder here)."""
    job, code = aws_run["job"], aws_run["code"]
    model_dir, output_dir = tmp_path / "model", tmp_path / "output"
    model_dir.mkdir()
    output_dir.mkdir()
    staging = tmp_path / "staging"
    staging.mkdir()
    for name, content in model_files.items():
        (staging / name).write_text(content)
    with tarfile.open(model_dir / "model.tar.gz", "w:gz") as tar:
        for name in model_files:
            tar.add(staging / name, arcname=name)
    test_dir = tmp_path / "input" / "test"
    test_dir.mkdir(parents=True)
    (test_dir / "test.csv").write_text("x\n1\n")

    def local(value):
        return str(code / value[len(CODE_DIR):]) if value.startswith(CODE_DIR) else value

    command = [local(a) for a in job["AppSpecification"]["ContainerEntrypoint"]]
    assert command[0] == "python3"
    command[0] = sys.executable
    env = dict(job.get("Environment", {}))
    env.update(MLTP_MODEL_DIR=str(model_dir), MLTP_OUTPUT_DIR=str(output_dir), MLTP_INPUT_DIR=str(tmp_path / "input"),
               MODE=mode, PATH="/usr/bin:/bin")
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)


def test_a_string_metric_fails_the_gate_on_aws_as_locally(aws_run):
    described, _ = aws_run["results"]["string-metric"]
    assert described["status"] == "FAILED" and described["error"] == "MetricGateFailed"
    passed, _ = aws_run["results"]["number-metric"]
    assert passed["status"] == "SUCCEEDED"


def test_the_evaluation_job_runs_under_the_guard_from_the_code_prefix(aws_run):
    entry = aws_run["job"]["AppSpecification"]["ContainerEntrypoint"]
    assert entry == ["python3", CODE_DIR + ".mltp/processing_entry.py", CODE_DIR + ".mltp/evaluation_guard.py",
                     CODE_DIR + "evaluation.py"]
    assert (aws_run["code"] / ".mltp" / "evaluation_guard.py").is_file()
    assert (aws_run["code"] / ".mltp" / "processing_entry.py").is_file()


def test_an_empty_model_fails_the_evaluation_job_on_aws_as_locally(aws_run, tmp_path):
    proc = run_evaluation_job(aws_run, tmp_path, {}, "ok")
    assert proc.returncode == 1
    assert proc.stderr.splitlines()[-1] == (
        "mltp: the training script wrote no model: model.tar.gz holds no file (save the model under "
        "$SM_MODEL_DIR); nothing is evaluated or registered")
    assert not (tmp_path / "output" / "evaluation.json").exists()


def test_an_oversized_evaluation_json_fails_on_aws_naming_file_and_limit(aws_run, tmp_path):
    proc = run_evaluation_job(aws_run, tmp_path, {"model.json": '{"score": 0.93}'}, "huge-json")
    assert proc.returncode == 1, proc.stderr
    size = (tmp_path / "output" / "evaluation.json").stat().st_size
    assert size > EVALUATION_LIMIT
    assert proc.stderr.splitlines()[-1] == (
        f"mltp: evaluation.json written by evaluation.py is {size} bytes, over the limit of 128 KiB (Step "
        f"Functions keeps it in the run's state); write only the metrics to it")


def test_a_good_evaluation_passes_the_guard(aws_run, tmp_path):
    proc = run_evaluation_job(aws_run, tmp_path, {"model.json": '{"score": 0.93}'}, "ok")
    assert proc.returncode == 0, proc.stderr
    assert json.loads((tmp_path / "output" / "evaluation.json").read_text())["metrics"]["auc"]["value"] == 0.93
