"""Local environments that mirror SageMaker's containers (docs/contract.md, 8.2).

A local run executes each step's scripts in a virtualenv that holds what the
step's container holds on AWS: the framework's main packages at the
container's versions (containers.py), AWS's training toolkit `sagemaker-training`
(which starts train.py there) and the repo's requirements.txt. A fresh agent
with only python3 and a package index can then run a model whose scripts need
scikit-learn, with no `--python`.

A repo's requirements.txt does not make a new framework environment: it goes
into a small *requirements overlay* on top of it (`_build_requirements_overlay`),
a virtualenv without packages of its own whose path also holds the framework
environment's site-packages (a .pth file), keyed by that environment's key and
the requirements digest. Adding one pure-Python package then costs a virtualenv
and one pip install, seconds, instead of a new framework environment (half a
minute and more). Precedence is the container's: there `pip install -r
requirements.txt` runs into the container's own site-packages, so a package the
file pins replaces the container's version. In the overlay pip sees the
framework's packages as installed (nothing already satisfied is installed
again), leaves them in place (they lie outside the overlay), and installs the
pinned version into the overlay's site-packages, which comes first on the path:
the requirement wins, as in the container (docs/contract.md, 8.2).

Each virtualenv is keyed by its content (interpreter, container row, toolkit;
an overlay: its base and the requirements.txt digest), built once in a temporary folder beside the cache
entry and published with an atomic symlink, as resources/mltp/install.sh
publishes the helper itself: concurrent builds are safe (the first link wins,
the others discard their build), and an entry that fails verification is
taken out of use and rebuilt. The virtualenv stays where it was built (the link
points at it), so the scripts pip wrote into bin/ keep working.

The environments are shared by every repo and build on the agent, so a job
must not be able to change one for the next: jobs see them read-only
(sandbox.py), and each is checked against the record of its files written
when it was built (env_record.py) before every use, by `prepare` for a run and
by `ensure` for each job; the runner also checks after each job where jobs
run with no namespace. A changed environment is never used: it is taken out
of use and built again, and the log names it and the file that changed. The
packages of a build come through a pip cache of mltp's own (PIP_CACHE_DIR
below the cache root), which jobs cannot write either, so a wheel planted in
the user's pip cache does not end up in the next build.

Where a pinned version has no build for the agent's Python (pandas 1.1.3 on
Python 3.11, say), the nearest version that installs is used instead, and the
run says so once. The framework's own package is decided before that, by
versions.py, which hands prepare the row to build (`row`). The toolkit's
release follows the interpreter (toolkit.py: an older one for Python 3.7).

With `--python` (MLTP_PYTHON, the step's scriptPython) the user's interpreter
is kept: mltp builds an *overlay*, a virtualenv of that interpreter whose path
also holds the interpreter's own site-packages (a .pth file), with only what is
missing added: the toolkit and requirements.txt. The user's Python is never
written to.
"""

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from ..errors import RunFailed
from . import containers, env_record, toolkit

# The toolkit SageMaker's framework containers start training with (`train`),
# for Python 3.8 and later (toolkit.py picks an older release for 3.7).
# It is an sdist with a small C extension: the first build on an agent needs gcc.
TOOLKIT = toolkit.NEWEST
FORMAT = 2  # bump when the layout of an entry changes (2: the install record, env_record.py)
MARKER = "mltp-env.json"
OVERLAY_PTH = "mltp-overlay.pth"
OVERLAY_FORMAT = 1  # bump when the layout of a requirements overlay changes
STALE_BUILD_SECONDS = 24 * 3600
PIP_CACHE = ".pip-cache"  # below the cache root: the builds' own pip cache
_PIP = ("-m", "pip", "--disable-pip-version-check", "--no-input")


@dataclass(frozen=True)
class Environment:
    """An interpreter for a step's jobs and what was said about it."""

    python: str
    path: Path
    requirements: Optional[str]  # sha256 of the requirements.txt installed in it, None when none was
    notes: Tuple[str, ...] = ()
    named: Optional[str] = None  # the interpreter messages name: --python's for an overlay
    # What `ensure` checks against: the build the link pointed at when it was
    # verified, its record as read then, and how to build it again.
    build: Optional[str] = field(default=None, compare=False, repr=False)
    # A requirements overlay's framework environment, checked before the overlay.
    base: Optional["Environment"] = field(default=None, compare=False, repr=False)
    record: Optional[env_record.Record] = field(default=None, compare=False, repr=False)
    spec: tuple = field(default=(), compare=False, repr=False)
    # Folders jobs must see read-only besides the cache: an overlay's interpreter's own site-packages.
    protect: Tuple[str, ...] = field(default=(), compare=False, repr=False)


