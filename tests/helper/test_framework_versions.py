"""Every framework version validate accepts has a local answer (docs/contract.md, 8.2).

The row table (framework_containers.py) against the SageMaker SDK's own image
table; the decision of the main package (local/versions.py) against a real
project page of the package index, read through package_index.py; the
toolkit's release by interpreter (local/toolkit.py), with a real Python 3.7
where the agent has one.
"""

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner
from packaging.tags import Tag

from mltp import framework_containers
from mltp.cli import main
from mltp.config import framework_versions
from mltp.errors import InvalidInput
from mltp.local import containers, envs, package_index, toolkit, versions

FRAMEWORKS = ("sklearn", "xgboost", "pytorch")
CP311 = {Tag("cp311", "cp311", "manylinux_2_17_x86_64"), Tag("cp311", "abi3", "manylinux_2_17_x86_64"),
         Tag("py3", "none", "manylinux_2_17_x86_64"), Tag("py3", "none", "any")}


# --------------------------------------------------------------------------- the rows


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_validate_accepts_exactly_the_versions_that_have_rows(framework):
    sdk = framework_versions(framework)
    offered = set(sdk["versions"]) | set(sdk["aliases"])
    refused = {v for v in offered if framework_containers.not_a_container(framework, v)}
    assert set(framework_containers.accepted(framework)) == offered - refused
    for version in offered - refused:
        row = containers.container(framework, version)
        assert row is not None, f"{framework} {version} has no container row"
    for alias, target in sdk["aliases"].items():
        assert framework_containers.resolve(framework, alias) == target


@pytest.mark.parametrize("key", sorted(framework_containers.ROWS))
def test_each_row_names_the_framework_first_and_the_container_python(key):
    framework, version = key
    row = framework_containers.ROWS[key]
    main_package = {"sklearn": "scikit-learn", "xgboost": "xgboost", "pytorch": "torch"}[framework]
    assert containers.main_package(row) == main_package
    assert row["python"].startswith("3.") and all(isinstance(v, str) and v for v in row["packages"].values())
    sdk_row = framework_versions(framework)["versions"][version]
    pys = [p for p in sdk_row.get("py_versions") or [] if p.startswith("py3") and len(p) > 3]
    if pys:  # where the SDK names the Python (py38, py310), the row has the same one
        assert row["python"].replace(".", "") == pys[-1][2:], (key, pys)


def _repo(tmp_path: Path, framework: str, version: str) -> Path:
    """The example repo with every step on one framework version."""
    root = Path(__file__).resolve().parents[2]
    repo = tmp_path / "repo"
    shutil.copytree(root / "examples" / "fraud-detection", repo,
                    ignore=shutil.ignore_patterns(".mltp", "__pycache__"))
    config = repo / "config.yaml"
    text = config.read_text()
    old = 'framework: sklearn\n    framework_version: "1.2-1"'
    assert text.count(old) == 3
    text = text.replace(old, f'framework: {framework}\n    framework_version: "{version}"')
    config.write_text(text)
    return repo


@pytest.mark.parametrize("framework,version,ok", [
    ("sklearn", "0.20.0", True), ("xgboost", "1.0-1", True), ("pytorch", "2.1", True), ("pytorch", "1.8.1", True),
    ("xgboost", "1", False), ("xgboost", "latest", False),
])
def test_validate_on_rows(tmp_path, framework, version, ok):
    repo = _repo(tmp_path, framework, version)
    result = CliRunner().invoke(main, ["validate", str(repo)])
    if ok:
        assert "framework_version" not in result.output, result.output
    else:
        assert result.exit_code == 2, result.output
        assert "retired XGBoost 0.72 built-in algorithm image, which runs no scripts" in result.output


def test_a_version_the_sdk_lists_without_a_row_is_refused(monkeypatch):
    from mltp.config.checks import framework_row_problem

    monkeypatch.delitem(framework_containers.ROWS, ("sklearn", "1.4-2"))
    problem = framework_row_problem("sklearn", "1.4-2")
    assert "sklearn 1.4-2: mltp has no record of what that container holds" in problem
    assert framework_row_problem("sklearn", "1.2-1") is None


# --------------------------------------------------------------------------- the decision


def _releases(*files):
    return package_index.Releases("scikit-learn", tuple(package_index.File(*f) for f in files))


