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
# $3 the working directory (inside the namespace); then the command.
_SETUP = r"""
set -e
ml=$1; stage=$2; cwd=$3; shift 3
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
cd "$cwd"
PATH=$job_path
exec "$@"
"""


TOOLS = ("unshare", "bwrap")


def wrap(command: Sequence[str], ml_dir: Path, cwd: str, tool: Optional[str] = None) -> List[str]:
    """`command`, to be run with `ml_dir` mounted at /opt/ml and `cwd` (a path as
    the job sees it) as its working directory, through `tool` (the path of
    unshare or bwrap; default: the one the probe found working)."""
    tool = tool or _probe(os.environ.get("PATH", os.defpath))[0] or shutil.which("unshare") or "unshare"
    ml_dir = Path(ml_dir)
    ml_dir.mkdir(parents=True, exist_ok=True)
    if Path(tool).name == "bwrap":
        return _bwrap(tool, command, ml_dir, cwd)
    stage = ml_dir.parent / STAGING
    stage.mkdir(parents=True, exist_ok=True)
    return [tool, "--user", "--map-root-user", "--mount", "--propagation", "private",
            "/bin/sh", "-c", _SETUP, "mltp-sandbox", str(ml_dir), str(stage), str(cwd), *command]


def _bwrap(tool: str, command: Sequence[str], ml_dir: Path, cwd: str) -> List[str]:
    """bwrap's arguments for the layout `_SETUP` makes with unshare. Sources of
    --bind are looked up outside the new tree, so the entries of the host's /opt
    stay reachable after the tmpfs hides them."""
    args = [tool, "--dev-bind", "/", "/"]
    if not os.path.isdir(CONTAINER_ML):
        args += ["--tmpfs", "/opt"]
        for entry in sorted(os.scandir("/opt"), key=lambda e: e.name):
            target = f"/opt/{entry.name}"
            if entry.is_symlink():
                args += ["--symlink", os.readlink(entry.path), target]
            else:
                args += ["--dev-bind", entry.path, target]
    return args + ["--bind", str(ml_dir), CONTAINER_ML, "--chdir", str(cwd), "--die-with-parent", "--", *command]


def try_tool(tool: str, path: str = os.defpath) -> Optional[str]:
    """None when `tool` gives a job its /opt/ml here, else why not."""
    if not os.path.isdir("/opt"):
        return "this machine has no /opt"
    with tempfile.TemporaryDirectory(prefix="mltp-sandbox-") as tmp:
        ml = Path(tmp) / "job" / "opt" / "ml"
        ml.mkdir(parents=True)
        (ml / "probe").write_text("ok")
        command = wrap(["/bin/sh", "-c", "test -f /opt/ml/probe && test \"$(pwd)\" = /opt/ml"], ml, CONTAINER_ML,
                       tool=tool)
        try:
            proc = subprocess.run(command, capture_output=True, text=True, timeout=20,
                                  env={"PATH": path, "LC_ALL": "C"})
        except (OSError, subprocess.TimeoutExpired) as exc:
            return f"{Path(tool).name} could not run ({exc})"
        if proc.returncode != 0:
            return " ".join((proc.stderr or proc.stdout).split())[:200] or f"exit code {proc.returncode}"
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
