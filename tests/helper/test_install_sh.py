"""resources/mltp/install.sh, helper.sh and verify-helper.py on their own, with a
real /bin/sh, as the Jenkins steps run them (tests/installer.py).

A small wheel made here stands in for the helper, so these tests need no
package index: it has a real RECORD with hashes, so the cache verification
works on it exactly as on the bundled wheel.
"""

import base64
import hashlib
import os
import shutil
import subprocess
import sys
import threading
import zipfile
from pathlib import Path

import pytest

from tests.installer import HELPER_SH, INSTALL_SH, RESOURCES, install, run_verb

CLI = '''import sys


def main():
    print("fake mltp", " ".join(sys.argv[1:]))
    return 0
'''


def _record_hash(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def make_wheel(folder: Path, cli: str = CLI, version: str = "0.0.1") -> Path:
    files = {
        "mltp/__init__.py": f'__version__ = "{version}"\n',
        "mltp/cli.py": cli,
        f"mltp-{version}.dist-info/METADATA": f"Metadata-Version: 2.1\nName: mltp\nVersion: {version}\n",
        f"mltp-{version}.dist-info/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
        f"mltp-{version}.dist-info/entry_points.txt": "[console_scripts]\nmltp = mltp.cli:main\n",
    }
    record = "".join(f"{name},{_record_hash(text.encode())},{len(text.encode())}\n" for name, text in files.items())
    files[f"mltp-{version}.dist-info/RECORD"] = record + f"mltp-{version}.dist-info/RECORD,,\n"
    folder.mkdir(parents=True, exist_ok=True)
    wheel = folder / f"mltp-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        for name, text in files.items():
            archive.writestr(name, text)
    return wheel


@pytest.fixture
def bundle(tmp_path):
    """The fake wheel and a lock without requirements; installs need no network."""
    lock = tmp_path / "bundle" / "requirements.txt"
    wheel = make_wheel(tmp_path / "bundle")
    lock.write_text("# no dependencies\n")
    return {"wheel": wheel, "requirements": lock, "cache": tmp_path / "cache"}


def _install(bundle, tmp_path, name="build", python=sys.executable, **extra):
    return install(python, bundle["cache"], tmp_path / name, wheel=bundle["wheel"],
                   requirements=bundle["requirements"], **extra)


def _site_packages(mltp: str) -> Path:
    venv = Path(mltp).parent.parent
    (site,) = venv.glob("lib/python3*/site-packages")
    return site


def _builds(cache: Path):
    return sorted(p.name for p in cache.iterdir() if p.name.startswith("build-"))


def test_cold_install_then_cache_hit_then_another_lock_gets_its_own_entry(bundle, tmp_path):
    """One cold install serves two guarantees (each install makes a virtualenv,
    seconds of both cores): an unchanged bundle is a verified cache hit, and
    another lock (or wheel: both are in the key) gets an entry of its own."""
    first = _install(bundle, tmp_path, "first")
    assert first.rc == 0, first.output
    assert "mltp helper: installing into" in first.output and "mltp helper: installed in" in first.output
    venv = Path(first.mltp).parent.parent
    assert venv.is_symlink() and venv.name.startswith("venv-")
    out = subprocess.run([first.mltp, "validate", "x"], capture_output=True, text=True)
    assert out.stdout.strip() == "fake mltp validate x"

    second = _install(bundle, tmp_path, "second")
    assert second.rc == 0, second.output
    assert second.output.strip() == f"mltp helper: cached in {venv} (verified)"
    assert second.mltp == first.mltp
    assert len(_builds(bundle["cache"])) == 1

    bundle["requirements"].write_text("# no dependencies, another lock\n")
    other = _install(bundle, tmp_path, "other")
    assert other.rc == 0 and other.mltp != first.mltp
    assert "installing into" in other.output


def test_two_concurrent_builds_share_one_entry(bundle, tmp_path):
    results = {}

    def build(name):
        results[name] = _install(bundle, tmp_path, name)

    threads = [threading.Thread(target=build, args=(n,)) for n in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    a, b = results["a"], results["b"]
    assert a.rc == 0 and b.rc == 0, a.output + b.output
    assert a.mltp == b.mltp
    assert len(_builds(bundle["cache"])) == 1, "the loser's build is removed"
    assert subprocess.run([a.mltp, "x"], capture_output=True, text=True).stdout.strip() == "fake mltp x"


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    """One real install, copied by the tests that tamper with it (a venv takes seconds to make)."""
    tmp = tmp_path_factory.mktemp("pristine")
    wheel = make_wheel(tmp / "bundle")
    lock = tmp / "bundle" / "requirements.txt"
    lock.write_text("# no dependencies\n")
    done = install(sys.executable, tmp / "cache", tmp / "scratch", wheel=wheel, requirements=lock)
    assert done.rc == 0, done.output
    subprocess.run([done.mltp, "x"], check=True, capture_output=True)  # Python writes its .pyc files
    return {"venv": Path(done.mltp).parent.parent.resolve(), "wheel": wheel}


def _verify(venv: Path, wheel=None):
    args = [sys.executable, "-I", str(RESOURCES / "verify-helper.py"), str(venv)] + ([str(wheel)] if wheel else [])
    return subprocess.run(args, capture_output=True, text=True)


def _tamper(site: Path, launcher: Path, tamper: str) -> None:
    if tamper == "source":
        (site / "mltp" / "cli.py").write_text(CLI.replace("fake mltp", "evil mltp"))
    elif tamper == "missing":
        (site / "mltp" / "cli.py").unlink()
    elif tamper == "launcher":
        launcher.write_text(launcher.read_text().replace("sys.exit(main())", "import os; os.system('id'); sys.exit(main())"))
    elif tamper == "no-launcher":
        launcher.unlink()
    elif tamper == "pth":
        (site / "zz-evil.pth").write_text("import os; os.system('id')\n")
    elif tamper == "pyc":
        # Bytecode with the header of the real source: Python would run it instead.
        import importlib.util
        import marshal

        source = site / "mltp" / "cli.py"
        evil = compile(CLI.replace("fake mltp", "evil mltp"), str(source), "exec")
        st = source.stat()
        header = importlib.util.MAGIC_NUMBER + b"\0\0\0\0" + (int(st.st_mtime) & 0xFFFFFFFF).to_bytes(4, "little") \
            + (st.st_size & 0xFFFFFFFF).to_bytes(4, "little")
        Path(importlib.util.cache_from_source(str(source))).write_bytes(header + marshal.dumps(evil))


@pytest.mark.parametrize("tamper, reason", [
    ("source", "mltp/cli.py differs from the helper that was installed"),
    ("missing", "mltp/cli.py is missing"),
    ("launcher", "bin/mltp runs unexpected code"),
    ("no-launcher", "it has no bin/mltp"),
    ("pth", "site-packages/zz-evil.pth belongs to no installed package"),
    ("pyc", "mltp/__pycache__/cli."),
])
def test_the_verifier_finds_each_kind_of_tampering(pristine, tmp_path, tamper, reason):
    venv = tmp_path / "venv"
    shutil.copytree(pristine["venv"], venv, symlinks=True)
    (site,) = venv.glob("lib/python3*/site-packages")
    assert _verify(venv, pristine["wheel"]).returncode == 0
    _tamper(site, venv / "bin" / "mltp", tamper)
    if tamper == "no-launcher":
        return  # install.sh checks the launcher exists before it runs the verifier (next test)
    done = _verify(venv, pristine["wheel"])
    assert done.returncode == 1
    assert reason in done.stdout and len(done.stdout.splitlines()) == 1, done.stdout
    if tamper == "pyc":
        assert "is not its source compiled" in done.stdout


def test_a_tampered_entry_is_rebuilt_and_the_log_says_so(bundle, tmp_path):
    """Each kind of tampering install.sh itself sees (a changed source: the
    verifier; no launcher: the script's own check) on the entry the previous
    round rebuilt: one install fewer than an entry of its own for each."""
    current = _install(bundle, tmp_path, "first")
    assert current.rc == 0, current.output
    for tamper, reason in (("source", "mltp/cli.py differs from the helper that was installed"),
                           ("no-launcher", "it has no bin/mltp")):
        _tamper(_site_packages(current.mltp), Path(current.mltp), tamper)
        again = _install(bundle, tmp_path, f"again-{tamper}")
        assert again.rc == 0, again.output
        assert "failed verification" in again.output and reason in again.output, again.output
        assert "installed in" in again.output
        out = subprocess.run([again.mltp, "x"], capture_output=True, text=True)
        assert out.stdout.strip() == "fake mltp x"
        assert len(_builds(bundle["cache"])) == 1, "the tampered build is gone"
        current = again


def test_a_fresh_install_verifies(pristine):
    """The verifier agrees with what pip installs, compiled modules included: no rebuild loop."""
    done = _verify(pristine["venv"], pristine["wheel"])
    assert done.returncode == 0 and done.stdout == "", done.stdout
    # Without the wheel (a pip-spec install) the installed RECORD is the reference.
    assert _verify(pristine["venv"]).returncode == 0


def test_an_install_under_a_long_path_verifies(tmp_path):
    """Under a path that makes `#!` longer than the kernel's 127 bytes, pip writes
    its `#!/bin/sh` + `'''exec' PYTHON` launcher: that verifies too (a deep Jenkins
    workspace or cache must not rebuild forever), and code added to it does not."""
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    wheel = make_wheel(tmp_path / "bundle")
    lock = tmp_path / "bundle" / "requirements.txt"
    lock.write_text("# no dependencies\n")
    done = install(sys.executable, deep / "cache", tmp_path / "scratch", wheel=wheel, requirements=lock)
    assert done.rc == 0, done.output
    launcher = Path(done.mltp)
    assert launcher.read_text().startswith("#!/bin/sh\n'''exec' ")
    venv = launcher.parent.parent
    assert _verify(venv, wheel).returncode == 0
    launcher.write_text(launcher.read_text().replace("sys.exit(main())", "import os; os.system('id'); sys.exit(main())"))
    refused = _verify(venv, wheel)
    assert refused.returncode != 0 and "bin/mltp runs unexpected code" in refused.stdout + refused.stderr


def test_an_interpreter_without_venv_is_refused_clearly(bundle, tmp_path):
    """Debian's python3 without python3-venv: no ensurepip."""
    stub = tmp_path / "stub"
    (stub / "ensurepip").mkdir(parents=True)
    (stub / "ensurepip" / "__init__.py").write_text("raise ImportError('ensurepip is disabled on Debian')\n")
    python = tmp_path / "bin" / "python3"
    python.parent.mkdir()
    python.write_text(f'#!/bin/sh\nPYTHONPATH="{stub}" exec "{sys.executable}" "$@"\n')
    python.chmod(0o755)
    done = _install(bundle, tmp_path, python=str(python))
    assert done.rc == 2
    assert "cannot create virtualenvs: its venv/ensurepip module is missing" in done.error
    assert "apt-get install python3-venv" in done.error
    assert not bundle["cache"].exists() or not _builds(bundle["cache"])


def _old_python():
    root = Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv")
    for pattern in ("3.8.*", "3.7.*", "3.6.*"):
        found = sorted(root.glob(f"versions/{pattern}/bin/python3"))
        if found:
            return str(found[-1])
    for name in ("python3.8", "python3.7", "python3.6"):
        path = shutil.which(name)
        if path and "/shims/" not in path:
            return path
    return None


def test_a_python_older_than_3_9_is_refused(bundle, tmp_path):
    old = _old_python()
    if old is None:
        # No real one here: a stand-in that answers as Python 3.8 does.
        old = str(tmp_path / "python3.8")
        Path(old).write_text("#!/bin/sh\ncase \"$*\" in *print*) echo 3.8 ;; *) exit 1 ;; esac\n")
        os.chmod(old, 0o755)
    done = _install(bundle, tmp_path, python=old)
    assert done.rc == 2
    assert done.error.endswith("the mltp helper needs Python 3.9 or newer (the python option)"), done.error
    assert "is Python 3." in done.error


def test_a_missing_interpreter_is_named(bundle, tmp_path):
    done = _install(bundle, tmp_path, python="/nowhere/python3.42")
    assert done.rc == 2
    assert done.error == "Python interpreter '/nowhere/python3.42' not found on this agent (the python option; Python 3.9+ is needed)"
    assert "Traceback" not in done.output


def test_a_failing_pip_names_what_failed(bundle, tmp_path):
    bundle["requirements"].write_text("no-such-package-mltp==0.0.0 --hash=sha256:" + "0" * 64 + "\n")
    done = _install(bundle, tmp_path, PIP_NO_INDEX="1")
    assert done.rc == 2
    assert done.error.startswith("pip could not install the helper's pinned requirements")
    assert not _builds(bundle["cache"]), "a failed build leaves nothing behind"


# --------------------------------------------------------------------------- helper.sh


def _fake_helper(tmp_path) -> Path:
    fake = tmp_path / "bin" / "fake mltp"
    fake.parent.mkdir(parents=True)
    fake.write_text('#!/bin/sh\nprintf "%s\\n" "$@" > "$SEEN"\necho stale-check > /dev/null\nexit 0\n')
    fake.chmod(0o755)
    return fake


@pytest.mark.parametrize("verb, args", [
    ("validate", ["validate"]), ("sync", ["sync"]), ("deploy", ["deploy"]), ("publish", ["publish"]),
    ("start", ["start"]),
    ("wait", ["wait"]), ("stop", ["stop"]), ("run", ["run", "--local"]), ("prune", ["prune", "--yes"]),
    ("trigger-install", ["trigger", "install"]),
    ("models", ["models"]), ("approve", ["approve"]), ("reject", ["reject"]), ("fetch-model", ["fetch-model"]),
])
def test_helper_sh_runs_each_verb(tmp_path, verb, args):
    fake = _fake_helper(tmp_path)
    repo = tmp_path / "my repo; $(touch pwned)"
    repo.mkdir()
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    (scratch / "error.txt").write_text("an old reason\n")
    (scratch / "info.txt").write_text("old=info\n")
    done = run_verb(str(fake), verb, repo, scratch, SEEN=str(tmp_path / "seen"))
    assert done.returncode == 0, done.stdout
    assert (tmp_path / "seen").read_text().splitlines() == args + [str(repo)]
    assert not (scratch / "error.txt").exists(), "an old reason is never read again"
    assert (scratch / "info.txt").exists() == (verb not in ("validate", "fetch-model"))
    assert not (tmp_path / "pwned").exists()


@pytest.mark.parametrize("verb", ["", "render", "validate; id", "VALIDATE", "--help", "trigger", "trigger-remove"])
def test_helper_sh_refuses_other_verbs(tmp_path, verb):
    fake = _fake_helper(tmp_path)
    done = run_verb(str(fake), verb, tmp_path, tmp_path, SEEN=str(tmp_path / "seen"))
    assert done.returncode == 2
    assert "unknown verb" in done.stdout
    assert not (tmp_path / "seen").exists()


def test_shell_scripts_pass_shellcheck():
    shellcheck = shutil.which("shellcheck")
    if shellcheck is None:
        if os.environ.get("CI"):
            pytest.fail("shellcheck is not installed (make test installs Debian's package)")
        pytest.skip("shellcheck is not installed: apt-get install shellcheck")
    scripts = [str(INSTALL_SH), str(HELPER_SH)]
    done = subprocess.run([shellcheck, "--shell=sh", "--severity=style", *scripts], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout
