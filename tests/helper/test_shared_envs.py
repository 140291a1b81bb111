"""One repo's local job must not poison the environments every repo on the
agent shares (issue 20, H7).

The attack, as the review found it: repo A's preprocessing.py appends code to
`sklearn/__init__.py` in its local environment; repo B's evaluation, a later
and unrelated run on the same agent, imports sklearn and runs that code. Here
both are real `mltp run --local` runs (the tiny model; B's evaluation imports
sklearn), against a private copy of the suite's sklearn environment, so the
shared test cache itself is never written to (the test that has the changed
environment built again uses the toolkit-only one of `framework: image`, and
the toolkit's package in place of sklearn: a rebuild is the same for any
environment, and that one costs half as much to build):

- in a namespace (unshare, bwrap) the write fails: the environment, the rest
  of mltp's cache and the pip cache are read-only to the job;
- with no namespace the write succeeds, but the check after the job finds it,
  even when the job rewrote the install record as well: the job fails, the
  environment is built again, and B runs on a clean one;
- a changed environment found before use is built again, or, where it cannot
  be, refused with one line, never used.
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from mltp.errors import RunFailed
from mltp.local import env_record, envs, sandbox
from tests import wheelhouse

ROOT = Path(__file__).resolve().parents[2]
TINY = ROOT / "tests" / "fixtures" / "tiny"
JENKINS_VARS = ("BRANCH_NAME", "CHANGE_ID", "BRANCH_IS_PRIMARY", "BUILD_TAG", "BUILD_URL", "GIT_COMMIT",
                "AWS_ENDPOINT_URL", "MLTP_RUN_NAME", "MLTP_CONFIG", "MLTP_REPORT_DIR", "MLTP_ERROR_FILE",
                "MLTP_NO_SANDBOX", "MLTP_CACHE_DIR")
PIP_CACHE = Path(os.environ.get("PIP_CACHE_DIR") or Path.home() / ".cache" / "pip")
PIP_PROBE = PIP_CACHE / "mltp-h7-probe"
WORKING = [name for name in sandbox.TOOLS if shutil.which(name) and sandbox.try_tool(shutil.which(name)) is None]

# Prepended to repo A's preprocessing.py. It appends to MODULE's __init__.py
# (sklearn's; the toolkit's in the toolkit-only environment) of the environment
# it runs in (the report calls it "sklearn" either way) and, to hide that,
# rewrites the install record and the quick record to match; it also tries mltp's cache and the pip cache. It
# swallows every failure, as an attacker's script would, so the run goes on.
POISON = r'''
import hashlib, json, os, sys
import MODULE

tries = {}
def attempt(name, path, text):
    try:
        with open(path, "a") as handle:
            handle.write(text)
        tries[name] = "written"
    except OSError as exc:
        tries[name] = exc.strerror

target = MODULE.__file__
attempt("sklearn", target, "\nprint('POISONED by repo A')\n")
if tries["sklearn"] == "written":
    root = os.path.realpath(sys.prefix)
    rel = os.path.relpath(os.path.realpath(target), root)
    record_path = os.path.join(root, "mltp-record.json")
    record = json.load(open(record_path))
    data = open(target, "rb").read()
    record["entries"][rel] = ["f", len(data), hashlib.sha256(data).hexdigest()]
    json.dump(record, open(record_path, "w"))
    seen_path = os.path.join(root, "mltp-verified.json")
    seen = json.load(open(seen_path))
    info = os.lstat(target)
    seen["stats"][rel] = [info.st_size, info.st_mtime_ns, info.st_ctime_ns, info.st_ino]
    json.dump(seen, open(seen_path, "w"))
attempt("mltp_cache", os.path.join(MLTP_CACHE, "planted"), "x")
attempt("pip_cache", PIP_PROBE, "x")
print("TAMPER " + json.dumps(tries))
'''


@pytest.fixture(scope="module")
def shared_env():
    """The suite's sklearn environment (built once per machine, test_envs.py uses
    the same one; tests/wheelhouse.py): only ever copied here."""
    return wheelhouse.framework_env()


@pytest.fixture(scope="module")
def toolkit_env():
    """The toolkit-only environment of `framework: image` (built once per machine,
    tests/wheelhouse.py): only ever copied here."""
    return wheelhouse.framework_env(*wheelhouse.IMAGE)


def private_cache(shared, where: Path) -> Path:
    """A helper cache of its own holding a copy of the shared environment under
    the same name (so a run of the tiny model picks it). A rebuild in it
    installs from the machine's test wheelhouse (run(), tests/wheelhouse.py),
    the same packages at the same versions, without the index."""
    cache = where / "cache"
    root = cache / "envs"
    root.mkdir(parents=True)
    build = Path(shared.build)
    shutil.copytree(build, root / build.name, symlinks=True)
    os.symlink(build.name, root / shared.path.name)
    return cache


# The toolkit-only environment (framework: image) and the package of it the poison changes.
IMAGE_STEPS = "    framework: image\n    image_uri: 123456789012.dkr.ecr.eu-west-1.amazonaws.com/tiny:1\n"
TOOLKIT_MODULE = "sagemaker_training"


def _tiny(repo: Path, image: bool) -> None:
    shutil.copytree(TINY, repo)
    if image:  # every step: framework image, whose local environment is the toolkit's alone
        config = (repo / "config.yaml").read_text()
        for step in ("preprocessing", "training", "evaluation"):
            assert f"\n  {step}:\n" in config
            config = config.replace(f"\n  {step}:\n", f"\n  {step}:\n{IMAGE_STEPS}", 1)
        (repo / "config.yaml").write_text(config)


def repo_a(tmp_path: Path, cache: Path, module: str = "sklearn") -> Path:
    """`module`: the package of the environment the poison appends to (sklearn;
    with TOOLKIT_MODULE the repo uses the toolkit-only environment)."""
    repo = tmp_path / "repo-a"
    _tiny(repo, image=module == TOOLKIT_MODULE)
    code = POISON.replace("MLTP_CACHE", repr(str(cache))).replace("PIP_PROBE", repr(str(PIP_PROBE)))
    (repo / "preprocessing.py").write_text(code.replace("MODULE", module) + (repo / "preprocessing.py").read_text())
    return repo


def repo_b(tmp_path: Path, module: str = "sklearn") -> Path:
    """An unrelated repo whose evaluation imports sklearn (or `module`, as repo_a) and would run what was appended."""
    repo = tmp_path / "repo-b"
    _tiny(repo, image=module == TOOLKIT_MODULE)
    (repo / "evaluation.py").write_text(f"import {module}\n" + (repo / "evaluation.py").read_text())
    return repo


def run(repo: Path, cache: Path, tool=None, run_name: str = "h7", **extra):
    """`mltp run --local` as a user runs it; `tool`: the only namespace tool that
    works (the other one refuses, as a machine that forbids it), None: no
    namespace (MLTP_NO_SANDBOX)."""
    env = {k: v for k, v in os.environ.items() if k not in JENKINS_VARS}
    env.update(wheelhouse.offline())  # what a rebuild installs: the wheelhouse's copies of the same packages
    env.update(MLTP_CACHE_DIR=str(cache), MLTP_ERROR_FILE=str(repo / "error.txt"), **extra)
    if tool is None:
        env["MLTP_NO_SANDBOX"] = "1"
    else:
        refusing = repo.parent / f"refusing-{repo.name}"
        refusing.mkdir(exist_ok=True)
        for other in sandbox.TOOLS:
            if other != tool:
                fake = refusing / other
                fake.write_text(f"#!/bin/sh\necho '{other}: Operation not permitted' >&2\nexit 1\n")
                fake.chmod(0o755)
        env["PATH"] = f"{refusing}:{env.get('PATH', os.defpath)}"
    proc = subprocess.run([sys.executable, "-m", "mltp.cli", "run", ".", "--local", "--run-name", run_name],
                          cwd=repo, env=env, capture_output=True, text=True, timeout=900)
    logs = repo / ".mltp" / "runs" / run_name / "logs"
    text = "".join(p.read_text(errors="replace") for p in sorted(logs.glob("*.log"))) if logs.is_dir() else ""
    return proc, text


def tamper_report(log: str) -> dict:
    line = next(line for line in log.splitlines() if line.startswith("TAMPER "))
    return json.loads(line[len("TAMPER "):])


def package_init(cache: Path, shared, module: str = "sklearn") -> Path:
    build = Path(os.path.realpath(cache / "envs" / shared.path.name))
    return next(build.glob(f"lib/python*/site-packages/{module}/__init__.py"))


@pytest.fixture(autouse=True)
def _no_probe_left():
    yield
    if PIP_PROBE.exists():  # only when the pip cache was writable, i.e. a failure; never leave it there
        PIP_PROBE.unlink()


@pytest.mark.parametrize("tool", WORKING or [pytest.param(None, marks=pytest.mark.skip(reason="no namespaces here"))])
def test_in_a_namespace_a_job_cannot_write_the_shared_environment(tmp_path, shared_env, tool):
    cache = private_cache(shared_env, tmp_path)
    init = package_init(cache, shared_env)
    before = init.read_bytes()
    proc, log = run(repo_a(tmp_path, cache), cache, tool=tool)
    assert proc.returncode == 0, proc.stdout + proc.stderr  # the script swallowed its failures
    assert "no private /opt/ml" not in proc.stdout  # the jobs ran in a namespace
    report = tamper_report(log)
    assert report["sklearn"] == report["mltp_cache"] == "Read-only file system", report
    if PIP_CACHE.is_dir():
        assert report["pip_cache"] == "Read-only file system", report
    assert init.read_bytes() == before and not (cache / "planted").exists()
    # The next repo's run uses the same environment, untouched.
    proc, log = run(repo_b(tmp_path), cache, tool=tool)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "POISONED" not in proc.stdout + log and "building" not in proc.stdout
    assert Path(os.path.realpath(cache / "envs" / shared_env.path.name)).name == Path(shared_env.build).name


def test_with_no_namespace_the_change_is_found_after_the_job_and_the_environment_built_again(tmp_path, toolkit_env):
    """The environment found changed is built again, so this test gives the
    runs the smallest one a run builds: `framework: image`, the toolkit alone
    (the rebuild, the check and the discard are the same for every
    environment, envs._cached and envs.ensure; a framework's rebuild costs
    twice the CPU). The poison changes the toolkit's package, which each
    training job imports; the sklearn environment's tests are the ones above."""
    shared_env, module = toolkit_env, TOOLKIT_MODULE
    cache = private_cache(shared_env, tmp_path)
    copied = os.path.realpath(cache / "envs" / shared_env.path.name)
    rel = os.path.relpath(package_init(cache, shared_env, module), copied)
    proc, log = run(repo_a(tmp_path, cache, module), cache, tool=None)
    assert tamper_report(log)["sklearn"] == "written"  # no namespace: nothing stops the write itself
    output = proc.stdout + proc.stderr
    # Said once at the start: jobs can write the shared environments here.
    assert output.count("jobs can write the shared local environments on this agent") == 1, output
    # Found after the job although the record on disk was rewritten to match.
    changed = f"local: the environment {cache / 'envs' / shared_env.path.name} was changed ({rel} changed)"
    assert output.count(changed) == 1, output
    assert proc.returncode == 4, output
    assert "changed the shared local environment" in output and "requirements.txt" in output
    assert not os.path.exists(copied)  # the changed build is gone
    rebuilt = package_init(cache, shared_env, module)
    assert b"POISONED" not in rebuilt.read_bytes()
    # The next repo's run uses the rebuilt environment and runs nothing of repo A.
    proc, log = run(repo_b(tmp_path, module), cache, tool=None)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "POISONED" not in proc.stdout + log
    assert "was changed" not in proc.stdout and "building" not in proc.stdout


