"""Local environments (local/envs.py), mltp's processing entry and AWS's training
toolkit as a local run uses them: real virtualenvs built against the package
index, real pip, real `sagemaker-training`.

Building an environment takes a minute (scikit-learn, numpy, scipy, the
toolkit). The one for the default framework row is built once per machine and
kept in ~/.cache/mltp-test-envs (tests/conftest.py links the session's cache to
it; tests/wheelhouse.py builds it under a lock, so parallel workers never build
it twice); test_shared_envs.py uses the same one. The tests that must build from
scratch (nearest version, concurrent publish without a compiler, --python
overlay) use a cache of their own with a framework row as small as the toolkit
allows, and, but for the nearest-version search, which asks the real index,
install from the machine's test wheelhouse (tests/wheelhouse.py: pip
--no-index --find-links, built once), so they prove how mltp builds, verifies
and publishes, without downloading the same packages every time.

Where one test proves several things, its docstring says which; each
environment built from scratch costs tens of seconds of both cores.
"""

import json
import os
import shutil
import tarfile
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import pytest

from mltp import processing_entry
from mltp.local import containers, envs
from mltp.local.runner import TOOLKIT_MAIN, failure_reason
from tests import wheelhouse

ROOT = Path(__file__).resolve().parents[2]
ENTRY = ROOT / "helper" / "src" / "mltp" / "processing_entry.py"


@pytest.fixture(scope="session")
def sklearn_env():
    """The default framework's environment (sklearn 1.2-1), as a local run of a repo
    without requirements.txt gets it; built once per machine (tests/wheelhouse.py)."""
    return wheelhouse.framework_env()


def _python_out(python: str, code: str) -> str:
    return subprocess.run([python, "-c", code], capture_output=True, text=True, check=True, timeout=120).stdout.strip()


def test_the_default_environment_holds_the_container_packages(sklearn_env):
    env = sklearn_env
    row = containers.container("sklearn", "1.2-1")
    versions = json.loads(_python_out(env.python, (
        "import json, sklearn, numpy, pandas, scipy, sagemaker_training; "
        "print(json.dumps({'scikit-learn': sklearn.__version__, 'numpy': numpy.__version__, "
        "'pandas': pandas.__version__, 'scipy': scipy.__version__}))")))
    marker = json.loads((env.path / envs.MARKER).read_text())
    assert versions == marker["packages"]
    assert versions["scikit-learn"] == row["packages"]["scikit-learn"] == "1.2.1"  # the framework itself, exactly
    changed = [name for name in row["packages"] if versions[name] != row["packages"][name]]
    if sys.version_info[:2] == (3, 9):  # the container's Python: every pin installs
        assert changed == [] and env.notes == ()
    for name in changed:  # any version that differs is said, in one note
        assert f"{name} {versions[name]} instead of {row['packages'][name]}" in " ".join(env.notes)
    assert len(env.notes) <= 1
    # The same interpreter runs mltp and the environment; nothing of the helper leaks in.
    assert _python_out(env.python, "import sys; print('%d.%d' % sys.version_info[:2])") == "%d.%d" % sys.version_info[:2]
    assert subprocess.run([env.python, "-c", "import mltp"], capture_output=True).returncode != 0


def test_a_second_prepare_reuses_the_entry(sklearn_env):
    env = sklearn_env
    said = []
    again = envs.prepare("sklearn", "1.2-1", None, say=said.append)
    assert again == env
    assert not any("building" in line for line in said), said
    assert said == [f"local: {note}" for note in env.notes]  # the nearest-version note, once per run


def test_the_key_follows_requirements_txt_and_the_container_row(tmp_path, monkeypatch):
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("click\n")
    base = envs.plan("sklearn", "1.2-1", None)
    # The framework environment does not depend on requirements.txt: its overlay does.
    assert envs.plan("sklearn", "1.2-1", requirements) == base
    first = envs.overlay_plan(base, requirements)
    assert envs.overlay_plan(base, requirements) == first and first.key != base.key
    requirements.write_text("click>=7\n")
    changed = envs.overlay_plan(base, requirements)
    assert changed.key != first.key and changed.name != first.name
    assert envs.overlay_plan(envs.plan("sklearn", "1.4-2", None), requirements).key != changed.key
    assert envs.plan("sklearn", "1.4-2", None).key != envs.plan("sklearn", "1.2-1", None).key
    row = dict(containers.CONTAINERS[("sklearn", "1.2-1")], packages={"scikit-learn": "1.2.2"})
    before = envs.plan("sklearn", "1.2-1", None).key
    monkeypatch.setitem(containers.CONTAINERS, ("sklearn", "1.2-1"), row)
    assert envs.plan("sklearn", "1.2-1", None).key != before