SKLEARN = _releases(
    ("scikit_learn-0.20.0-cp37-cp37m-manylinux1_x86_64.whl", None),
    ("scikit_learn-0.20.0-cp36-cp36m-manylinux1_x86_64.whl", None),
    ("scikit-learn-0.20.0.tar.gz", None),
    ("scikit_learn-0.24.2-cp39-cp39-manylinux2010_x86_64.whl", ">=3.6"),
    ("scikit_learn-1.0.2-cp310-cp310-manylinux_2_17_x86_64.whl", ">=3.7"),
    ("scikit_learn-1.1.3-cp311-cp311-manylinux_2_17_x86_64.whl", ">=3.8"),
    ("scikit_learn-1.2.1-cp311-cp311-manylinux_2_17_x86_64.whl", ">=3.8"),
    ("scikit_learn-1.3.0rc1-cp311-cp311-manylinux_2_17_x86_64.whl", ">=3.8"),
    ("scikit_learn-1.2.0-cp311-cp311-manylinux_2_17_x86_64.whl", ">=3.8", True),  # yanked
)


def _row(version, python="3.7"):
    return {"python": python, "packages": {"scikit-learn": version, "numpy": "1.19.5"}}


def test_the_containers_version_when_it_installs():
    choice = versions.choose("sklearn", "1.2-1", _row("1.2.1", "3.9"), SKLEARN, python="3.11.7", allow_nearest=False,
                             tags=CP311)
    assert (choice.chosen, choice.note) == ("1.2.1", "")
    assert choice.row == _row("1.2.1", "3.9")


def test_same_major_is_used_and_said():
    choice = versions.choose("sklearn", "1.0-1", _row("1.0.2", "3.8"), SKLEARN, python="3.11.7", allow_nearest=False,
                             tags=CP311)
    assert choice.chosen == "1.1.3"  # the closest newer final release; not the yanked 1.2.0, not 1.3.0rc1
    assert choice.row["packages"] == {"scikit-learn": "1.1.3", "numpy": "1.19.5"}  # supporting pins kept
    assert choice.note == ("sklearn 1.0-1: the container has scikit-learn 1.0.2 (Python 3.8), which does not install "
                           "on this agent's Python 3.11.7; using scikit-learn 1.1.3, the nearest 1.x release that does")


def test_another_major_refuses_naming_the_version_the_python_and_the_ways_out():
    with pytest.raises(InvalidInput) as caught:
        versions.choose("sklearn", "0.20.0", _row("0.20.0"), SKLEARN, python="3.11.7", allow_nearest=False,
                        tags=CP311, where="config.yaml:9: steps.training.framework_version")
    assert caught.value.exit_code == 2
    assert caught.value.message == (
        "config.yaml:9: steps.training.framework_version: sklearn 0.20.0's container has scikit-learn 0.20.0 on "
        "Python 3.7 (built for Python 3.6 to 3.7), which does not install on this agent's Python 3.11.7; the nearest "
        "release that does, scikit-learn 1.1.3, is another major version. Run the scripts with a Python 3.7 that has "
        "scikit-learn 0.20.0: --python PATH (MLTP_PYTHON, the Jenkins step's scriptPython); or accept "
        "scikit-learn 1.1.3: --allow-nearest (the Jenkins step's allowNearest)")


def test_zero_major_releases_differ_by_minor():
    # 0.20 -> 0.24 is another major version for a 0.x release, as 0.x -> 1.x is.
    only_024 = _releases(("scikit_learn-0.24.2-cp311-cp311-manylinux_2_17_x86_64.whl", None))
    with pytest.raises(InvalidInput, match="scikit-learn 0.24.2, is another major version"):
        versions.choose("sklearn", "0.20.0", _row("0.20.0"), only_024, python="3.11.7", allow_nearest=False,
                        tags=CP311)


def test_allow_nearest_accepts_another_major_and_says_so():
    choice = versions.choose("sklearn", "0.20.0", _row("0.20.0"), SKLEARN, python="3.11.7", allow_nearest=True,
                             tags=CP311)
    assert choice.chosen == "1.1.3" and choice.row["packages"]["scikit-learn"] == "1.1.3"
    assert choice.note.endswith("using scikit-learn 1.1.3, another major version, accepted by --allow-nearest")


