"""The bundled helper on every Python a Jenkins agent may have (3.9 to 3.13).

For each interpreter found on this machine (tests/compat/pythons.py) the bundle
is installed exactly as the Jenkins step installs it: resources/mltp/install.sh
with the local-mode lock, the helper run through helper.sh. Then `validate`,
`render` and a local run of the example; the lean AWS-mode lock is installed too
and must validate and render. The model's scripts run with this test's own
Python (they need scikit-learn and pandas; the helper under test is the
interpreter's).

Installs go to a cache that outlives the run (MLTP_COMPAT_CACHE, default
~/.cache/mltp-compat): an unchanged bundle is verified and reused. A changed
bundle (every change of the helper rebuilds its wheel) is installed afresh, as
an agent installs it, but from a folder of the lock's files for that
interpreter (tests/wheelhouse.py, lock_offline: downloaded once per machine and
lock by the interpreter's own pip, hash-checked by pip at each install): pip
here caches no downloads, so each fresh install used to fetch the whole lock
again, minutes per interpreter. That the lock installs from the package index
is proven where its wheelhouse is made (the same `--require-hashes` lock, the
same interpreter).
`make test-compat` runs this file (and `make test`, in one pool of workers with the
helper's tests); the run's summary says which interpreters it covered (conftest.py).
"""

import os
import shutil
import sys
from pathlib import Path

import pytest

from tests.compat import pythons
from tests.installer import LOCKS, install, run_helper, run_verb
from tests.wheelhouse import lock_offline

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "fraud-detection"
FOUND = pythons.find()
CACHE = Path(os.environ.get("MLTP_COMPAT_CACHE") or Path.home() / ".cache" / "mltp-compat")


def test_covers_the_pythons_agents_commonly_have():
    """Amazon Linux 2023 ships 3.9 and Ubuntu 24.04 3.12: without either, this test proves little."""
    print(f"\ncompat: interpreters found: {', '.join(f'{v} ({p})' for v, p in FOUND.items()) or 'none'}")
    missing = [v for v in pythons.VERSIONS if v not in FOUND]
    if missing:
        print(f"compat: not on this machine: {', '.join(missing)}")
    assert "3.9" in FOUND or "3.12" in FOUND, "neither Python 3.9 nor 3.12 found: install one (or pyenv)"


@pytest.fixture
def repo(tmp_path):
    target = tmp_path / "fraud-detection"
    shutil.copytree(EXAMPLE, target, ignore=shutil.ignore_patterns(".mltp", "__pycache__"))
    return target


def _install(version, lock, tmp_path):
    if version not in FOUND:
        pytest.skip(f"Python {version} is not on this machine")
    done = install(FOUND[version], CACHE, tmp_path / f"install-{lock}", lock=lock,
                   **lock_offline(FOUND[version], LOCKS[lock]))
    assert done.rc == 0, f"install on {version} failed: {done.error}\n{done.output[-3000:]}"
    assert done.mltp and "mltp helper:" in done.output
    return done.mltp


@pytest.mark.parametrize("version", pythons.VERSIONS)
def test_local_mode_bundle(version, repo, tmp_path):
    mltp = _install(version, "local", tmp_path)
    scratch = tmp_path / "verbs"
    scratch.mkdir()

    checked = run_verb(mltp, "validate", repo, scratch)
    assert checked.returncode == 0, checked.stdout
    assert "ok: config.yaml valid" in checked.stdout
    assert "register=true" in (scratch / "info.txt").read_text()

    rendered = run_helper(mltp, "render", str(repo))
    assert rendered.returncode == 0, rendered.stderr
    assert '"StartAt": "ReusePreprocessing"' in rendered.stdout  # the step cache's first Choice
    assert rendered.stderr == "", rendered.stderr  # no SDK warnings in the build log

    ran = run_verb(mltp, "run", repo, scratch, MLTP_PYTHON=sys.executable, MLTP_RUN_NAME=f"compat-{version.replace('.', '-')}")
    print(f"\ncompat: Python {version}: local run exit {ran.returncode}")
    assert ran.returncode == 0, ran.stdout[-4000:]
    assert "PASSED" in ran.stdout
    assert (repo / ".mltp" / "runs" / f"compat-{version.replace('.', '-')}" / "model.tar.gz").is_file()


@pytest.mark.parametrize("version", [v for v in pythons.VERSIONS if v in ("3.9", "3.13")])
def test_aws_mode_bundle(version, repo, tmp_path):
    """The lean install (no emulator) on the oldest and newest Python: validate and render work,
    and --local says what is missing instead of crashing."""
    mltp = _install(version, "aws", tmp_path)
    scratch = tmp_path / "verbs"
    scratch.mkdir()
    checked = run_verb(mltp, "validate", repo, scratch)
    assert checked.returncode == 0, checked.stdout
    rendered = run_helper(mltp, "render", str(repo))
    assert rendered.returncode == 0, rendered.stderr
    assert '"Type": "Choice"' in rendered.stdout
    local = run_verb(mltp, "run", repo, scratch)
    assert local.returncode == 2, local.stdout
    assert "--local needs the emulator" in local.stdout
    assert "Traceback" not in local.stdout
