"""Managed spot training (steps.training.spot, docs/contract.md 3.3): the config
check, the checkpoint prefix in the generated policies, and a local run that is
interrupted once and resumes from its checkpoint."""

import subprocess
import sys
from pathlib import Path

import pytest

from mltp import config as config_mod
from mltp import naming, spot
from mltp.errors import InvalidInput

ROOT = Path(__file__).resolve().parents[2]
BASE = ROOT / "tests" / "fixtures" / "base"


def _repo(tmp_path: Path, training: str) -> Path:
    repo = tmp_path / "repo"
    repo.mkdir(exist_ok=True)
    (repo / "config.yaml").write_text((BASE / "config.yaml").read_text() + "steps:\n  training:\n" + training)
    return repo


def test_spot_loads_into_the_typed_config(tmp_path):
    cfg = config_mod.load(_repo(tmp_path, "    max_runtime_minutes: 60\n    spot:\n      max_wait_minutes: 60\n"))
    assert cfg.steps.training.spot == config_mod.model.SpotConfig(max_wait_minutes=60)
    assert config_mod.load(BASE).steps.training.spot is None


def test_a_wait_below_the_runtime_is_refused_naming_both_keys_and_lines(tmp_path):
    repo = _repo(tmp_path, "    max_runtime_minutes: 180\n    spot:\n      max_wait_minutes: 120\n")
    with pytest.raises(InvalidInput) as info:
        config_mod.load(repo)
    (line,) = info.value.details
    assert line.endswith("repo/config.yaml:15: steps.training.spot.max_wait_minutes: 120 is below "
                         "steps.training.max_runtime_minutes (180, line 13): the wait for spot capacity includes "
                         "the run, so SageMaker needs max_wait_minutes >= max_runtime_minutes"), line
    # The default runtime (120 minutes) counts when the file does not set it.
    repo = _repo(tmp_path, "    spot:\n      max_wait_minutes: 30\n")
    with pytest.raises(InvalidInput) as info:
        config_mod.load(repo)
    assert "steps.training.max_runtime_minutes (120, the default)" in info.value.details[0]


@pytest.mark.parametrize("spot_text, says", [
    ("    spot: {}\n", "max_wait_minutes"),
    ("    spot:\n      max_wait_minutes: 0\n", "max_wait_minutes"),
    ("    spot:\n      max_wait_minutes: 40321\n", "max_wait_minutes"),
    ("    spot:\n      max_wait_minutes: 60\n      checkpoint: s3://x/\n", "checkpoint"),
    ("    spot: true\n", "spot"),
])
def test_bad_spot_settings_are_refused(tmp_path, spot_text, says):
    with pytest.raises(InvalidInput) as info:
        config_mod.load(_repo(tmp_path, spot_text))
    assert says in " ".join(info.value.details)


def test_validate_exits_2_with_one_line_and_sends_nothing(tmp_path):
    repo = _repo(tmp_path, "    max_runtime_minutes: 180\n    spot:\n      max_wait_minutes: 120\n")
    for name in ("preprocessing.py", "train.py", "evaluation.py"):
        (repo / name).write_text("print('x')\n")
    out = subprocess.run([sys.executable, "-m", "mltp.cli", "validate", str(repo)], capture_output=True, text=True,
                         env={"PATH": "/usr/bin:/bin", "AWS_ENDPOINT_URL": "http://127.0.0.1:9"})
    assert out.returncode == 2, out.stderr
    assert "Traceback" not in out.stderr
    assert "steps.training.spot.max_wait_minutes" in out.stderr and "steps.training.max_runtime_minutes" in out.stderr
    assert "config.yaml:15" in out.stderr


def test_checkpoints_live_under_the_run_for_default_and_branch_runs():
    cfg = config_mod.load(BASE)
    main = naming.execution_input(cfg, cfg.name, "r1", "0" * 64, True)
    branch_machine = f"{cfg.name}--feature-x"
    branch = naming.execution_input(cfg, branch_machine, "r2", "0" * 64, False)
    assert main.CheckpointS3Uri == f"s3://{cfg.aws.bucket}/{naming.run_prefix(cfg, 'r1')}checkpoints/"
    assert branch.CheckpointS3Uri == f"s3://{cfg.aws.bucket}/{naming.run_prefix(cfg, 'r2', branch_machine)}checkpoints/"
    assert "/branches/feature-x/runs/r2/" in branch.CheckpointS3Uri
    assert spot.CHECKPOINT_LOCAL_PATH == "/opt/ml/checkpoints"


def test_the_job_roles_reach_their_own_runs_checkpoints_only(tmp_path):
    """SageMaker lists, reads and writes CheckpointConfig.S3Uri as the job's role: the
    default role its runs' checkpoints, the branch role only the branches'."""
    import json

    from click.testing import CliRunner

    import iam_check
    from mltp.cli import main

    repo = tmp_path / "repo"
    repo.mkdir()
    text = (BASE / "config.yaml").read_text().replace(
        "  states_role_arn:", "  branch_sagemaker_role_arn: arn:aws:iam::123456789012:role/SageMakerBranches\n"
                              "  states_role_arn:")
    (repo / "config.yaml").write_text(text + "steps:\n  training:\n    spot:\n      max_wait_minutes: 240\n")
    cfg = config_mod.load(repo)

    def policy(role):
        result = CliRunner().invoke(main, ["iam-policy", str(repo), "--role", role])
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout)

    default_uri = naming.execution_input(cfg, cfg.name, "r1", "0" * 64, True).CheckpointS3Uri
    branch_uri = naming.execution_input(cfg, f"{cfg.name}--pr-7", "r2", "0" * 64, False).CheckpointS3Uri
    bucket = cfg.aws.bucket
    for role, allowed, denied in (("sagemaker", default_uri, branch_uri), ("branch-sagemaker", branch_uri, default_uri)):
        document = policy(role)
        for uri, expected in ((allowed, True), (denied, False)):
            key = uri[len(f"s3://{bucket}/"):]
            for action in ("s3:GetObject", "s3:PutObject"):
                assert iam_check.allows(document, action, f"arn:aws:s3:::{bucket}/{key}epoch-3.pt") is expected, \
                    (role, action, uri)
            assert iam_check.allows(document, "s3:ListBucket", f"arn:aws:s3:::{bucket}", {"s3:prefix": key}) \
                is expected, (role, uri)


def test_the_jenkins_policy_may_read_prices():
    from click.testing import CliRunner

    import json

    import iam_check
    from mltp.cli import main

    result = CliRunner().invoke(main, ["iam-policy", str(BASE), "--role", "jenkins"])
    assert iam_check.allows(json.loads(result.stdout), "pricing:GetProducts", "*")
