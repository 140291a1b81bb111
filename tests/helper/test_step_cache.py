"""The step cache (docs/contract.md, 8.4): the key of each step, the records,
`mltp plan`, and runs that reuse steps, on moto's Step Functions interpreter
(cache_aws.py, the AWS command path) and locally (`mltp run --local`)."""

import json
import os
import re
import shutil
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

ROOT = Path(__file__).resolve().parents[2]
TINY = ROOT / "tests" / "fixtures" / "tiny"
HERE = Path(__file__).resolve().parent
JENKINS_VARS = ("BRANCH_NAME", "CHANGE_ID", "BRANCH_IS_PRIMARY", "BUILD_TAG", "BUILD_URL", "GIT_COMMIT",
                "AWS_ENDPOINT_URL", "MLTP_RUN_NAME", "MLTP_CONFIG", "MLTP_REPORT_DIR", "MLTP_ERROR_FILE",
                "MLTP_NO_CACHE", "MLTP_LOCAL")


def _tiny(tmp_path: Path, steps=("preprocessing", "training", "evaluation"), s3_input: bool = False) -> Path:
    repo = tmp_path / "tiny"
    shutil.copytree(TINY, repo, ignore=shutil.ignore_patterns(".mltp", "__pycache__"))
    text = (repo / "config.yaml").read_text()
    for step in steps:
        text = text.replace(f"  {step}:\n", f"  {step}:\n    cache: true\n", 1)
    if s3_input:
        text = text.replace("  preprocessing:\n", "  preprocessing:\n    inputs: [{name: raw, source: 's3://tiny-data/raw/'}]\n", 1)
    (repo / "config.yaml").write_text(text)
    return repo


def _keys(repo: Path, inputs=None):
    cfg = config_mod.load(repo)
    files, _ = repo_mod.check(cfg)
    return step_cache.step_keys(cfg, bundle_mod.make(files).files, inputs or {})


# --------------------------------------------------------------------------- the key


def test_editing_evaluation_changes_only_evaluation_s_key(tmp_path):
    repo = _tiny(tmp_path)
    before = _keys(repo)
    (repo / "evaluation.py").write_text((repo / "evaluation.py").read_text() + "\n# tweak\n")
    after = _keys(repo)
    assert before["preprocessing"] == after["preprocessing"] and before["training"] == after["training"]
    assert after["evaluation"].changed(before["evaluation"].parts) == ("code",)


def test_a_shared_module_a_requirement_or_an_input_changes_every_key_that_depends_on_it(tmp_path):
    repo = _tiny(tmp_path)
    base = _keys(repo, {"raw": "a"})
    (repo / "tinylib.py").write_text((repo / "tinylib.py").read_text() + "\n# shared\n")
    shared = _keys(repo, {"raw": "a"})
    assert all(shared[r].key != base[r].key for r in step_cache.ROLES)
    (repo / "requirements.txt").write_text("six\n")
    required = _keys(repo, {"raw": "a"})
    assert required["preprocessing"].changed(shared["preprocessing"].parts) == ("requirements",)
    # a later step's inputs are the earlier steps' keys: a change reaches it through them too
    assert required["training"].changed(shared["training"].parts) == ("requirements", "inputs")
    cfg = config_mod.load(repo)
    cfg = replace(cfg, steps=replace(cfg.steps, preprocessing=replace(
        cfg.steps.preprocessing, inputs=(config_mod.InputConfig("raw", "s3://b/raw/"),))))
    files = bundle_mod.make(repo_mod.check(cfg)[0]).files
    one, other = (step_cache.step_keys(cfg, files, {"raw": data}) for data in ("a", "b"))
    assert other["preprocessing"].changed(one["preprocessing"].parts) == ("inputs",)
    assert other["training"].changed(one["training"].parts) == ("inputs",)


def test_config_changes_the_step_and_what_follows_but_the_cache_keys_do_not(tmp_path):
    repo = _tiny(tmp_path)
    base = _keys(repo)
    text = (repo / "config.yaml").read_text()
    (repo / "config.yaml").write_text(text.replace("score: 0.93", "score: 0.94").replace(
        "cache: true\n", "cache: true\n    cache_expire_days: 3\n"))
    after = _keys(repo)
    assert after["preprocessing"] == base["preprocessing"]
    assert after["training"].changed(base["training"].parts) == ("config",)
    assert after["evaluation"].changed(base["evaluation"].parts) == ("inputs",)


