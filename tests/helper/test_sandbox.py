"""A private /opt/ml per local job (mltp.local.sandbox): the job's folder is
/opt/ml for the job and for nothing else; the host's /opt stays as it is and
usable (the agent's Python may live there); the job keeps a PID that stop()
ends; and where namespaces are not available the runner maps paths as before."""

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest

from mltp.aws import Clients
from mltp.local import sandbox
from mltp.local.runner import JobFailed, LocalJobRunner

AVAILABLE, REASON = sandbox.probe()
needs_namespaces = pytest.mark.skipif(not AVAILABLE, reason=f"this machine has no private mount namespaces: {REASON}")
# Every tool that works here: the layout must be the same whichever one the probe picks.
WORKING = [path for path in (shutil.which(name) for name in sandbox.TOOLS) if path and sandbox.try_tool(path) is None]
each_tool = pytest.mark.parametrize("tool", WORKING or [pytest.param(None, marks=pytest.mark.skip(reason=REASON))],
                                    ids=lambda t: Path(t).name if t else "none")


def _run(job: Path, code: str, cwd: str = "/opt/ml", tool: str = None) -> subprocess.CompletedProcess:
    command = sandbox.wrap([sys.executable, "-c", code], job / "opt" / "ml", cwd, tool=tool)
    return subprocess.run(command, capture_output=True, text=True, timeout=60, cwd=str(job))


@each_tool
def test_the_job_folder_is_opt_ml_inside_and_nothing_changes_outside(tmp_path, tool):
    host_opt = sorted(os.listdir("/opt")) if os.path.isdir("/opt") else None
    job = tmp_path / "job"
    (job / "opt" / "ml" / "processing" / "input").mkdir(parents=True)
    (job / "opt" / "ml" / "processing" / "input" / "data.csv").write_text("a,b\n")
    code = ("import os, json, sys; "
            "open('/opt/ml/processing/output.txt', 'w').write(open('/opt/ml/processing/input/data.csv').read()); "
            "print(json.dumps({'cwd': os.getcwd(), 'opt': sorted(os.listdir('/opt')), 'python': sys.executable}))")
    proc = _run(job, code, cwd="/opt/ml/processing/input", tool=tool)
    assert proc.returncode == 0, proc.stderr
    import json

    seen = json.loads(proc.stdout)
    assert seen["cwd"] == "/opt/ml/processing/input"
    assert seen["python"] == sys.executable  # the agent's Python, wherever it lives
    # Every original entry of /opt is still there, plus ml.
    expected = sorted(set(host_opt or []) | {"ml"})
    assert seen["opt"] == expected
    assert (job / "opt" / "ml" / "processing" / "output.txt").read_text() == "a,b\n"
    # The host is untouched: no /opt/ml was created, nothing stays mounted.
    assert (sorted(os.listdir("/opt")) if os.path.isdir("/opt") else None) == host_opt
    assert not os.path.exists("/opt/ml/processing/output.txt")


@each_tool
def test_the_host_opt_stays_readable_inside(tmp_path, tool):
    """Entries of /opt are bound back: a file under /opt reads the same inside."""
    sample = next((p for p in sorted(Path("/opt").rglob("*")) if p.is_file() and os.access(p, os.R_OK)), None) \
        if os.path.isdir("/opt") else None
    if sample is None:
        pytest.skip("/opt holds no readable file on this machine")
    proc = _run(tmp_path / "job", f"import sys; sys.stdout.write(open({str(sample)!r}, 'rb').read()[:64].hex())", tool=tool)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == sample.read_bytes()[:64].hex()


@each_tool
def test_two_jobs_at_once_each_see_their_own_opt_ml(tmp_path, tool):
    jobs = [tmp_path / "one", tmp_path / "two"]
    for job in jobs:
        (job / "opt" / "ml").mkdir(parents=True)
        (job / "opt" / "ml" / "name").write_text(job.name)
    code = "import time; time.sleep(0.5); print(open('/opt/ml/name').read())"
    procs = [subprocess.Popen(sandbox.wrap([sys.executable, "-c", code], job / "opt" / "ml", "/opt/ml", tool=tool),
                              stdout=subprocess.PIPE, text=True) for job in jobs]
    assert [p.communicate(timeout=60)[0].strip() for p in procs] == ["one", "two"]


@pytest.mark.skipif(not shutil.which("unshare") or sandbox.try_tool(shutil.which("unshare") or "") is not None,
                    reason="unshare cannot make namespaces here")
