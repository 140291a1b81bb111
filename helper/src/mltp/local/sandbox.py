"""A private mount namespace per local job, with the job's folder at /opt/ml.

Scripts written for SageMaker use its literal paths (`/opt/ml/processing/input/
data.csv`, `/opt/ml/processing/evaluation/evaluation.json`). A local job keeps
its /opt/ml tree under `.mltp/work/<run>/<job>/opt/ml`, so for such a script to
run unchanged, that folder has to *be* /opt/ml for the script, and only for it:
other jobs run at the same time, and the agent's /opt must stay as it is (it
may hold the agent's Python, or the repo itself).

How: `unshare --user --map-root-user --mount` (util-linux) gives the job an
unprivileged user namespace with its own mount table; nothing mounted there is
seen outside, and no privilege is needed on the host. Inside, a small program
of this package (`sandbox_setup.py`, run with the helper's own interpreter in
isolated mode) makes the mounts below with mount(2) and pivot_root(2) in that
one process (a shell script with some forty `mount` processes did it before:
0.1 s of CPU and up to 0.6 s of a loaded agent's wall time per job) and then
execs the job's command, so the job keeps the PID that
`runner.LocalJobRunner.stop()` terminates:

- host has /opt/ml already: the job's folder is bind-mounted over it;
- host has /opt but no /opt/ml (the usual case): /opt itself cannot gain an
  entry (it belongs to the host, and creating /opt/ml there is not ours to do),
  so a tmpfs is mounted over /opt, every original entry of /opt is bound back
  onto an empty entry of the same name (symbolic links recreated), and then
  /opt/ml is created in the tmpfs and the job's folder bound onto it. The
  original /opt is first bound to a staging folder in the job's work folder and
  the setup changes into it, so the entries stay reachable even when the work
  folder itself lies under /opt (it is hidden by the tmpfs until bound back);
- no /opt at all: not supported; the probe fails and the run falls back.

Before that the job gets a / of its own, as a container has: SageMaker's
images start processing scripts in /, and a script may write there (AWS's
churn evaluation extracts the model to `..` and opens it from its working
directory). The job's root folder (`<job>/root`, beside `<job>/opt/ml`) is
bound onto itself, every top-level entry of the host's / is bound onto an
empty entry of the same name there (links recreated; `_skeleton` makes them
beforehand, `tidy` removes them afterwards), and `pivot_root` makes it the
root, the host's / detached. A file a script writes to / thus lands in the
job's root folder, and /usr, /home, /tmp and the rest are the host's as
before. The entry that holds the root folder is bound first, while nothing is
mounted below it yet, so its copy does not carry the other entries again.
bwrap does the same with `--bind <root> /` and a `--dev-bind` per entry.

Where `unshare` may not make user namespaces but bubblewrap may (Ubuntu 24.04's
AppArmor lets only profiled programs such as `bwrap` create them; older
distributions ship bwrap setuid), `bwrap` does the same: the job's root
folder at / with the host's entries bound into it, a
`--tmpfs /opt` with every original entry bound back, the job's folder bound at
/opt/ml, `--chdir` and `--die-with-parent`. bwrap stays the job's parent, so
the PID Popen returns is bwrap's; terminating it kills the job (the job's
parent-death signal is SIGKILL). The probe tries unshare first, then bwrap.

The script runs as uid 0 *inside* the namespace (as in SageMaker's containers);
the files it writes belong to the agent's user on the host.

A helper that is killed outright (no stop(), no handler) takes its jobs with
it: the job's parent-death signal is SIGKILL (bwrap's `--die-with-parent`;
with unshare the setup sets it before the exec, and does not start the job
when the helper is already gone), and what was mounted lived only in the
job's namespace. The job gets the environment and signal dispositions the
runner gave it, as from a shell: the setup execs it with the environment it
was started with and SIGPIPE and SIGXFSZ back at their defaults.

Folders shared by every repo on the agent that a job must not change (the
local environments and the rest of mltp's cache, the pip cache: the
`read_only` of `wrap`, envs.protected_paths) are read-only in the job's
namespace. With bwrap: `--ro-bind` each, and the job runs with no
capabilities (`--cap-drop ALL`: bwrap keeps them for root otherwise, and a
job with CAP_SYS_ADMIN could unmount the read-only bind), in a user namespace
of its own where bwrap can make one (`--unshare-user-try`: a job in the
agent's own user namespace could reach those folders through /proc/PID/root
of another process of the agent's user). With unshare: each folder is bound onto itself and
remounted read-only, and the setup then enters a second user and mount
namespace (unshare(2), uid and gid 0 mapped again, as `unshare --user
--map-root-user --mount` does) before it execs the job. That step matters: the first namespace's root may
unmount or remount what it mounted itself, but mounts that a less privileged
namespace inherits are locked (not to be unmounted one by one, their
read-only flag not to be cleared), so in the second namespace, where the job
runs (still as uid 0, with the same PID), the folders stay read-only. A job
that writes there gets EROFS ("Read-only file system").

Where user namespaces are forbidden (a container without the capability,
`kernel.unprivileged_userns_clone=0`, no `unshare` on PATH) or the user sets
`MLTP_NO_SANDBOX=1`, `probe()` says why and the runner falls back to mapping
/opt/ml paths into the work folder: variables and arguments then point there,
and only literal paths in scripts do not work (the run's log says so once).
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile
from functools import lru_cache
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

CONTAINER_ML = "/opt/ml"
DISABLE_VARIABLE = "MLTP_NO_SANDBOX"
STAGING = ".host-opt"  # inside the job's folder: where the host's /opt is bound while /opt is rebuilt
JOB_ROOT = "root"  # inside the job's folder (beside opt/): what the job sees as /
# Said once at the start of a run whose jobs get no namespace (see runner).
NO_NAMESPACE_ROOT = ("local: with no namespace a job has no / of its own: processing scripts start in their job's "
                     f"folder .mltp/work/<run>/<job>/{JOB_ROOT}/ instead of /, and a file a script writes to / or "
                     "reads from there is this machine's")

# The program that arranges the namespace for `unshare` (a file of this package,
# run with the helper's own interpreter in isolated mode; it says what it does).
SETUP_PROGRAM = Path(__file__).resolve().with_name("sandbox_setup.py")


TOOLS = ("unshare", "bwrap")


def _tool(tool: Optional[str]) -> str:
    """`tool`, or else the one the probe found working."""
    return tool or _probe(os.environ.get("PATH", os.defpath))[0] or shutil.which("unshare") or "unshare"


def wrap(command: Sequence[str], ml_dir: Path, cwd: str, tool: Optional[str] = None,
         read_only: Sequence[str] = (), setenv: Optional[Mapping[str, str]] = None) -> List[str]:
    """`command`, to be run with `ml_dir` mounted at /opt/ml and `cwd` (a path as
    the job sees it) as its working directory, through `tool` (the path of
    unshare or bwrap; default: the one the probe found working). `read_only`:
    folders (real paths) the job sees read-only. `setenv`: variables bwrap sets
    for the command alone (`launch`; with unshare the setup program does it)."""
    tool = _tool(tool)
    ml_dir = Path(ml_dir)
    ml_dir.mkdir(parents=True, exist_ok=True)
    read_only = _folders(read_only, ml_dir)
    new_root = root_folder(ml_dir)
    _skeleton(new_root)
    if Path(tool).name == "bwrap":
        return _bwrap(tool, command, ml_dir, cwd, read_only, new_root, setenv or {})
    stage = ml_dir.parent / STAGING
    stage.mkdir(parents=True, exist_ok=True)
    holder = os.path.realpath(str(new_root)).lstrip("/").split("/", 1)[0]
    return [tool, "--user", "--map-root-user", "--mount", "--propagation", "private",
            sys.executable, "-I", "-S", str(SETUP_PROGRAM), str(ml_dir), str(stage), str(cwd), "\n".join(read_only),
            str(os.getpid()), str(new_root), holder, "--", *command]


# What the dynamic loader and libc act on before any of our code runs (glibc
# drops the same list for setuid programs, plus every LD_*). A step's
# `environment` may set them, and the job gets them as on SageMaker; but the
# sandbox's own tools (unshare or bwrap, and the setup program) still hold
# mount rights before the read-only binds exist, so a preloaded library there
# could skip those binds. They start without them; the job gets them back.
LOADER_VARIABLES = frozenset({
    "GCONV_PATH", "GETCONF_DIR", "GLIBC_TUNABLES", "HOSTALIASES", "LOCALDOMAIN", "LOCPATH", "MALLOC_TRACE",
    "NIS_PATH", "NLSPATH", "RESOLV_HOST_CONF", "RES_OPTIONS", "TMPDIR", "TZDIR"})
RESTORE = "MLTP_SANDBOX_RESTORE"  # how the setup program gets them (a step may not set MLTP_*)


def _withheld(name: str) -> bool:
    return name.startswith("LD_") or name in LOADER_VARIABLES


def launch(command: Sequence[str], ml_dir: Path, cwd: str, env: Mapping[str, str], tool: Optional[str] = None,
           read_only: Sequence[str] = ()) -> Tuple[List[str], Dict[str, str]]:
    """`wrap`'s command and the environment to start it with: the job's
    environment `env` without the loader's variables, which reach the job
    itself (and only it) through the setup program or bwrap's --setenv."""
    tool = _tool(tool)
    withheld = {k: v for k, v in env.items() if _withheld(k)}
    start_env = {k: v for k, v in env.items() if not _withheld(k) and k != RESTORE}
    if withheld and Path(tool).name != "bwrap":
        start_env[RESTORE] = json.dumps(withheld)
    return wrap(command, ml_dir, cwd, tool, read_only, setenv=withheld), start_env


