"""Model repo checks and the list of files that ship with the code.

What is shipped is decided here once, so `validate` warns about exactly what
`sync` would upload, and the local run executes exactly what would be shipped.
"""

import ast
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

import pathspec

from . import owned
from .config import Config, display, utf8_error_line
from .errors import InvalidInput

# Never shipped, whatever .mltpignore says (IgnoreRules keeps it final): VCS data, our own run folders,
# caches, and files that typically hold secrets. Matched case-insensitively (a file system may
# be, and `.ENV` or `ID_RSA` hold the same secrets), so every pattern here is lower case.
# Notebooks with cell outputs never ship either (see `_notebook_has_outputs`).
ALWAYS_IGNORED = (
    ".git/",
    ".mltp/",
    "__pycache__/",
    "*.pyc",
    ".env*",
    "*.env",
    "*.pem",
    "*.key",
    "*.p12",
    "*.pfx",
    "*.tfvars",
    "id_rsa*",
    "id_ed25519*",
    "id_ecdsa*",
    "id_dsa*",
    ".ssh/",
    ".aws/",
    ".netrc",
    ".npmrc",
    ".pypirc",
    ".dockercfg",
    ".docker/config.json",
    "credentials.json",
    # More credential stores of common tools (a cloud SDK, a cluster, a database, a vault, a registry).
    ".git-credentials",
    ".s3cfg",
    ".boto",
    ".pgpass",
    ".kube/",
    "kubeconfig*",
    "*.tfstate",
    "*.tfstate.backup",
    ".terraform/",
    ".databrickscfg",
    ".vault-token",
    "kaggle.json",
    ".huggingface/",
    "**/huggingface/token",
    "application_default_credentials.json",
    "service-account.json",
    "service_account.json",
    "*.jks",
    "*.keystore",
    "*.ppk",
    ".gnupg/",
    # Other version control data, and shell and REPL histories (typed passwords and tokens).
    ".hg/",
    ".svn/",
    ".bzr/",
    ".*history",
)
IGNORE_FILE = ".mltpignore"
# How list_files marks, in `skipped`, a notebook left out for its cell outputs.
NOTEBOOK_WITH_OUTPUTS = " (a notebook with cell outputs)"
MAX_NOTEBOOK_BYTES = 64 * 1024 * 1024
MAX_KEY_BYTES = 1024  # S3's limit on an object key, in bytes of UTF-8
MAX_FILES = 5000
MAX_BYTES = 500 * 1024 * 1024


@dataclass(frozen=True)
class RepoFile:
    relpath: str  # POSIX path inside the repo
    path: Path
    size: int


class IgnoreRules:
    """What is not shipped: the built-in list, final, then .mltpignore. The two are
    separate pattern lists, so a `!` line of .mltpignore re-includes only what an
    earlier .mltpignore line excluded, never a file the built-in list excludes
    (`!.env.example`, `!id_rsa.pub` or `!.git/` ship nothing)."""

    def __init__(self, user_patterns: Sequence[str] = ()):
        self.builtin = pathspec.PathSpec.from_lines("gitwildmatch", ALWAYS_IGNORED)
        self.user = pathspec.PathSpec.from_lines("gitwildmatch", list(user_patterns))

    def match_file(self, path: str) -> bool:
        """The built-in list ignores case (`.ENV`, `ID_RSA`, `Credentials.json`); .mltpignore does not, as in git."""
        return self.builtin.match_file(path.lower()) or self.user.match_file(path)


def ignore_spec(repo: Path) -> IgnoreRules:
    """The built-in list plus .mltpignore. A pattern git would refuse ('[z-a]', a
    lone '\\' or '!') is an input error naming its line, not a traceback."""
    lines: List[str] = []
    extra = repo / IGNORE_FILE
    if extra.is_file():
        try:
            lines = extra.read_bytes().decode("utf-8", errors="replace").splitlines()
        except OSError as exc:
            raise InvalidInput(f"{display(extra)}: cannot be read ({exc.strerror or exc})")
        for number, line in enumerate(lines, 1):
            try:
                pathspec.PathSpec.from_lines("gitwildmatch", [line]).match_file("x")
            except (ValueError, re.error) as exc:
                reason = str(exc).split(" at position")[0] if isinstance(exc, re.error) else "not a valid pattern"
                raise InvalidInput(f"{display(extra)}:{number}: {line!r} is not a valid ignore pattern ({reason}); "
                                   f"escape special characters with '\\'")
    return IgnoreRules(lines)