@pytest.fixture
def own_cache(tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    monkeypatch.setenv("MLTP_CACHE_DIR", str(cache))
    return cache / "envs"


@pytest.fixture
def offline_pip(monkeypatch):
    """pip installs from the machine's test wheelhouse alone (tests/wheelhouse.py), here and in subprocesses."""
    for name, value in wheelhouse.offline().items():
        monkeypatch.setenv(name, value)


def test_a_pin_without_a_build_for_this_python_gets_the_nearest_version_said_once(own_cache, monkeypatch):
    """Against the real index (the search reads its version list); the toolkit's
    packages may come from the wheelhouse where the index has the same version.
    That a corrupt entry is taken out of use and built again is proven where it
    costs seconds (test_a_changed_overlay_is_taken_out_of_use_and_built_again:
    framework environments and overlays share that code, envs._cached) and for
    a framework environment found changed by a run (test_shared_envs.py)."""
    monkeypatch.setenv("PIP_FIND_LINKS", str(wheelhouse.wheelhouse()))
    # MarkupSafe 1.1.1 has wheels for CPython 3.8 at the newest: not for 3.9..3.13.
    monkeypatch.setitem(containers.CONTAINERS, ("sklearn", "test-nearest"),
                        {"python": "3.8", "packages": {"markupsafe": "1.1.1"}})
    said = []
    env = envs.prepare("sklearn", "test-nearest", None, say=said.append)
    installed = _python_out(env.python, "import importlib.metadata as m; print(m.version('markupsafe'))")
    assert installed != "1.1.1" and tuple(map(int, installed.split(".")[:2])) >= (1, 1)
    note = f"markupsafe {installed} instead of 1.1.1"
    assert [line for line in said if note in line] == [f"local: {env.notes[0]}"]
    assert "the container runs Python 3.8" in env.notes[0]
    assert _python_out(env.python, "import markupsafe, sagemaker_training; print('ok')") == "ok"


def test_concurrent_builds_without_a_c_compiler_publish_one_entry_that_trains(own_cache, offline_pip, tmp_path,
                                                                            monkeypatch):
    """Two guarantees, one pair of builds (each build from scratch costs tens of seconds):

    - two runs on an empty cache build at once: the first link wins, the other
      discards its build and uses the winner's; no half-built entry is ever linked
      (which interpreter builds plays no part in publishing);
    - on a fresh agent with only python3 (no cc or gcc on PATH, none in $CC) the
      toolkit's one C extension, which only serves multi-host training, is left
      out (a compile would fail here) and each run's log says so once; training
      then runs as the containers run it."""
    empty = tmp_path / "no-compiler-bin"
    empty.mkdir()
    path = os.environ["PATH"]
    monkeypatch.setenv("PATH", str(empty))
    monkeypatch.delenv("CC", raising=False)
    assert envs._c_compiler() is None
    code = ("import json; from mltp.local import envs; said = []; "
            "env = envs.prepare('image', None, None, say=said.append); print(json.dumps([env.python, said]))")
    procs = [subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    outs = [p.communicate(timeout=900) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    results = [json.loads(out.strip().splitlines()[-1]) for out, _ in outs]
    pythons = {python for python, _ in results}
    assert len(pythons) == 1
    links = [p for p in own_cache.iterdir() if p.is_symlink()]
    builds = [p for p in own_cache.iterdir() if p.name.startswith("build-")]
    assert len(links) == 1 and len(builds) == 1 and links[0].resolve() == builds[0].resolve()
    for _, said in results:  # the loser says the note of the entry it uses, once too
        notes = [line for line in said if "no C compiler here" in line]
        assert len(notes) == 1 and "gethostname extension" in notes[0], said
    python = pythons.pop()
    found = _python_out(python, "import gethostname, sagemaker_training.runner; print(gethostname.__file__)")
    assert found.endswith("gethostname.py")  # the stand-in, not a compiled extension
    # The toolkit runs a script as the containers do.
    base = tmp_path / "opt" / "ml"
    (base / "code").mkdir(parents=True)
    (base / "code" / "train.py").write_text("import os\nopen(os.path.join(os.environ['SM_MODEL_DIR'], 'm'), 'w').write('1')\n")
    (base / "model").mkdir()
    config = base / "input" / "config"
    config.mkdir(parents=True)
    (config / "hyperparameters.json").write_text(json.dumps({"sagemaker_program": '"train.py"',
                                                             "sagemaker_submit_directory": '"/opt/ml/code"'}))
    (config / "inputdataconfig.json").write_text("{}")
    (config / "resourceconfig.json").write_text(json.dumps({"current_host": "localhost", "hosts": ["localhost"]}))
    done = subprocess.run([python, "-m", TOOLKIT_MAIN], cwd=str(base / "code"), capture_output=True, text=True,
                          timeout=300, env=dict(os.environ, SAGEMAKER_BASE_DIR=str(base), PATH=path))
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert (base / "model" / "m").is_file(), done.stdout[-3000:] + done.stderr[-3000:]


def test_an_override_python_gets_an_overlay_and_stays_untouched(own_cache, offline_pip, tmp_path):
    """--python: the user's interpreter with the toolkit and requirements.txt beside it,
    its own packages visible, nothing written into it."""
    user = tmp_path / "user-venv"
    subprocess.run([sys.executable, "-m", "venv", str(user)], check=True)
    user_python = str(user / "bin" / "python")
    site = Path(_python_out(user_python, "import sysconfig; print(sysconfig.get_paths()['purelib'])"))
    (site / "usermod.py").write_text("VALUE = 42\n")
    before = sorted(p.name for p in site.iterdir())
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("tabulate\n")  # not a dependency of the toolkit: there through requirements.txt only
    env = envs.prepare("sklearn", "1.2-1", requirements, override=user_python, say=lambda _: None)
    assert _python_out(env.python, "import usermod, tabulate, sagemaker_training; print(usermod.VALUE)") == "42"
    assert env.requirements == envs.requirements_digest(requirements)
    assert sorted(p.name for p in site.iterdir()) == before


# --------------------------------------------------------------------------- processing entry


def _code_folder(tmp_path: Path, requirements: str = None) -> Path:
    code = tmp_path / "code"
    (code / ".mltp").mkdir(parents=True)
    shutil.copyfile(ENTRY, code / processing_entry.SHIPPED_AS)
    (code / "script.py").write_text("import sys\nprint('script ran with', sys.argv[1:])\n")
    if requirements is not None:
        (code / "requirements.txt").write_text(requirements)
    return code


def _entry(code: Path, **env):
    return subprocess.run([sys.executable, str(code / processing_entry.SHIPPED_AS), str(code / "script.py"), "--x", "1"],
                          capture_output=True, text=True, timeout=300, env=dict(os.environ, **env))


def test_the_entry_runs_the_script_without_requirements(tmp_path):
    proc = _entry(_code_folder(tmp_path))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "script ran with ['--x', '1']"
    assert "requirements" not in proc.stdout


def test_the_entry_installs_requirements_then_runs_the_script(tmp_path):
    proc = _entry(_code_folder(tmp_path, "click\n"))  # installed already: pip says so, installs nothing
    assert proc.returncode == 0, proc.stderr
    assert "mltp: installing requirements.txt" in proc.stdout and "Requirement already satisfied: click" in proc.stdout
    assert proc.stdout.strip().splitlines()[-1] == "script ran with ['--x', '1']"


def test_a_requirements_txt_that_does_not_install_fails_the_job_in_one_line(tmp_path):
    proc = _entry(_code_folder(tmp_path, "mltp-no-such-package-anywhere==0.0.1\n"))
    assert proc.returncode == 1
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("mltp: requirements.txt failed to install (pip exited with code 1: ERROR: ")
    assert "mltp-no-such-package-anywhere" in last
    assert "script ran" not in proc.stdout


def test_the_entry_skips_only_the_very_requirements_txt_installed(tmp_path):
    code = _code_folder(tmp_path, "mltp-no-such-package-anywhere==0.0.1\n")
    digest = envs.requirements_digest(code / "requirements.txt")
    proc = _entry(code, MLTP_REQUIREMENTS_INSTALLED=digest)
    assert proc.returncode == 0 and "is installed already" in proc.stdout
    assert _entry(code, MLTP_REQUIREMENTS_INSTALLED="0" * 64).returncode == 1


# --------------------------------------------------------------------------- the training toolkit


def _training_folder(tmp_path: Path, train_py: str, requirements: str = None) -> Path:
    base = tmp_path / "opt" / "ml"
    code = base / "code"
    code.mkdir(parents=True)
    (code / "train.py").write_text(textwrap.dedent(train_py))
    if requirements is not None:
        (code / "requirements.txt").write_text(requirements)
    (base / "input" / "data" / "train").mkdir(parents=True)
    (base / "input" / "data" / "train" / "rows.csv").write_text("a\n1\n")
    config = base / "input" / "config"
    config.mkdir(parents=True)
    (config / "hyperparameters.json").write_text(json.dumps({
        "sagemaker_program": '"train.py"', "sagemaker_submit_directory": '"s3://bucket/code/sourcedir.tar.gz"',
        "epochs": "3", "label": '"tiny"'}))
    (config / "inputdataconfig.json").write_text(json.dumps({"train": {"TrainingInputMode": "File"}}))
    (config / "resourceconfig.json").write_text(json.dumps({"current_host": "localhost", "hosts": ["localhost"]}))
    (base / "model").mkdir()
    (base / "output" / "data").mkdir(parents=True)  # SageMaker creates it, and so does the local runner
    return base


def _train(env, base: Path):
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "SM_"))}
    return subprocess.run([env.python, "-m", TOOLKIT_MAIN], cwd=str(base / "code"), capture_output=True, text=True,
                          timeout=300, env=dict(clean, SAGEMAKER_BASE_DIR=str(base)))


