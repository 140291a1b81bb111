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
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO, Iterator, List, Union

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



@contextmanager
def replacing(path: PathLike, mode: int = 0o644) -> Iterator[BinaryIO]:
    """A binary file to write `path`'s new content into: `path` is replaced whole
    when the block ends, or left as it was if the block raises (the temporary
    file is removed). Every file mltp writes atomically goes through here: the
    run's reports and logs, the registry, fetched models, and the agent's caches,
    where two builds may write one entry at once.

    The temporary file is new beside `path` with a random name and O_EXCL, so a
    link left in the folder (by a cloned repo or a job) is never written
    through; the rename replaces a link at `path` itself, never what it points at."""
    import tempfile  # not at import: the fast verbs write nothing

    path = Path(path)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=str(path.parent))
    try:
        os.fchmod(handle, mode)
        with os.fdopen(handle, "wb") as out:
            yield out
        os.replace(temporary, str(path))
    except BaseException:
        try:
            os.unlink(temporary)
        except OSError:
            pass
        raise


def write_atomic(path: PathLike, data: bytes, mode: int = 0o644) -> None:
    """Write `path` whole or not at all (see `replacing`)."""
    with replacing(path, mode) as out:
        out.write(data)
