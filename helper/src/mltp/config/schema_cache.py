"""config.yaml texts the JSON Schema already found valid, remembered by content,
so a build's later verbs (sync, publish, start, wait: each a fresh process) do
not import jsonschema and validate the same text again: that import is most of
a no-op `mltp sync`'s own time (about 0.15 s of 0.35 s on an idle agent).

The key is the text itself together with mltp's code (definition_cache's
digest of its modules, which holds the schema) and the jsonschema version, so
an edited config, another helper or another validator checks again. Only a
pass is remembered; a text with problems is checked every time, and the
semantic checks (checks.py) always run. An entry is an empty file named by
the key below the helper's cache root (MLTP_CACHE_DIR, else ~/.cache/mltp);
MLTP_NO_DEFINITION_CACHE=1 turns this cache off with the definitions' one.
"""

import hashlib
import os
from pathlib import Path
from typing import Optional

FORMAT = 1


def _entry(text: str) -> Optional[Path]:
    if os.environ.get("MLTP_NO_DEFINITION_CACHE"):
        return None
    from importlib import metadata

    from ..definition_cache import _code_digest, cache_dir

    try:
        validator = metadata.version("jsonschema")
    except metadata.PackageNotFoundError:
        validator = None
    digest = hashlib.sha256(f"{FORMAT}\0{_code_digest()}\0{validator}\0".encode("utf-8") + text.encode("utf-8"))
    return cache_dir().parent / "valid-configs" / digest.hexdigest()


def known_valid(text: str) -> bool:
    entry = _entry(text)
    return entry is not None and entry.is_file()


def remember_valid(text: str) -> None:
    entry = _entry(text)
    if entry is None:
        return
    try:
        entry.parent.mkdir(parents=True, exist_ok=True)
        entry.touch()
    except OSError:
        pass  # a cache that cannot be written only costs the next verb its validation