def root_folder(ml_dir: Path) -> Path:
    """The folder a job sees as / (beside its opt/ml): what a script writes to
    / or to `..` from / lands there, in the job's own folder."""
    return Path(ml_dir).parent.parent / JOB_ROOT


def _host_entries() -> List[os.DirEntry]:
    return sorted(os.scandir("/"), key=lambda e: e.name)


def _skeleton(new_root: Path) -> None:
    """The mount points of the job's / in its root folder: an empty folder or
    file for each top-level entry of the host's /, its links as links. Made
    here, for unshare and bwrap alike; `tidy` removes them after the job."""
    new_root.mkdir(parents=True, exist_ok=True)
    for entry in _host_entries():
        target = new_root / entry.name
        try:
            if entry.is_symlink():
                link = os.readlink(entry.path)
                if target.is_symlink() and os.readlink(str(target)) == link:
                    continue
                if target.is_symlink() or target.is_file():
                    target.unlink()
                os.symlink(link, str(target))
            elif entry.is_dir():
                if target.is_symlink() or target.is_file():
                    target.unlink()
                target.mkdir(exist_ok=True)
            elif not target.exists():
                target.touch()
        except OSError:
            continue  # the bind fails and says so: the job (or the probe) stops


def tidy(ml_dir: Path) -> None:
    """After the job: the mount points `_skeleton` made are taken out of its
    root folder (where nothing is mounted outside the job's namespace), so it
    keeps only what the job wrote to /."""
    new_root = root_folder(ml_dir)
    if not new_root.is_dir():
        return
    for entry in _host_entries():
        target = new_root / entry.name
        try:
            if target.is_symlink():
                if entry.is_symlink() and os.readlink(str(target)) == os.readlink(entry.path):
                    target.unlink()
            elif target.is_dir():
                target.rmdir()  # only an empty one
            elif target.is_file() and target.stat().st_size == 0:
                target.unlink()
        except OSError:
            continue


