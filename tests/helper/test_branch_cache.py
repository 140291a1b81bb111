"""The step cache on branches and pull requests (docs/contract.md, 8.4): a
branch's run reads its own records, then the default branch's, and copies a
default-branch hit's outputs into its own run's folder; the default branch
never reads a branch's records. On moto's Step Functions interpreter
(branch_cache_aws.py, the AWS command path) and locally (`mltp run --local`
with the Jenkins variables of a branch build)."""

import json
import re
import subprocess
import sys
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest

from mltp import bundle as bundle_mod
from mltp import cache_index, naming, plan, step_cache
from mltp import config as config_mod
from mltp import repo as repo_mod

from test_step_cache import _Index, _env, _record, _scenario, _tiny

HERE = Path(__file__).resolve().parent


def _keys_and_files(repo):
    cfg = config_mod.load(repo)
    files = bundle_mod.make(repo_mod.check(cfg)[0]).files
    return cfg, files, step_cache.step_keys(cfg, files, {})


NOW = cache_index.now_utc()


def _hit(cfg, keys, role, machine, run, age):
    record = _record(cfg, machine, run)
    record = replace(record, role=role, key=keys[role].key, parts=keys[role].parts, finished=(NOW - age).isoformat())
    if role != "preprocessing":
        execution = naming.execution_input(cfg, machine, run, "0" * 32, register=True).to_dict()
        record = replace(record, outputs={k: str(execution[k]) for k in cache_index.OUTPUT_KEYS[role]})
    return record


def test_a_branch_plan_takes_its_own_records_first_then_the_default_branch_s(tmp_path):
    repo = _tiny(tmp_path, steps=("preprocessing", "training", "evaluation"))
    cfg, files, keys = _keys_and_files(repo)
    branch = naming.state_machine_name(cfg, "PR-7", False)
    now = NOW
    own = _hit(cfg, keys, "preprocessing", branch, "pr-1", timedelta(hours=1))
    default = [_hit(cfg, keys, role, cfg.name, "main-1", timedelta(hours=3)) for role in ("preprocessing", "training")]
    found = plan.make(cfg, files, {}, _Index([own]), now=now, fallback=_Index(default))
    assert found.lines() == ["plan: Preprocessing  cached (from pr-1, 1h 00m ago)",
                             "plan: Training       cached (from main-1 on the default branch, 3h 00m ago)",
                             "plan: Evaluation     run (no earlier run to reuse)"]
    cache = found.cache_input()
    assert cache["reuse"] == {"Preprocessing": "pr-1", "Training": "main-1"}
    assert cache["from_default"] == ["Training"]
    # the default branch's outputs are never handed on as they are: they must be copied first
    with pytest.raises(ValueError, match="copied first"):
        found.input_overrides()
    mine = cache_index.own_outputs(cfg, branch, "pr-2", "training")
    assert mine["ModelArtifactS3Uri"].startswith(f"s3://{cfg.aws.bucket}/{naming.run_prefix(cfg, 'pr-2', branch)}model/")
    found.steps[1].outputs = mine
    overrides = found.input_overrides()
    assert overrides["ModelArtifactS3Uri"] == mine["ModelArtifactS3Uri"]
    assert overrides["TrainDataS3Uri"] == own.outputs["TrainDataS3Uri"]  # its own hit: where it lies


def test_an_expired_or_missing_default_record_is_not_used_and_the_plan_says_why(tmp_path):
    repo = _tiny(tmp_path, steps=("preprocessing", "training"))
    cfg, files, keys = _keys_and_files(repo)
    now = NOW
    old = _hit(cfg, keys, "preprocessing", cfg.name, "main-1", timedelta(days=40))
    found = plan.make(cfg, files, {}, _Index([]), now=now, fallback=_Index([old]))
    assert found.steps[0].hit is None
    assert found.steps[0].reason == \
        "main-1 on the default branch had this key but is 40 days old, over cache_expire_days 30"
    gone = plan.make(cfg, files, {}, _Index([]), now=now,
                     fallback=_Index([replace(old, finished=now.isoformat())], available=False))
    assert gone.steps[0].reason == "the outputs of main-1 on the default branch are gone"
    # the branch's own history, when it has one, says why first
    mine = replace(_hit(cfg, keys, "preprocessing", cfg.name, "pr-1", timedelta(hours=1)), key="0" * 64,
                   parts=dict(keys["preprocessing"].parts, code="other"))
    assert plan.make(cfg, files, {}, _Index([mine]), now=now, fallback=_Index([old])).steps[0].reason == \
        "code changed since pr-1"