def test_with_unshare_the_command_keeps_the_pid_popen_returns(tmp_path):
    proc = subprocess.Popen(sandbox.wrap([sys.executable, "-c", "import os; print(os.getpid())"],
                                         tmp_path / "job" / "opt" / "ml", "/opt/ml", tool=shutil.which("unshare")),
                            stdout=subprocess.PIPE, text=True)
    out, _ = proc.communicate(timeout=60)
    # Inside a user namespace without a PID namespace the PID is the host's.
    assert int(out) == proc.pid


def test_the_probe_fails_without_unshare_or_when_switched_off(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # a PATH without util-linux
    monkeypatch.delenv(sandbox.DISABLE_VARIABLE, raising=False)
    assert sandbox.probe() == (False, "neither 'unshare' (util-linux) nor 'bwrap' (bubblewrap) is on PATH")
    monkeypatch.setenv(sandbox.DISABLE_VARIABLE, "1")
    assert sandbox.probe() == (False, "MLTP_NO_SANDBOX is set")


def _refusing(folder: Path, name: str) -> None:
    """A stand-in for a tool on a machine that forbids user namespaces: it exits
    non-zero with the message the real one prints there."""
    folder.mkdir(exist_ok=True)
    fake = folder / name
    fake.write_text(f"#!/bin/sh\necho '{name}: Operation not permitted' >&2\nexit 1\n")
    fake.chmod(0o755)


def test_the_probe_fails_when_both_tools_refuse(tmp_path, monkeypatch):
    for name in ("unshare", "bwrap"):
        _refusing(tmp_path / "bin", name)
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    monkeypatch.delenv(sandbox.DISABLE_VARIABLE, raising=False)
    ok, reason = sandbox.probe()
    assert not ok
    assert reason == ("this machine refuses unprivileged mount namespaces (unshare: unshare: Operation not permitted; "
                      "bwrap: bwrap: Operation not permitted)")


@pytest.mark.skipif(not shutil.which("bwrap") or sandbox.try_tool(shutil.which("bwrap") or "") is not None,
                    reason="bwrap is not installed or cannot make namespaces here")
def test_bwrap_is_used_where_unshare_is_refused(tmp_path, monkeypatch):
    """As on Ubuntu 24.04, whose AppArmor lets bwrap make user namespaces but not unshare."""
    _refusing(tmp_path / "bin", "unshare")
    os.symlink(shutil.which("bwrap"), tmp_path / "bin" / "bwrap")
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    monkeypatch.delenv(sandbox.DISABLE_VARIABLE, raising=False)
    assert sandbox.probe() == (True, "private mount namespace per job (bwrap)")
    job = tmp_path / "job"
    (job / "opt" / "ml").mkdir(parents=True)
    (job / "opt" / "ml" / "x").write_text("via bwrap")
    command = sandbox.wrap(["/bin/cat", "x"], job / "opt" / "ml", "/opt/ml")
    assert Path(command[0]).name == "bwrap"
    assert subprocess.run(command, capture_output=True, text=True, timeout=60).stdout == "via bwrap"


def _runner(moto_endpoint, tmp_path, sandboxed):
    return LocalJobRunner(Clients("eu-west-1", moto_endpoint), tmp_path / "work", sandboxed=sandboxed)


@pytest.mark.parametrize("sandboxed", [pytest.param(True, marks=needs_namespaces), False])
def test_paths_stay_literal_only_in_a_namespace(moto_endpoint, tmp_path, sandboxed):
    runner = _runner(moto_endpoint, tmp_path, sandboxed)
    root = runner.workdir / "job-1"
    mapped = runner._map_arg(root, "/opt/ml/processing/input/code/x.py")
    assert mapped == ("/opt/ml/processing/input/code/x.py" if sandboxed
                      else str(root / "opt/ml/processing/input/code/x.py"))
    assert runner._map_arg(root, "--flag") == "--flag"


@each_tool
def test_stop_ends_a_job_inside_its_namespace(moto_endpoint, tmp_path, monkeypatch, tool):
    # The runner uses the tool the probe finds: the only one on this PATH.
    (tmp_path / "bin").mkdir()
    os.symlink(tool, tmp_path / "bin" / Path(tool).name)
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    monkeypatch.delenv(sandbox.DISABLE_VARIABLE, raising=False)
    runner = _runner(moto_endpoint, tmp_path, None)
    assert runner.sandboxed and Path(tool).name in runner.sandbox_reason
    marker = tmp_path / "started"
    code = f"import time; open({str(marker)!r}, 'w').close(); time.sleep(120)"
    failure = []

    def job():
        try:
            runner._execute("processing", f"slow-job-{uuid.uuid4().hex[:8]}", [sys.executable, "-c", code], {}, Path("/opt/ml"),
                            {"StoppingCondition": {"MaxRuntimeInSeconds": 300}})
        except JobFailed as exc:
            failure.append(str(exc))

    thread = threading.Thread(target=job)
    thread.start()
    deadline = time.time() + 30
    while not marker.exists() and time.time() < deadline:
        time.sleep(0.05)
    assert marker.exists()
    (proc,) = runner._procs
    started = time.time()
    runner.stop()
    thread.join(timeout=30)
    assert not thread.is_alive() and time.time() - started < 15
    assert proc.poll() is not None
    # The script itself is gone too, not only the process Popen started.
    assert _processes_mentioning(str(marker)) == []


def _processes_mentioning(text: str):
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and text.encode() in (entry / "cmdline").read_bytes():
                found.append(int(entry.name))
        except OSError:
            continue
    return found
    assert failure and "exited with code" in failure[0]


@needs_namespaces
def test_max_runtime_ends_a_job_inside_its_namespace(moto_endpoint, tmp_path):
    runner = _runner(moto_endpoint, tmp_path, True)
    with pytest.raises(JobFailed, match="MaxRuntimeExceeded"):
        runner._execute("processing", f"slow-job-{uuid.uuid4().hex[:8]}", [sys.executable, "-c", "import time; time.sleep(60)"], {},
                        Path("/opt/ml"), {"StoppingCondition": {"MaxRuntimeInSeconds": 1}})



NESTED = r"""
import json, os, subprocess, sys
from pathlib import Path
from mltp.local import sandbox
job = Path(sys.argv[1])
(job / "opt" / "ml").mkdir(parents=True)
(job / "opt" / "ml" / "x").write_text("job data")
Path("/opt/tool.txt").write_text("tool")
os.symlink("/opt/tool.txt", "/opt/link")
if sys.argv[2] == "with-opt-ml":
    os.mkdir("/opt/ml")
    Path("/opt/ml/host-file").write_text("host")
script = "cat /opt/ml/x; echo; cat /opt/link; echo; ls /opt/ml; ls /opt; echo made > /opt/ml/y"
proc = subprocess.run(sandbox.wrap(["/bin/sh", "-c", script], job / "opt" / "ml", "/opt/ml", tool=sys.argv[3]),
                      capture_output=True, text=True)
print(json.dumps({"code": proc.returncode, "inside": proc.stdout.split(), "stderr": proc.stderr,
                  "job": sorted(os.listdir(job / "opt" / "ml")), "opt": sorted(os.listdir("/opt")),
                  "opt_ml": sorted(os.listdir("/opt/ml")) if os.path.isdir("/opt/ml") else None}))
"""


@each_tool
@pytest.mark.parametrize("layout, job", [("plain", "/opt/workspace/job"), ("plain", "TMP"),
                                         ("with-opt-ml", "/opt/workspace/job")])
def test_work_folder_under_opt_and_an_existing_opt_ml(tmp_path, layout, job, tool):
    """Agents whose workspace lies under /opt, or that have an /opt/ml of their
    own: checked in an outer namespace whose /opt is a fresh tmpfs, so the
    host's is never written to. TMP: a work folder elsewhere (the test's own
    temporary folder; /tmp itself is left alone, it may hold this interpreter)."""
    import json

    if sys.executable.startswith("/opt/"):
        pytest.skip("this interpreter lives under /opt, which the outer namespace replaces")
    if job == "TMP":
        job = str(tmp_path / "nested-job")
    outer = f"mount -t tmpfs outer /opt && {sys.executable} -c \"$0\" {job} {layout} {tool}"
    proc = subprocess.run(["unshare", "--user", "--map-root-user", "--mount", "--propagation", "private",
                           "/bin/sh", "-c", outer, NESTED], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    seen = json.loads(proc.stdout)
    assert seen["code"] == 0, seen["stderr"]
    entries = ["link", "tool.txt"] + (["workspace"] if job.startswith("/opt/") else [])
    # Inside: the job's data at /opt/ml, the outer /opt's file and link, and ml.
    assert seen["inside"] == ["job", "data", "tool", "x"] + sorted(entries + ["ml"])
    assert seen["job"] == ["x", "y"]  # written through /opt/ml into the job's folder
    # Outside the job's namespace /opt is as it was: no ml created, or the existing one untouched.
    if layout == "with-opt-ml":
        assert seen["opt"] == sorted(entries + ["ml"]) and seen["opt_ml"] == ["host-file"]
    else:
        assert seen["opt"] == entries and seen["opt_ml"] is None


# --------------------------------------------------------------------------- shared folders read-only (issue 20, H7)

# What a job tries against a folder it must not change: write a file in it, add
# one, unmount the read-only bind first (a job is root in its namespace with
# unshare), and reach the host's copy through /proc/<parent>/root.
TAMPER = r"""
import json, os, subprocess, sys
shared = sys.argv[1]
tries = {}
def attempt(name, path):
    try:
        with open(path, "a") as handle:
            handle.write("tampered\n")
        tries[name] = "written"
    except OSError as exc:
        tries[name] = exc.strerror
attempt("append", os.path.join(shared, "module.py"))
attempt("add", os.path.join(shared, "evil.pth"))
tries["umount"] = subprocess.run(["umount", shared], capture_output=True).returncode
attempt("after_umount", os.path.join(shared, "module.py"))
tries["remount"] = subprocess.run(["mount", "-o", "remount,bind,rw", shared], capture_output=True).returncode
attempt("after_remount", os.path.join(shared, "module.py"))
attempt("via_parent", "/proc/%d/root%s/module.py" % (os.getppid(), shared))
attempt("opt_ml", "/opt/ml/out.txt")
print(json.dumps(tries))
"""


@each_tool
def test_a_read_only_folder_cannot_be_changed_by_the_job(tmp_path, tool):
    import json

    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "module.py").write_text("VALUE = 1\n")
    job = tmp_path / "job"
    command = sandbox.wrap([sys.executable, "-c", TAMPER, str(shared)], job / "opt" / "ml", "/opt/ml", tool=tool,
                           read_only=[str(shared)])
    proc = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    tries = json.loads(proc.stdout)
    assert tries["append"] == tries["add"] == "Read-only file system", tries
    assert tries["umount"] != 0 and tries["remount"] != 0, tries
    assert tries["after_umount"] == tries["after_remount"] == "Read-only file system", tries
    assert tries["via_parent"] != "written", tries
    assert tries["opt_ml"] == "written"  # the job's own folder stays writable
    assert sorted(os.listdir(shared)) == ["module.py"] and (shared / "module.py").read_text() == "VALUE = 1\n"
    assert (job / "opt" / "ml" / "out.txt").read_text() == "tampered\n"


@each_tool
def test_a_read_only_folder_holding_the_job_folder_is_left_writable(tmp_path, tool):
    """A protected folder that holds the job's own folder (a cache set up inside
    the workspace) is not made read-only: the job must write its outputs."""
    command = sandbox.wrap(["/bin/sh", "-c", "echo ok > /opt/ml/out.txt"], tmp_path / "job" / "opt" / "ml", "/opt/ml",
                           tool=tool, read_only=[str(tmp_path), str(tmp_path / "absent")])
    proc = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "job" / "opt" / "ml" / "out.txt").read_text() == "ok\n"