def test_nothing_installs_refuses_with_python_as_the_way_out():
    none = _releases(("scikit_learn-0.20.0-cp37-cp37m-manylinux1_x86_64.whl", None))
    with pytest.raises(InvalidInput) as caught:
        versions.choose("sklearn", "0.20.0", _row("0.20.0"), none, python="3.11.7", allow_nearest=True, tags=CP311)
    assert "no release of scikit-learn does: run the scripts with a Python 3.7 that has scikit-learn 0.20.0: " \
           "--python PATH" in caught.value.message


def test_requires_python_counts():
    rel = _releases(("scikit_learn-1.1.3-py3-none-any.whl", ">=3.12"), ("scikit_learn-1.1.2-py3-none-any.whl", ">=3.8"))
    choice = versions.choose("sklearn", "1.0-1", _row("1.1.3", "3.8"), rel, python="3.11.7", allow_nearest=False,
                             tags=CP311)
    assert choice.chosen == "1.1.2"


def test_an_environment_already_built_answers_without_the_index():
    choice = versions.choose("sklearn", "1.2-1", _row("1.2.1", "3.9"), None, python="3.11.7", allow_nearest=False,
                             installed="1.2.1")
    assert (choice.chosen, choice.note) == ("1.2.1", "")


def test_no_index_and_nothing_kept_says_it_could_not_check():
    choice = versions.choose("sklearn", "0.20.0", _row("0.20.0"), None, python="3.11.7", allow_nearest=False)
    assert choice.chosen == "0.20.0"
    assert "could not check whether scikit-learn 0.20.0 installs on Python 3.11.7" in choice.note


# --------------------------------------------------------------------------- the index


class _Index:
    """A package index of our own on loopback: a PEP 691 JSON page, or a PEP 503 HTML one."""

    def __init__(self, tmp_path, html=False, files=None):
        import http.server
        import threading

        files = files if files is not None else [
            {"filename": "scikit_learn-1.2.1-cp311-cp311-manylinux_2_17_x86_64.whl", "requires-python": ">=3.8",
             "url": "x", "hashes": {}},
            {"filename": "scikit_learn-0.20.0-cp37-cp37m-manylinux1_x86_64.whl", "url": "x", "hashes": {},
             "yanked": False}]
        self.hits = []
        hits = self.hits

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                hits.append(self.path)
                if html:
                    body = "".join(f'<a href="../x/{f["filename"]}#sha256=0" data-requires-python="'
                                   f'{(f.get("requires-python") or "").replace(">", "&gt;")}">{f["filename"]}</a>'
                                   for f in files).encode()
                    kind = "text/html"
                else:
                    body = json.dumps({"meta": {"api-version": "1.0"}, "name": "scikit-learn", "files": files}).encode()
                    kind = "application/vnd.pypi.simple.v1+json"
                self.send_response(200)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/simple"

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.mark.parametrize("html", [False, True])
def test_the_index_page_is_read_once_a_day_and_kept_for_offline(tmp_path, monkeypatch, html):
    index = _Index(tmp_path, html=html)
    try:
        monkeypatch.setenv("PIP_INDEX_URL", index.url)
        cache = tmp_path / "idx"
        first = package_index.releases("Scikit_Learn", cache)
        assert first.installable(tags=CP311, python="3.11.7") == {"1.2.1"}
        assert first.pythons("0.20.0") == ["3.7"]
        assert index.hits == ["/simple/scikit-learn/"]
        again = package_index.releases("scikit-learn", cache)
        assert again == first and len(index.hits) == 1  # kept: no second request
    finally:
        index.close()
    # A day later, with the index gone: the kept page is used, however old.
    kept = cache / "scikit-learn.json"
    data = json.loads(kept.read_text())
    data["fetched"] -= package_index.KEEP_SECONDS + 1
    kept.write_text(json.dumps(data))
    said = []
    assert package_index.releases("scikit-learn", cache, say=said.append) == first
    assert said == []
    kept.unlink()
    assert package_index.releases("scikit-learn", cache, say=said.append) is None
    assert len(said) == 1 and said[0].startswith("cannot read scikit-learn's page of the package index (")


# --------------------------------------------------------------------------- the toolkit