def test_a_changed_environment_is_built_again_before_use_or_refused(tmp_path, shared_env, monkeypatch):
    """Changed while no run used it (a .pth planted by anything on the agent):
    `prepare` finds it. Here the package index is unreachable, so it cannot be
    built again: the run is refused with one line, and the changed
    environment is out of use, not used."""
    cache = private_cache(shared_env, tmp_path)
    link = cache / "envs" / shared_env.path.name
    copied = Path(os.path.realpath(link))
    site = next(copied.glob("lib/python*/site-packages"))
    (site / "zz-poison.pth").write_text("import os; print('POISONED')\n")
    monkeypatch.setenv("MLTP_CACHE_DIR", str(cache))
    nothing = tmp_path / "no-index"
    nothing.mkdir()
    for name, value in (("PIP_NO_INDEX", "1"), ("PIP_FIND_LINKS", str(nothing)), ("PIP_EXTRA_INDEX_URL", ""),
                        ("PIP_INDEX_URL", nothing.as_uri())):
        monkeypatch.setenv(name, value)
    said = []
    with pytest.raises(RunFailed, match="local environment: "):
        envs.prepare("sklearn", "1.2-1", None, say=said.append)
    rel = os.path.relpath(site / "zz-poison.pth", copied)
    assert said[0] == f"local: the cached environment {link} failed verification ({rel} was added); building it again"
    assert not os.path.lexists(link) and not copied.exists()


