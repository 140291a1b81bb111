"""A private mount namespace per local job, with the job's folder at /opt/ml.

Scripts written for SageMaker use its literal paths (`/opt/ml/processing/input/
data.csv`, `/opt/ml/processing/evaluation/evaluation.json`). A local job keeps
its /opt/ml tree under `.mltp/work/<run>/<job>/opt/ml`, so for such a script to
run unchanged, that folder has to *be* /opt/ml for the script, and only for it:
other jobs run at the same time, and the agent's /opt must stay as it is (it
may hold the agent's Python, or the repo itself).

How: `unshare --user --map-root-user --mount` (util-linux) gives the job an
unprivileged user namespace with its own mount table; nothing mounted there is
seen outside, and no privilege is needed on the host. Inside, a short POSIX
shell script (`_SETUP`) arranges /opt and then execs the job's command, so the
job keeps the PID that `runner.LocalJobRunner.stop()` terminates:

- host has /opt/ml already: the job's folder is bind-mounted over it;
- host has /opt but no /opt/ml (the usual case): /opt itself cannot gain an
  entry (it belongs to the host, and creating /opt/ml there is not ours to do),
  so a tmpfs is mounted over /opt, every original entry of /opt is bound back
  onto an empty entry of the same name (symbolic links recreated), and then
  /opt/ml is created in the tmpfs and the job's folder bound onto it. The
  original /opt is first bound to a staging folder in the job's work folder and
  the shell changes into it, so the entries stay reachable even when the work
  folder itself lies under /opt (it is hidden by the tmpfs until bound back);
- no /opt at all: not supported; the probe fails and the run falls back.

Where `unshare` may not make user namespaces but bubblewrap may (Ubuntu 24.04's
AppArmor lets only profiled programs such as `bwrap` create them; older
distributions ship bwrap setuid), `bwrap` does the same: `--dev-bind / /`, a
`--tmpfs /opt` with every original entry bound back, the job's folder bound at
/opt/ml, `--chdir` and `--die-with-parent`. bwrap stays the job's parent, so
the PID Popen returns is bwrap's; terminating it kills the job (the job's
parent-death signal is SIGKILL). The probe tries unshare first, then bwrap.

The script runs as uid 0 *inside* the namespace (as in SageMaker's containers);
the files it writes belong to the agent's user on the host.

Folders shared by every repo on the agent that a job must not change (the
local environments and the rest of mltp's cache, the pip cache: the
`read_only` of `wrap`, envs.protected_paths) are read-only in the job's
namespace. With bwrap: `--ro-bind` each, and the job runs with no
capabilities (`--cap-drop ALL`: bwrap keeps them for root otherwise, and a
job with CAP_SYS_ADMIN could unmount the read-only bind), in a user namespace
of its own where bwrap can make one (`--unshare-user-try`: a job in the
agent's own user namespace could reach those folders through /proc/PID/root
of another process of the agent's user). With unshare: each folder is bound onto itself and
remounted read-only, and the job is then started through a second
`unshare --user --mount`. That step matters: the first namespace's root may
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

import os
import shutil
import subprocess
import tempfile
from functools import lru_cache
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

CONTAINER_ML = "/opt/ml"
DISABLE_VARIABLE = "MLTP_NO_SANDBOX"
STAGING = ".host-opt"  # inside the job's folder: where the host's /opt is bound while /opt is rebuilt

# Arguments: $1 the job's folder to appear at /opt/ml, $2 the staging folder,
# $3 the working directory (inside the namespace), $4 the folders to make
# read-only (one per line), $5 unshare's path (the locking step); then the command.
_SETUP = r"""
set -e
ml=$1; stage=$2; cwd=$3; read_only=$4; relock=$5; shift 5
job_path=$PATH; PATH=/usr/sbin:/usr/bin:/sbin:/bin:$PATH  # mount & co., whatever the job's PATH
if [ -d /opt/ml ]; then
  mount --bind "$ml" /opt/ml
elif [ -d /opt ]; then
  mount --rbind /opt "$stage"
  cd "$stage"
  mount -t tmpfs -o mode=755 mltp-opt /opt
  for name in * .[!.]* ..?*; do
    if [ -L "$name" ]; then
      ln -s "$(readlink "$name")" "/opt/$name"
    elif [ -d "$name" ]; then
      mkdir "/opt/$name"; mount --rbind "$name" "/opt/$name"
    elif [ -e "$name" ]; then
      : > "/opt/$name"; mount --bind "$name" "/opt/$name"
    fi
  done
  mkdir /opt/ml
  mount --bind "$ml" /opt/ml