@pytest.mark.parametrize("python,expected", [
    ("3.7.16", "sagemaker-training==4.6.1"), ("3.8.18", "sagemaker-training==5.1.4"),
    ("3.11.7", "sagemaker-training==5.1.4"), ("3.13.0", "sagemaker-training==5.1.4"),
])
def test_the_toolkit_follows_the_interpreter(python, expected):
    assert toolkit.for_python(python) == expected


def test_an_interpreter_older_than_3_7_is_refused():
    with pytest.raises(InvalidInput) as caught:
        toolkit.for_python("3.6.15", named="--python /opt/py36/bin/python")
    assert caught.value.message == (
        "--python /opt/py36/bin/python is Python 3.6.15: local runs need Python 3.7 or later (AWS's training toolkit, "
        "sagemaker-training, supports no older one); give --python (MLTP_PYTHON) a Python 3.7 or later")


def test_the_default_environments_keep_their_keys():
    """The toolkit choice leaves the key of an environment on 3.8+ as it was (no rebuild on upgrade)."""
    p = envs.plan("sklearn", "1.2-1", None)
    assert p.toolkit == envs.TOOLKIT == "sagemaker-training==5.1.4"
    assert envs.plan("pytorch", "2.1", None).row == framework_containers.ROWS[("pytorch", "2.1.0")]


def _pyenv(version):
    for base in (os.environ.get("PYENV_ROOT"), os.path.expanduser("~/.pyenv")):
        if base:
            found = sorted(Path(base, "versions").glob(f"{version}.*/bin/python{version}"))
            if found:
                return str(found[-1])
    return shutil.which(f"python{version}")


def test_an_older_python_plans_its_own_toolkit():
    py37 = _pyenv("3.7")
    if not py37:
        pytest.skip("no Python 3.7 on this agent")
    p = envs.plan("image", None, None, override=py37)
    assert p.toolkit == "sagemaker-training==4.6.1" and p.interpreter["version"].startswith("3.7.")


# --------------------------------------------------------------------------- a local run


def test_a_local_run_of_a_version_that_cannot_be_had_stops_before_anything_starts(tmp_path):
    """sklearn 0.20.0 on this agent: scikit-learn 0.20.0 has builds up to Python 3.7
    only (our loopback index says so), so the run stops with exit 2 before the
    emulator starts or anything is built, naming the key, the version, the Python
    and both ways out; nothing is left in the environments' cache."""
    if sys.version_info[:2] <= (3, 7):
        pytest.skip("the agent's Python is the container's")
    repo = _repo(tmp_path, "sklearn", "0.20.0")
    index = _Index(tmp_path)
    try:
        cache = tmp_path / "cache"
        env = {k: v for k, v in os.environ.items() if not k.startswith(("BRANCH_", "CHANGE_", "BUILD_", "MLTP_"))}
        env.update(MLTP_CACHE_DIR=str(cache), PIP_INDEX_URL=index.url)
        proc = subprocess.run([sys.executable, "-m", "mltp.cli", "run", ".", "--local", "--run-name", "old"],
                              cwd=repo, env=env, capture_output=True, text=True, timeout=300)
    finally:
        index.close()
    assert proc.returncode == 2, proc.stdout + proc.stderr
    line = f"config.yaml:{_line(repo, 'framework_version')}: steps.preprocessing.framework_version: sklearn 0.20.0's " \
           "container has scikit-learn 0.20.0 on Python 3.7"
    assert line in proc.stderr, proc.stderr
    assert "--python PATH (MLTP_PYTHON, the Jenkins step's scriptPython)" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert "emulator at" not in proc.stdout and "building the environment" not in proc.stdout
    assert not [p for p in (cache / "envs").iterdir() if p.name != ".index"]


def _line(repo: Path, key: str) -> int:
    return next(i for i, line in enumerate((repo / "config.yaml").read_text().splitlines(), 1) if key in line)


