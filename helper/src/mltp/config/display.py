"""How the config's paths and values appear in messages: paths as the user
would type them, and values hidden when the config file lies outside the model
repo (it may be a file that was never meant to be shown in a build log)."""

import contextvars
import difflib
import json
import os
from pathlib import Path
from typing import Any, Iterable


def display(path: Path) -> str:
    """A path as the user would type it: relative to the working directory when inside it."""
    try:
        rel = os.path.relpath(path)
    except ValueError:
        return str(path)
    return rel if not rel.startswith("..") else str(path)


def utf8_error_line(exc: UnicodeDecodeError) -> int:
    return exc.object[: exc.start].count(b"\n") + 1


# When the config file lies outside the model repo (--config /elsewhere), its
# values are not echoed in errors: it may be a file that was never meant to be
# shown in a build log. Problems then name file, line and key only.
_HIDE_VALUES: "contextvars.ContextVar[bool]" = contextvars.ContextVar("mltp_hide_values", default=False)
HIDDEN = "(value not shown: the config file is outside the model repo)"


def repr_q(text: str) -> str:
    return f"'{text}'"


def shown(text: str) -> str:
    """`text`, or a placeholder when the config's values must not be echoed."""
    return HIDDEN if _HIDE_VALUES.get() else text




def _is_inside(path: Path, root: Path) -> bool:
    try:
        path.resolve().relative_to(root.resolve())
        return True
    except (ValueError, OSError, RuntimeError):
        return False


def _show(value: Any) -> str:
    if _HIDE_VALUES.get():
        return HIDDEN
    text = json.dumps(value, default=str)
    return text if len(text) <= 60 else text[:57] + "..."


def _suggest(word: str, options: Iterable[str]) -> str:
    close = difflib.get_close_matches(str(word), list(options), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""
