"""What the environment tests share across tests, pytest-xdist workers and
sessions: the default framework's environment and a folder of wheels.

- `framework_env()`: the sklearn 1.2-1 environment a local run of a repo
  without requirements.txt gets (local/envs.py), built once per machine into
  the test cache (tests/conftest.py links it to ~/.cache/mltp-test-envs),
  under a file lock so that two workers starting on an empty cache build it
  once, not twice at the same time.
- `framework_env(*IMAGE)`: the same for `framework: image` (the toolkit
  alone), for the test that rebuilds an environment a run changed
  (test_shared_envs.py): the rebuild is the same for any environment.
- `offline()`: the environment variables that make pip install from a
  wheelhouse of this machine only (`--no-index --find-links`). The tests that
  must build an environment from scratch (in a cache of their own: concurrent
  publish, no C compiler, --python overlay, a changed environment rebuilt)
  prove how mltp builds, verifies and publishes it, not that the package index
  serves the same files again; pip here caches no downloads (the index's
  answers carry no cache headers), so every such build used to download the
  toolkit's packages (numpy, scipy, boto3, ...) anew. The wheelhouse holds
  what those builds install: the training toolkit as a wheel and as its source
  (the build without a compiler starts from the source), its dependencies, the
  framework environment's packages at the versions it holds, setuptools and
  wheel for source builds, and tabulate (the tests' requirements.txt). It is
  built once per machine and interpreter (~/.cache/mltp-test-wheels,
  MLTP_TEST_WHEELS moves it), keyed by what it holds, like a warm package
  cache. The test that exercises the nearest-version search against the real
  index (test_envs.py) does not use it.
- `lock_offline(python, lock)`: the same for the compatibility test's installs
  (tests/compat): the files a hash-pinned lock of resources/mltp/ names for
  one interpreter, downloaded once per machine by that interpreter's own pip
  (so its markers and wheel tags decide, as on an agent), keyed by the lock's
  bytes and the interpreter. install.sh still builds the virtualenv and
  installs every pinned package (pip checks each file against the lock's
  hashes) and the helper wheel, and verifies the result; only the download
  is not repeated each time the bundled wheel changes, which gives install.sh's
  own cache a new key and used to cost minutes per interpreter.
"""

import fcntl
import functools
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Optional

from mltp.local import envs

ROOT = Path(os.environ.get("MLTP_TEST_WHEELS") or Path.home() / ".cache" / "mltp-test-wheels")
FORMAT = 1  # bump when what a wheelhouse holds changes
LOCK_FORMAT = 2  # the same for a lock's wheelhouse (2: with the build requirements of its sdists)
FRAMEWORK = ("sklearn", "1.2-1")  # the default framework row, as a repo without requirements.txt gets it
# `framework: image`: the toolkit and its dependencies only, the smallest environment
# a local run builds (about half the CPU of the framework's to build, and to copy).
IMAGE = ("image", None)
EXTRA = ("setuptools", "wheel", "tabulate==0.9.0")
# Kept as sources too: the toolkit (a build without a compiler starts from its
# source) and what pip builds that source with when told to use no binaries at
# all: setuptools and wheel, wheel's dependency packaging, and flit_core, which
# both of those are built with. A probe checks the set when the wheelhouse is built.
SOURCES = (envs.TOOLKIT, "setuptools", "wheel", "packaging", "flit_core")
# The session's helper cache (tests/conftest.py sets it before any test module is
# imported): the framework environment lives there, whichever cache a test has
# switched to when it first asks for the wheelhouse.
SESSION_CACHE = os.environ.get("MLTP_CACHE_DIR")
COMPLETE = ".complete"