def test_the_config_file_the_jenkinsfile_and_markdown_are_no_step_s_code(tmp_path):
    repo = _tiny(tmp_path)
    base = _keys(repo)
    (repo / "README.md").write_text("# notes\n")
    (repo / "Jenkinsfile").write_text("mlTrainingPipeline()\n")
    (repo / "config.yaml").write_text((repo / "config.yaml").read_text() + "# a comment\n")
    assert _keys(repo) == base


# --------------------------------------------------------------------------- records


def _record(cfg, machine, run="r1", **changes):
    execution = naming.execution_input(cfg, machine, run, "0" * 32, register=True).to_dict()
    record = cache_index.record_for(cfg, machine, "preprocessing", "k" * 64, {"code": "c"}, execution)
    return replace(record, **changes)


def test_a_record_names_only_its_own_run_s_folder_of_its_own_state_machine(tmp_path):
    cfg = config_mod.load(_tiny(tmp_path))
    good = _record(cfg, cfg.name)
    assert cache_index.parse(good.to_json(), cfg, cfg.name, "preprocessing") == good
    branch = f"{cfg.name}--feature"
    # a branch's record is not the default branch's, nor the other way round
    assert cache_index.parse(_record(cfg, branch).to_json(), cfg, cfg.name, "preprocessing") is None
    assert cache_index.parse(good.to_json(), cfg, branch, "preprocessing") is None
    planted = dict(good.outputs, TrainDataS3Uri=f"s3://{cfg.aws.bucket}/{naming.run_prefix(cfg, 'other', cfg.name)}x/")
    assert cache_index.parse(replace(good, outputs=planted).to_json(), cfg, cfg.name, "preprocessing") is None
    dotted = dict(good.outputs, TrainDataS3Uri=good.outputs["TrainDataS3Uri"] + "../../other/")
    assert cache_index.parse(replace(good, outputs=dotted).to_json(), cfg, cfg.name, "preprocessing") is None
    assert cache_index.parse("{not json", cfg, cfg.name, "preprocessing") is None
    assert cache_index.parse(replace(good, model="other").to_json(), cfg, cfg.name, "preprocessing") is None


class _Index:
    """An index held in memory, for the plan's decisions (the stores are tested through the runs)."""

    def __init__(self, records, available=True):
        self._records, self._available = records, available

    def where(self):
        return "memory"

    def records(self, role, key=""):
        return [r for r in self._records if r.role == role and (not key or r.key == key)]

    def available(self, record):
        return self._available


def test_the_plan_says_why_a_step_runs(tmp_path):
    repo = _tiny(tmp_path, steps=("preprocessing", "training"))
    cfg = config_mod.load(repo)
    files = bundle_mod.make(repo_mod.check(cfg)[0]).files
    keys = step_cache.step_keys(cfg, files, {})
    now = cache_index.now_utc()
    fresh = replace(_record(cfg, cfg.name, "r1"), key=keys["preprocessing"].key, parts=keys["preprocessing"].parts,
                    finished=(now - timedelta(hours=3)).isoformat())
    found = plan.make(cfg, files, {}, _Index([fresh]), now=now)
    assert found.lines() == ["plan: Preprocessing  cached (from r1, 3h 00m ago)",
                             "plan: Training       run (no earlier run to reuse)",
                             "plan: Evaluation     run (cache: false)"]
    assert found.input_overrides()["TrainDataS3Uri"] == fresh.outputs["TrainDataS3Uri"]
    assert found.cache_input()["reuse"] == {"Preprocessing": "r1"}
    old = replace(fresh, finished=(now - timedelta(days=31)).isoformat())
    assert plan.make(cfg, files, {}, _Index([old]), now=now).steps[0].reason == \
        "r1 had this key but is 31 days old, over cache_expire_days 30"
    assert plan.make(cfg, files, {}, _Index([fresh], available=False), now=now).steps[0].reason == \
        "the outputs of r1 are gone"
    changed = replace(fresh, key="0" * 64, parts=dict(fresh.parts, code="x", inputs="y"))
    assert plan.make(cfg, files, {}, _Index([changed]), now=now).steps[0].reason == "code, inputs changed since r1"
    assert [s.reason for s in plan.make(cfg, files, {}, _Index([fresh]), no_cache=True, now=now).steps] == \
        ["--no-cache"] * 3