def _name_problem(full: Path) -> Optional[str]:
    """File names must survive the trip to S3 keys and tar entries: UTF-8 only."""
    try:
        str(full).encode("utf-8")
    except UnicodeEncodeError:
        shown = os.fsencode(str(full)).decode("utf-8", "backslashreplace")
        return f"{shown}: file name is not UTF-8; rename it or add it to {IGNORE_FILE}"
    return None


def list_files(repo: Path, skipped: Optional[List[str]] = None) -> List[RepoFile]:
    """Files to ship, sorted by path. Symlinks are followed only when they stay
    inside the repo; one that points outside is an error (it would ship a file
    the repo does not own, or fail on the build agent). A symlink whose target
    is ignored is skipped like its target ('settings.txt -> .env' must not ship
    .env's content): its path goes to `skipped`."""
    repo = repo.resolve()
    spec = ignore_spec(repo)
    out: List[RepoFile] = []
    problems: List[str] = []
    total = 0
    problems.extend(owned.symlink_problems(repo))  # .mltp/ and its subfolders: mltp writes and deletes there
    for root, dirs, files in os.walk(repo, followlinks=False):
        rel_root = os.path.relpath(root, repo)
        rel_root = "" if rel_root == "." else rel_root.replace(os.sep, "/") + "/"
        kept_dirs = []
        for name in sorted(dirs):
            rel = f"{rel_root}{name}/"
            full = Path(root) / name
            if _name_problem(full):
                if not spec.match_file(rel.encode("utf-8", "surrogateescape").decode("utf-8", "replace")):
                    problems.append(str(_name_problem(full)))
                continue
            if spec.match_file(rel):
                continue
            if full.is_symlink():
                problems.append(f"{display(full)}: symlinked folders are not shipped; copy the files into the repo")
                continue
            kept_dirs.append(name)
        dirs[:] = kept_dirs
        for name in sorted(files):
            full = Path(root) / name
            name_problem = _name_problem(full)
            if name_problem:
                if not spec.match_file(f"{rel_root}{name}".encode("utf-8", "surrogateescape").decode("utf-8", "replace")):
                    problems.append(name_problem)
                continue
            rel = f"{rel_root}{name}"
            if spec.match_file(rel):
                continue
            if full.is_symlink():
                target = full.resolve()
                if not _inside(target, repo):
                    problems.append(f"{display(full)}: symlink points outside the model repo ({target})")
                    continue
                target_rel = target.relative_to(repo).as_posix()
                if spec.match_file(target_rel) or any(
                    spec.match_file("/".join(target_rel.split("/")[: i + 1]) + "/")
                    for i in range(target_rel.count("/"))
                ):
                    if skipped is not None:
                        skipped.append(rel)
                    continue
            if not full.is_file():
                continue  # sockets, fifos, dangling links: nothing to ship
            try:
                with open(full, "rb") as handle:  # readable now, not a PermissionError mid-upload
                    handle.read(1)
            except OSError as exc:
                problems.append(f"{display(full)}: cannot be read ({exc.strerror or exc}); fix its permissions "
                                f"or add it to {IGNORE_FILE}")
                continue
            if rel.lower().endswith(".ipynb") and _notebook_has_outputs(full):
                if skipped is not None:
                    skipped.append(rel + NOTEBOOK_WITH_OUTPUTS)
                continue
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


def _notebook_has_outputs(path: Path) -> bool:
    """Whether a Jupyter notebook holds cell outputs: printed tokens, query results,
    rows of data. Such a notebook is never shipped (docs/contract.md, 1.2); one that
    cannot be read as a notebook is not shipped either, as nothing proves it clean."""
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_NOTEBOOK_BYTES + 1)
        if len(data) > MAX_NOTEBOOK_BYTES:  # outputs (images, tables) are what makes a notebook this big
            return True
        notebook = json.loads(data.decode("utf-8"))
        cells = list(notebook.get("cells") or [])
        for sheet in notebook.get("worksheets") or []:  # nbformat 3
            cells += list(sheet.get("cells") or [])
        return any(isinstance(cell, dict) and cell.get("outputs") for cell in cells)
    except (OSError, ValueError, AttributeError, TypeError):
        return True