def cache_root() -> Path:
    """The helper's cache root (MLTP_CACHE_DIR, else $XDG_CACHE_HOME/mltp, else ~/.cache/mltp), envs/."""
    from ..definition_cache import cache_dir

    return cache_dir().parent / "envs"


def requirements_digest(path: Optional[Path]) -> Optional[str]:
    if path is None or not path.is_file():
        return None
    return hashlib.sha256(path.read_bytes()).hexdigest()


@dataclass(frozen=True)
class Plan:
    """What an environment holds, and the cache entry that name and key give it."""

    name: str
    key: str
    base: str
    override: Optional[str]
    row: Optional[dict]
    digest: Optional[str]
    interpreter: dict
    toolkit: str = TOOLKIT


def plan(framework: str, version: Optional[str], requirements: Optional[Path], override: Optional[str] = None,
         row: Optional[dict] = None) -> Plan:
    """The cache key of a step's environment: its content, nothing else. For a
    framework (no `override`) that is the framework environment alone: a
    requirements.txt goes into an overlay on top of it (overlay_plan).
    `row`: the container row as versions.py chose it (its main package may
    differ from the container's), else the table's."""
    base = override or sys.executable
    interpreter = _interpreter(base)
    row = None if override else (row or containers.container(framework, version))
    digest = requirements_digest(requirements) if override else None
    kit = toolkit.for_python(interpreter["version"], named=f"--python {override}" if override else "")
    spec = {
        "format": FORMAT,
        "toolkit": kit,
        "python": interpreter if override else {k: interpreter[k] for k in ("version", "implementation", "machine")},
        "container": None if override else {"framework": framework, "version": version, "row": row},
        "requirements": digest,
    }
    key = hashlib.sha256(json.dumps(spec, sort_keys=True).encode("utf-8")).hexdigest()[:16]
    label = "overlay" if override else f"{framework}-{version or 'none'}"
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", f"{label}-py{interpreter['version']}-{key}")
    return Plan(name, key, base, override, row, digest, interpreter, kit)