@contextmanager
def locked(name: str) -> Iterator[None]:
    """An exclusive lock shared by every process on the machine (workers, sessions, other checkouts)."""
    ROOT.mkdir(parents=True, exist_ok=True)
    with open(ROOT / f".{name}.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _built_once(target: Path, name: str, build: Callable[[Path], str]) -> Path:
    """`target`, filled once per machine: under the lock `name`, `build(folder)`
    fills an empty scratch folder beside it and returns what COMPLETE records; the
    folder is then renamed into place whole, so a folder with COMPLETE is never
    half built, and a failed build leaves nothing."""
    if (target / COMPLETE).exists():
        return target
    with locked(name):
        if (target / COMPLETE).exists():
            return target
        shutil.rmtree(target, ignore_errors=True)
        scratch = Path(tempfile.mkdtemp(prefix=f"build-{name}.", dir=str(ROOT)))
        try:
            (scratch / COMPLETE).write_text(build(scratch), encoding="utf-8")
            os.rename(str(scratch), str(target))
        except BaseException:
            shutil.rmtree(scratch, ignore_errors=True)
            raise
    return target


@functools.lru_cache(maxsize=None)
def framework_env(framework: str = FRAMEWORK[0], version: Optional[str] = FRAMEWORK[1]) -> envs.Environment:
    """The default framework's environment (or another row's: IMAGE), verified
    (built first, once, where there is none). The default one is built from
    the index (the wheelhouse is made from it); any other from the wheelhouse,
    which holds the toolkit and its dependencies."""
    pip = offline() if (framework, version) != FRAMEWORK else {}
    switched = {name: os.environ.get(name) for name in ("MLTP_CACHE_DIR", *pip)}
    if SESSION_CACHE:
        os.environ["MLTP_CACHE_DIR"] = SESSION_CACHE
    os.environ.update(pip)
    try:
        with locked(f"env-{framework}-{version}"):
            return envs.prepare(framework, version, None, say=lambda _: None)
    finally:
        for name, value in switched.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _requirements() -> List[str]:
    packages = json.loads((framework_env().path / envs.MARKER).read_text(encoding="utf-8"))["packages"]
    return sorted({envs.TOOLKIT, *EXTRA, *(f"{name}=={version}" for name, version in packages.items())})


@functools.lru_cache(maxsize=None)
def wheelhouse() -> Path:
    """The folder of wheels for this interpreter, built once (see the module's docstring)."""
    requirements = _requirements()
    tag = "%s-%d.%d.%d-%s" % (sys.implementation.name, *sys.version_info[:3], os.uname().machine)
    key = hashlib.sha256(json.dumps({"format": FORMAT, "python": tag, "requirements": requirements,
                                     "sources": SOURCES}, sort_keys=True).encode()).hexdigest()[:16]

    def build(folder: Path) -> str:
        pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input", "-q"]
        _run(pip + ["download", "-d", str(folder), *requirements])
        # Wheels of what came as source (the toolkit compiles its one extension here,
        # where there is a compiler), the sources kept beside them.
        for source in sorted(folder.glob("*.tar.gz")):
            subprocess.run(pip + ["wheel", "--no-deps", "--no-index", "--find-links", str(folder),
                                  "-w", str(folder), str(source)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        _run(pip + ["download", "--no-deps", "--no-binary", ":all:", "-d", str(folder), *SOURCES])
        with tempfile.TemporaryDirectory(dir=str(ROOT)) as probe:  # the compiler-less build's first step
            _run(pip + ["download", "--no-deps", "--no-binary", ":all:", "--no-index", "--find-links",
                        str(folder), "-d", probe, envs.TOOLKIT])
        return "\n".join(requirements) + "\n"

    return _built_once(ROOT / f"{tag}-{key}", f"wheelhouse-{key}", build)


def _interpreter_tag(python: str) -> Dict[str, str]:
    code = ("import json, os, platform, sys; print(json.dumps({'tag': '%s-%d.%d.%d-%s' % (sys.implementation.name, "
            "*sys.version_info[:3], platform.machine()), 'executable': os.path.realpath(sys.executable)}))")
    done = subprocess.run([python, "-I", "-c", code], stdout=subprocess.PIPE, text=True, check=True, timeout=60)
    return json.loads(done.stdout)


@functools.lru_cache(maxsize=None)
def lock_wheelhouse(python: str, lock: Path) -> Path:
    """The files of LOCK for the interpreter PYTHON, downloaded once (see the module's docstring)."""
    interpreter = _interpreter_tag(python)
    key = hashlib.sha256(json.dumps({"format": LOCK_FORMAT, "interpreter": interpreter,
                                     "lock": hashlib.sha256(Path(lock).read_bytes()).hexdigest()},
                                    sort_keys=True).encode()).hexdigest()[:16]

    def build(folder: Path) -> str:
        with tempfile.TemporaryDirectory(dir=str(ROOT)) as tools:
            pip = [python, "-m", "pip"]
            if subprocess.run(pip + ["--version"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode:
                _run([python, "-m", "venv", tools])  # an interpreter without pip of its own
                pip = [str(Path(tools) / "bin" / "python"), "-m", "pip"]
            pip += ["--disable-pip-version-check", "--no-input", "-q"]
            _run(pip + ["download", "--require-hashes", "-r", str(lock), "-d", str(folder)])
            if any(p.name.endswith((".tar.gz", ".zip")) for p in folder.iterdir()):
                # A lock entry with no wheel (stepfunctions) is built at install, in an isolated
                # environment that pip fills from the index: offline, from here. Older pips
                # (Python 3.12's own) ask for wheel besides setuptools.
                _run(pip + ["download", "--no-deps", "-d", str(folder), "setuptools", "wheel"])
        return Path(lock).read_text(encoding="utf-8")

    return _built_once(ROOT / f"lock-{interpreter['tag']}-{key}", f"lock-{key}", build)


def lock_offline(python: str, lock: Path) -> Dict[str, str]:
    """pip's settings for installing LOCK on PYTHON from its wheelhouse alone."""
    return {"PIP_NO_INDEX": "1", "PIP_FIND_LINKS": str(lock_wheelhouse(python, lock))}


def offline() -> Dict[str, str]:
    """pip's settings for installing from the wheelhouse alone."""
    return {"PIP_NO_INDEX": "1", "PIP_FIND_LINKS": str(wheelhouse())}


def _run(command: List[str]) -> None:
    done = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace")
    if done.returncode != 0:
        raise RuntimeError(f"building the test wheelhouse failed: {' '.join(command)}\n{done.stdout[-3000:]}")