def test_the_default_branch_never_reads_a_branch_s_records(tmp_path):
    cfg = config_mod.load(_tiny(tmp_path))
    branch = naming.state_machine_name(cfg, "PR-7", False)
    assert cache_index.default_index(cache_index.S3Index(None, cfg, cfg.name)) is None
    assert cache_index.default_index(cache_index.LocalIndex(cfg, cfg.name)) is None
    fallback = cache_index.default_index(cache_index.S3Index(None, cfg, branch))
    assert fallback.where() == f"s3://{cfg.aws.bucket}/{naming.model_prefix(cfg)}cache/"
    assert cache_index.default_index(cache_index.LocalIndex(cfg, branch)).where() == f".mltp/cache/{cfg.name}/"
    # a branch's record is no default-branch record, whatever index reads it
    planted = _record(cfg, branch, "pr-1")
    assert cache_index.parse(planted.to_json(), cfg, cfg.name, "preprocessing") is None
    assert cache_index.parse(replace(planted, state_machine=cfg.name).to_json(), cfg, cfg.name,
                             "preprocessing") is None  # its outputs lie under branches/, not runs/


def test_resume_keeps_saying_where_a_copied_step_came_from():
    from mltp import resume

    keys = {r: step_cache.StepKey(r, r[0] * 64, {"code": r}) for r in step_cache.ROLES}
    old_input = {"Cache": {"keys": {"Preprocessing": "p" * 64, "Training": "t" * 64, "Evaluation": "x" * 64},
                           "reuse": {"Preprocessing": "main-1", "Training": "main-1"},
                           "from_default": ["Preprocessing", "Training"]},
                 "TrainDataS3Uri": "s3://b/p/m/branches/x/runs/pr-1/preprocessing/train/"}
    source = resume.Source("pr-1", old_input, ["Preprocessing"])
    decision = resume.decide(source, keys, {"keys": {}, "reuse": {}, "from_default": ["Training"]})
    assert decision.lines[0] == "resume: Preprocessing  cached (from main-1 on the default branch)"
    assert decision.overrides["Cache"]["from_default"] == ["Preprocessing"]
    assert decision.overrides["TrainDataS3Uri"] == old_input["TrainDataS3Uri"]  # the failed run's own copy


# --------------------------------------------------------------------------- runs