def _folders(read_only: Sequence[str], ml_dir: Path) -> List[str]:
    """The folders to protect that exist, by real path; never one that holds the
    job's own folder (the job must write there), nor one with a line break in
    its name (the list reaches the shell one per line)."""
    job = os.path.realpath(str(ml_dir))
    out: List[str] = []
    for folder in read_only:
        real = os.path.realpath(str(folder))
        if "\n" in real or real == "/" or not os.path.isdir(real) or real in out:
            continue
        if job == real or job.startswith(real.rstrip("/") + "/"):
            continue
        out.append(real)
    return out


def _bwrap(tool: str, command: Sequence[str], ml_dir: Path, cwd: str, read_only: Sequence[str],
           new_root: Path, setenv: Mapping[str, str]) -> List[str]:
    """bwrap's arguments for the layout `sandbox_setup.py` makes with unshare. Sources of
    --bind are looked up outside the new tree, so the entries of the host's /opt
    stay reachable after the tmpfs hides them."""
    args = [tool, "--unshare-user-try", "--cap-drop", "ALL", "--bind", str(new_root), "/"]
    opt_rebuilt = not os.path.isdir(CONTAINER_ML)
    for entry in _host_entries():
        if entry.is_symlink() or (entry.name == "opt" and opt_rebuilt):
            continue  # links are in the skeleton; /opt is rebuilt below
        args += ["--dev-bind", entry.path, entry.path]
    if opt_rebuilt:
        args += ["--tmpfs", "/opt"]
        for entry in sorted(os.scandir("/opt"), key=lambda e: e.name):
            target = f"/opt/{entry.name}"
            if entry.is_symlink():
                args += ["--symlink", os.readlink(entry.path), target]
            else:
                args += ["--dev-bind", entry.path, target]
    for folder in read_only:
        args += ["--ro-bind", folder, folder]
    for name, value in sorted(setenv.items()):
        args += ["--setenv", name, value]
    return args + ["--bind", str(ml_dir), CONTAINER_ML, "--chdir", str(cwd), "--die-with-parent", "--", *command]