def test_the_toolkit_runs_train_py_as_the_container_does(sklearn_env, tmp_path):
    env = sklearn_env
    base = _training_folder(tmp_path, """
        import argparse, json, os, sys
        p = argparse.ArgumentParser(); p.add_argument("--epochs", type=int); p.add_argument("--label")
        a = p.parse_args()
        assert json.loads(os.environ["SM_HPS"]) == {"epochs": 3, "label": "tiny"}, os.environ["SM_HPS"]
        assert os.listdir(os.environ["SM_CHANNEL_TRAIN"]) == ["rows.csv"]
        assert os.environ["SM_CURRENT_HOST"] == "localhost"
        open(os.path.join(os.environ["SM_MODEL_DIR"], "model.txt"), "w").write(str(a.epochs))
    """)
    proc = _train(env, base)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (base / "model" / "model.txt").read_text() == "3"
    assert (base / "output" / "success").exists() and not (base / "output" / "failure").exists()


def test_a_failing_train_py_gives_a_one_line_reason_from_the_failure_file(sklearn_env, tmp_path):
    env = sklearn_env
    base = _training_folder(tmp_path, "raise ValueError('bad rows')\n")
    proc = _train(env, base)
    assert proc.returncode != 0
    written = (base / "output" / "failure").read_text()
    assert written.startswith("ExecuteUserScriptError:")
    reason = failure_reason("train.py", proc.returncode, proc.stdout + proc.stderr, env.python, written)
    assert reason == "AlgorithmError: train.py exited with code 1: ValueError: bad rows"


