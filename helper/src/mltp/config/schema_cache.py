"""config.yaml texts found valid, remembered by content with the document they
parse to, so a build's later verbs (sync, publish, start, wait: each a fresh
process) neither parse the same text again nor check it again: no PyYAML, no
jsonschema, no semantic checks (checks.py) to import and run: together
about a tenth of the work of a no-op `mltp sync`.

A text is valid when the schema and the semantic checks find no problem; that
verdict is a function of the text and of what the checks read, so the key is
made of exactly those:
- the text itself;
- mltp's code (definition_cache's digest of its modules: the schema, the
  checks, the framework and algorithm tables);
- the installed versions of jsonschema (the validator), botocore (its
  SageMaker model lists the instance types) and the SageMaker SDK (its image
  tables list the framework versions), read from their .dist-info folders
  without importing them.

Only a pass is remembered; a text with problems is checked every time, so
every problem is still reported, at its line. The entry holds the parsed value
and the line of every key (what Config.where() and later messages need); the
typed Config is built from it again each time, for the path and repo of this
invocation. An entry is a JSON file named by the key below the helper's cache
root (MLTP_CACHE_DIR, else ~/.cache/mltp), holding its key too: one that cannot
be read, or holds another key, is ignored and written again. Entries are
written to a temporary file and renamed, so concurrent builds never read half
an entry. MLTP_NO_DEFINITION_CACHE=1 turns this cache off with the definitions' one.
"""

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from .. import owned

FORMAT = 2
# Whose installed version can change a text's verdict (see above).
CHECKED_WITH = ("jsonschema", "botocore", "sagemaker")


def installed_version(name: str) -> Optional[str]:
    """A package's installed version, from the name of its .dist-info folder
    beside the package, found without importing it: importlib.metadata would
    answer the same after reading the metadata of every installed distribution,
    some milliseconds of every verb. None when it is not installed that way."""
    import importlib.util

    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.origin:
        return None
    folder = Path(spec.origin).parent.parent
    try:
        names = os.listdir(folder)
    except OSError:
        return None
    for entry in sorted(names):
        stem, _, version = entry[: -len(".dist-info")].partition("-")
        if entry.endswith(".dist-info") and stem.lower().replace("-", "_") == name and version:
            return version
    return None


def validator_version() -> Optional[str]:
    return installed_version("jsonschema")


def _key(text: str) -> Optional[str]:
    if os.environ.get("MLTP_NO_DEFINITION_CACHE"):
        return None
    from ..definition_cache import _code_digest

    parts = [str(FORMAT), _code_digest()] + [str(installed_version(name)) for name in CHECKED_WITH]
    return hashlib.sha256("\0".join(parts + [text]).encode("utf-8")).hexdigest()


def _path(key: str) -> Path:
    from ..definition_cache import cache_dir

    return cache_dir().parent / "valid-configs" / f"{key}.json"


def known_valid(text: str) -> Optional[Tuple[Any, Dict[Tuple[Any, ...], int]]]:
    """(value, lines) of a text found valid before with this mltp and these
    checkers; None otherwise (check it)."""
    key = _key(text)
    if key is None:
        return None
    try:
        entry = json.loads(_path(key).read_text(encoding="utf-8"))
        if entry["key"] != key or not isinstance(entry["value"], dict):
            return None
        lines = {tuple(path): int(line) for path, line in entry["lines"]}
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return entry["value"], lines


def remember_valid(text: str, value: Any, lines: Dict[Tuple[Any, ...], int]) -> None:
    """Remember a text the schema and the semantic checks found no problem in."""
    key = _key(text)
    if key is None:
        return
    pairs: List[Any] = [[list(path), line] for path, line in lines.items()]
    try:
        payload = json.dumps({"key": key, "value": value, "lines": pairs}, allow_nan=False)
    except (TypeError, ValueError):
        return  # not plain JSON data (a schema-valid config always is): simply not remembered
    path = _path(key)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        owned.write_atomic(path, payload.encode("utf-8"))
    except OSError:
        pass  # a cache that cannot be written only costs the next verb its validation