def test_a_retrain_input_alone_reuses_nothing():
    """retrain_input redoes the run's own parts; the cache's decisions are
    trigger_handler.retrain_cache's (test_trigger.py, and on the interpreter below)."""
    from mltp import trigger_handler

    pointer = {"model": "m", "state_machine": "m", "bucket": "b", "prefix": "mltp",
               "input": {"RunName": "old", "Cache": {"keys": {"Training": "k"}, "reuse": {"Training": "older"}},
                         "TrainDataS3Uri": "s3://b/mltp/m/runs/older/preprocessing/train/"}}
    body = trigger_handler.retrain_input(pointer, "retrain-1")
    assert body["Cache"] == {} and body["TrainDataS3Uri"] == "s3://b/mltp/m/runs/retrain-1/preprocessing/train/"


# --------------------------------------------------------------------------- runs


def _env():
    return {k: v for k, v in os.environ.items() if k not in JENKINS_VARS}


def _scenario(script: str, repo: Path, *args: str, timeout: int = 600) -> dict:
    """Runs a scenario script of this folder (cache_aws.py, branch_cache_aws.py)
    in a process of its own (the emulator's hooks are process-wide) and returns
    what it printed after CACHE."""
    proc = subprocess.run([sys.executable, str(HERE / script), str(repo), *args], cwd=repo, env=_env(),
                          capture_output=True, text=True, timeout=timeout)
    found = re.search(r"^CACHE (.*)$", proc.stdout, re.M)
    assert found, proc.stdout[-3000:] + proc.stderr[-3000:]
    return json.loads(found.group(1))


def test_on_the_state_machine_a_second_run_with_the_same_keys_starts_no_job(tmp_path):
    """The AWS command path on moto's interpreter (cache_aws.py)."""
    repo = _tiny(tmp_path, s3_input=True)
    runs = _scenario("cache_aws.py", repo)
    assert {name: (r["exit_code"], r["jobs"]) for name, r in runs.items() if name != "records"} == {
        "first": (0, ["prep", "train", "eval"]),
        "second": (0, []),
        "edited": (0, ["eval"]),
        "new-data": (0, ["prep", "train", "eval"]),
        "forced": (0, ["prep", "train", "eval"]),
    }, json.dumps(runs, indent=1)[-4000:]
    second = runs["second"]
    # `mltp plan` said so before each run, from the records in S3
    assert runs["first"]["plan"][0] == "plan: Preprocessing  run (no earlier run to reuse)"
    assert re.match(r"plan: Training       cached \(from first, \S+ ago\)$", second["plan"][1]), second["plan"]
    assert second["plan"][-1] == "plan: cache read from s3://tiny-artifacts/mltp/tiny-model/cache/"
    assert runs["edited"]["plan"][2].startswith("plan: Evaluation     run (code changed since first")
    assert second["steps"]["Preprocessing"] == ["cached", "first"] and second["steps"]["Training"] == ["cached", "first"]
    assert any(re.search(r"Training\s+cached \(from first\)", line) for line in second["lines"])
    assert "plan: Evaluation     cached (from first, 0s ago)" in "\n".join(second["lines"]).replace(
        re.search(r"first, (\S+) ago", "\n".join(second["lines"])).group(1) + " ago", "0s ago")
    assert runs["edited"]["steps"]["Evaluation"][0] == "succeeded"
    assert runs["edited"]["steps"]["Training"] == ["cached", "first"]
    assert any("plan: Preprocessing  run (inputs changed since" in line for line in runs["new-data"]["lines"])
    assert "plan: Training       run (--no-cache)" in runs["forced"]["plan"]
    assert "plan: --no-cache: every step runs" in runs["forced"]["lines"]
    # one record per step that ran with the cache on; --no-cache writes none
    records = runs["records"]
    assert sum(1 for r in records if r.startswith("preprocessing/")) == 2
    assert sum(1 for r in records if r.startswith("evaluation/")) == 3
    assert not any(r.endswith("/forced.json") or r.endswith("/second.json") for r in records)


