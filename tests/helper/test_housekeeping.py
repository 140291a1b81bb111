"""Housekeeping: .mltp/work/ keeps the newest runs, `mltp clean` empties it, and
`mltp prune` finds (and with --yes deletes) what no kept run needs on AWS,
against moto over HTTP."""

import json
import os
import subprocess
import sys
import time
import uuid
from datetime import datetime, timedelta, timezone

import boto3
import pytest

from mltp import config as config_mod
from mltp import housekeeping
from mltp.aws import Clients
from mltp.errors import InvalidInput

REGION = "ap-northeast-2"
ROLE = "arn:aws:iam::123456789012:role/StepFunctionsExecution"
DEFINITION = json.dumps({"StartAt": "Done", "States": {"Done": {"Type": "Succeed"}}})


def make_runs(repo, count):
    work = repo / ".mltp" / "work"
    for i in range(count):
        run = work / f"run-{i}"
        (run / "job").mkdir(parents=True)
        (run / "job" / "data.bin").write_bytes(b"x" * 1000)
        stamp = time.time() - (count - i) * 60
        os.utime(run, (stamp, stamp))
    return work


def test_work_keeps_the_newest_five_runs_counting_the_one_starting(tmp_path):
    work = make_runs(tmp_path, 7)
    gone = housekeeping.trim_work(tmp_path, current="run-new")
    assert sorted(p.name for p in gone) == ["run-0", "run-1", "run-2"]
    assert sorted(p.name for p in work.iterdir()) == ["run-3", "run-4", "run-5", "run-6"]  # + run-new = 5
    housekeeping.trim_work(tmp_path)
    assert len(list(work.iterdir())) == 4