def test_on_the_state_machine_a_pull_request_copies_the_default_branch_s_steps(tmp_path):
    """The AWS command path on moto's interpreter (branch_cache_aws.py)."""
    repo = _tiny(tmp_path, s3_input=True)
    runs = _scenario("branch_cache_aws.py", repo, timeout=900)
    assert {name: (r["exit_code"], r["jobs"]) for name, r in runs.items() if name != "objects"} == {
        "main-1": (0, ["prep", "train", "eval"]),
        "pr-1": (0, ["eval"]),
        "main-2": (0, ["eval"]),
        "pr-3": (0, ["prep", "train", "eval"]),
    }, json.dumps(runs, indent=1)[-4000:]
    pr = runs["pr-1"]
    assert pr["state_machine"].startswith("tiny-model--pr-7")
    area = "branches/" + pr["state_machine"][len("tiny-model--"):] + "/"
    # `mltp plan` and the run's own plan say where the hits come from
    assert re.match(r"plan: Preprocessing  cached \(from main-1 on the default branch, \S+ ago\)$", pr["plan"][0])
    assert pr["plan"][2] == "plan: Evaluation     run (code changed since main-1 on the default branch)"
    assert pr["plan"][-1] == (f"plan: cache read from s3://tiny-artifacts/mltp/tiny-model/{area}cache/, "
                              "then s3://tiny-artifacts/mltp/tiny-model/cache/ (the default branch's)")
    copied = [line for line in pr["lines"] if line.startswith("cache: ") and " copied from " in line]
    assert len(copied) == 2 and all(re.match(
        r"cache: (Preprocessing|Training) copied from main-1 on the default branch into this run's folder "
        r"\(\d+ objects?, \d+(\.\d)? (B|KiB), \S+\)$", line) for line in copied), copied
    # the state machine handed on the copies in the pull request's own run folder
    own = f"s3://tiny-artifacts/mltp/tiny-model/{area}runs/pr-1/"
    assert pr["input"]["TrainDataS3Uri"] == own + "preprocessing/train/"
    assert pr["input"]["ModelArtifactS3Uri"].startswith(own + "model/")
    assert pr["input"]["Cache"]["reuse"] == {"Preprocessing": "main-1", "Training": "main-1"}
    assert pr["input"]["Cache"]["from_default"] == ["Preprocessing", "Training"]
    objects = runs["objects"]
    model = pr["input"]["ModelArtifactS3Uri"][len("s3://tiny-artifacts/mltp/tiny-model/"):]
    # ... the default run's very objects
    main_model = runs["main-1"]["input"]["ModelArtifactS3Uri"][len("s3://tiny-artifacts/mltp/tiny-model/"):]
    assert objects[model] == objects[main_model]
    assert objects[f"{area}runs/pr-1/preprocessing/train/train.csv"] == objects["runs/main-1/preprocessing/train/train.csv"]
    assert f"{area}runs/pr-1/evaluation/evaluation.json" in objects  # its own evaluation wrote it
    # the log, report.json, report.md, report.html and JUnit say so
    assert any(re.search(r"Training\s+cached \(from main-1 on the default branch\)", line) for line in pr["lines"])
    assert pr["steps"]["Training"] == ["cached", "main-1", True]
    assert pr["steps"]["Evaluation"][0] == "succeeded"
    assert "cached (from main-1 on the default branch)" in pr["markdown"]
    assert "(from main-1 on the default branch)" in pr["html"]
    assert 'name="cached.Training" value="main-1"' in pr["junit"]
    assert 'name="cached.Training.branch" value="default"' in pr["junit"]
    # the pull request kept its evaluation under its own area, and copied steps write no record
    assert any(o.startswith(f"{area}cache/evaluation/") for o in objects)
    assert not any(o.startswith((f"{area}cache/preprocessing/", f"{area}cache/training/")) and o.endswith("/pr-1.json")
                   for o in objects)
    # the default branch never reads a branch's record: main-2 had pr-1's evaluation key and ran it
    main = runs["main-2"]
    evaluation_key = pr["input"]["Cache"]["keys"]["Evaluation"]
    assert main["input"]["Cache"]["keys"]["Evaluation"] == evaluation_key
    assert f"{area}cache/evaluation/{evaluation_key}/pr-1.json" in objects
    assert f"cache/evaluation/{evaluation_key}/main-2.json" in objects  # it ran, and kept its own
    assert main["plan"][2].startswith("plan: Evaluation     run (code changed since main-1")
    assert main["steps"]["Training"] == ["cached", "main-1", None]
    assert main["plan"][-1] == "plan: cache read from s3://tiny-artifacts/mltp/tiny-model/cache/"
    # an expired default-branch record is not used
    late = runs["pr-3"]
    assert late["plan"][0] == ("plan: Preprocessing  run (main-1 on the default branch had this key but is "
                               "40 days old, over cache_expire_days 30)")
    assert "from_default" not in late["input"]["Cache"]


def test_locally_a_branch_run_copies_the_default_branch_s_steps_and_never_the_reverse(tmp_path):
    repo = _tiny(tmp_path, steps=("preprocessing", "training", "evaluation"))

    def mltp(*args, branch=None):
        env = _env()
        if branch:
            env.update({"BRANCH_NAME": branch, "BRANCH_IS_PRIMARY": "false"})
        return subprocess.run([sys.executable, "-m", "mltp.cli", *args], cwd=repo, env=env,
                              capture_output=True, text=True, timeout=300)

    first = mltp("run", ".", "--local", "--run-name", "main-1")
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    (repo / "evaluation.py").write_text((repo / "evaluation.py").read_text() + "\n# edited\n")
    planned = mltp("plan", ".", "--local", branch="feature/x")
    assert planned.returncode == 0, planned.stderr
    assert re.search(r"^plan: Training       cached \(from main-1 on the default branch, \S+ ago\)$",
                     planned.stdout, re.M), planned.stdout
    branch = mltp("run", ".", "--local", "--run-name", "feature-1", branch="feature/x")
    assert branch.returncode == 0, branch.stdout[-3000:] + branch.stderr[-3000:]
    assert re.search(r"^cache: Training copied from main-1 on the default branch into this run's folder \(1 object, ",
                     branch.stdout, re.M), branch.stdout
    assert re.search(r"Training\s+cached \(from main-1 on the default branch\)", branch.stdout)
    assert "tiny-model-train-" not in branch.stdout and "tiny-model-eval-" in branch.stdout
    report = json.loads((repo / ".mltp" / "runs" / "feature-1" / "report.json").read_text())
    training = {s["name"]: s for s in report["steps"]}["Training"]
    assert (training["status"], training["cached_from"], training["cached_from_default_branch"]) == \
        ("cached", "main-1", True)
    machines = sorted(p.name for p in (repo / ".mltp" / "cache").iterdir())
    assert machines[0] == "tiny-model" and machines[1].startswith("tiny-model--feature-x")
    assert (repo / ".mltp" / "cache" / machines[1] / "evaluation").is_dir()  # its own, beside the default's
    assert not (repo / ".mltp" / "cache" / machines[1] / "training").exists()
    # the default branch with the branch's evaluation.py: that key has a branch record only, so it runs
    again = mltp("run", ".", "--local", "--run-name", "main-2")
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert "plan: Evaluation     run (code changed since main-1)" in again.stdout
    assert "tiny-model-eval-" in again.stdout and "on the default branch" not in again.stdout
    # an expired default-branch record is not used by the branch
    for record in (repo / ".mltp" / "cache" / "tiny-model").rglob("*.json"):
        raw = json.loads(record.read_text())
        raw["finished"] = (cache_index.now_utc() - timedelta(days=40)).isoformat()
        record.write_text(json.dumps(raw))
    late = mltp("plan", ".", "--local", branch="feature/x")
    assert "plan: Training       run (main-1 on the default branch had this key but is 40 days old, " \
           "over cache_expire_days 30)" in late.stdout, late.stdout


