"""Which releases of a package install on this interpreter, read from the
package index's page of the project (its JSON form, else its HTML form): the
file names of the wheels, their Requires-Python and whether they were yanked.

versions.py asks this before a local run builds anything, to know whether the
container's main package (scikit-learn 0.20.0, say) can be had on the agent's
Python at all. A page is one small request; each is kept a day in the
helper's cache (beside the environments, which jobs see read-only), so a run
on a warm agent asks nothing. Offline, a page kept earlier is used however old
it is; with none, `releases` returns None and the caller says it could not
check.

The index is the one pip uses: PIP_INDEX_URL, else pip's configured
index-url, else PyPI. Only wheels count: the environments are built with
--only-binary for the container's packages (envs.py).
"""

import json
import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import Iterable, List, Optional, Set, Tuple

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.tags import Tag, sys_tags
from packaging.utils import InvalidWheelFilename, canonicalize_name, parse_wheel_filename
from packaging.version import InvalidVersion, Version

PYPI = "https://pypi.org/simple"
KEEP_SECONDS = 24 * 3600
TIMEOUT_SECONDS = 15
_ACCEPT = "application/vnd.pypi.simple.v1+json, text/html;q=0.1"


@dataclass(frozen=True)
class File:
    filename: str
    requires_python: Optional[str] = None
    yanked: bool = False


@dataclass(frozen=True)
class Releases:
    """The files of one project on the index."""

    name: str
    files: Tuple[File, ...]

    def installable(self, tags: Optional[Set[Tag]] = None, python: Optional[str] = None) -> Set[str]:
        """Versions with a wheel for this interpreter (its tags, its version
        against Requires-Python), yanked ones left out."""
        tags = tags if tags is not None else set(sys_tags())
        python = python or "%d.%d.%d" % sys.version_info[:3]
        out: Set[str] = set()
        for f in self.files:
            parsed = _wheel(f.filename)
            if parsed is None or f.yanked:
                continue
            version, file_tags = parsed
            if file_tags & tags and _allows(f.requires_python, python):
                out.add(version)
        return out

    def pythons(self, version: str) -> List[str]:
        """The Python versions ('3.6', '3.7') the wheels of `version` are built
        for, from their CPython tags; [] when they name none (pure Python)."""
        found = set()
        for f in self.files:
            parsed = _wheel(f.filename)
            if parsed is None or _same(parsed[0], version) is False:
                continue
            for tag in parsed[1]:
                match = re.fullmatch(r"cp(\d)(\d+)", tag.interpreter)
                if match:
                    found.add((int(match.group(1)), int(match.group(2))))
        return ["%d.%d" % p for p in sorted(found)]


def releases(name: str, cache: Path, say=None) -> Optional[Releases]:
    """The project's files, from the cache when kept less than a day, else from
    the index (kept for next time); a stale copy when the index cannot be
    reached; None when neither is there."""
    key = canonicalize_name(name)
    path = cache / f"{key}.json"
    kept = _read(path)
    if kept is not None and time.time() - kept[0] < KEEP_SECONDS:
        return kept[1]
    try:
        fresh = Releases(key, tuple(_fetch(key)))
        if not fresh.files:  # a page that lists nothing says nothing: as if unreachable
            raise ValueError("it lists no files")
    except (OSError, ValueError) as exc:
        if say is not None and kept is None:
            say(f"cannot read {key}'s page of the package index ({_reason(exc)})")
        return kept[1] if kept else None
    try:
        cache.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(f".{os.getpid()}.tmp")
        partial.write_text(json.dumps({"fetched": time.time(), "files": [
            [f.filename, f.requires_python, f.yanked] for f in fresh.files]}), encoding="utf-8")
        partial.replace(path)
    except OSError:  # a read-only cache must not stop the run
        pass
    return fresh


def index_url() -> str:
    """The index pip uses here."""
    if os.environ.get("PIP_INDEX_URL"):
        return os.environ["PIP_INDEX_URL"].split()[0]
    try:
        listed = subprocess.run([sys.executable, "-m", "pip", "config", "list"], stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL, text=True, timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired):
        listed = ""
    for line in listed.splitlines():
        match = re.match(r"^(?:global|install)\.index-url\s*=\s*'?([^'\s]+)'?", line.strip())
        if match:
            return match.group(1)
    return PYPI


def _fetch(name: str) -> Iterable[File]:
    url = index_url().rstrip("/") + f"/{name}/"
    request = urllib.request.Request(url, headers={"Accept": _ACCEPT, "User-Agent": "mltp"})
    context = None
    if url.startswith("https:") and os.path.isfile(os.environ.get("PIP_CERT", "")):
        import ssl

        context = ssl.create_default_context(cafile=os.environ["PIP_CERT"])  # the CA bundle pip is told to trust
    with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS, context=context) as response:  # noqa: S310
        kind = response.headers.get("Content-Type", "")
        body = response.read().decode("utf-8", errors="replace")
    if "json" in kind:
        data = json.loads(body)
        return [File(f["filename"], f.get("requires-python"), bool(f.get("yanked")))
                for f in data.get("files", []) if isinstance(f, dict) and f.get("filename")]
    parser = _Links()
    parser.feed(body)
    return parser.files


class _Links(HTMLParser):
    """The anchors of a PEP 503 project page: file name, data-requires-python, data-yanked."""

    def __init__(self):
        super().__init__()
        self.files: List[File] = []
        self._open: Optional[dict] = None
        self._text = ""

    def handle_starttag(self, tag, attrs):
        if tag == "a":
            self._open, self._text = dict(attrs), ""

    def handle_data(self, data):
        if self._open is not None:
            self._text += data

    def handle_endtag(self, tag):
        if tag == "a" and self._open is not None:
            name = self._text.strip() or self._open.get("href", "").split("#")[0].rsplit("/", 1)[-1]
            self.files.append(File(name, self._open.get("data-requires-python"), "data-yanked" in self._open))
            self._open = None


def _read(path: Path) -> Optional[Tuple[float, Releases]]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        files = tuple(File(f[0], f[1], bool(f[2])) for f in data["files"])
        return float(data["fetched"]), Releases(path.stem, files)
    except (OSError, ValueError, KeyError, IndexError, TypeError):
        return None


def _wheel(filename: str) -> Optional[Tuple[str, Set[Tag]]]:
    if not filename.endswith(".whl"):
        return None
    try:
        _, version, _, tags = parse_wheel_filename(filename)
    except (InvalidWheelFilename, InvalidVersion):
        return None
    return str(version), set(tags)


def _allows(requires_python: Optional[str], python: str) -> bool:
    if not requires_python:
        return True
    try:
        return SpecifierSet(requires_python).contains(python, prereleases=True)
    except InvalidSpecifier:
        return True  # pip ignores what it cannot read, too


def _same(a: str, b: str) -> Optional[bool]:
    try:
        return Version(a) == Version(b)
    except InvalidVersion:
        return None


def _reason(exc: BaseException) -> str:
    if isinstance(exc, urllib.error.HTTPError):
        return f"HTTP {exc.code}"
    if isinstance(exc, urllib.error.URLError):
        return str(exc.reason)
    return str(exc) or type(exc).__name__
