"""`mltp start` and `mltp stop` against moto over HTTP.

moto keeps a started execution RUNNING (it does not run the definition unless
told to), which is what a real long SageMaker run looks like to start and stop.
A stand-in definition keeps these tests free of the SageMaker SDK import."""

import json
import sys
import types
import uuid
from pathlib import Path

import boto3
import pytest
from click.testing import CliRunner

import mltp
from mltp import bundle, config as config_mod, naming, repo as repo_mod, runs
from mltp.aws import Clients
from mltp.cli import main
from mltp.context import make_context
from mltp.errors import InvalidInput

REGION = "ap-northeast-2"
ACCOUNT = "123456789012"
DEFINITION = json.dumps({"StartAt": "Done", "States": {"Done": {"Type": "Succeed"}}})


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


@pytest.fixture(autouse=True)
def stand_in(monkeypatch):
    module = types.ModuleType("mltp.definition")
    module.render = lambda config: DEFINITION
    monkeypatch.setitem(sys.modules, "mltp.definition", module)
    monkeypatch.setattr(mltp, "definition", module, raising=False)


@pytest.fixture
def model(example_repo, aws_env):
    name, bucket = unique("m"), unique("mltp-bkt")
    boto3.client("s3", region_name=REGION, endpoint_url=aws_env).create_bucket(
        Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": REGION})
    path = example_repo / "config.yaml"
    path.write_text(path.read_text().replace("name: fraud-detection\n", f"name: {name}\n", 1)
                    .replace("bucket: mlops-artifacts", f"bucket: {bucket}"))
    return example_repo


def cli(*args: str, env=None):
    return CliRunner().invoke(main, list(args), env=env)


def prepare(repo: Path) -> None:
    """sync + deploy, as `mltp run` does before start."""
    for verb in ("sync", "deploy"):
        result = cli(verb, str(repo))
        assert result.exit_code == 0, result.output + result.stderr


def sfn(endpoint: str):
    return boto3.client("stepfunctions", region_name=REGION, endpoint_url=endpoint)


def context(repo: Path, run: str, env=None):
    return make_context(config_mod.load(repo), run_name=run, env=env or {})


def test_start_twice_is_one_execution(model, aws_env):
    prepare(model)
    first = cli("start", str(model), "--run-name", "build-42")
    assert first.exit_code == 0, first.output + first.stderr
    assert first.output.startswith("start: started arn:aws:states:")
    second = cli("start", str(model), "--run-name", "build-42")
    assert second.exit_code == 0, second.output + second.stderr
    arn = first.output.split()[2]
    assert second.output.strip() == f"start: re-attached to {arn} (RUNNING)"
    ctx = context(model, "build-42")
    clients = Clients(REGION, aws_env)
    machine = runs.state_machine_arn(ctx, clients)
    executions = sfn(aws_env).list_executions(stateMachineArn=machine)["executions"]
    assert [e["name"] for e in executions] == ["build-42"]
    assert runs.execution_arn(ctx, clients) == arn == executions[0]["executionArn"]


def test_execution_input_is_the_contract(model, aws_env):
    prepare(model)
    env = {"GIT_COMMIT": "abc123", "BUILD_URL": "https://jenkins/job/x/7/", "BUILD_TAG": "jenkins-x-7"}
    ctx = make_context(config_mod.load(model), env=env)
    clients = Clients(REGION, aws_env)
    built = bundle.make(repo_mod.list_files(model))
    content_hash = built.content_hash
    result = runs.start(ctx, clients, built)
    assert not result.attached and ctx.run_name == "jenkins-x-7"
    expected = naming.execution_input(ctx.config, ctx.state_machine, ctx.run_name, content_hash, register=True,
                                      git_commit="abc123", build_url="https://jenkins/job/x/7/", branch="")
    assert result.input == expected
    described = sfn(aws_env).describe_execution(executionArn=result.execution_arn)
    assert json.loads(described["input"]) == expected.to_dict()
    assert described["status"] == "RUNNING"


def test_branch_run_does_not_register(model, aws_env, monkeypatch):
    monkeypatch.setenv("BRANCH_NAME", "feature/x")
    prepare(model)
    result = cli("start", str(model), "--run-name", "pr-run")
    assert result.exit_code == 0, result.output + result.stderr
    arn = result.output.split()[2]
    name = config_mod.load(model).name
    assert f":execution:{name}--feature-x-" in arn and arn.endswith(":pr-run")
    execution_input = json.loads(sfn(aws_env).describe_execution(executionArn=arn)["input"])
    assert execution_input["Register"] is False and execution_input["Branch"] == "feature/x"


def test_start_before_sync_says_run_sync(model, aws_env):
    assert cli("deploy", str(model)).exit_code == 0
    result = cli("start", str(model), "--run-name", "r1")
    assert result.exit_code == 2
    assert "run `mltp sync` first" in result.stderr and "manifest.json" in result.stderr
    assert "is empty" in result.stderr


def test_start_before_deploy_says_run_deploy(model, aws_env):
    assert cli("sync", str(model)).exit_code == 0
    result = cli("start", str(model), "--run-name", "r1")
    assert result.exit_code == 2
    assert "run `mltp deploy` first" in result.stderr


def test_incomplete_code_prefix_is_not_used(model, aws_env):
    prepare(model)
    cfg = config_mod.load(model)
    built = bundle.make(repo_mod.list_files(model))
    boto3.client("s3", region_name=REGION, endpoint_url=aws_env).delete_object(
        Bucket=cfg.aws.bucket, Key=naming.code_prefix(cfg, built.content_hash) + "manifest.json")
    with pytest.raises(InvalidInput, match="mltp sync"):
        runs.start(context(model, "r2"), Clients(REGION, aws_env), built)


def test_reattach_to_finished_run_and_changed_code(model, aws_env):
    prepare(model)
    assert cli("start", str(model), "--run-name", "r3").exit_code == 0
    assert cli("stop", str(model), "--run-name", "r3").exit_code == 0
    with open(model / "train.py", "a") as handle:
        handle.write("\n# changed after the run started\n")
    assert cli("sync", str(model)).exit_code == 0
    result = cli("start", str(model), "--run-name", "r3")
    assert result.exit_code == 0, result.output + result.stderr
    assert "re-attached to" in result.output and "(ABORTED)" in result.output
    assert "note: it runs the code at" in result.output


def test_concurrent_start_reattaches(model, aws_env, monkeypatch):
    """Another build starts the run between our look-up and our start: ExecutionAlreadyExists."""
    prepare(model)
    ctx = context(model, "r4")
    clients = Clients(REGION, aws_env)
    built = bundle.make(repo_mod.list_files(model))
    sfn(aws_env).start_execution(stateMachineArn=runs.state_machine_arn(ctx, clients), name="r4",
                                 input=json.dumps({"other": "input"}))
    real = runs.describe_execution
    seen = []

    def first_miss(clients, arn):
        seen.append(arn)
        return None if len(seen) == 1 else real(clients, arn)

    monkeypatch.setattr(runs, "describe_execution", first_miss)
    result = runs.start(ctx, clients, built)
    assert result.attached and result.status == "RUNNING" and len(seen) == 2


def test_stop_running_run(model, aws_env):
    prepare(model)
    started = cli("start", str(model), "--run-name", "r5")
    arn = started.output.split()[2]
    stopped = cli("stop", str(model), "--run-name", "r5")
    assert stopped.exit_code == 0, stopped.output + stopped.stderr
    assert stopped.output.strip() == f"stop: stopped {arn} (mltp.Aborted)"
    assert sfn(aws_env).describe_execution(executionArn=arn)["status"] == "ABORTED"
    again = cli("stop", str(model), "--run-name", "r5")
    assert again.exit_code == 0
    assert again.output.strip() == f"stop: nothing to stop, {arn} is ABORTED"


def test_stop_api_for_wait(model, aws_env):
    prepare(model)
    ctx = context(model, "r6")
    clients = Clients(REGION, aws_env)
    started = runs.start(ctx, clients, bundle.make(repo_mod.list_files(model)))
    assert runs.stop(ctx, clients, cause="mltp wait: timed out after 1 minute") == started.execution_arn
    assert runs.stop(ctx, clients, cause="again") is None


def test_stop_when_nothing_runs_exits_0(model, aws_env):
    nothing_deployed = cli("stop", str(model), "--run-name", "never-started")
    assert nothing_deployed.exit_code == 0, nothing_deployed.output + nothing_deployed.stderr
    assert nothing_deployed.output.startswith("stop: nothing to stop, no execution arn:aws:states:")
    prepare(model)
    deployed = cli("stop", str(model), "--run-name", "never-started")
    assert deployed.exit_code == 0 and "nothing to stop" in deployed.output


def test_stop_ignores_a_broken_script(model, aws_env):
    """An aborted build's cleanup must stop the run even if the repo no longer validates."""
    prepare(model)
    assert cli("start", str(model), "--run-name", "r7").exit_code == 0
    (model / "train.py").write_text("def broken(:\n")
    result = cli("stop", str(model), "--run-name", "r7")
    assert result.exit_code == 0 and result.output.startswith("stop: stopped")


def test_start_refuses_code_that_does_not_verify(model, aws_env):
    """manifest.json present, train.py overwritten and the tarball gone: today's
    main started that run. start must refuse it, say what differs, and not start."""
    prepare(model)
    cfg = config_mod.load(model)
    built = bundle.make(repo_mod.list_files(model))
    prefix = naming.code_prefix(cfg, built.content_hash)
    s3 = boto3.client("s3", region_name=REGION, endpoint_url=aws_env)
    s3.put_object(Bucket=cfg.aws.bucket, Key=prefix + "src/train.py", Body=b"print('tampered')\n")
    s3.delete_object(Bucket=cfg.aws.bucket, Key=prefix + "sourcedir.tar.gz")
    result = cli("start", str(model), "--run-name", "tampered")
    assert result.exit_code == 2, result.output + result.stderr
    uri = f"s3://{cfg.aws.bucket}/{prefix}"
    assert result.stderr == (
        f"mltp: the code at {uri} does not verify against the model repo: src/train.py (18 bytes, expected "
        f"{(model / 'train.py').stat().st_size}), sourcedir.tar.gz (missing); run `mltp sync` to repair it\n")
    machine = runs.state_machine_arn(context(model, "tampered"), Clients(REGION, aws_env))
    assert sfn(aws_env).list_executions(stateMachineArn=machine)["executions"] == []
    assert cli("sync", str(model)).output.startswith(f"sync: repaired {uri}: replaced 2 objects")
    assert cli("start", str(model), "--run-name", "tampered").exit_code == 0


def test_start_refuses_a_planted_file(model, aws_env):
    """Processing jobs download all of src/: an extra file there is refused too."""
    prepare(model)
    cfg = config_mod.load(model)
    built = bundle.make(repo_mod.list_files(model))
    prefix = naming.code_prefix(cfg, built.content_hash)
    boto3.client("s3", region_name=REGION, endpoint_url=aws_env).put_object(
        Bucket=cfg.aws.bucket, Key=prefix + "src/sitecustomize.py", Body=b"import os\n")
    with pytest.raises(InvalidInput, match=r"src/sitecustomize.py \(unexpected\)"):
        runs.start(context(model, "planted"), Clients(REGION, aws_env), built)


def test_interrupted_sync_is_refused_by_start_then_completed(model, aws_env, monkeypatch):
    """Fault: the upload dies after some objects landed. No manifest is left,
    start refuses, and the next sync completes the prefix."""
    from boto3.s3 import transfer

    assert cli("deploy", str(model)).exit_code == 0
    real = transfer.create_transfer_manager

    def failing_manager(client, config):
        manager = real(client, config)
        original = manager.upload
        count = {"n": 0}

        def upload(*args, **kwargs):
            count["n"] += 1
            if count["n"] == 3:
                raise ConnectionResetError("agent lost its network")
            return original(*args, **kwargs)

        manager.upload = upload
        return manager

    monkeypatch.setattr(transfer, "create_transfer_manager", failing_manager)
    failed = cli("sync", str(model))
    assert failed.exit_code != 0
    monkeypatch.setattr(transfer, "create_transfer_manager", real)
    cfg = config_mod.load(model)
    built = bundle.make(repo_mod.list_files(model))
    with pytest.raises(InvalidInput, match="manifest.json \\(missing\\)|is empty"):
        runs.start(context(model, "after-fault"), Clients(REGION, aws_env), built)
    assert cli("sync", str(model)).exit_code == 0
    assert runs.start(context(model, "after-fault"), Clients(REGION, aws_env), built).execution_arn