@pytest.mark.skipif(not shutil.which("bwrap") or sandbox.try_tool(shutil.which("bwrap") or "") is not None,
                    reason="bwrap is not installed or cannot make namespaces here")
def test_the_probe_refuses_a_tool_that_leaves_read_only_folders_writable(tmp_path):
    """A bwrap that drops every --ro-bind (as one too old to know an option
    might): the job gets its /opt/ml but could change the shared folders, so
    the probe must not pick it."""
    folder = tmp_path / "bin"
    folder.mkdir()
    fake = folder / "bwrap"
    fake.write_text(f"#!{sys.executable}\n"
                    "import os, sys\n"
                    "args, kept = sys.argv[1:], []\n"
                    "while args:\n"
                    "    if args[0] == '--ro-bind':\n"
                    "        args = args[3:]\n"
                    "    else:\n"
                    "        kept.append(args.pop(0))\n"
                    f"os.execv({shutil.which('bwrap')!r}, ['bwrap'] + kept)\n")
    fake.chmod(0o755)
    assert sandbox.try_tool(str(fake), f"{folder}:/usr/bin:/bin") == "the shared folder stays writable"


# --------------------------------------------------------------------------- what the job inherits (issue 23)


@each_tool
def test_the_job_gets_the_environment_and_signals_it_was_given(tmp_path, tool):
    """The setup between the runner and the job (unshare's program runs in
    Python) adds nothing: no variable (a Python that starts in the C locale
    adds LC_CTYPE to its own), no ignored signal (Python ignores SIGPIPE and
    SIGXFSZ, and an ignored signal stays ignored across exec)."""
    env = {"PATH": "/usr/bin:/bin", "MLTP_SEEN": "yes"}
    command = sandbox.wrap(["/bin/sh", "-c", "env; grep '^SigIgn' /proc/self/status"], tmp_path / "job" / "opt" / "ml",
                           "/opt/ml", tool=tool)
    proc = subprocess.run(command, capture_output=True, text=True, timeout=60, env=env)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    seen = dict(line.split("=", 1) for line in lines if "=" in line)
    seen.pop("PWD", None)  # the shell's own
    seen.pop("SHLVL", None)
    assert seen == env
    # What the same command ignores started directly (subprocess puts SIGPIPE and SIGXFSZ
    # back for it; whatever this process itself inherited ignored, it passes on too):
    direct = subprocess.run(["/bin/sh", "-c", "grep '^SigIgn' /proc/self/status"], capture_output=True, text=True,
                            timeout=60, env=env).stdout.split()[1]
    assert int(direct, 16) & ((1 << (signal.SIGPIPE - 1)) | (1 << (signal.SIGXFSZ - 1))) == 0
    assert [line.split()[1] for line in lines if line.startswith("SigIgn")] == [direct]


