"""The folders mltp owns in a model repo (`.mltp/` and its subfolders), and the
one way mltp deletes anything in them.

A cloned repo can hold symlinks of its author's choosing: a committed
`.mltp/work -> /home/jenkins` would make `mltp clean`, or the trimming at the
start of a local run, empty whatever it points at. So mltp writes and deletes
only in folders that are plain folders, and deletes only through `remove`:
it never follows a link (a link is removed as a link), and it refuses a path
that, once resolved, is not inside the folder that owns it.
No heavy imports: `validate` and `clean` use this.
"""

import os
import shutil
from pathlib import Path
from typing import List, Union

from .errors import InvalidInput

STATE = ".mltp"
# mltp's own subfolders of .mltp/ (docs/contract.md, 8.3), and the Jenkins step's report
# folder, which it empties before a build: each must be a plain folder or absent.
SUBFOLDERS = ("work", "runs", "registry", "model", "inputs", "locks", "report", "cache")

PathLike = Union[str, Path]


def _shown(path: Path) -> str:
    """As config.display: relative to the working directory when inside it."""
    try:
        rel = os.path.relpath(path)
    except ValueError:
        return str(path)
    return rel if not rel.startswith("..") else str(path)


def symlink_problems(repo: PathLike) -> List[str]:
    """One line per symlink among `.mltp` and its subfolders, the folders mltp
    writes its run folders to and deletes in."""
    repo = Path(repo)
    state = repo / STATE
    if state.is_symlink():
        return [f"{_shown(state)}: is a symlink; mltp writes its run folders there, so it must be a "
                f"plain folder or absent (remove it from the repo)"]
    return [f"{_shown(state / name)}: is a symlink; mltp writes and deletes there, so it must be a "
            f"plain folder or absent (remove the link)" for name in SUBFOLDERS if (state / name).is_symlink()]


def check_state(repo: PathLike) -> None:
    """Exit 2 when `.mltp` or one of its subfolders is a symlink."""
    problems = symlink_problems(repo)
    if problems:
        raise InvalidInput(problems[0], problems[1:])


def owned_dir(repo: PathLike, *parts: str) -> Path:
    """`<repo>/.mltp/<parts...>`, refused (exit 2) when any part of it that exists
    is a symlink: the caller is about to write or delete there."""
    repo = Path(repo)
    path = repo / STATE
    for part in ("",) + parts:
        path = path / part if part else path
        if path.is_symlink():
            raise InvalidInput(f"{_shown(path)}: is a symlink; mltp writes and deletes only in folders it "
                               f"owns, so it must be a plain folder or absent (remove the link)")
    return path


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def remove(path: PathLike, root: PathLike) -> None:
    """Delete `path` (a file, a link or a folder tree) that lies inside `root`.

    A link is unlinked, never followed; a folder tree goes with shutil.rmtree,
    which removes the links inside it as links. Refused (InvalidInput) when
    `root` is itself a link, when `path` is `root`, or when `path`'s folder,
    resolved, is not inside `root`, resolved: nothing outside is touched."""
    path, root = Path(path), Path(root)
    if root.is_symlink():
        raise InvalidInput(f"{_shown(root)}: is a symlink; mltp deletes only inside folders it owns (remove the link)")
    real_root = os.path.realpath(str(root))
    real_parent = os.path.realpath(str(path.parent))
    if path.name in ("", ".", "..") or not _inside(real_parent, real_root):
        raise InvalidInput(f"{_shown(path)}: is not inside {_shown(root)}; mltp deletes only inside folders it owns")
    if path.is_symlink() or not path.is_dir():
        try:
            os.unlink(str(path))
        except FileNotFoundError:
            pass
        return
    shutil.rmtree(str(path), ignore_errors=True)



def _exclusive(path: Path) -> int:
    """A new file at `path`, opened for writing; whatever was there (a link
    included) is unlinked first, and O_EXCL | O_NOFOLLOW refuse one that appears
    meanwhile, so the bytes never go through a link."""
    try:
        os.unlink(str(path))
    except FileNotFoundError:
        pass
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    return os.open(str(path), flags, 0o644)


def open_new(path: PathLike):
    """A binary file object for a new file at `path` (see `_exclusive`)."""
    return os.fdopen(_exclusive(Path(path)), "wb")


def write_atomic(path: PathLike, data: bytes) -> None:
    """Write `path` whole or not at all: a temporary file beside it (never written
    through a link, `_exclusive`), then renamed over it. A rename replaces a link
    at `path` itself, never what the link points at."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with os.fdopen(_exclusive(tmp), "wb") as handle:
        handle.write(data)
    os.replace(str(tmp), str(path))