def test_on_the_state_machine_a_retrain_started_by_the_trigger_uses_the_cache(tmp_path):
    """The trigger's handler starts retrains of the state machine (moto's
    interpreter), followed by `mltp wait`: the producer's same bytes again
    start no job, each step `cached (from first)`; new bytes run every step."""
    repo = _tiny(tmp_path, s3_input=True)
    config = repo / "config.yaml"
    config.write_text(config.read_text() + "retrain: {on_inputs: [raw], marker: _SUCCESS}\n")
    runs = _scenario("cache_aws.py", repo, "trigger")
    assert {name: (runs[name]["exit_code"], runs[name]["jobs"]) for name in ("first", "same-data", "new-data")} == {
        "first": (0, ["prep", "train", "eval"]),
        "same-data": (0, []),
        "new-data": (0, ["prep", "train", "eval"]),
    }, json.dumps(runs, indent=1)[-4000:]
    assert runs["same-data-trigger"]["cached"] == {"Preprocessing": "first", "Training": "first", "Evaluation": "first"}
    assert runs["new-data-trigger"]["cached"] == {}
    same = runs["same-data"]
    assert same["steps"]["Training"] == ["cached", "first"] and same["steps"]["Evaluation"] == ["cached", "first"]
    assert any(re.search(r"Training\s+cached \(from first\)", line) for line in same["lines"]), same["lines"]
    assert runs["new-data"]["steps"]["Training"][0] == "succeeded"


def test_on_the_state_machine_resume_after_a_failed_evaluation_runs_only_evaluation(tmp_path):
    repo = _tiny(tmp_path, steps=())
    runs = _scenario("cache_aws.py", repo, "resume")
    assert (runs["broken"]["exit_code"], runs["broken"]["jobs"]) == (4, ["prep", "train", "eval"])
    fixed = runs["fixed"]
    assert (fixed["exit_code"], fixed["jobs"]) == (0, ["eval"]), "\n".join(fixed["lines"])
    lines = "\n".join(fixed["lines"])
    # evaluation's config changed (MODE): no redrive, a new run
    assert "resume: from run broken" in lines and "redr" not in lines
    assert "resume: Training       cached (from broken)" in lines
    assert "resume: Evaluation     run (it did not succeed in broken)" in lines
    assert fixed["steps"]["Training"] == ["cached", "broken"]
    assert runs["records"] == []  # no step has the cache on: resume writes no record


def test_resume_decides_by_the_failed_run_s_keys():
    from mltp import resume

    keys = {r: step_cache.StepKey(r, r[0] * 64, {"code": r}) for r in step_cache.ROLES}
    old_input = {"Cache": {"keys": {"Preprocessing": "p" * 64, "Training": "x" * 64, "Evaluation": "e" * 64},
                           "parts": {"Training": {"code": "other"}}, "reuse": {"Preprocessing": "older"}},
                 "TrainDataS3Uri": "s3://b/older/train/", "ValidationDataS3Uri": "s3://b/older/validation/",
                 "TestDataS3Uri": "s3://b/older/test/", "ModelArtifactS3Uri": "s3://b/failed/model.tar.gz"}
    source = resume.Source("failed", old_input, ["Preprocessing", "Training"])
    decision = resume.decide(source, keys, {"keys": {}, "reuse": {}})
    # preprocessing was itself taken from an earlier run: the new run takes it from there too
    assert decision.reuse == {"Preprocessing": "older"}
    assert decision.overrides["TrainDataS3Uri"] == "s3://b/older/train/" and "ModelArtifactS3Uri" not in decision.overrides
    assert decision.lines[1] == "resume: Training       run (code changed since failed)"
    assert not decision.unchanged
    now = cache_index.now_utc()
    assert resume.redrivable(replace(source, description={}), now)[0] is False
    assert resume.redrivable(replace(source, description={"redriveStatus": "REDRIVABLE", "stopDate": now}), now) == (True, "")
    old = {"redriveStatus": "REDRIVABLE", "stopDate": now - timedelta(days=15)}
    assert resume.redrivable(replace(source, description=old), now) == (False, "it ended more than 14 days ago")