def built_version(framework: str, version: Optional[str], requirements: Optional[Path], package: str) -> Optional[str]:
    """The version of `package` in the environment already built for the
    container's row, read from its marker (not verified: prepare does that);
    None when there is none. Lets versions.py decide without the index."""
    try:
        link = cache_root() / plan(framework, version, requirements).name
        marker = json.loads((link / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError, RunFailed):
        return None
    found = (marker.get("packages") or {}).get(package) if isinstance(marker, dict) else None
    return found if isinstance(found, str) else None


def overlay_plan(base: Plan, requirements: Path) -> Plan:
    """The cache key of a requirements overlay: its framework environment's key and the requirements digest."""
    digest = requirements_digest(requirements)
    spec = {"format": FORMAT, "overlay": OVERLAY_FORMAT, "base": base.key, "requirements": digest}
    key = hashlib.sha256(json.dumps(spec, sort_keys=True).encode("utf-8")).hexdigest()[:16]
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", f"{base.name.rsplit('-', 1)[0]}-requirements-{key}")
    return Plan(name, key, base.base, None, base.row, digest, base.interpreter, base.toolkit)


def prepare(framework: str, version: Optional[str], requirements: Optional[Path], override: Optional[str] = None,
            say: Callable[[str], None] = print, row: Optional[dict] = None) -> Environment:
    """The cached environment for a step, built first if need be (`row`: as for
    plan): with a requirements.txt and no `override`, the overlay of it on the
    framework's."""
    if override or requirements_digest(requirements) is None:
        return _prepare_plain(framework, version, requirements, override, say, row)
    base = _prepare_plain(framework, version, None, None, say, row)
    p = overlay_plan(plan(framework, version, None, row=row), requirements)
    link, marker, record = _cached(
        p, lambda root, link: _build_requirements_overlay(root, link, p, base, requirements),
        what="requirements overlay",
        building=lambda link: (f"adding requirements.txt on top of the {framework} {version} environment "
                               f"in {link} (once)"),
        ready="requirements overlay ready", say=say)
    return Environment(str(link / "bin" / "python"), link, marker.get("requirements"),
                       base.notes + tuple(marker.get("notes", [])), None,
                       build=os.path.realpath(str(link)), record=record,
                       spec=(framework, version, requirements, None, row), base=base)


def _prepare_plain(framework: str, version: Optional[str], requirements: Optional[Path], override: Optional[str],
                   say: Callable[[str], None], row: Optional[dict] = None) -> Environment:
    p = plan(framework, version, requirements, override, row)
    subject = (f"the Python at {override}" if override else f"{framework} {version}"
               + ("" if p.row else " (no container table row: toolkit and requirements.txt only)"))
    link, marker, record = _cached(
        p, lambda root, link: _build(root, link, p, requirements), what="environment",
        building=lambda link: f"building the environment for {subject} in {link} (once; later runs reuse it)",
        ready="environment ready", say=say)
    protect = tuple(p.interpreter.get("site", ())) if override else ()
    return Environment(str(link / "bin" / "python"), link, marker.get("requirements"),
                       tuple(marker.get("notes", [])), override,
                       build=os.path.realpath(str(link)), record=record,
                       spec=(framework, version, requirements, override, row), protect=protect)


def _cached(p: Plan, build: Callable[[Path, Path], Tuple[dict, env_record.Record]], what: str,
            building: Callable[[Path], str], ready: str,
            say: Callable[[str], None]) -> Tuple[Path, dict, env_record.Record]:
    """The cache entry of `p`, verified, or built by `build(root, link)` where
    there is none or it fails verification (taken out of use first, the log
    saying why); then its notes said, once per prepare. One sequence for a
    framework environment and a requirements overlay alike: `what` names the
    entry in the log, `building(link)` and `ready` say the build."""
    root = cache_root()
    link = root / p.name
    marker, record, problem = _verify(link, p.key)
    if marker is None:
        if os.path.lexists(link):
            say(f"local: the cached {what} {link} failed verification ({problem}); building it again")
            _discard(link, root)
        say("local: " + building(link))
        started = time.time()
        marker, record = build(root, link)
        say(f"local: {ready} in {time.time() - started:.0f} s")
    for note in marker.get("notes", []):
        say(f"local: {note}")
    return link, marker, record


def ensure(env: Environment, say: Callable[[str], None] = print) -> Tuple[Environment, Optional[str]]:
    """`env` as a job is about to use it, or has just used it, checked against
    the record read when it was prepared (kept in memory: a job that rewrote
    the record on disk as well is still caught), and what changed in it, if
    anything. A changed environment is taken out of use and built again; where
    that fails, RunFailed says so and nothing uses it."""
    if env.record is None or not env.spec:
        return env, None  # not one of ours (built elsewhere, or the runner's plain interpreter)
    if env.base is not None:  # a requirements overlay: its framework environment first
        base, changed = ensure(env.base, say=say)
        if base is not env.base:
            framework, version, requirements, override, row = env.spec
            return prepare(framework, version, requirements, override, say=say, row=row), changed
    current = os.path.realpath(str(env.path))
    framework, version, requirements, override, row = env.spec
    if current != env.build:  # another run took it out of use and published a new build: check that one
        return prepare(framework, version, requirements, override, say=say, row=row), None
    try:
        env_record.check(Path(current), env.record)
        return env, None
    except env_record.Changed as exc:
        changed = str(exc)
    except OSError as exc:
        changed = f"cannot read it: {exc}"
    say(f"local: the environment {env.path} was changed ({changed}); taking it out of use and building it again")
    _discard(Path(env.path), Path(env.path).parent)
    try:
        return prepare(framework, version, requirements, override, say=say, row=row), changed
    except RunFailed as exc:
        raise RunFailed(f"the local environment {env.path} was changed ({changed}) and cannot be built again: {exc}")


def protected_paths(environments: Sequence[Environment] = ()) -> List[str]:
    """What jobs see read-only (sandbox.py), as real paths: the helper's cache
    (the helper itself, its definitions, the environments and their pip cache),
    the environments' folder where it lies elsewhere, the user's pip cache (a
    wheel planted there would be installed by the next pip run on the agent),
    and an overlay's interpreter's site-packages."""
    from ..definition_cache import cache_dir

    wanted = [str(cache_dir().parent), str(cache_root()),
              os.environ.get("PIP_CACHE_DIR") or os.path.join(
                  os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "pip")]
    for env in environments:
        wanted += [os.path.realpath(str(env.path))] + list(env.protect)
        if env.base is not None:
            wanted.append(os.path.realpath(str(env.base.path)))
    out: List[str] = []
    for path in wanted:
        real = os.path.realpath(path)
        if os.path.isdir(real) and real != "/" and real not in out:
            out.append(real)
    return out


# --------------------------------------------------------------------------- building


def _build(root: Path, link: Path, p: Plan, requirements: Optional[Path]) -> Tuple[dict, env_record.Record]:
    name, key, base, override, row, digest, interpreter = (p.name, p.key, p.base, p.override, p.row, p.digest,
                                                           p.interpreter)
    root.mkdir(parents=True, exist_ok=True)
    _sweep(root)
    build = Path(tempfile.mkdtemp(prefix=f"build-{name}.", dir=str(root)))
    try:
        build.chmod(0o755)
        _run([base, "-m", "venv", str(build)], "could not create a virtualenv with "
             f"{base} (on Debian/Ubuntu: apt-get install python3-venv)")
        python = str(build / "bin" / "python")
        notes: List[str] = []
        if override:
            site = _interpreter(python)["site"]
            Path(site[0], OVERLAY_PTH).write_text("".join(f"{p}\n" for p in interpreter["site"]), encoding="utf-8")
        installed = _install_container(python, row, interpreter["version"], notes)
        _install_toolkit(python, notes, p.toolkit)
        installed_requirements = None
        if digest is not None and requirements is not None:
            copy = build / "requirements.txt"
            shutil.copyfile(requirements, copy)
            result = _pip(python, ["install", "-r", str(copy)], cwd=requirements.parent)
            if result.returncode == 0:
                installed_requirements = digest
            else:  # the jobs install it again and fail the step, as on AWS (docs/contract.md, 3.6)
                notes.append(f"requirements.txt did not install ({_pip_error(result.stdout)}); "
                             "the jobs will try again and fail as on AWS")
        marker = {"key": key, "packages": installed, "notes": notes, "requirements": installed_requirements,
                  "toolkit": p.toolkit, "python": interpreter["version"]}
        (build / MARKER).write_text(json.dumps(marker, indent=2, sort_keys=True), encoding="utf-8")
        _compile(python)
        record = env_record.write(build)
    except BaseException:
        shutil.rmtree(build, ignore_errors=True)
        raise
    try:
        os.symlink(build.name, str(link))  # relative: the cache may be reached through another path
    except FileExistsError:  # another build published first: use that one
        shutil.rmtree(build, ignore_errors=True)
        published, record, problem = _verify(link, key)
        if published is None:
            raise RunFailed(f"cannot publish the local environment at {link}: another entry there does not verify "
                            f"({problem})")
        return published, record
    return marker, record


def _build_requirements_overlay(root: Path, link: Path, p: Plan, base: Environment,
                                requirements: Path) -> Tuple[dict, env_record.Record]:
    """A virtualenv with no pip of its own whose site-packages names the framework
    environment's (through its cache link, so a rebuilt base is followed), with
    requirements.txt installed by the base's pip into the overlay (see the module's
    docstring for which version wins)."""
    root.mkdir(parents=True, exist_ok=True)
    build = Path(tempfile.mkdtemp(prefix=f"build-{p.name}.", dir=str(root)))
    try:
        build.chmod(0o755)
        _run([p.base, "-m", "venv", "--without-pip", str(build)], "could not create a virtualenv with "
             f"{p.base} (on Debian/Ubuntu: apt-get install python3-venv)")
        python = str(build / "bin" / "python")
        real_base = os.path.realpath(str(base.path))
        linked = [str(Path(base.path) / Path(os.path.realpath(site)).relative_to(real_base))
                  for site in _interpreter(base.python)["site"]]
        # addsitedir, not a plain path: the base's own .pth files (namespace
        # packages, setuptools' shim) are read as in the container, and it comes
        # after the overlay's site-packages on the path.
        Path(_interpreter(python)["site"][0], OVERLAY_PTH).write_text(
            "".join(f"import site; site.addsitedir({s!r})\n" for s in linked), encoding="utf-8")
        copy = build / "requirements.txt"
        shutil.copyfile(requirements, copy)
        notes: List[str] = []
        installed_requirements = None
        result = _pip(python, ["install", "-r", str(copy)], cwd=requirements.parent)
        if result.returncode == 0:
            installed_requirements = p.digest
        else:  # the jobs install it again and fail the step, as on AWS (docs/contract.md, 3.6)
            notes.append(f"requirements.txt did not install ({_pip_error(result.stdout)}); "
                         "the jobs will try again and fail as on AWS")
        marker = {"key": p.key, "base": base.path.name, "notes": notes, "requirements": installed_requirements,
                  "toolkit": TOOLKIT, "python": p.interpreter["version"]}
        (build / MARKER).write_text(json.dumps(marker, indent=2, sort_keys=True), encoding="utf-8")
        _compile(python)
        record = env_record.write(build)
    except BaseException:
        shutil.rmtree(build, ignore_errors=True)
        raise
    try:
        os.symlink(build.name, str(link))
    except FileExistsError:  # another build published first: use that one
        shutil.rmtree(build, ignore_errors=True)
        published, record, problem = _verify(link, p.key)
        if published is None:
            raise RunFailed(f"cannot publish the local environment at {link}: another entry there does not verify "
                            f"({problem})")
        return published, record
    return marker, record


def _compile(python: str) -> None:
    """Every module of the environment compiled now, before it is recorded:
    otherwise the first import of one that pip left uncompiled would write its
    __pycache__ entry, an entry the record does not know (where jobs can
    write at all). Modules that do not compile (test data of some packages)
    stay as they are: nothing imports them."""
    for site in _interpreter(python)["site"]:
        subprocess.run([python, "-m", "compileall", "-q", "-q", "-j", "0", site], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)


def _install_container(python: str, row: Optional[dict], version: str, notes: List[str]) -> Dict[str, str]:
    """The container's packages at its versions; per package the nearest version
    that has a build for this Python where the exact one has none."""
    if not row:
        return {}
    packages: Dict[str, str] = dict(row["packages"])
    binary = ["--only-binary", ",".join(packages)]
    exact = [f"{n}=={v}" for n, v in packages.items()]
    if _pip(python, ["install", *binary, *exact]).returncode == 0:
        return packages
    _pip(python, ["install", "--upgrade", "pip"])  # --dry-run needs pip 22.2+ (Python 3.9's bundles older)
    chosen: Dict[str, str] = {}
    for name, wanted in packages.items():
        found = wanted if _has_wheel(python, name, wanted) else _nearest(python, name, wanted)
        if found is None:
            raise RunFailed(f"local environment: no version of {name} installs on Python {version} "
                            f"(the container has {name} {wanted})")
        chosen[name] = found
    result = _pip(python, ["install", *binary, *[f"{n}=={v}" for n, v in chosen.items()]])
    if result.returncode != 0:
        # The nearest versions do not fit together: keep the framework's, let pip pick the rest.
        main = next(iter(packages))
        rest = [n for n in packages if n != main]
        result = _pip(python, ["install", *binary, f"{main}=={chosen[main]}", *rest])
        if result.returncode != 0:
            raise RunFailed(f"local environment: the packages of the container ({', '.join(exact)}) do not install "
                            f"on Python {version}: {_pip_error(result.stdout)}")
        chosen.update({n: v for n, v in _installed(python).items() if n in rest})
    changed = [f"{n} {chosen[n]} instead of {packages[n]}" for n in packages if chosen.get(n) != packages[n]]
    if changed:
        notes.append(f"the container runs Python {row['python']}, this agent {version}; nearest versions that "
                     f"install here: {', '.join(changed)}")
    return chosen


def _install_toolkit(python: str, notes: List[str], kit: str = TOOLKIT) -> None:
    """The toolkit is published as source only, with one C extension
    (`gethostname`). That extension is preloaded only for multi-host training
    (MPI, smdataparallel); a local run is one host. So where the agent has no C
    compiler, as on a fresh agent with only python3, the toolkit is built with a
    pure-Python module of that name instead, and the log says so once."""
    if _c_compiler() is None:
        _install_toolkit_without_extension(python, kit)
        notes.append(f"no C compiler here: {kit} is installed without its gethostname extension, "
                     "which only multi-host (MPI) training uses")
        return
    # --use-pep517: an isolated build with current setuptools and wheel; the pip
    # that Python 3.9/3.10 bundle would otherwise try `setup.py bdist_wheel` without them.
    result = _pip(python, ["install", "--prefer-binary", "--use-pep517", kit])
    if result.returncode != 0:
        raise RunFailed(f"local environment: cannot install {kit}: {_pip_error(result.stdout)}")


def _c_compiler() -> Optional[str]:
    """The compiler a source build would call: $CC, else the one Python was built with, else cc/gcc."""
    import shlex
    import sysconfig

    for candidate in (os.environ.get("CC"), sysconfig.get_config_var("CC"), "cc", "gcc"):
        words = shlex.split(candidate) if candidate else []
        if words and shutil.which(words[0]):
            return shutil.which(words[0])
    return None


# Stands in for the toolkit's C extension when there is no compiler (see _install_toolkit).
_GETHOSTNAME_STANDIN = (
    '"""mltp: stands in for sagemaker-training\'s C extension `gethostname`, which only\n'
    'multi-host (MPI, smdataparallel) training preloads; a local run is one host."""\n'
)


def _install_toolkit_without_extension(python: str, kit: str = TOOLKIT) -> None:
    with tempfile.TemporaryDirectory(prefix="mltp-toolkit-") as scratch:
        fetched = _pip(python, ["download", "--no-deps", "--no-binary", ":all:", "--dest", scratch, kit])
        archives = sorted(Path(scratch).glob("*.tar.gz"))
        if fetched.returncode != 0 or not archives:
            raise RunFailed(f"local environment: cannot download {kit}: {_pip_error(fetched.stdout)}")
        with tarfile.open(archives[0]) as tar:
            members = [m for m in tar.getmembers() if m.isfile() or m.isdir()]
            if any(m.name.startswith(("/", "..")) or "/../" in m.name for m in members):
                raise RunFailed(f"local environment: {archives[0].name} has an unsafe entry")
            tar.extractall(scratch, members=members)
        source = next(p.parent for p in Path(scratch).glob("*/setup.py"))
        setup = source / "setup.py"
        text = setup.read_text(encoding="utf-8")
        if "ext_modules=[gethostname]" not in text:
            raise RunFailed(f"local environment: {kit} changed its build; install a C compiler "
                            "(e.g. apt-get install gcc) to build it")
        setup.write_text(text.replace("ext_modules=[gethostname]", "ext_modules=[]"), encoding="utf-8")
        # setup.py names its top-level modules after src/*.py but, with no package_dir
        # for them, takes their files from the source root: the stand-in goes in both.
        for where in (source / "src", source):
            (where / "gethostname.py").write_text(_GETHOSTNAME_STANDIN, encoding="utf-8")
        result = _pip(python, ["install", "--prefer-binary", "--use-pep517", str(source)])
        if result.returncode != 0:
            raise RunFailed(f"local environment: cannot install {kit}: {_pip_error(result.stdout)}")


def _has_wheel(python: str, name: str, version: str) -> bool:
    return _pip(python, ["install", "--dry-run", "--no-deps", "--only-binary", ":all:", "--quiet",
                         f"{name}=={version}"]).returncode == 0


def _nearest(python: str, name: str, wanted: str) -> Optional[str]:
    """The version closest to `wanted` with a build for this Python: newer ones
    first (older releases lack wheels for newer Pythons), then older ones."""
    result = _pip(python, ["index", "versions", name])
    listed = re.search(r"Available versions:\s*(.+)", result.stdout)
    if not listed:
        return None
    versions = [v.strip() for v in listed.group(1).split(",") if re.fullmatch(r"\d+(\.\d+)*", v.strip())]
    target = _release(wanted)
    newer = sorted((v for v in versions if _release(v) > target), key=_release)[:40]
    older = sorted((v for v in versions if _release(v) < target), key=_release, reverse=True)[:10]
    for candidate in newer + older:
        if _has_wheel(python, name, candidate):
            return candidate
    return None


def _release(version: str) -> Tuple[int, ...]:
    return tuple(int(p) for p in re.findall(r"\d+", version.split("+")[0])[:4])


def _installed(python: str) -> Dict[str, str]:
    result = _pip(python, ["list", "--format", "json"])
    try:
        return {item["name"].lower(): item["version"] for item in json.loads(result.stdout)}
    except ValueError:
        return {}


# --------------------------------------------------------------------------- the cache


def _verify(link: Path, key: str) -> Tuple[Optional[dict], Optional[env_record.Record], str]:
    """The entry's marker and record when it is whole: every file as its record
    says (env_record.check), its key, its interpreter, the toolkit importable;
    else None, None and what is wrong."""
    if not os.path.lexists(str(link)):
        return None, None, "it does not exist"
    build = Path(os.path.realpath(str(link)))
    try:
        record = env_record.load(build)
        env_record.check(build, record)
    except env_record.Changed as exc:
        return None, None, str(exc)
    except OSError as exc:
        return None, None, f"cannot read it: {exc}"
    try:
        marker = json.loads((build / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None, None, f"{MARKER} is unreadable"
    if not isinstance(marker, dict) or marker.get("key") != key:
        return None, None, f"{MARKER} names another key"
    python = build / "bin" / "python"
    try:  # -B: the check itself must not add compiled modules to what it checks
        probe = subprocess.run([str(python), "-B", "-c", "import sagemaker_training, gethostname"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=120)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return None, None, f"its Python does not start ({exc})"
    if probe.returncode != 0:
        return None, None, "its Python cannot import the training toolkit"
    return marker, record, ""


def _discard(link: Path, root: Path) -> None:
    """Takes a bad entry out of use: the link first, then the build it points at."""
    target = os.path.realpath(str(link)) if os.path.islink(str(link)) else None
    if os.path.islink(str(link)):
        os.unlink(str(link))
    else:
        shutil.rmtree(str(link), ignore_errors=True)
    if target and Path(target).parent == root.resolve() and Path(target).name.startswith("build-"):
        shutil.rmtree(target, ignore_errors=True)


def _sweep(root: Path) -> None:
    """Builds left behind by a killed run, a day old and linked from nowhere."""
    linked = {os.path.realpath(str(p)) for p in root.iterdir() if p.is_symlink()}
    for path in root.glob("build-*"):
        try:
            if str(path.resolve()) not in linked and time.time() - path.stat().st_mtime > STALE_BUILD_SECONDS:
                shutil.rmtree(path, ignore_errors=True)
        except OSError:
            continue


# --------------------------------------------------------------------------- processes


def _interpreter(python: str) -> dict:
    code = ("import json, os, platform, sys, sysconfig; p = sysconfig.get_paths(); "
            "print(json.dumps({'version': '%d.%d.%d' % sys.version_info[:3], 'implementation': sys.implementation.name,"
            " 'machine': platform.machine(), 'executable': os.path.realpath(sys.executable), 'prefix': sys.prefix,"
            " 'site': list(dict.fromkeys([p['purelib'], p['platlib']]))}))")
    try:
        result = subprocess.run([python, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise RunFailed(f"cannot run the Python {python}: {exc}")
    if result.returncode != 0:
        raise RunFailed(f"cannot run the Python {python}: {(result.stderr.strip().splitlines() or ['no output'])[-1]}")
    return json.loads(result.stdout)


def _pip(python: str, args: Sequence[str], cwd: Optional[Path] = None) -> subprocess.CompletedProcess:
    env = dict(os.environ, PIP_CACHE_DIR=str(cache_root() / PIP_CACHE))
    return subprocess.run([python, *_PIP, *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          errors="replace", cwd=str(cwd) if cwd else None, env=env)


def _run(command: Sequence[str], failure: str) -> None:
    result = subprocess.run(list(command), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            errors="replace")
    if result.returncode != 0:
        raise RunFailed(f"local environment: {failure}: {_pip_error(result.stdout)}")


def _pip_error(output: str) -> str:
    """pip's own reason, one line: its last 'ERROR:' line, else its last line."""
    lines = [line.strip() for line in (output or "").splitlines() if line.strip() and not line.startswith("WARNING")]
    errors = [line for line in lines if line.startswith("ERROR:")]
    return (errors or lines or ["no output"])[-1]