def test_a_local_run_with_python_3_7(tmp_path):
    """--python with a Python 3.7: its overlay gets sagemaker-training 4.6.1 (5.x
    needs protobuf 5, which needs 3.8) and the whole pipeline passes with it:
    processing through mltp's entry, training through that toolkit. The overlay
    is built once (a minute and a half) and kept in the shared test cache."""
    py37 = _pyenv("3.7")
    if not py37:
        pytest.skip("no Python 3.7 on this agent")
    repo = tmp_path / "tiny"
    shutil.copytree(Path(__file__).resolve().parents[2] / "tests" / "fixtures" / "tiny", repo)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BRANCH_", "CHANGE_", "BUILD_", "MLTP_"))}
    env["MLTP_CACHE_DIR"] = os.environ["MLTP_CACHE_DIR"]
    proc = subprocess.run([sys.executable, "-m", "mltp.cli", "run", ".", "--local", "--run-name", "py37",
                           "--python", py37], cwd=repo, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "tiny-model run py37: PASSED" in proc.stdout
    overlay = envs.plan("image", None, None, override=py37)
    marker = json.loads((envs.cache_root() / overlay.name / envs.MARKER).read_text())
    assert marker["toolkit"] == "sagemaker-training==4.6.1" and marker["python"].startswith("3.7.")


def test_a_stand_in_of_the_same_major_is_said_at_the_start_and_in_the_report(tmp_path, monkeypatch):
    """A container whose scikit-learn (1.2.0 here) has no build for this Python,
    while 1.2.1 has one: the run uses 1.2.1, says so before anything starts, and
    its report keeps the line. (With 1.2.1 standing in, the environment is the
    default sklearn 1.2-1 one, already built: no build in this test.)"""
    from mltp.local import versions as versions_mod

    row = framework_containers.ROWS[("sklearn", "1.2-1")]
    monkeypatch.setitem(framework_containers.ROWS, ("sklearn", "1.2-1"),
                        dict(row, packages=dict(row["packages"], **{"scikit-learn": "1.2.0"})))
    monkeypatch.setattr(versions_mod, "index_cache", lambda: tmp_path / "index-cache")
    index = _Index(tmp_path, files=[
        {"filename": "scikit_learn-1.2.0-cp37-cp37m-manylinux1_x86_64.whl", "url": "x", "hashes": {}},
        {"filename": "scikit_learn-1.2.1-py3-none-any.whl", "url": "x", "hashes": {}}])
    repo = tmp_path / "tiny"
    shutil.copytree(Path(__file__).resolve().parents[2] / "tests" / "fixtures" / "tiny", repo)
    for name in [k for k in os.environ if k.startswith(("BRANCH_", "CHANGE_", "BUILD_", "AWS_ENDPOINT"))
                 or (k.startswith("MLTP_") and k != "MLTP_CACHE_DIR")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("PIP_INDEX_URL", index.url)
    monkeypatch.chdir(repo)
    try:
        result = CliRunner().invoke(main, ["run", ".", "--local", "--run-name", "stand-in"])
    finally:
        index.close()
    assert result.exit_code == 0, result.output
    said = ("sklearn 1.2-1: the container has scikit-learn 1.2.0 (Python 3.9), which does not install on this agent's "
            f"Python {'%d.%d.%d' % sys.version_info[:3]}; using scikit-learn 1.2.1, the nearest 1.x release that does")
    lines = result.output.splitlines()
    assert f"local: {said}" in lines
    assert lines.index(f"local: {said}") < next(i for i, line in enumerate(lines) if "emulator at" in line)
    report = json.loads((repo / ".mltp" / "runs" / "stand-in" / "report.json").read_text())
    assert f"local environment: {said}" in report["warnings"]
    assert f"local environment: {said}" in (repo / ".mltp" / "runs" / "stand-in" / "report.md").read_text()


def test_an_index_page_that_lists_nothing_counts_as_unreachable(tmp_path, monkeypatch):
    index = _Index(tmp_path, files=[{"filename": "README.txt", "url": "x", "hashes": {}}])
    try:
        monkeypatch.setenv("PIP_INDEX_URL", index.url)
        said = []
        got = package_index.releases("scikit-learn", tmp_path / "idx", say=said.append)
        assert got is not None and got.installable(tags=CP311, python="3.11.7") == set()  # a page with files: read
    finally:
        index.close()
    empty = _Index(tmp_path, files=[])
    try:
        monkeypatch.setenv("PIP_INDEX_URL", empty.url)
        said = []
        assert package_index.releases("numpy", tmp_path / "idx2", say=said.append) is None
        assert said == ["cannot read numpy's page of the package index (it lists no files)"]
    finally:
        empty.close()
