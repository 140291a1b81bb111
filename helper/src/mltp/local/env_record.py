"""The install record of a local environment, and the check that it still holds.

The local environments (envs.py) are shared by every repo and build on an
agent. A job that could change one (append to `sklearn/__init__.py`, drop a
`.pth` file into site-packages) would run its code in the next, unrelated
repo's jobs. Jobs see them read-only where they run in a private namespace
(sandbox.py); this record is what catches a change made any other way (a job
without a namespace, anything else on the agent), before the environment is
used again.

When an environment is built, `write()` records every entry under it: for a
file its size and SHA-256, for a symbolic link its target (`mltp-record.json`).
Compiled modules (`__pycache__`) are part of it: Python loads them in place of
their sources. An entry that appears later (a new `.pth` or `sitecustomize.py`
is as good as an edited file) or goes missing is a change too.

Hashing everything on every use would be the plain way; it costs a full read
of the environment. scikit-learn's (the default framework's) holds about
14,600 files and 390 MB: hashing it took 2.6 s from the page cache and 16 s
from disk on a busy two-core agent, where listing and stat-ing every entry
took 0.4 to 0.9 s. A run checks before each of its three jobs, so the full
hash every time would add up to a minute. So the check has two levels:

- quick, every use: the set of entries, and for each its (size, mtime_ns,
  ctime_ns, inode) as seen at the last full check (`mltp-verified.json`).
  Writing to a file changes its ctime, which unlike mtime cannot be set back
  from user space; replacing it changes the inode;
- full: the SHA-256 of every file against the record, when the quick check
  sees any difference, when there is no earlier full check, and at least once
  every FULL_EVERY_SECONDS (a day), so a change the quick check cannot see
  (a clock set back, a file system without real ctimes) is found within a day.

Within one process the quick check gets cheaper after a walk that passed:
listing every folder (some 2,300 in scikit-learn's) costs as much as the
stat of every file. Adding, removing or renaming an entry changes its
folder's mtime and ctime (ctime, again, cannot be set back), and mounting
something over a folder changes its device and inode; so a walk that passes
remembers, in memory, each folder's (mtime_ns, ctime_ns, inode, device),
taken before the folder was listed, and the files it found. The next quick
check then takes one stat per folder instead of listing it, and the stat of
every file as before ('stamps'): where any folder's stamp differs, or a file
is gone, it falls back to the walk. It catches what the walk catches, and
reads the same times: about 0.06 s of CPU instead of 0.12 for
scikit-learn's, before each job of a run.

A full check that passes rewrites the quick record. A change is never
repaired in place: the caller takes the environment out of use and builds it
again (envs.py), naming the environment and the entry.

The record is only as safe as the folder it lives in: on an agent where jobs
run with no namespace they run as the agent's user and could rewrite the
record as well. The runner therefore keeps the record it read before a job in
memory and checks against that after the job (runner.py), and says once that
jobs can write the shared environments there.
"""

import hashlib
import json
import os
import stat
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Optional, Tuple

from .. import owned

RECORD = "mltp-record.json"
SEEN = "mltp-verified.json"
FULL_EVERY_SECONDS = 24 * 3600
FORMAT = 1
# mltp's own bookkeeping beside the environment's files: not part of the record.
_OWN_PREFIXES = (RECORD, SEEN)

Stat = Tuple[int, int, int, int]  # size, mtime_ns, ctime_ns, inode
DirStamp = Tuple[int, int, int, int]  # mtime_ns, ctime_ns, inode, device


@dataclass
class Record:
    """What an environment held when built, and how its entries looked at the
    last full check (`full_at`, epoch seconds; 0 when never)."""

    entries: Dict[str, list]  # relative path -> ["f", size, sha256] or ["l", target]
    seen: Dict[str, Stat] = field(default_factory=dict)
    full_at: float = 0.0
    # In memory only: each folder's stamp and the files of the last walk that
    # passed in this process (the 'stamps' check); None until one has.
    walked: Optional[Tuple[Dict[str, DirStamp], Tuple[str, ...]]] = None


class Changed(Exception):
    """The environment is not what was built: the message names the entry."""


def write(root: Path) -> Record:
    """Records every entry under `root` (a just-built environment), and the quick record with it."""
    root = Path(root)
    entries: Dict[str, list] = {}
    for rel, info in _walk(root).items():
        path = root / rel
        if stat.S_ISLNK(info.st_mode):
            entries[rel] = ["l", os.readlink(str(path))]
        elif stat.S_ISREG(info.st_mode):
            entries[rel] = ["f", info.st_size, _sha256(path)]
        else:
            raise Changed(f"{rel} is neither a file nor a symbolic link")
    _write_json(root / RECORD, {"format": FORMAT, "entries": entries})
    record = Record(entries)
    _remember(root, record, _walk(root))
    return record


