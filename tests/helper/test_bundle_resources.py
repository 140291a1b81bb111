"""The helper bundled in resources/mltp/ must be the helper in helper/.

The Jenkins step installs the wheel named by bundle.txt with the hashed
requirements beside it; a wheel built before the last change to helper/ would
ship old code to every build. `make bundle` refreshes all three files.
"""

import re
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
RESOURCES = ROOT / "resources" / "mltp"
SOURCE = ROOT / "helper" / "src"
STALE = "resources/mltp is stale against helper/: run `make bundle`"


@pytest.fixture(scope="module")
def wheel():
    name = (RESOURCES / "bundle.txt").read_text().strip()
    assert re.fullmatch(r"mltp-[0-9][\w.]*-py3-none-any\.whl", name)
    with zipfile.ZipFile(RESOURCES / name) as archive:
        yield {info.filename: archive.read(info) for info in archive.infolist()}


def test_bundle_names_the_only_wheel():
    wheels = sorted(p.name for p in RESOURCES.glob("*.whl"))
    assert wheels == [(RESOURCES / "bundle.txt").read_text().strip()]


def test_wheel_holds_exactly_the_current_sources(wheel):
    packaged = {n: data for n, data in wheel.items() if not n.split("/")[0].endswith(".dist-info")}
    sources = {
        p.relative_to(SOURCE).as_posix(): p.read_bytes()
        for p in SOURCE.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts and ".egg-info" not in str(p) and p.suffix in (".py", ".json")
    }
    assert sorted(packaged) == sorted(sources), STALE
    for name, data in sources.items():
        assert packaged[name] == data, f"{name}: {STALE}"


def _pyproject():
    tomllib = pytest.importorskip("tomllib")
    return tomllib.loads((ROOT / "helper" / "pyproject.toml").read_text())["project"]


def _names(requirements):
    return {re.match(r"[A-Za-z0-9_.-]+", r).group(0).lower().replace("_", "-") for r in requirements}


def test_wheel_metadata_matches_pyproject(wheel):
    project = _pyproject()
    (metadata,) = [data for name, data in wheel.items() if name.endswith(".dist-info/METADATA")]
    text = metadata.decode()
    version = re.search(r"^Version: (.+)$", text, re.M).group(1)
    init = (SOURCE / "mltp" / "__init__.py").read_text()
    assert f'__version__ = "{version}"' in init, STALE
    declared = [line.split(": ", 1)[1] for line in text.splitlines() if line.startswith("Requires-Dist: ")]
    wanted = list(project["dependencies"]) + list(project["optional-dependencies"]["local"])
    assert _names(declared) == _names(wanted), STALE


LOCKS = {"aws": RESOURCES / "requirements-aws.txt", "local": RESOURCES / "requirements-local.txt"}
# What only the emulator brings: never in the AWS-mode install.
EMULATOR_ONLY = {"moto", "cfn-lint", "sympy", "networkx", "antlr4-python3-runtime", "flask", "aws-sam-translator"}


def _pins(text):
    """name -> {(version, marker)} of a lock written by uv pip compile."""
    pins = {}
    for m in re.finditer(r"^([A-Za-z0-9_.-]+)==([^\s;]+)(?:\s*;\s*([^\\\n]+?))?\s*\\?$", text, re.M):
        pins.setdefault(m.group(1).lower().replace("_", "-"), set()).add((m.group(2), (m.group(3) or "").strip()))
    return pins


def _wanted(project, mode):
    wanted = list(project["dependencies"])
    if mode == "local":
        wanted += list(project["optional-dependencies"]["local"])
    return wanted


@pytest.mark.parametrize("mode", sorted(LOCKS))
def test_each_lock_pins_every_dependency_with_hashes(mode):
    from packaging.requirements import Requirement

    project = _pyproject()
    text = LOCKS[mode].read_text()
    pins = _pins(text)
    for requirement in map(Requirement, _wanted(project, mode)):
        name = requirement.name.lower().replace("_", "-")
        assert name in pins, f"{name} is not pinned in {LOCKS[mode].name}; {STALE}"
        for version, _marker in pins[name]:
            assert requirement.specifier.contains(version, prereleases=True), \
                f"{LOCKS[mode].name} pins {name}=={version}, outside {requirement}; {STALE}"
    entries = [e for e in re.split(r"\n(?=[A-Za-z0-9_.-]+==)", text.strip()) if e and not e.startswith("#")]
    assert entries and all("--hash=sha256:" in e for e in entries)
    assert not re.search(r"^mltp==", text, re.M), "the helper itself comes from the wheel, not the requirements"


def test_the_aws_lock_is_the_local_lock_without_the_emulator():
    aws, local = _pins(LOCKS["aws"].read_text()), _pins(LOCKS["local"].read_text())
    assert not EMULATOR_ONLY & set(aws), "the AWS-mode install must not carry the emulator"
    assert "moto" in local
    for name, versions in aws.items():
        assert name in local and versions <= local[name], f"{name}: one version in both locks ({versions} vs {local.get(name)})"
    assert not (RESOURCES / "requirements.txt").exists(), "one lock per mode, no third"
