"""Arranges a local job's private root inside its namespace, then becomes the job.

Run by `sandbox.wrap` as `unshare --user --map-root-user --mount --propagation
private <python> -I -S sandbox_setup.py ARGS -- COMMAND`, with the helper's own
interpreter in isolated mode (no site, no user paths, nothing from the job's
environment decides what it imports: only os, sys, signal and ctypes).

It makes the same mounts a shell script with some forty `mount` processes
used to make (sandbox.py says what and why), here with mount(2), umount2(2)
and pivot_root(2) called through libc in this one process: the per-job cost
drops from about 0.1 s of CPU (and 0.4 to 0.6 s of wall on a loaded agent) to
the start of one interpreter. Then:

- where folders must stay read-only, a second user and mount namespace
  (unshare(2) with CLONE_NEWUSER | CLONE_NEWNS, the job mapped to uid 0 again
  as `unshare --map-root-user` maps it): the mounts the job inherits there are
  locked, so it cannot unmount the read-only binds or clear their flag;
- the parent-death signal (SIGKILL), so a helper that is killed takes its job
  with it, and a check that the helper (whose PID `wrap` passes) is still the
  parent once the signal is set;
- SIGPIPE and SIGXFSZ back to their defaults (Python ignores both, and an
  ignored signal stays ignored across exec);
- exec of the command, with the environment this process was started with
  (read back from /proc/self/environ: the interpreter's start may add
  LC_CTYPE to its own), so the job keeps the PID its runner started; the
  loader's variables of the job's environment (LD_PRELOAD and the like), which
  this process started without, are put back from MLTP_SANDBOX_RESTORE.

On any failure it prints `mltp: ...` on stderr and exits 125, before the job
starts.

Arguments: the job's folder to appear at /opt/ml, the staging folder, the
working directory (as the job sees it), the folders to make read-only (one
per line), the helper's PID, the folder to become the job's / (its mount
points made by `sandbox._skeleton`), the host's top-level entry that holds it;
then `--` and the command.
"""

import ctypes
import os
import signal
import sys

MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_BIND, MS_MOVE, MS_REC, MS_PRIVATE = 32, 4096, 8192, 16384, 1 << 18
MNT_DETACH = 2
CLONE_NEWNS, CLONE_NEWUSER = 0x00020000, 0x10000000
PR_SET_PDEATHSIG = 1
# pivot_root(2) has no libc wrapper: its system call number, per architecture.
SYS_PIVOT_ROOT = {"x86_64": 155, "aarch64": 41, "arm64": 41, "riscv64": 41, "loongarch64": 41, "ppc64le": 203,
                  "ppc64": 203, "s390x": 217, "i686": 217, "i386": 217, "armv7l": 218, "armv6l": 218}
EXIT_SETUP = 125
HOST = ".mltp-host"
RESTORE = b"MLTP_SANDBOX_RESTORE"  # sandbox.RESTORE

_libc = ctypes.CDLL(None, use_errno=True)
for _name in ("mount", "umount2", "unshare", "prctl", "syscall"):
    getattr(_libc, _name).restype = ctypes.c_int


class SetupError(Exception):
    """A step that failed: the message names it and the error."""


def _check(result: int, what: str) -> None:
    if result != 0:
        code = ctypes.get_errno()
        raise SetupError(f"{what}: {os.strerror(code)}")


def _path(value) -> bytes:
    return os.fsencode(value) if value is not None else None


def mount(source, target, fstype=None, flags=0, data=None) -> None:
    _check(_libc.mount(_path(source), _path(target), _path(fstype), ctypes.c_ulong(flags), _path(data)),
           f"mount {source or ''} on {target}")


def bind(source: str, target: str) -> None:
    """`mount --rbind` for a folder, `mount --bind` for anything else."""
    mount(source, target, None, MS_BIND | (MS_REC if os.path.isdir(source) else 0))


def pivot_root(new_root: str, put_old: str) -> None:
    number = SYS_PIVOT_ROOT.get(os.uname().machine)
    if number is None:
        raise SetupError(f"pivot_root: unknown system call number on {os.uname().machine}")
    _check(_libc.syscall(ctypes.c_long(number), _path(new_root), _path(put_old)), "pivot_root")


def private_root(new_root: str, holder: str) -> None:
    """The job's root folder with every top-level entry of the host's / bound
    onto its mount point (first the entry that holds that folder, while nothing
    is mounted below it yet), made the root; the host's / is detached."""
    mount(new_root, new_root, None, MS_BIND)
    names = sorted(os.listdir("/"))
    for name in ([holder] if holder in names else []) + [n for n in names if n != holder]:
        entry = "/" + name
        if os.path.islink(entry) or not os.path.exists(entry):
            continue  # a link is recreated by the skeleton
        bind(entry, os.path.join(new_root, name))
    os.chdir(new_root)
    os.makedirs(HOST, exist_ok=True)
    pivot_root(".", HOST)
    os.chdir("/")
    _check(_libc.umount2(_path("/" + HOST), MNT_DETACH), "umount /" + HOST)
    os.rmdir("/" + HOST)