else
  echo "mltp: this machine has no /opt" >&2
  exit 125
fi
# A remount keeps no flag it does not name, and a mount's nosuid/nodev/noexec
# are locked in a user namespace: the first set of them that the mount has works.
protect() {
  mount --rbind "$1" "$1" || return 1
  for flags in "" ,nosuid ,nodev ,nosuid,nodev ,noexec ,nosuid,noexec ,nodev,noexec ,nosuid,nodev,noexec; do
    mount -o "remount,bind,ro$flags" "$1" 2> /dev/null && return 0
  done
  return 1
}
if [ -n "$read_only" ]; then
  old_ifs=$IFS; IFS='
'
  set -f  # one folder per line, taken literally
  for folder in $read_only; do
    protect "$folder" || { echo "mltp: cannot make $folder read-only for the job" >&2; exit 125; }
  done
  set +f; IFS=$old_ifs
fi
cd "$cwd"
PATH=$job_path
if [ -n "$read_only" ]; then
  exec "$relock" --user --map-root-user --mount -- "$@"
fi
exec "$@"
"""


TOOLS = ("unshare", "bwrap")


def wrap(command: Sequence[str], ml_dir: Path, cwd: str, tool: Optional[str] = None,
         read_only: Sequence[str] = ()) -> List[str]:
    """`command`, to be run with `ml_dir` mounted at /opt/ml and `cwd` (a path as
    the job sees it) as its working directory, through `tool` (the path of
    unshare or bwrap; default: the one the probe found working). `read_only`:
    folders (real paths) the job sees read-only."""
    tool = tool or _probe(os.environ.get("PATH", os.defpath))[0] or shutil.which("unshare") or "unshare"
    ml_dir = Path(ml_dir)
    ml_dir.mkdir(parents=True, exist_ok=True)
    read_only = _folders(read_only, ml_dir)
    if Path(tool).name == "bwrap":
        return _bwrap(tool, command, ml_dir, cwd, read_only)
    stage = ml_dir.parent / STAGING
    stage.mkdir(parents=True, exist_ok=True)
    return [tool, "--user", "--map-root-user", "--mount", "--propagation", "private",
            "/bin/sh", "-c", _SETUP, "mltp-sandbox", str(ml_dir), str(stage), str(cwd), "\n".join(read_only), tool,
            *command]


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


def _bwrap(tool: str, command: Sequence[str], ml_dir: Path, cwd: str, read_only: Sequence[str] = ()) -> List[str]:
    """bwrap's arguments for the layout `_SETUP` makes with unshare. Sources of
    --bind are looked up outside the new tree, so the entries of the host's /opt
    stay reachable after the tmpfs hides them."""
    args = [tool, "--unshare-user-try", "--cap-drop", "ALL", "--dev-bind", "/", "/"]
    if not os.path.isdir(CONTAINER_ML):
        args += ["--tmpfs", "/opt"]
        for entry in sorted(os.scandir("/opt"), key=lambda e: e.name):
            target = f"/opt/{entry.name}"
            if entry.is_symlink():
                args += ["--symlink", os.readlink(entry.path), target]
            else:
                args += ["--dev-bind", entry.path, target]
    for folder in read_only:
        args += ["--ro-bind", folder, folder]
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
        check = (f'test -f /opt/ml/probe && test "$(pwd)" = /opt/ml || exit 1; (umount "$0") 2> /dev/null; '
                 f'if (echo changed >> "$0/file") 2> /dev/null; then echo "the shared folder stays writable" >&2; '
                 f'exit 1; fi')
        command = wrap(["/bin/sh", "-c", check, str(shared)], ml, CONTAINER_ML, tool=tool, read_only=[str(shared)])
        try:
            proc = subprocess.run(command, capture_output=True, text=True, timeout=20,
                                  env={"PATH": path, "LC_ALL": "C"})
        except (OSError, subprocess.TimeoutExpired) as exc:
            return f"{Path(tool).name} could not run ({exc})"
        if proc.returncode != 0:
            return " ".join((proc.stderr or proc.stdout).split())[:200] or f"exit code {proc.returncode}"
        if (shared / "file").read_text() != "ok":
            return f"{Path(tool).name} leaves read-only folders writable"
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