def test_a_requirements_txt_that_does_not_install_fails_training_naming_it(sklearn_env, tmp_path):
    env = sklearn_env
    base = _training_folder(tmp_path, "print('never runs')\n", requirements="mltp-no-such-package-anywhere==0.0.1\n")
    proc = _train(env, base)
    assert proc.returncode != 0 and "never runs" not in proc.stdout
    written = (base / "output" / "failure").read_text()
    reason = failure_reason("train.py", proc.returncode, proc.stdout + proc.stderr, env.python, written)
    assert reason.startswith("AlgorithmError: InstallRequirementsError: requirements.txt failed to install "
                             "(pip exited with code 1: ERROR: "), reason
    assert "mltp-no-such-package-anywhere" in reason and "\n" not in reason


# --------------------------------------------------------------------------- the runner's training job


def _training_request(s3, bucket: str, train_py: str, max_seconds: int = 120) -> dict:
    import io

    s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": "ap-northeast-2"})
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        data = textwrap.dedent(train_py).encode()
        info = tarfile.TarInfo("train.py")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    s3.put_object(Bucket=bucket, Key="code/sourcedir.tar.gz", Body=buffer.getvalue())
    s3.put_object(Bucket=bucket, Key="data/train/rows.csv", Body=b"a\n1\n")
    return {
        "HyperParameters": {"sagemaker_program": '"train.py"',
                            "sagemaker_submit_directory": f'"s3://{bucket}/code/sourcedir.tar.gz"', "epochs": "2"},
        "InputDataConfig": [{"ChannelName": "train", "DataSource": {"S3DataSource": {
            "S3Uri": f"s3://{bucket}/data/train/", "S3DataType": "S3Prefix"}}}],
        "OutputDataConfig": {"S3OutputPath": f"s3://{bucket}/model/"},
        "ResourceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 1},
        "StoppingCondition": {"MaxRuntimeInSeconds": max_seconds},
        "Environment": {"FLAG": "on"},
    }