def test_clean_empties_the_work_folder(tmp_path):
    work = make_runs(tmp_path, 3)
    (tmp_path / ".mltp" / "runs" / "r").mkdir(parents=True)
    result = subprocess.run([sys.executable, "-m", "mltp.cli", "clean", str(tmp_path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "0.0 MB freed" in result.stdout and list(work.iterdir()) == []
    assert (tmp_path / ".mltp" / "runs" / "r").is_dir()  # reports stay


@pytest.mark.parametrize("text,expected", [("30d", timedelta(days=30)), ("12h", timedelta(hours=12)), ("2w", timedelta(days=14))])
def test_ages(text, expected):
    assert housekeeping.parse_age(text) == expected


@pytest.mark.parametrize("text", ["30", "0d", "3 months", ""])
def test_bad_ages_are_invalid_input(text):
    with pytest.raises(InvalidInput, match="--older-than"):
        housekeeping.parse_age(text)


@pytest.fixture
def model(aws_env, example_repo):
    """The example repo renamed to fresh names, with a bucket, state machines,
    executions, code prefixes and a registered package on moto."""
    suffix = uuid.uuid4().hex[:8]
    name, bucket = f"prune-{suffix}", f"prune-bucket-{suffix}"
    path = example_repo / "config.yaml"
    text = path.read_text().replace("name: fraud-detection", f"name: {name}").replace("mlops-artifacts", bucket)
    path.write_text(text.replace("model_package_group: fraud-detection", f"model_package_group: {name}"))
    cfg = config_mod.load(example_repo, None)
    s3 = boto3.client("s3", region_name=REGION, endpoint_url=aws_env)
    sfn = boto3.client("stepfunctions", region_name=REGION, endpoint_url=aws_env)
    sm = boto3.client("sagemaker", region_name=REGION, endpoint_url=aws_env)
    s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": REGION})
    for content_hash in ("aaaa1111", "bbbb2222", "cccc3333", "dddd4444"):
        for key in ("src/train.py", "sourcedir.tar.gz"):
            s3.put_object(Bucket=bucket, Key=f"mltp/{name}/code/{content_hash}/{key}", Body=b"x")
    s3.put_object(Bucket=bucket, Key=f"mltp/{name}/runs/r1/evaluation.json", Body=b"{}")
    machines = {}
    for machine, code in ((name, "aaaa1111"), (f"{name}--old-branch", "dddd4444"), (f"{name}--idle", None)):
        arn = sfn.create_state_machine(name=machine, definition=DEFINITION, roleArn=ROLE)["stateMachineArn"]
        machines[machine] = arn
        if code:
            run = sfn.start_execution(stateMachineArn=arn, name="r1",
                                      input=json.dumps({"CodeS3Uri": f"s3://{bucket}/mltp/{name}/code/{code}/src/"}))
            sfn.stop_execution(executionArn=run["executionArn"])  # ended: only its dates count
    sfn.create_state_machine(name=f"other-{suffix}", definition=DEFINITION, roleArn=ROLE)  # not this model's
    sm.create_model_package_group(ModelPackageGroupName=name)
    sm.create_model_package(
        ModelPackageGroupName=name, ModelApprovalStatus="Approved",
        InferenceSpecification={"Containers": [{"Image": "123456789012.dkr.ecr.ap-northeast-2.amazonaws.com/x:1",
                                                "Environment": {"SAGEMAKER_SUBMIT_DIRECTORY":
                                                                f"s3://{bucket}/mltp/{name}/code/bbbb2222/sourcedir.tar.gz"}}],
                                "SupportedContentTypes": ["text/csv"], "SupportedResponseMIMETypes": ["text/csv"]})
    return cfg, Clients(REGION, aws_env), machines, s3, sfn


def test_nothing_is_stale_within_the_period(model):
    cfg, clients, _, _, _ = model
    stale = housekeeping.find_stale(cfg, clients, timedelta(days=30))
    assert stale.state_machines == [] and stale.code_prefixes == []


def test_prune_finds_idle_branch_machines_and_unreferenced_code_and_deletes_only_those(model):
    cfg, clients, machines, s3, sfn = model
    later = datetime.now(timezone.utc) + timedelta(days=31)
    stale = housekeeping.find_stale(cfg, clients, timedelta(days=30), now=later)
    assert sorted(m["name"] for m in stale.state_machines) == [f"{cfg.name}--idle", f"{cfg.name}--old-branch"]
    # aaaa: an execution of the default state machine runs it; bbbb: a registered model serves it;
    # dddd was only used by a branch state machine that goes.
    assert sorted(c["uri"].split("/")[-2] for c in stale.code_prefixes) == ["cccc3333", "dddd4444"]
    assert all(c["objects"] == 2 for c in stale.code_prefixes)

    shown = []
    housekeeping.delete(stale, clients, shown.append)
    names = {m["name"] for m in sfn.list_state_machines()["stateMachines"]}
    assert cfg.name in names and f"{cfg.name}--idle" not in names and f"{cfg.name}--old-branch" not in names
    left = {o["Key"].split("/")[3] for o in s3.list_objects_v2(Bucket=cfg.aws.bucket, Prefix=f"mltp/{cfg.name}/code/")["Contents"]}
    assert left == {"aaaa1111", "bbbb2222"}
    assert s3.list_objects_v2(Bucket=cfg.aws.bucket, Prefix=f"mltp/{cfg.name}/runs/")["KeyCount"] == 1
    assert len(shown) == 4


def test_prune_command_lists_and_deletes_nothing_without_yes(model, example_repo, aws_env):
    cfg, _, _, _, sfn = model
    env = {k: v for k, v in os.environ.items() if k not in ("BRANCH_NAME", "BUILD_TAG")}
    result = subprocess.run([sys.executable, "-m", "mltp.cli", "prune", str(example_repo), "--older-than", "1h"],
                            capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stderr
    assert "prune: nothing unused for 1h" in result.stdout  # everything here is minutes old
    bad = subprocess.run([sys.executable, "-m", "mltp.cli", "prune", str(example_repo), "--older-than", "soon"],
                         capture_output=True, text=True, env=env)
    assert bad.returncode == 2 and "--older-than 'soon'" in bad.stderr and "Traceback" not in bad.stderr


def test_a_git_checkout_that_does_not_ignore_mltp_gets_a_note(tmp_path):
    assert housekeeping.gitignore_note(tmp_path) is None  # not a git checkout
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    assert ".gitignore" in housekeeping.gitignore_note(tmp_path)
    (tmp_path / ".gitignore").write_text(".mltp/\n")
    assert housekeeping.gitignore_note(tmp_path) is None


def _put_code(s3, bucket, prefix):
    for key in ("src/train.py", "sourcedir.tar.gz"):
        s3.put_object(Bucket=bucket, Key=f"{prefix}{key}", Body=b"x")


def _code_left(s3, cfg):
    """The code prefixes left, as paths under code/ ('<hash>', 'branches/<slug>/<hash>')."""
    root = f"mltp/{cfg.name}/code/"
    keys = [o["Key"][len(root):] for o in s3.list_objects_v2(Bucket=cfg.aws.bucket, Prefix=root)["Contents"]]
    return {key.rsplit("/src/", 1)[0] if "/src/" in key else key.rsplit("/", 1)[0] for key in keys}


def test_prune_judges_each_branch_code_prefix_on_its_own(model):
    """`code/branches/<slug>/<hash>/` is a code prefix of its own, not part of one
    `code/branches/` folder: the one a registered model serves stays, the others go."""
    cfg, clients, _, s3, _ = model
    bucket, root = cfg.aws.bucket, f"mltp/{cfg.name}/code/"
    for code in ("branches/feature-x/eeee5555/", "branches/feature-x/ffff6666/", "branches/old/abcd7777/"):
        _put_code(s3, bucket, root + code)
    clients.sagemaker.create_model_package(
        ModelPackageGroupName=cfg.registry.model_package_group, ModelApprovalStatus="Approved",
        InferenceSpecification={"Containers": [{"Image": "123456789012.dkr.ecr.ap-northeast-2.amazonaws.com/x:1",
                                                "Environment": {"SAGEMAKER_SUBMIT_DIRECTORY":
                                                                f"s3://{bucket}/{root}branches/feature-x/ffff6666/sourcedir.tar.gz"}}],
                                "SupportedContentTypes": ["text/csv"], "SupportedResponseMIMETypes": ["text/csv"]})
    later = datetime.now(timezone.utc) + timedelta(days=31)
    stale = housekeeping.find_stale(cfg, clients, timedelta(days=30), now=later)
    assert sorted(c["prefix"][len(root):] for c in stale.code_prefixes) == [
        "branches/feature-x/eeee5555/", "branches/old/abcd7777/", "cccc3333/", "dddd4444/"]
    assert all(c["objects"] == 2 for c in stale.code_prefixes)
    assert "branches/feature-x/ffff6666" in stale.kept_code and "bbbb2222" in stale.kept_code

    housekeeping.delete(stale, clients, lambda line: None)
    assert _code_left(s3, cfg) == {"aaaa1111", "bbbb2222", "branches/feature-x/ffff6666"}


def test_prune_keeps_the_code_of_a_branch_that_still_runs(model):
    """A branch state machine with a recent execution stays, and so does the branch
    code its executions ran; older code of the same branch, unreferenced, goes."""
    cfg, clients, _, s3, sfn = model
    bucket, root = cfg.aws.bucket, f"mltp/{cfg.name}/code/"
    _put_code(s3, bucket, root + "branches/busy/0dd00000/")
    _put_code(s3, bucket, root + "branches/busy/cafe0001/")
    busy = sfn.create_state_machine(name=f"{cfg.name}--busy", definition=DEFINITION, roleArn=ROLE)["stateMachineArn"]
    time.sleep(2.2)  # S3 keeps whole seconds: what follows is newer than all of the above
    sfn.start_execution(stateMachineArn=busy, name="r2",
                        input=json.dumps({"CodeS3Uri": f"s3://{bucket}/{root}branches/busy/cafe0001/src/",
                                          "SourceDirS3Uri": f"s3://{bucket}/{root}branches/busy/cafe0001/sourcedir.tar.gz"}))
    stale = housekeeping.find_stale(cfg, clients, timedelta(seconds=1.5))
    assert f"{cfg.name}--busy" not in [m["name"] for m in stale.state_machines]
    gone = sorted(c["prefix"][len(root):] for c in stale.code_prefixes)
    assert gone == ["branches/busy/0dd00000/", "cccc3333/", "dddd4444/"], gone
    housekeeping.delete(stale, clients, lambda line: None)
    assert "branches/busy/cafe0001" in _code_left(s3, cfg)


def test_references_are_read_after_the_models_own_code_folder():
    """Both layouts, only under this model's `<prefix>/<name>/code/`, even when the
    prefix or the name themselves look like a code folder."""
    pattern = housekeeping._code_pattern("code/abc/code/")
    text = ('{"CodeS3Uri": "s3://b/code/abc/code/1234/src/", "SourceDirS3Uri": '
            '"s3://b/code/abc/code/branches/feat-1/beef/sourcedir.tar.gz", "Other": "s3://b/code/abcd/code/ffff/"}')
    assert pattern.findall(text) == ["1234", "branches/feat-1/beef"]


# --------------------------------------------------------------------------- deleting only inside .mltp/work (H1)


@pytest.fixture
def outside(tmp_path):
    """A folder elsewhere on the agent, with a folder and a file in it: what a
    symlink in the repo may point at. Nothing here may ever be deleted."""
    target = tmp_path / "outside"
    (target / "old-run").mkdir(parents=True)
    (target / "old-run" / "keep.txt").write_text("precious\n")
    (target / "notes.txt").write_text("precious\n")
    stamp = time.time() - 3600
    os.utime(target / "old-run", (stamp, stamp))
    return target


def _untouched(outside):
    return (sorted(p.relative_to(outside).as_posix() for p in outside.rglob("*"))
            == ["notes.txt", "old-run", "old-run/keep.txt"])


def _clean(repo):
    return subprocess.run([sys.executable, "-m", "mltp.cli", "clean", str(repo)], capture_output=True, text=True)


@pytest.mark.parametrize("link", [".mltp/work", ".mltp"])
def test_clean_refuses_a_symlinked_work_folder(tmp_path, outside, link):
    repo = tmp_path / "repo"
    (repo / link).parent.mkdir(parents=True)
    os.symlink(outside, repo / link)
    result = _clean(repo)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "is a symlink" in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert _untouched(outside)


def test_trimming_refuses_a_symlinked_work_folder(tmp_path, outside):
    """The trimming at the start of `run --local` kept the newest runs of whatever
    .mltp/work pointed at, deleting the others."""
    (tmp_path / ".mltp").mkdir()
    os.symlink(outside, tmp_path / ".mltp" / "work")
    with pytest.raises(InvalidInput, match=r"\.mltp/work: is a symlink"):
        housekeeping.trim_work(tmp_path, keep=1, current="run-new")
    assert _untouched(outside)


def test_a_local_run_with_a_symlinked_work_folder_is_exit_2_before_anything(tmp_path, outside, example_repo,
                                                                            monkeypatch):
    from click.testing import CliRunner

    from mltp.cli import main

    (example_repo / ".mltp").mkdir()
    os.symlink(outside, example_repo / ".mltp" / "work")
    monkeypatch.chdir(example_repo)
    result = CliRunner().invoke(main, ["run", ".", "--local", "--run-name", "r1"])
    assert result.exit_code == 2, result.output
    assert ".mltp/work: is a symlink" in result.stderr
    assert _untouched(outside)


def test_links_inside_the_work_folder_are_removed_not_followed(tmp_path, outside):
    """A link to a folder, a link to a file and a link deeper in a run folder:
    `clean` and the trimming remove the links, never what they point at."""
    work = make_runs(tmp_path, 3)
    os.symlink(outside / "old-run", work / "linked-run")
    os.symlink(outside / "notes.txt", work / "linked-file")
    os.symlink(outside, work / "run-0" / "job" / "nested")
    stamp = time.time() - 7200
    os.utime(work / "run-0", (stamp, stamp))
    gone = housekeeping.trim_work(tmp_path, keep=1)
    assert sorted(p.name for p in gone) == ["run-0", "run-1"]  # links are not run folders
    assert _untouched(outside)
    assert _clean(tmp_path).returncode == 0
    assert list(work.iterdir()) == []
    assert _untouched(outside)


def test_owned_remove_acts_only_inside_its_root(tmp_path, outside):
    from mltp import owned

    root = tmp_path / "root"
    (root / "sub").mkdir(parents=True)
    os.symlink(outside, root / "sub" / "escape")
    for path in (outside / "old-run", root / ".." / "outside" / "notes.txt", root / "sub" / "escape" / "old-run",
                 root / "."):
        with pytest.raises(InvalidInput):
            owned.remove(path, root)
    os.symlink(outside, tmp_path / "root-link")
    with pytest.raises(InvalidInput, match="is a symlink"):
        owned.remove(tmp_path / "root-link" / "old-run", tmp_path / "root-link")
    owned.remove(root / "sub", root)
    assert list(root.iterdir()) == [] and _untouched(outside)


def test_an_atomic_write_is_whole_or_not_at_all_and_never_through_a_link(tmp_path, outside):
    """owned.replacing: every file mltp writes atomically (reports, logs, the
    registry, fetched models, the agent's caches) goes through it."""
    from mltp import owned

    folder = tmp_path / "folder"
    folder.mkdir()
    target = folder / "report.json"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError):  # the block fails midway: the old bytes stay, no temporary file is left
        with owned.replacing(target) as out:
            out.write(b"half")
            raise RuntimeError("stopped")
    assert target.read_bytes() == b"old" and sorted(p.name for p in folder.iterdir()) == ["report.json"]
    os.symlink(outside / "notes.txt", folder / "link.json")  # a link at the name: replaced as a link
    owned.write_atomic(folder / "link.json", b"new", mode=0o600)
    assert not (folder / "link.json").is_symlink() and (folder / "link.json").read_bytes() == b"new"
    assert (folder / "link.json").stat().st_mode & 0o777 == 0o600
    assert _untouched(outside)
    owned.write_atomic(target, b"whole")
    assert target.read_bytes() == b"whole" and target.stat().st_mode & 0o777 == 0o644


def test_clean_and_trimming_leave_the_folder_of_a_run_in_progress(tmp_path):
    """A local run of the repo holds its name (locks.py): another run's
    trimming and `mltp clean` (other processes) leave its folder alone."""
    from mltp import locks

    work = make_runs(tmp_path, 3)
    name, lock = locks.claim_run(tmp_path, "run-0", explicit=True)  # the oldest: first to go otherwise
    try:
        assert name == "run-0"
        assert sorted(p.name for p in housekeeping.trim_work(tmp_path, keep=1)) == ["run-1"]
        assert _clean(tmp_path).returncode == 0
        assert [p.name for p in work.iterdir()] == ["run-0"]
    finally:
        lock.release()
    assert _clean(tmp_path).returncode == 0 and list(work.iterdir()) == []


def test_a_run_reusing_a_name_starts_from_a_fresh_work_folder(tmp_path, outside):
    """What an earlier run's scripts left in `.mltp/work/<run>/` (a link where mltp
    later writes a job's config file) goes, without following the link."""
    planted = tmp_path / ".mltp" / "work" / "r1" / "job" / "opt" / "ml" / "input" / "config"
    planted.mkdir(parents=True)
    os.symlink(outside / "notes.txt", planted / "hyperparameters.json")
    folder = housekeeping.fresh_run_folder(tmp_path, "r1")
    assert folder == tmp_path / ".mltp" / "work" / "r1" and not folder.exists()
    assert _untouched(outside)
    os.symlink(outside, folder)  # a link in its place is refused (exit 2), not written through
    with pytest.raises(InvalidInput, match=r"\.mltp/work/r1: is a symlink"):
        housekeeping.fresh_run_folder(tmp_path, "r1")
    assert _untouched(outside)


def test_a_lock_file_that_is_a_link_is_exit_2_and_never_written(tmp_path, outside):
    from mltp import locks

    (tmp_path / ".mltp" / "locks").mkdir(parents=True)
    os.symlink(outside / "notes.txt", tmp_path / ".mltp" / "locks" / "run-r1.lock")
    with pytest.raises(InvalidInput, match="cannot be used as a lock file"):
        locks.claim_run(tmp_path, "r1", explicit=True)
    assert not locks.run_in_progress(tmp_path, "r1")
    assert (outside / "notes.txt").read_text() == "precious\n" and _untouched(outside)

def test_prune_never_removes_a_branch_machine_with_a_running_execution_nor_its_code(model):
    """Training may run 28 days: a branch run that started long before the
    period and still runs keeps its state machine and its code."""
    cfg, clients, _, s3, sfn = model
    bucket, root = cfg.aws.bucket, f"mltp/{cfg.name}/code/"
    _put_code(s3, bucket, root + "branches/long/10f90000/")
    long_run = sfn.create_state_machine(name=f"{cfg.name}--long", definition=DEFINITION, roleArn=ROLE)["stateMachineArn"]
    sfn.start_execution(stateMachineArn=long_run, name="r28",
                        input=json.dumps({"CodeS3Uri": f"s3://{bucket}/{root}branches/long/10f90000/src/"}))
    assert [e["status"] for e in sfn.list_executions(stateMachineArn=long_run)["executions"]] == ["RUNNING"]
    later = datetime.now(timezone.utc) + timedelta(days=31)  # the run started 31 days before "now"
    stale = housekeeping.find_stale(cfg, clients, timedelta(days=30), now=later)
    assert f"{cfg.name}--long" not in [m["name"] for m in stale.state_machines]
    assert "branches/long/10f90000" in stale.kept_code
    assert "branches/long/10f90000/" not in [c["prefix"][len(root):] for c in stale.code_prefixes]
    housekeeping.delete(stale, clients, lambda line: None)
    assert f"{cfg.name}--long" in {m["name"] for m in sfn.list_state_machines()["stateMachines"]}
    assert "branches/long/10f90000" in _code_left(s3, cfg)


def test_a_run_that_ended_within_the_period_keeps_its_machine(model):
    """Started before the period, stopped within it: not idle."""
    cfg, clients, machines, _, sfn = model
    arn = sfn.create_state_machine(name=f"{cfg.name}--recent", definition=DEFINITION, roleArn=ROLE)["stateMachineArn"]
    sfn.start_execution(stateMachineArn=arn, name="r1", input="{}")
    time.sleep(1.2)
    run = sfn.list_executions(stateMachineArn=arn)["executions"][0]
    sfn.stop_execution(executionArn=run["executionArn"])
    stopped = sfn.describe_execution(executionArn=run["executionArn"])["stopDate"]
    cutoff_between = timedelta(seconds=(datetime.now(timezone.utc) - stopped).total_seconds() + 0.6)
    stale = housekeeping.find_stale(cfg, clients, cutoff_between)
    names = [m["name"] for m in stale.state_machines]
    assert f"{cfg.name}--recent" not in names


def test_a_run_started_between_listing_and_deleting_keeps_its_machine_and_code(model):
    cfg, clients, machines, s3, sfn = model
    later = datetime.now(timezone.utc) + timedelta(days=31)
    stale = housekeeping.find_stale(cfg, clients, timedelta(days=30), now=later)
    old = machines[f"{cfg.name}--old-branch"]
    sfn.start_execution(stateMachineArn=old, name="r2",
                        input=json.dumps({"CodeS3Uri": f"s3://{cfg.aws.bucket}/mltp/{cfg.name}/code/dddd4444/src/"}))
    shown = []
    housekeeping.delete(stale, clients, shown.append)
    assert f"{cfg.name}--old-branch" in {m["name"] for m in sfn.list_state_machines()["stateMachines"]}
    assert "dddd4444" in _code_left(s3, cfg) and "cccc3333" not in _code_left(s3, cfg)
    assert any(line.startswith(f"kept state machine {cfg.name}--old-branch") for line in shown), shown