def test_a_copy_that_fails_makes_its_step_run_and_the_rest_still_copy(aws_env, tmp_path, monkeypatch):
    """Between the plan and the copy, the default run's preprocessing outputs
    were removed (`mltp prune`): preprocessing runs, training is still copied."""
    import uuid

    from mltp import invocation
    from mltp.aws import Clients
    from mltp.commands.plan import copy_default_hits

    repo = _tiny(tmp_path, steps=("preprocessing", "training"))
    bucket = f"tiny-copy-{uuid.uuid4().hex[:8]}"
    (repo / "config.yaml").write_text((repo / "config.yaml").read_text().replace("tiny-artifacts", bucket))
    cfg, files, keys = _keys_and_files(repo)
    clients = Clients(cfg.aws.region, aws_env)
    clients.s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": cfg.aws.region})
    default = cache_index.S3Index(clients, cfg, cfg.name)
    for role in ("preprocessing", "training"):
        record = _hit(cfg, keys, role, cfg.name, "main-1", timedelta(hours=1))
        for name in cache_index.DATA_KEYS[role]:
            key = record.outputs[name].split("/", 3)[3]
            clients.s3.put_object(Bucket=bucket, Key=key + ("part.csv" if key.endswith("/") else ""), Body=b"1\n")
        default.write(record)
    monkeypatch.setenv("BRANCH_NAME", "feature/x")
    monkeypatch.setenv("BRANCH_IS_PRIMARY", "false")
    inv = invocation.load(repo, None, run_name="feature-1", check=True).pointed_at(aws_env)
    own = cache_index.S3Index(clients, cfg, inv.run.state_machine)
    found = plan.make(cfg, files, {}, own, fallback=cache_index.default_index(own))
    assert [s.origin for s in found.steps[:2]] == ["main-1 on the default branch"] * 2
    gone = clients.s3.list_objects_v2(Bucket=bucket, Prefix=naming.run_prefix(cfg, "main-1") + "preprocessing/")
    clients.s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": o["Key"]} for o in gone["Contents"]]})

    lines = copy_default_hits(inv, clients, found)
    assert lines[0] == (f"warning: cache: Preprocessing runs: could not copy the outputs of main-1 on the default "
                        f"branch: s3://{bucket}/{naming.run_prefix(cfg, 'main-1')}preprocessing/train/ holds nothing "
                        f"to copy")
    assert re.match(r"cache: Training copied from main-1 on the default branch into this run's folder "
                    r"\(1 object, 2 B, \d+\.\ds\)$", lines[1]), lines
    assert found.steps[0].decision(NOW).startswith("run (could not copy the outputs of main-1 on the default branch")
    overrides = found.input_overrides()
    assert overrides["Cache"]["reuse"] == {"Training": "main-1"} and overrides["Cache"]["from_default"] == ["Training"]
    assert "TrainDataS3Uri" not in overrides  # preprocessing runs and writes its own
    mine = f"s3://{bucket}/{naming.run_prefix(cfg, 'feature-1', inv.run.state_machine)}"
    assert overrides["ModelArtifactS3Uri"].startswith(mine + "model/")
    model = overrides["ModelArtifactS3Uri"].split("/", 3)[3]
    assert clients.s3.get_object(Bucket=bucket, Key=model)["Body"].read() == b"1\n"