def load(root: Path) -> Record:
    """The record written when `root` was built, with the quick record of its last full check."""
    root = Path(root)
    try:
        data = json.loads((root / RECORD).read_text(encoding="utf-8"))
        entries = data["entries"]
        if data.get("format") != FORMAT or not isinstance(entries, dict):
            raise ValueError("unknown format")
    except (OSError, ValueError, KeyError, TypeError):
        raise Changed(f"its install record {RECORD} is missing or unreadable")
    record = Record(entries)
    try:
        seen = json.loads((root / SEEN).read_text(encoding="utf-8"))
        record.seen = {k: tuple(v) for k, v in seen["stats"].items()}
        record.full_at = float(seen["full_at"])
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        pass  # no quick record: the next check is a full one
    return record


def check(root: Path, record: Record, full: bool = False, now: Optional[float] = None) -> str:
    """Raises Changed naming the first entry that differs from `record`; else
    says which level of check it took ('stamps', 'quick' or 'full'). A full
    check that passes updates `record` and, where it can, the quick record on
    disk."""
    root = Path(root)
    now = time.time() if now is None else now
    fresh = bool(record.full_at) and now - record.full_at < FULL_EVERY_SECONDS
    walked, record.walked = record.walked, None
    if not full and fresh and walked is not None and _stamps_hold(root, record, walked):
        record.walked = walked
        return "stamps"
    folders: Dict[str, DirStamp] = {}
    current = _walk(root, folders)
    added = sorted(set(current) - set(record.entries))
    if added:
        raise Changed(f"{added[0]} was added")
    missing = sorted(set(record.entries) - set(current))
    if missing:
        raise Changed(f"{missing[0]} is missing")
    if not full and fresh and all(record.seen.get(rel) == _stat(info) for rel, info in current.items()):
        record.walked = (folders, tuple(current))
        return "quick"
    for rel in sorted(current):
        expected, info, path = record.entries[rel], current[rel], root / rel
        if expected[0] == "l":
            if not stat.S_ISLNK(info.st_mode) or os.readlink(str(path)) != expected[1]:
                raise Changed(f"{rel} changed")
        elif not stat.S_ISREG(info.st_mode) or info.st_size != expected[1] or _sha256(path) != expected[2]:
            raise Changed(f"{rel} changed")
    _remember(root, record, current, now)
    # Writing the quick record changed the root folder's stamp: the next check
    # walks once more, and then takes the stamps.
    record.walked = (folders, tuple(current))
    return "full"


# --------------------------------------------------------------------------- helpers


def _walk(root: Path, folders: Optional[Dict[str, DirStamp]] = None) -> Dict[str, os.stat_result]:
    """Every entry under root but directories (and mltp's own bookkeeping), by
    relative POSIX path, as lstat sees it: symbolic links are not followed.
    `folders` gets each folder's stamp (by relative path, the root as ''),
    taken before the folder is listed: an entry added after the listing
    changes it."""
    found: Dict[str, os.stat_result] = {}
    if folders is not None:
        folders[""] = _dir_stamp(os.lstat(str(root)))
    pending = [("", str(root))]
    while pending:
        prefix, folder = pending.pop()
        with os.scandir(folder) as listing:
            for entry in listing:
                if not prefix and entry.name.startswith(_OWN_PREFIXES):
                    continue
                rel = prefix + entry.name
                if entry.is_dir(follow_symlinks=False):
                    if folders is not None:
                        folders[rel] = _dir_stamp(entry.stat(follow_symlinks=False))
                    pending.append((rel + "/", entry.path))
                else:
                    found[rel] = entry.stat(follow_symlinks=False)
    return found


def _stamps_hold(root: Path, record: Record, walked: Tuple[Dict[str, DirStamp], Tuple[str, ...]]) -> bool:
    """Whether every folder of the last walk that passed has its stamp (so it
    holds the same entries) and every file its quick record; False sends the
    check to the walk."""
    folders, files = walked
    base = str(root) + "/"
    seen = record.seen
    try:
        for rel, stamp in folders.items():
            if _dir_stamp(os.lstat(base + rel if rel else str(root))) != stamp:
                return False
        for rel in files:
            if _stat(os.lstat(base + rel)) != seen.get(rel):
                return False
    except OSError:
        return False
    return True


def _dir_stamp(info: os.stat_result) -> DirStamp:
    return (info.st_mtime_ns, info.st_ctime_ns, info.st_ino, info.st_dev) if stat.S_ISDIR(info.st_mode) else (-1, -1, -1, -1)


def _stat(info: os.stat_result) -> Stat:
    return (info.st_size, info.st_mtime_ns, info.st_ctime_ns, info.st_ino)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _remember(root: Path, record: Record, current: Dict[str, os.stat_result], now: Optional[float] = None) -> None:
    record.seen = {rel: _stat(info) for rel, info in current.items()}
    record.full_at = time.time() if now is None else now
    try:
        _write_json(root / SEEN, {"full_at": record.full_at, "stats": record.seen})
    except OSError:
        pass  # a cache this process may read but not write: the next use checks in full again


def _write_json(path: Path, data: dict) -> None:
    """Atomically: two runs checking the same environment may write at once."""
    owned.write_atomic(path, json.dumps(data, sort_keys=True).encode("utf-8"))