def try_tool(tool: str, path: str = os.defpath) -> Optional[str]:
    """None when `tool` gives a job its /opt/ml here, and a folder it cannot
    write (not even after trying to unmount it), else why not."""
    if not os.path.isdir("/opt"):
        return "this machine has no /opt"
    with tempfile.TemporaryDirectory(prefix="mltp-sandbox-") as tmp:
        ml = Path(tmp) / "job" / "opt" / "ml"
        ml.mkdir(parents=True)
        (ml / "probe").write_text("ok")
        shared = Path(tmp) / "shared"
        shared.mkdir()
        (shared / "file").write_text("ok")
        # A file written to / must land in the job's root folder, not on the host.
        marker = f"mltp-probe-{os.getpid()}-{os.urandom(4).hex()}"
        check = (f'test -f /opt/ml/probe && test "$(pwd)" = /opt/ml || exit 1; (umount "$0") 2> /dev/null; '
                 f'if (echo changed >> "$0/file") 2> /dev/null; then echo "the shared folder stays writable" >&2; '
                 f'exit 1; fi; echo ok > /{marker}')
        command = wrap(["/bin/sh", "-c", check, str(shared)], ml, CONTAINER_ML, tool=tool, read_only=[str(shared)])
        try:
            proc = subprocess.run(command, capture_output=True, text=True, timeout=20,
                                  env={"PATH": path, "LC_ALL": "C"})
        except (OSError, subprocess.TimeoutExpired) as exc:
            return f"{Path(tool).name} could not run ({exc})"
        leaked = os.path.join("/", marker)
        if os.path.lexists(leaked):
            os.unlink(leaked)
            return f"{Path(tool).name} gives the job the machine's / instead of its own"
        if proc.returncode != 0:
            return " ".join((proc.stderr or proc.stdout).split())[:200] or f"exit code {proc.returncode}"
        if (shared / "file").read_text() != "ok":
            return f"{Path(tool).name} leaves read-only folders writable"
        if not (root_folder(ml) / marker).is_file():
            return f"{Path(tool).name} gives the job no / of its own"
    return None


@lru_cache(maxsize=None)
def _probe(path: str) -> Tuple[Optional[str], str]:
    """The first tool that works here (its path) and a description, or None and why."""
    refusals = []
    for name in TOOLS:
        tool = shutil.which(name, path=path)
        if not tool:
            continue
        refused = try_tool(tool, path)
        if refused is None:
            return tool, f"private mount namespace per job ({name})"
        refusals.append(f"{name}: {refused}")
    if not refusals:
        return None, "neither 'unshare' (util-linux) nor 'bwrap' (bubblewrap) is on PATH"
    return None, f"this machine refuses unprivileged mount namespaces ({'; '.join(refusals)})"


def probe() -> Tuple[bool, str]:
    """Whether jobs can run in a private mount namespace here, and why (not)."""
    if os.environ.get(DISABLE_VARIABLE, "").strip().lower() not in ("", "0", "false", "no"):
        return False, f"{DISABLE_VARIABLE} is set"
    tool, reason = _probe(os.environ.get("PATH", os.defpath))
    return tool is not None, reason
