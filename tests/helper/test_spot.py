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


# --------------------------------------------------------------------------- a local run, interrupted once

CHECKPOINTING_TRAIN = '''\
"""Saves its progress in the checkpoint folder and resumes from it (the pattern
spot training needs)."""
import json
import os
import signal
import sys
import time

folder = "/opt/ml/checkpoints"
if not os.path.isdir(folder):  # no private namespace on this machine: the job's folder is mapped
    folder = os.path.join(os.path.dirname(os.environ["SM_MODEL_DIR"]), "checkpoints")
state_file = os.path.join(folder, "state.json")
state = json.load(open(state_file)) if os.path.exists(state_file) else {"attempts": 0, "epoch": 0, "terms": 0}
state["attempts"] += 1
resumed_from = state["epoch"]


def save():
    with open(state_file + ".tmp", "w") as f:
        json.dump(state, f)
    os.replace(state_file + ".tmp", state_file)


def on_term(signum, frame):  # SageMaker's notice: save what there is, then go
    state["terms"] += 1
    save()
    print("SIGTERM: checkpoint saved at epoch", state["epoch"], flush=True)
    sys.exit(0)


signal.signal(signal.SIGTERM, on_term)
save()
print("attempt", state["attempts"], "resuming from epoch", resumed_from, flush=True)
for epoch in range(resumed_from, 5):
    state["epoch"] = epoch + 1
    save()
    print("epoch", epoch + 1, flush=True)
    if state["attempts"] == 1 and epoch == 2:
        time.sleep(600)  # slow capacity: the interruption comes first
with open(os.path.join(os.environ["SM_MODEL_DIR"], "model.json"), "w") as f:
    json.dump({"score": 0.93, "resumed_from": resumed_from, "attempts": state["attempts"]}, f)
'''


def _spot_tiny(tmp_path: Path) -> Path:
    import shutil

    repo = tmp_path / "tiny"
    shutil.copytree(ROOT / "tests" / "fixtures" / "tiny", repo)
    text = (repo / "config.yaml").read_text().replace(
        "  training:\n", "  training:\n    max_runtime_minutes: 5\n    spot: {max_wait_minutes: 10}\n")
    (repo / "config.yaml").write_text(text)
    (repo / "train.py").write_text(CHECKPOINTING_TRAIN)
    return repo


def test_a_local_spot_job_interrupted_once_resumes_from_its_checkpoint(tmp_path):
    import json
    import tarfile

    from test_local import run_local

    repo = _spot_tiny(tmp_path)
    proc, error, report = run_local(repo, "--interrupt-spot-after", "25", run_name="spot-test", timeout=420)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert error == ""
    notice = [line for line in proc.stdout.splitlines() if "spot interruption" in line]
    assert len(notice) == 1 and "stopped after 25 s (SIGTERM" in notice[0], proc.stdout
    assert "starting it again with /opt/ml/checkpoints kept (s3://tiny-artifacts/mltp/tiny-model/runs/spot-test/checkpoints/)" \
        in notice[0], notice
    with tarfile.open(report / "model.tar.gz") as tar:
        model = json.load(tar.extractfile("model.json"))
    # The second attempt found epoch 3 where the first left it, and ran only the rest.
    assert model == {"score": 0.93, "resumed_from": 3, "attempts": 2}
    # The checkpoint folder stays in the run's work folder, with what the job saved on SIGTERM.
    (job,) = [p for p in (repo / ".mltp" / "work" / "spot-test").iterdir() if p.is_dir() and p.name.startswith("tiny-model-train-")]
    state = json.loads((job / "opt" / "ml" / "checkpoints" / "state.json").read_text())
    assert state == {"attempts": 2, "epoch": 5, "terms": 1}
    # One log for the job, both attempts in it, the interruption between them.
    log = (report / "logs" / f"{job.name}.log").read_text()
    assert log.index("attempt 1 resuming from epoch 0") < log.index("SIGTERM: checkpoint saved at epoch 3") \
        < log.index("[mltp] spot interruption") < log.index("attempt 2 resuming from epoch 3")


def test_interrupt_spot_after_needs_a_spot_job_and_a_local_run(tmp_path):
    import shutil

    from test_local import run_local

    repo = tmp_path / "tiny"
    shutil.copytree(ROOT / "tests" / "fixtures" / "tiny", repo)
    proc, error, _ = run_local(repo, "--interrupt-spot-after", "5", run_name="no-spot")
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "sets no steps.training.spot" in error and "config.yaml" in error
    assert not (repo / ".mltp" / "work" / "no-spot").exists()
    out = subprocess.run([sys.executable, "-m", "mltp.cli", "run", str(_spot_tiny(tmp_path / "b")),
                          "--interrupt-spot-after", "5"], capture_output=True, text=True,
                         env={"PATH": "/usr/bin:/bin", "AWS_ENDPOINT_URL": "http://127.0.0.1:9"})
    assert out.returncode == 2 and "add --local" in out.stderr, out.stderr


def test_a_spot_job_that_ends_first_is_not_interrupted_and_says_so(tmp_path):
    import shutil

    from test_local import run_local

    repo = tmp_path / "tiny"
    shutil.copytree(ROOT / "tests" / "fixtures" / "tiny", repo)
    text = (repo / "config.yaml").read_text().replace("  training:\n", "  training:\n    spot: {max_wait_minutes: 240}\n")
    (repo / "config.yaml").write_text(text)
    proc, error, report = run_local(repo, "--interrupt-spot-after", "900", run_name="spot-quick")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (line,) = [line for line in proc.stdout.splitlines() if "spot interruption" in line]
    assert "ended before 900 s, so it was not interrupted" in line, line
    (job,) = [p for p in (repo / ".mltp" / "work" / "spot-quick").iterdir()
              if p.is_dir() and p.name.startswith("tiny-model-train-")]
    assert (job / "opt" / "ml" / "checkpoints").is_dir()  # there for the script, empty: it saved nothing
