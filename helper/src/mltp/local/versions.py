"""The framework's own package for each step's local environment, decided
before a local run builds or starts anything (docs/contract.md, 8.2).

A container row (framework_containers.py) names the container's main package
and its version: scikit-learn 0.20.0 on Python 3.7, say. Whether that version
installs on the agent's Python is read from the package index's list of
wheels (package_index.py), not found out half way through a build:

- it installs: the environment has it, nothing is said;
- only another release of the same major version installs (1.0.2 -> 1.1.3 on
  Python 3.11; for 0.x releases the same 0.x): that one is used, and the run
  says so at its start and in its report;
- only another major version installs (scikit-learn 0.20 -> 1.x): the run
  stops with exit 2 before anything starts, naming the framework version, the
  Python it needs and `--python` as the way out, unless the run allows the
  nearest version (`--allow-nearest`, the Jenkins step's allowNearest), which
  is then used and said the same way;
- nothing installs: exit 2 the same way.

With `--python` the user's interpreter brings its own packages and this does
not apply. The supporting packages (numpy, pandas, ...) keep envs.py's
nearest-version fallback. An environment already built for the row answers
without asking the index; with no index and nothing kept from it, the run says
it could not check and goes on as before.
"""

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from packaging.version import InvalidVersion, Version

from ..errors import InvalidInput
from . import containers, package_index

ALLOW_NEAREST_HINT = "--allow-nearest (the Jenkins step's allowNearest)"
PYTHON_HINT = "--python PATH (MLTP_PYTHON, the Jenkins step's scriptPython)"


@dataclass(frozen=True)
class Choice:
    """What a (framework, framework_version) gets locally."""

    framework: str
    version: str
    package: str
    wanted: str  # the container's version of its main package
    chosen: str  # what the environment installs
    row: dict  # the row the environment is built from: the container's, the main package as chosen
    note: str = ""  # said at the start of the run and kept in its report; "" when the container's version installs


def choose(framework: str, version: str, row: dict, releases: Optional[package_index.Releases], *,
           python: str, allow_nearest: bool, where: str = "", installed: Optional[str] = None,
           tags=None) -> Choice:
    """The decision for one container row on an interpreter of version `python`.
    `releases`: the main package's files on the index (None: unknown);
    `installed`: the version an environment already built for the row holds;
    `tags`: the interpreter's wheel tags (default: this process's, the agent's Python)."""
    package = containers.main_package(row)
    wanted = row["packages"][package]
    label = f"{framework} {version}"
    if installed is not None and _same(installed, wanted):
        return Choice(framework, version, package, wanted, wanted, row)
    if releases is None:
        return Choice(framework, version, package, wanted, wanted, row,
                      note=f"{label}: could not check whether {package} {wanted} installs on Python {python}; "
                           "building its environment as the container has it")
    available = sorted(releases.installable(tags=tags, python=python), key=_key)
    if any(_same(v, wanted) for v in available):
        return Choice(framework, version, package, wanted, wanted, row)
    same = _nearest(wanted, [v for v in available if _major(v) == _major(wanted)])
    if same is not None:
        return _substitute(framework, version, row, package, wanted, same, python,
                           f"the nearest {_major_text(wanted)} release that does")
    other = _nearest(wanted, available)
    if other is not None and allow_nearest:
        return _substitute(framework, version, row, package, wanted, other, python,
                           f"another major version, accepted by {ALLOW_NEAREST_HINT.split(' (')[0]}")
    built = releases.pythons(wanted)
    builds = f" (built for Python {built[0]} to {built[-1]})" if len(built) > 1 else ""
    text = (f"{where + ': ' if where else ''}{label}'s container has {package} {wanted} on Python {row['python']}"
            f"{builds}, which does not install on this agent's Python {python}")
    way_out = (f"run the scripts with a Python {row['python']} that has {package} {wanted}: {PYTHON_HINT}")
    if other is not None:
        text += (f"; the nearest release that does, {package} {other}, is another major version. {way_out[0].upper()}"
                 f"{way_out[1:]}; or accept {package} {other}: {ALLOW_NEAREST_HINT}")
    else:
        text += f", and no release of {package} does: {way_out}"
    raise InvalidInput(text)


def choose_for_run(config, requirements: Optional[Path], allow_nearest: bool,
                   say: Callable[[str], None]) -> Dict[Tuple[str, str], Choice]:
    """(framework, framework_version) -> Choice for every step of the run that
    runs in a container environment; the notes said once each. InvalidInput
    (exit 2) for the first version that cannot be had, before anything is built."""
    import sys

    from . import envs

    python = "%d.%d.%d" % sys.version_info[:3]
    out: Dict[Tuple[str, str], Choice] = {}
    for step in config.steps.all():
        key = (step.framework, step.framework_version or "")
        row = containers.container(step.framework, step.framework_version)
        if row is None or key in out:
            continue
        package = containers.main_package(row)
        installed = envs.built_version(step.framework, step.framework_version, requirements, package)
        releases = None
        if installed is None or not _same(installed, row["packages"][package]):
            releases = package_index.releases(package, index_cache(),
                                              say=lambda text: say(f"local: {text}"))
        choice = choose(step.framework, step.framework_version or "", row, releases, python=python,
                        allow_nearest=allow_nearest, installed=installed,
                        where=f"{config.where(f'steps.{step.role}.framework_version')}: "
                              f"steps.{step.role}.framework_version")
        out[key] = choice
        if choice.note:
            say(f"local: {choice.note}")
    return out


def index_cache() -> Path:
    """Where the index's pages are kept: beside the environments, read-only to jobs."""
    from . import envs

    return envs.cache_root() / ".index"


def notes(choices: Sequence[Choice]) -> List[str]:
    return [c.note for c in choices if c.note]


def _substitute(framework: str, version: str, row: dict, package: str, wanted: str, chosen: str, python: str,
                why: str) -> Choice:
    packages = dict(row["packages"])
    packages[package] = chosen
    note = (f"{framework} {version}: the container has {package} {wanted} (Python {row['python']}), which does not "
            f"install on this agent's Python {python}; using {package} {chosen}, {why}")
    return Choice(framework, version, package, wanted, chosen, dict(row, packages=packages), note)


def _nearest(wanted: str, candidates: Sequence[str]) -> Optional[str]:
    """The closest newer release first (older releases lack builds for newer
    Pythons), else the closest older one; final releases only."""
    target = _key(wanted)
    final = [v for v in candidates if not _prerelease(v)]
    newer = sorted((v for v in final if _key(v) > target), key=_key)
    older = sorted((v for v in final if _key(v) < target), key=_key, reverse=True)
    return (newer or older or [None])[0]


def _major(version: str) -> Tuple[int, ...]:
    """The major version; for 0.x releases the minor counts as one (0.20 and 0.23 differ)."""
    release = _key(version)[:2]
    return release if release[:1] == (0,) else release[:1]


def _major_text(version: str) -> str:
    return ".".join(map(str, _major(version))) + ".x"


def _key(version: str) -> Tuple[int, ...]:
    try:
        return tuple(Version(version).release)
    except InvalidVersion:
        return (0,)


def _prerelease(version: str) -> bool:
    try:
        return Version(version).is_prerelease
    except InvalidVersion:
        return True


def _same(a: str, b: str) -> bool:
    try:
        return Version(a) == Version(b)
    except InvalidVersion:
        return a == b
