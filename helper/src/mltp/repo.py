"""Model repo checks and the list of files that ship with the code.

What is shipped is decided here once, so `validate` warns about exactly what
`sync` would upload, and the local run executes exactly what would be shipped.
"""

import ast
import os
from dataclasses import dataclass
from pathlib import Path
from typing import List, Tuple

import pathspec

from .config import Config, display, utf8_error_line
from .errors import InvalidInput

# Never shipped, whatever .mltpignore says: VCS data, our own run folders,
# caches, and files that typically hold secrets.
ALWAYS_IGNORED = (
    ".git/",
    ".mltp/",
    "__pycache__/",
    "*.pyc",
    ".env*",
    "*.pem",
    "*.key",
    "id_rsa*",
)
IGNORE_FILE = ".mltpignore"
MAX_FILES = 5000
MAX_BYTES = 500 * 1024 * 1024


@dataclass(frozen=True)
class RepoFile:
    relpath: str  # POSIX path inside the repo
    path: Path
    size: int


def ignore_spec(repo: Path) -> pathspec.PathSpec:
    patterns = list(ALWAYS_IGNORED)
    extra = repo / IGNORE_FILE
    if extra.is_file():
        patterns += extra.read_text(encoding="utf-8", errors="replace").splitlines()
    return pathspec.PathSpec.from_lines("gitwildmatch", patterns)


def list_files(repo: Path) -> List[RepoFile]:
    """Files to ship, sorted by path. Symlinks are followed only when they stay
    inside the repo; one that points outside is an error (it would ship a file
    the repo does not own, or fail on the build agent)."""
    repo = repo.resolve()
    spec = ignore_spec(repo)
    out: List[RepoFile] = []
    problems: List[str] = []
    total = 0
    for root, dirs, files in os.walk(repo, followlinks=False):
        rel_root = os.path.relpath(root, repo)
        rel_root = "" if rel_root == "." else rel_root.replace(os.sep, "/") + "/"
        kept_dirs = []
        for name in sorted(dirs):
            rel = f"{rel_root}{name}/"
            full = Path(root) / name
            if spec.match_file(rel):
                continue
            if full.is_symlink():
                problems.append(f"{display(full)}: symlinked folders are not shipped; copy the files into the repo")
                continue
            kept_dirs.append(name)
        dirs[:] = kept_dirs
        for name in sorted(files):
            rel = f"{rel_root}{name}"
            if spec.match_file(rel):
                continue
            full = Path(root) / name
            if full.is_symlink():
                target = full.resolve()
                if not _inside(target, repo):
                    problems.append(f"{display(full)}: symlink points outside the model repo ({target})")
                    continue
            if not full.is_file():
                continue  # sockets, fifos, dangling links: nothing to ship
            size = full.stat().st_size
            total += size
            out.append(RepoFile(rel, full, size))
    if len(out) > MAX_FILES:
        problems.append(f"{display(repo)}: {len(out)} files to ship (limit {MAX_FILES}); add data folders to {IGNORE_FILE}")
    if total > MAX_BYTES:
        problems.append(f"{display(repo)}: {total // (1024 * 1024)} MiB to ship (limit {MAX_BYTES // (1024 * 1024)} MiB); keep data in S3 and list it under inputs, or add it to {IGNORE_FILE}")
    if problems:
        raise InvalidInput(f"{display(repo)}: the code bundle cannot be made", problems)
    out.sort(key=lambda f: f.relpath)
    return out


def _inside(path: Path, root: Path) -> bool:
    try:
        path.relative_to(root)
        return True
    except ValueError:
        return False


def check(config: Config) -> Tuple[List[RepoFile], List[str]]:
    """Checks the three scripts and returns (files to ship, problems)."""
    repo = config.repo.resolve()
    problems: List[str] = []
    try:
        files = list_files(repo)
    except InvalidInput as exc:
        return [], exc.details or [exc.message]
    shipped = {f.relpath for f in files}
    spec = ignore_spec(repo)
    for step in config.steps.all():
        key = f"steps.{step.role}.script"
        where = config.where(key)
        path = repo / step.script
        label = f"{where}: {key}: {step.role} script '{step.script}'"
        if path.is_symlink() and not _inside(path.resolve(), repo):
            problems.append(f"{label} is a symlink pointing outside the model repo")
            continue
        if not _inside(path.resolve(), repo):
            problems.append(f"{label} is outside the model repo")
            continue
        if not path.exists():
            problems.append(f"{label} not found in the model repo")
            continue
        if not path.is_file():
            problems.append(f"{label} is not a regular file")
            continue
        if step.script not in shipped and spec.match_file(step.script):
            problems.append(f"{label} is excluded by the ignore rules ({IGNORE_FILE} or the built-in list)")
            continue
        problems.extend(_check_python(path, step.script))
    return files, problems


def _check_python(path: Path, name: str) -> List[str]:
    shown = display(path)
    try:
        source = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        return [f"{shown}:{utf8_error_line(exc)}: not UTF-8 text ({exc.reason} at byte {exc.start})"]
    try:
        ast.parse(source, filename=name)
    except SyntaxError as exc:
        where = f"{shown}:{exc.lineno}" if exc.lineno else shown
        return [f"{where}: syntax error: {exc.msg}"]
    except ValueError as exc:  # e.g. null bytes
        return [f"{shown}: cannot be parsed as Python: {exc}"]
    return []