def opt_ml(ml: str, stage: str) -> None:
    """The job's folder at /opt/ml: over the host's own /opt/ml where there is
    one; else /opt rebuilt on a tmpfs with every original entry bound back,
    from a staging bind that stays reachable when the work folder lies under
    /opt (hidden by the tmpfs until bound back)."""
    if os.path.isdir("/opt/ml"):
        mount(ml, "/opt/ml", None, MS_BIND)
        return
    if not os.path.isdir("/opt"):
        raise SetupError("this machine has no /opt")
    mount("/opt", stage, None, MS_BIND | MS_REC)
    os.chdir(stage)
    mount("mltp-opt", "/opt", "tmpfs", 0, "mode=755")
    for name in sorted(os.listdir(".")):
        target = "/opt/" + name
        if os.path.islink(name):
            os.symlink(os.readlink(name), target)
        elif os.path.isdir(name):
            os.mkdir(target)
            mount(name, target, None, MS_BIND | MS_REC)
        elif os.path.exists(name):
            open(target, "w").close()
            mount(name, target, None, MS_BIND)
    os.mkdir("/opt/ml")
    mount(ml, "/opt/ml", None, MS_BIND)
    os.chdir("/")


def protect(folder: str) -> None:
    """`folder` bound onto itself and remounted read-only. A remount keeps no
    flag it does not name, and a mount's nosuid/nodev/noexec are locked in a
    user namespace: the ones the mount has (statvfs) are named, and where that
    is refused every other set of them is tried."""
    mount(folder, folder, None, MS_BIND | MS_REC)
    has = os.statvfs(folder).f_flag & (MS_NOSUID | MS_NODEV | MS_NOEXEC)
    for extra in [has] + [f for f in range(8 * MS_NOSUID) if f % MS_NOSUID == 0 and f != has]:
        if _libc.mount(None, _path(folder), None, ctypes.c_ulong(MS_REMOUNT | MS_BIND | MS_RDONLY | extra), None) == 0:
            return
    raise SetupError(f"cannot make {folder} read-only for the job")


def relock() -> None:
    """A second user and mount namespace, uid and gid 0 mapped onto this one's
    (what `unshare --user --map-root-user --mount` does): what the job inherits
    here is locked."""
    _check(_libc.unshare(CLONE_NEWUSER | CLONE_NEWNS), "unshare")
    for name, text in (("setgroups", "deny"), ("uid_map", "0 0 1"), ("gid_map", "0 0 1")):
        with open(f"/proc/self/{name}", "w") as handle:
            handle.write(text)
    mount("none", "/", None, MS_REC | MS_PRIVATE)


def _environment() -> dict:
    """The environment as this process received it, before the interpreter's start changed any of it."""
    with open("/proc/self/environ", "rb") as handle:
        raw = handle.read()
    out = {}
    for item in raw.split(b"\0"):
        if b"=" in item:
            key, value = item.split(b"=", 1)
            out.setdefault(key, value)
    # The loader's variables of the job's environment, which this process and
    # unshare started without (sandbox.LOADER_VARIABLES): the job's again.
    restore = out.pop(RESTORE, None)
    if restore:
        import json  # only then

        for key, value in json.loads(restore.decode("utf-8")).items():
            out[os.fsencode(key)] = os.fsencode(value)
    return out


def main(argv) -> int:
    if "--" not in argv or argv.index("--") != 7 or len(argv) < 9:
        print("mltp: sandbox_setup: usage: ML STAGE CWD READ_ONLY PARENT NEW_ROOT HOLDER -- COMMAND...", file=sys.stderr)
        return EXIT_SETUP
    ml, stage, cwd, read_only, parent, new_root, holder = argv[:7]
    command = argv[8:]
    try:
        env = _environment()
        private_root(new_root, holder)
        opt_ml(ml, stage)
        folders = [f for f in read_only.split("\n") if f]
        for folder in folders:
            protect(folder)
        os.chdir(cwd)
        if folders:
            relock()
        _check(_libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0), "prctl")
    except (SetupError, OSError) as exc:
        print(f"mltp: {exc}", file=sys.stderr)
        return EXIT_SETUP
    if os.getppid() != int(parent):
        return 128 + signal.SIGKILL  # the helper is gone: as if the signal had come
    for sig in (signal.SIGPIPE, signal.SIGXFSZ):
        signal.signal(sig, signal.SIG_DFL)
    try:
        os.execvpe(command[0], command, env)
    except OSError as exc:
        print(f"mltp: {command[0]}: {exc.strerror}", file=sys.stderr)
        return 126 if exc.errno != 2 else 127
    return EXIT_SETUP


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