def skipped_note(skipped: Sequence[str]) -> str:
    """What validate's summary says about files left out beyond the ignore rules:
    ' (2 symlinks to ignored files skipped; not shipped: a.ipynb (a notebook with cell outputs))'."""
    links = [s for s in skipped if not s.endswith(NOTEBOOK_WITH_OUTPUTS)]
    notebooks = [s[: -len(NOTEBOOK_WITH_OUTPUTS)] for s in skipped if s.endswith(NOTEBOOK_WITH_OUTPUTS)]
    parts = []
    if links:
        parts.append(f"{len(links)} symlink{'s' if len(links) != 1 else ''} to ignored files skipped")
    if notebooks:
        named = ", ".join(notebooks[:3]) + (f" and {len(notebooks) - 3} more" if len(notebooks) > 3 else "")
        kind = "a notebook" if len(notebooks) == 1 else "notebooks"
        parts.append(f"not shipped: {named} ({kind} with cell outputs; clear the outputs to ship)")
    return f" ({'; '.join(parts)})" if parts else ""


def _inside(path: Path, root: Path) -> bool:
    try:
        path.relative_to(root)
        return True
    except ValueError:
        return False


def check(config: Config, skipped: Optional[List[str]] = None) -> Tuple[List[RepoFile], List[str]]:
    """Checks the three scripts and returns (files to ship, problems)."""
    repo = config.repo.resolve()
    problems: List[str] = []
    try:
        files = list_files(repo, skipped)
    except InvalidInput as exc:
        return [], exc.details or [exc.message]
    problems.extend(key_length_problems(config, files))
    shipped = {f.relpath for f in files}
    spec = ignore_spec(repo)
    for step in config.steps.all():
        if getattr(step, "algorithm", None):
            continue  # a built-in algorithm: no script (config/algorithm_checks.py)
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
        if step.script not in shipped and (spec.match_file(step.script) or step.script in (skipped or ())):
            problems.append(f"{label} is excluded by the ignore rules ({IGNORE_FILE} or the built-in list)")
            continue
        problems.extend(_check_python(path, step.script))
    return files, problems


def longest_prefixes(config: Config) -> Tuple[str, str]:
    """The longest code prefix and run prefix this config can produce on any
    branch and for any run name: a branch's slug and a run name at their
    longest (naming). Judging keys by them keeps `validate`'s answer the same on
    every branch."""
    from . import code_keys, naming

    room = naming.STATE_MACHINE_MAX - len(config.name) - len(naming.BRANCH_SEPARATOR)
    branch_machine = f"{config.name}{naming.BRANCH_SEPARATOR}{'x' * max(room, 1)}"
    code = naming.code_prefix(config, "0" * code_keys.HASH_LENGTH, branch_machine)
    # a branch's runs live under branches/<slug>/runs/: longer than the default branch's
    return code, naming.run_prefix(config, "x" * naming.EXECUTION_MAX, branch_machine)


def key_length_problems(config: Config, files: Sequence[RepoFile]) -> List[str]:
    """S3 refuses a key longer than 1,024 bytes of UTF-8, and would do so in the
    middle of an upload: every key the shipped files make (`<code prefix>src/<path>`)
    and the keys mltp writes under the run's prefix must fit, before anything is sent."""
    from . import code_keys, naming

    code, runs = longest_prefixes(config)
    problems: List[str] = []
    for f in files:
        size = len(f"{code}src/{f.relpath}".encode("utf-8"))
        if size > MAX_KEY_BYTES:
            problems.append(f"{f.relpath}: its S3 key would be {size} bytes, over S3's limit of {MAX_KEY_BYTES} (the "
                            f"code prefix takes up to {len((code + 'src/').encode('utf-8'))}); shorten the path or "
                            f"add it to {IGNORE_FILE}")
    training_job = naming.job_name(config, config.name, "x", "training")
    for key in (f"{code}{code_keys.TARBALL}", f"{code}{code_keys.MANIFEST}",
                f"{runs}model/{training_job}/output/model.tar.gz", f"{runs}evaluation/evaluation.json"):
        size = len(key.encode("utf-8"))
        if size > MAX_KEY_BYTES:
            problems.append(f"{config.where('aws.prefix')}: aws.prefix: S3 keys under it would be {size} bytes "
                            f"(S3 allows {MAX_KEY_BYTES}); shorten the prefix")
            break
    return problems


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
    except (RecursionError, MemoryError):
        # Python's parser gives up on absurd nesting with these, not SyntaxError.
        return [f"{shown}: cannot be parsed as Python: nested too deeply for Python's parser"]
    return []
