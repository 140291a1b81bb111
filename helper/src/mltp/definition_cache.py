"""Rendered definitions, cached so an unchanged `render` or `deploy` imports
neither the SageMaker nor the Step Functions SDK (about 3 s of every build).

A definition depends on exactly three things, and the key is made of them:
- the config's content: its parsed, defaulted values (not where the file or the
  checkout lives);
- mltp itself: its version and a digest of its own modules, so a helper edited
  in place never serves a definition its code would not render;
- the versions of the two SDKs, read from their metadata without importing them.

An entry is JSON holding its key and the definition's SHA-256; one that does not
match (truncated, edited, from another key) is ignored and written again.
Entries are written to a temporary file and renamed, so concurrent builds never
read half an entry. MLTP_NO_DEFINITION_CACHE=1 turns the cache off.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from functools import lru_cache
from pathlib import Path
from typing import Callable, Optional

from . import __version__, owned

SDKS = ("sagemaker", "stepfunctions")
FORMAT = 1


def cache_dir() -> Path:
    """Beside the helper's own cache: MLTP_CACHE_DIR, else $XDG_CACHE_HOME/mltp, else ~/.cache/mltp."""
    root = os.environ.get("MLTP_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "mltp")
    return Path(root) / "definitions"


@lru_cache(maxsize=None)
def _code_digest() -> str:
    """mltp's own modules, by path and bytes: a few dozen small files, read once."""
    package = Path(__file__).resolve().parent
    digest = hashlib.sha256()
    for path in sorted(package.rglob("*.py")):
        digest.update(path.relative_to(package).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def _sdk_versions() -> dict:
    from importlib import metadata

    out = {}
    for name in SDKS:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def _config_content(config) -> dict:
    values = dataclasses.asdict(config)
    values.pop("path", None)
    values.pop("repo", None)
    return values


def key(config) -> str:
    parts = {
        "format": FORMAT,
        "config": _config_content(config),
        "mltp": [__version__, _code_digest()],
        "sdks": _sdk_versions(),
    }
    text = json.dumps(parts, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _read(path: Path, wanted: str) -> Optional[str]:
    try:
        entry = json.loads(path.read_text(encoding="utf-8"))
        text = entry["definition"]
        if entry.get("key") != wanted or hashlib.sha256(text.encode("utf-8")).hexdigest() != entry.get("sha256"):
            return None
        return text
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def _write(path: Path, wanted: str, text: str) -> None:
    entry = {"key": wanted, "sha256": hashlib.sha256(text.encode("utf-8")).hexdigest(), "definition": text}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        owned.write_atomic(path, json.dumps(entry).encode("utf-8"))
    except OSError:
        pass  # a cache that cannot be written only costs the next render its time


def cached(config, render: Callable[[], str]) -> str:
    """The definition of `config`: from the cache when an entry for exactly these
    inputs is there and intact, else rendered by `render` and stored."""
    if os.environ.get("MLTP_NO_DEFINITION_CACHE"):
        return render()
    wanted = key(config)
    path = cache_dir() / f"{wanted}.json"
    text = _read(path, wanted)
    if text is None:
        text = render()
        _write(path, wanted, text)
    return text