@each_tool
def test_the_loaders_variables_reach_the_job_and_not_the_sandbox_s_own_tools(tmp_path, tool):
    """A step's environment may set LD_PRELOAD and the like (the job gets them,
    as on SageMaker), but unshare or bwrap and the setup program still hold
    mount rights before the read-only binds exist: a library preloaded there
    could skip them. The loader complains once per process it cannot preload
    into, so the count of complaints is the count of processes that got it."""
    missing = tmp_path / "no-such-library.so"
    env = {"PATH": "/usr/bin:/bin", "LD_PRELOAD": str(missing), "LD_LIBRARY_PATH": str(tmp_path),
           "GCONV_PATH": str(tmp_path), "KEPT": "yes"}
    (tmp_path / "shared").mkdir()
    command, start_env = sandbox.launch([shutil.which("env")], tmp_path / "job" / "opt" / "ml", "/opt/ml", env,
                                        tool=tool, read_only=[str(tmp_path / "shared")])
    assert not any(k.startswith("LD_") or k == "GCONV_PATH" for k in start_env)
    proc = subprocess.run(command, capture_output=True, text=True, timeout=60, env=start_env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.count("cannot be preloaded") == 1, proc.stderr  # the job's own process, nothing before it
    seen = dict(line.split("=", 1) for line in proc.stdout.splitlines() if "=" in line)
    seen.pop("PWD", None)
    seen.pop("SHLVL", None)
    assert seen == env  # exactly the job's environment: nothing added (no MLTP_SANDBOX_RESTORE), nothing lost
    # Started as before (everything in the launcher's environment), the tools would each have loaded it.
    plain = subprocess.run(sandbox.wrap(["/bin/true"], tmp_path / "job2" / "opt" / "ml", "/opt/ml", tool=tool),
                           capture_output=True, text=True, timeout=60, env=env)
    assert plain.stderr.count("cannot be preloaded") >= 2, plain.stderr


@pytest.mark.skipif(not shutil.which("unshare") or sandbox.try_tool(shutil.which("unshare") or "") is not None,
                    reason="unshare cannot make namespaces here")
@pytest.mark.parametrize("read_only", [False, True], ids=["plain", "read-only-folders"])
def test_with_unshare_the_job_is_uid_0_and_its_files_the_agents(tmp_path, read_only):
    """As in SageMaker's containers the job runs as root, in its namespace only:
    what it writes belongs to the agent's user (also behind the second
    namespace that locks the read-only folders)."""
    shared = tmp_path / "shared"
    shared.mkdir()
    command = sandbox.wrap(["/bin/sh", "-c", "id -u; id -g; echo x > /opt/ml/out"], tmp_path / "job" / "opt" / "ml",
                           "/opt/ml", tool=shutil.which("unshare"), read_only=[str(shared)] if read_only else [])
    proc = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["0", "0"]
    written = (tmp_path / "job" / "opt" / "ml" / "out").stat()
    assert (written.st_uid, written.st_gid) == (os.getuid(), os.getgid())


KILLED_PARENT = r"""
import subprocess, sys, time
from pathlib import Path
from mltp.local import sandbox
marker, tool = sys.argv[1], sys.argv[2]
code = "import time; open(%r, 'w').close(); time.sleep(120)" % marker
subprocess.Popen(sandbox.wrap([sys.executable, "-c", code], Path(sys.argv[3]) / "opt" / "ml", "/opt/ml", tool=tool))
time.sleep(300)
"""


@each_tool
def test_a_killed_helper_takes_its_job_with_it(tmp_path, tool):
    """The helper killed outright (no stop(), no signal handler): the job gets
    its parent-death signal and ends; nothing stays mounted on the host."""
    marker = tmp_path / "started"
    helper = subprocess.Popen([sys.executable, "-c", KILLED_PARENT, str(marker), tool, str(tmp_path / "job")])
    try:
        deadline = time.time() + 60
        while not marker.exists() and time.time() < deadline:
            time.sleep(0.05)
        assert marker.exists()
        assert _processes_mentioning(str(marker))
    finally:
        helper.kill()
        helper.wait()
    deadline = time.time() + 15
    while _processes_mentioning(str(marker)) and time.time() < deadline:
        time.sleep(0.05)
    assert _processes_mentioning(str(marker)) == []
    with open("/proc/self/mounts") as mounts:
        assert str(tmp_path) not in mounts.read()


# --------------------------------------------------------------------------- the setup program on its own


def _setup_program(tmp_path, parent: int, ml: Path, read_only: str = "", extra=()):
    new_root = tmp_path / "job" / "root"
    sandbox._skeleton(new_root)
    stage = tmp_path / "job" / sandbox.STAGING
    stage.mkdir(parents=True, exist_ok=True)
    holder = os.path.realpath(str(new_root)).lstrip("/").split("/", 1)[0]
    return ["unshare", "--user", "--map-root-user", "--mount", "--propagation", "private", sys.executable, "-I", "-S",
            str(sandbox.SETUP_PROGRAM), str(ml), str(stage), "/opt/ml", read_only, str(parent), str(new_root), holder,
            *extra]


needs_unshare = pytest.mark.skipif(
    not shutil.which("unshare") or sandbox.try_tool(shutil.which("unshare") or "") is not None,
    reason="unshare cannot make namespaces here")


@needs_unshare
def test_the_setup_program_refuses_bad_arguments_before_any_job(tmp_path):
    ml = tmp_path / "job" / "opt" / "ml"
    ml.mkdir(parents=True)
    marker = tmp_path / "ran"
    proc = subprocess.run(_setup_program(tmp_path, os.getpid(), ml, extra=["touch", str(marker)]),
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 125 and proc.stderr.startswith("mltp: sandbox_setup: usage:"), proc.stderr
    assert not marker.exists()


@needs_unshare
def test_the_setup_program_stops_at_a_mount_that_fails(tmp_path):
    """A job folder that is gone: the bind onto /opt/ml fails, the message names
    it, and the job does not start."""
    marker = tmp_path / "ran"
    proc = subprocess.run(_setup_program(tmp_path, os.getpid(), tmp_path / "absent", extra=["--", "touch", str(marker)]),
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 125, proc.stderr
    assert proc.stderr.strip() == f"mltp: mount {tmp_path / 'absent'} on /opt/ml: No such file or directory"
    assert not marker.exists()


@needs_unshare
def test_the_setup_program_does_not_start_a_job_whose_helper_is_gone(tmp_path):
    """The helper died before the parent-death signal was set (its PID is not
    this process's parent): the job never starts, as if the signal had come."""
    ml = tmp_path / "job" / "opt" / "ml"
    ml.mkdir(parents=True)
    marker = tmp_path / "ran"
    proc = subprocess.run(_setup_program(tmp_path, 1, ml, extra=["--", "touch", str(marker)]),
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 128 + 9, proc.stderr
    assert not marker.exists()


@needs_unshare
def test_the_setup_program_says_when_the_command_cannot_start(tmp_path):
    ml = tmp_path / "job" / "opt" / "ml"
    ml.mkdir(parents=True)
    proc = subprocess.run(_setup_program(tmp_path, os.getpid(), ml, extra=["--", "no-such-program-here"]),
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 127
    assert proc.stderr.strip() == "mltp: no-such-program-here: No such file or directory"