def test_the_runner_trains_through_the_toolkit_and_uploads_the_model(sklearn_env, aws_env, tmp_path):
    import io

    from mltp.aws import Clients
    from mltp.local.runner import LocalJobRunner

    env = sklearn_env
    clients = Clients("ap-northeast-2", aws_env)
    request = _training_request(clients.s3, "toolkit-ok", """
        import argparse, os, sklearn
        a = argparse.ArgumentParser(); a.add_argument("--epochs", type=int); n = a.parse_args().epochs
        assert os.environ["FLAG"] == "on" and os.environ["SM_CURRENT_HOST"] == "localhost"
        open(os.path.join(os.environ["SM_MODEL_DIR"], "model.txt"), "w").write(sklearn.__version__ + " %d" % n)
    """)
    runner = LocalJobRunner(clients, tmp_path / "work", environments={"training": env})
    runner("training", "m-train-0123456789ab", request, None)
    body = clients.s3.get_object(Bucket="toolkit-ok", Key="model/m-train-0123456789ab/output/model.tar.gz")["Body"]
    with tarfile.open(fileobj=io.BytesIO(body.read())) as tar:
        assert tar.extractfile("model.txt").read().decode() == "1.2.1 2"
    config = tmp_path / "work" / "m-train-0123456789ab" / "opt" / "ml" / "input" / "config"
    assert json.loads((config / "resourceconfig.json").read_text())["current_host"] == "localhost"
    assert json.loads((config / "hyperparameters.json").read_text()) == request["HyperParameters"]


def test_a_failing_script_is_named_by_its_own_last_line_not_the_toolkits(sklearn_env, aws_env, tmp_path):
    """A one-letter hyperparameter reaches the script as `-n 2`, as SageMaker's
    toolkit spells it; argparse's complaint is the reason, not the toolkit's log."""
    from mltp.aws import Clients
    from mltp.local.runner import JobFailed, LocalJobRunner

    env = sklearn_env
    clients = Clients("ap-northeast-2", aws_env)
    request = _training_request(clients.s3, "toolkit-args", """
        import argparse
        a = argparse.ArgumentParser(); a.add_argument("--n", type=int); a.parse_args()
    """)
    request["HyperParameters"]["n"] = request["HyperParameters"].pop("epochs")
    runner = LocalJobRunner(clients, tmp_path / "work", environments={"training": env})
    with pytest.raises(JobFailed) as failed:
        runner("training", "m-train-0123456789ab", request, None)
    assert str(failed.value) == "AlgorithmError: train.py exited with code 2: train.py: error: unrecognized arguments: -n 2"


def test_a_job_over_its_runtime_ends_with_the_script_the_toolkit_started(sklearn_env, aws_env, tmp_path):
    from mltp.aws import Clients
    from mltp.local.runner import JobFailed, LocalJobRunner

    env = sklearn_env
    clients = Clients("ap-northeast-2", aws_env)
    pid_file = tmp_path / "script.pid"
    request = _training_request(clients.s3, "toolkit-slow", f"""
        import os, time
        open({str(pid_file)!r}, "w").write(str(os.getpid()))
        time.sleep(600)
    """, max_seconds=15)
    runner = LocalJobRunner(clients, tmp_path / "work", environments={"training": env})
    with pytest.raises(JobFailed, match=r"^MaxRuntimeExceeded: m-train-0123456789ab ran longer than 15 s$"):
        runner("training", "m-train-0123456789ab", request, None)
    pid = int(pid_file.read_text())
    for _ in range(50):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        import time

        time.sleep(0.1)
    else:
        pytest.fail(f"train.py (pid {pid}) outlived its job")


# --------------------------------------------------------------------------- requirements.txt as an overlay


def test_requirements_go_into_an_overlay_on_the_cached_framework_environment(sklearn_env, tmp_path):
    """One more package costs a small overlay, not a new framework environment."""
    base = sklearn_env
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("tabulate==0.9.0\n")
    said = []
    env = envs.prepare("sklearn", "1.2-1", requirements, say=said.append)
    assert env.base == base and env.path != base.path
    assert not any("building the environment" in line for line in said), said  # the framework's is reused
    assert env.requirements == envs.requirements_digest(requirements)
    out = _python_out(env.python, "import tabulate, sklearn, sagemaker_training; print(tabulate.__version__, sklearn.__version__)")
    assert out.split()[0] == "0.9.0"
    assert out.split()[1] == _python_out(base.python, "import sklearn; print(sklearn.__version__)")
    assert subprocess.run([base.python, "-c", "import tabulate"], capture_output=True).returncode != 0
    # jobs see the overlay and the framework environment it stands on read-only
    protected = envs.protected_paths([env])
    assert os.path.realpath(str(env.path)) in protected and os.path.realpath(str(base.path)) in protected
    again = []
    assert envs.prepare("sklearn", "1.2-1", requirements, say=again.append) == env
    assert not any("adding requirements.txt" in line for line in again), again


def test_a_pin_of_a_package_the_container_has_wins_as_in_the_container(sklearn_env, tmp_path):
    """In the container `pip install -r requirements.txt` replaces the container's
    version; here the pinned one goes into the overlay, ahead of the framework's,
    and the framework environment stays as recorded."""
    base = sklearn_env
    had = _python_out(base.python, "import joblib; print(joblib.__version__)")
    pinned = "1.3.2" if had != "1.3.2" else "1.3.1"
    requirements = tmp_path / "requirements.txt"
    requirements.write_text(f"joblib=={pinned}\n")
    env = envs.prepare("sklearn", "1.2-1", requirements, say=lambda line: None)
    assert _python_out(env.python, "import joblib; print(joblib.__version__)") == pinned
    assert _python_out(base.python, "import joblib; print(joblib.__version__)") == had
    from mltp.local import env_record

    env_record.check(Path(os.path.realpath(str(base.path))), base.record, full=True)  # untouched


def test_a_changed_overlay_is_taken_out_of_use_and_built_again(sklearn_env, offline_pip, tmp_path):
    """Found changed by `ensure` (a file of it edited, as a job would) and by
    `prepare` (its bin/python gone): each time it is taken out of use, the log
    says why, and it is built again; nothing of the bad build is left. prepare's
    verify, discard and build sequence is the one framework environments go
    through as well (envs._cached), so this proves it for them where a rebuild
    costs seconds; test_shared_envs.py has a framework environment rebuilt
    after a run changed it, and one refused where it cannot be rebuilt."""
    requirements = tmp_path / "requirements.txt"
    # An overlay of this test's own (it changes it): no other test, worker or session uses it.
    requirements.write_text(f"tabulate==0.9.0\n# {uuid.uuid4()}\n")
    env = envs.prepare("sklearn", "1.2-1", requirements, say=lambda line: None)
    try:
        site = Path(_python_out(env.python, "import tabulate, os; print(os.path.dirname(tabulate.__file__))"))
        target = site / "__init__.py"
        os.chmod(target, 0o644)
        with open(target, "a") as handle:
            handle.write("\nHIJACKED = True\n")
        said = []
        checked, changed = envs.ensure(env, say=said.append)
        assert changed and "tabulate/__init__.py" in changed, changed
        assert any("taking it out of use" in line for line in said), said
        assert _python_out(checked.python, "import tabulate; print(hasattr(tabulate, 'HIJACKED'))") == "False"
        assert checked.base == env.base
        # Corrupt the entry: the next prepare takes it out of use and builds it again.
        (checked.path / "bin" / "python").unlink()
        said = []
        rebuilt = envs.prepare("sklearn", "1.2-1", requirements, say=said.append)
        assert (f"local: the cached requirements overlay {checked.path} failed verification (bin/python is missing); "
                "building it again") in said, said
        assert _python_out(rebuilt.python, "import tabulate, sagemaker_training; print('ok')") == "ok"
        builds = [p for p in envs.cache_root().iterdir() if p.name.startswith(f"build-{rebuilt.path.name}.")]
        assert [os.path.realpath(str(p)) for p in builds] == [os.path.realpath(str(rebuilt.path))]  # the bad ones are gone
    finally:
        envs._discard(env.path, envs.cache_root())