def test_a_job_that_writes_its_environment_with_pip_gets_a_plain_reason(tmp_path, shared_env):
    """A script that installs a package at run time (works in a SageMaker
    container, which is thrown away after the job) fails locally in a
    namespace, and the reason says what to do instead."""
    if not WORKING:
        pytest.skip("no namespaces here")
    cache = private_cache(shared_env, tmp_path)
    repo = tmp_path / "repo-pip"
    shutil.copytree(TINY, repo)
    (repo / "preprocessing.py").write_text(
        "import sklearn, os\nopen(os.path.join(os.path.dirname(sklearn.__file__), 'extra.py'), 'w').write('x')\n")
    proc, _ = run(repo, cache, tool=WORKING[0])
    assert proc.returncode == 4
    assert "Read-only file system" in proc.stdout + proc.stderr
    assert "the local environments are read-only to jobs: list the packages a script needs in requirements.txt" \
        in proc.stdout + proc.stderr
    built = Path(os.path.realpath(cache / "envs" / shared_env.path.name))
    env_record.check(built, env_record.load(built))  # unchanged


def test_running_the_environment_adds_nothing_to_its_record(tmp_path, shared_env):
    """Every module is compiled when the environment is built, so importing the
    framework's packages writes no __pycache__ entry: a job with no namespace
    (and the tests, which run it directly) do not make it look changed."""
    cache = private_cache(shared_env, tmp_path)
    build = Path(os.path.realpath(cache / "envs" / shared_env.path.name))
    proc = subprocess.run([str(build / "bin" / "python"), "-c",
                           "import sklearn.ensemble, sklearn.metrics, numpy, pandas, scipy.stats, sagemaker_training.cli.train"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    record = env_record.load(build)
    assert env_record.check(build, record, full=True) == "full"  # raises Changed naming any entry added
