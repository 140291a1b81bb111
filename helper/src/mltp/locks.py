"""Locks between local runs of one repo: two `mltp run --local` (or a run and
`mltp approve --local`) at once.

Two things must be exclusive:
- a run name: its work folder, its report folder and its job names are the
  run's own. A run holds `run-<name>.lock` while it lives; a second run asking
  for the same name is refused (exit 2), one with a default name takes the
  next free one (`<name>-2`), and trimming or `mltp clean` leave the folder of
  a run in progress alone;
- the local model registry: a session restores `.mltp/registry/<group>/` into
  its emulator, registers (or approves) there, and saves it back. Two sessions
  at once would both restore version N and both register N+1: the later save
  would lose the other's version. `registry-<group>.lock` is held from restore
  to save; a second session waits for it, and says so.

The locks are flock(2) locks on files under `.mltp/locks/` (Linux and macOS):
the kernel drops them when the process ends, however it ends, so a killed run
never leaves a stale lock. The files stay (deleting a lock file races with a
process about to lock it); they are empty but for the holder's pid.
"""

import fcntl
import os
from pathlib import Path
from typing import Callable, Optional

from . import naming, owned
from .errors import InvalidInput

LOCKS = "locks"
# How many default run names a run tries ('<name>', '<name>-2', ...) before giving up.
MAX_SUFFIX = 100


class Lock:
    """A held flock lock; released by `release` or when the process ends."""

    def __init__(self, path: Path, fd: int):
        self.path = path
        self._fd: Optional[int] = fd

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> "Lock":
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def _path(repo: Path, name: str) -> Path:
    folder = owned.owned_dir(repo, LOCKS)  # a symlinked .mltp/locks is refused
    folder.mkdir(parents=True, exist_ok=True)
    return folder / name


def _open(path: Path) -> int:
    """The lock file, never through a link (O_NOFOLLOW): a link there is exit 2."""
    try:
        return os.open(str(path), os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0),
                       0o644)
    except OSError as exc:
        raise InvalidInput(f"{path}: cannot be used as a lock file ({exc.strerror or exc}); remove it")


def _holder(fd: int) -> str:
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        return ""
    return f" (pid {text})" if text.isdigit() else ""


def _mark(fd: int) -> None:
    os.ftruncate(fd, 0)
    os.pwrite(fd, str(os.getpid()).encode("ascii"), 0)


def try_lock(path: Path, mark: bool = True) -> "tuple[Optional[Lock], str]":
    """(the lock, "") when it was free, else (None, ' (pid N)' of its holder).
    `mark`: write this process's pid into the file, for the message of a second one."""
    fd = _open(path)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = _holder(fd)
        os.close(fd)
        return None, holder
    except BaseException:
        os.close(fd)
        raise
    if mark:
        _mark(fd)
    return Lock(path, fd), ""


def wait_lock(path: Path, say: Callable[[str], None], waiting: str) -> Lock:
    """The lock, waiting for it when another process holds it (`waiting` is said once)."""
    lock, holder = try_lock(path)
    if lock is not None:
        return lock
    say(waiting + holder)
    fd = _open(path)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
    except BaseException:
        os.close(fd)
        raise
    _mark(fd)
    return Lock(path, fd)


def run_in_progress(repo: Path, run: str) -> bool:
    """Whether a local run of this repo holds the run name `run` now."""
    path = owned.owned_dir(repo, LOCKS) / f"run-{run}.lock"
    if path.is_symlink() or not path.is_file():
        return False
    lock, _ = try_lock(path, mark=False)
    if lock is None:
        return True
    lock.release()
    return False


def claim_run(repo: Path, run: str, explicit: bool) -> "tuple[str, Lock]":
    """The run name this run may use, locked for it: `run` itself when free;
    when another local run of the repo holds it, exit 2 for a name the user
    chose, else the next free '<run>-N'. Its work folder must not be a link."""
    candidates = [run] if explicit else [run] + [naming.run_name(f"{run}-{n}") for n in range(2, MAX_SUFFIX)]
    holder = ""
    for name in candidates:
        lock, holder = try_lock(_path(repo, f"run-{name}.lock"))
        if lock is None:
            continue
        try:
            for folder in ("work", "runs"):
                owned.owned_dir(repo, folder, name)  # a symlinked run folder is refused, not written through
        except BaseException:
            lock.release()
            raise
        return name, lock
    if explicit:
        raise InvalidInput(f"run name {run}: another local run of this repo is using it{holder}; wait for it to "
                           f"finish or choose another --run-name")
    raise InvalidInput(f"run name {run}: {MAX_SUFFIX} local runs of this repo are using it and its variants")


def registry(repo: Path, group: str, say: Callable[[str], None]) -> Lock:
    """The lock on the local registry of `group`, held from restore to save."""
    return wait_lock(_path(repo, f"registry-{group}.lock"), say,
                     f"local: waiting for another local session of this repo to finish with model package group "
                     f"{group}")