def test_locally_a_rerun_after_editing_evaluation_runs_only_evaluation(tmp_path):
    repo = _tiny(tmp_path, steps=("preprocessing", "training"))

    def mltp(*args):
        return subprocess.run([sys.executable, "-m", "mltp.cli", *args], cwd=repo, env=_env(),
                              capture_output=True, text=True, timeout=300)

    first = mltp("run", ".", "--local", "--run-name", "first")
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    assert "cache: Training kept for reuse (.mltp/cache/tiny-model/training/" in first.stdout
    (repo / "evaluation.py").write_text((repo / "evaluation.py").read_text() + "\n# edited\n")
    planned = mltp("plan", ".", "--local")
    assert planned.returncode == 0, planned.stderr
    assert re.search(r"^plan: Preprocessing  cached \(from first, \S+ ago\)$", planned.stdout, re.M), planned.stdout
    assert "plan: Evaluation     run (cache: false)" in planned.stdout
    second = mltp("run", ".", "--local", "--run-name", "second")
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    assert re.search(r"Training\s+cached \(from first\)", second.stdout)
    assert "tiny-model-train-" not in second.stdout and "tiny-model-eval-" in second.stdout
    report = json.loads((repo / ".mltp" / "runs" / "second" / "report.json").read_text())
    assert {s["name"]: s["status"] for s in report["steps"]}["Training"] == "cached"
    assert 'name="cached.Training" value="first"' in (repo / ".mltp" / "runs" / "second" / "junit.xml").read_text()
    forced = mltp("run", ".", "--local", "--run-name", "third", "--no-cache")
    assert forced.returncode == 0 and "tiny-model-train-" in forced.stdout


def test_locally_resume_after_a_failed_evaluation_runs_only_evaluation(tmp_path):
    repo = _tiny(tmp_path, steps=())
    config = repo / "config.yaml"
    config.write_text(config.read_text().replace("  evaluation:\n    environment: {MODE: ok}",
                                                 "  evaluation:\n    environment: {MODE: raise}"))

    def mltp(*args):
        return subprocess.run([sys.executable, "-m", "mltp.cli", *args], cwd=repo, env=_env(),
                              capture_output=True, text=True, timeout=300)

    broken = mltp("run", ".", "--local", "--run-name", "broken")
    assert broken.returncode == 4, broken.stdout[-3000:] + broken.stderr[-3000:]
    nothing = mltp("resume", ".", "--local", "--run", "no-such-run", "--run-name", "x")
    assert nothing.returncode == 2 and "no run no-such-run of tiny-model" in nothing.stderr
    config.write_text(config.read_text().replace("MODE: raise", "MODE: ok"))
    fixed = mltp("resume", ".", "--local", "--run-name", "fixed")
    assert fixed.returncode == 0, fixed.stdout[-3000:] + fixed.stderr[-3000:]
    assert "resume: Preprocessing  cached (from broken)" in fixed.stdout
    assert re.search(r"Training\s+cached \(from broken\)", fixed.stdout)
    assert "tiny-model-train-" not in fixed.stdout and "tiny-model-eval-" in fixed.stdout
    again = mltp("resume", ".", "--local", "--run", "fixed", "--run-name", "y")
    assert again.returncode == 2 and "run fixed passed: only a failed" in again.stderr


def test_plan_with_a_bad_config_is_exit_2(tmp_path):
    repo = _tiny(tmp_path)
    (repo / "config.yaml").write_text((repo / "config.yaml").read_text().replace("cache: true", "cache: sometimes", 1))
    proc = subprocess.run([sys.executable, "-m", "mltp.cli", "plan", ".", "--local"], cwd=repo, env=_env(),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "cache" in proc.stderr and "Traceback" not in proc.stderr
