"""The corpus of broken configs and repos under tests/fixtures/invalid/.

Each case is a folder laid over tests/fixtures/base/ (a valid minimal repo):
its files replace the base's, `remove.txt` lists base files to delete, a
`dot-git/` folder is laid as `.git/` (git cannot track a folder of that name),
and `expected.txt` is exactly what `mltp validate` must print to stderr. Every case
must exit 2 without a traceback and without touching the network.
"""

import os
import shutil
import socket
from pathlib import Path

import pytest
from click.testing import CliRunner

from mltp.cli import main

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
CASES = sorted(p.name for p in (FIXTURES / "invalid").iterdir() if p.is_dir())


def build_case(name: str, target: Path) -> Path:
    shutil.copytree(FIXTURES / "base", target)
    case = FIXTURES / "invalid" / name
    removed = case / "remove.txt"
    if removed.exists():
        for rel in removed.read_text().split():
            (target / rel).unlink()
    for path in sorted(case.rglob("*")):
        rel = path.relative_to(case)
        if rel.parts[0] == "dot-git":
            rel = Path(".git", *rel.parts[1:])
        if rel.name in ("expected.txt", "remove.txt") and len(rel.parts) == 1:
            continue
        dest = target / rel
        if path.is_symlink():
            dest.parent.mkdir(parents=True, exist_ok=True)
            if dest.exists() or dest.is_symlink():
                dest.unlink()
            os.symlink(os.readlink(path), dest)
        elif path.is_dir():
            dest.mkdir(parents=True, exist_ok=True)
        else:
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, dest)
    return target


@pytest.fixture
def no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("validate must not open network connections")

    monkeypatch.setattr(socket.socket, "connect", refuse)


def test_corpus_is_large_enough():
    assert len(CASES) >= 30


@pytest.mark.parametrize("name", CASES)
def test_invalid_case(name, tmp_path, monkeypatch, no_network):
    repo = build_case(name, tmp_path / "repo")
    monkeypatch.chdir(repo)
    result = CliRunner().invoke(main, ["validate", "."], env={"MLTP_ERROR_FILE": str(tmp_path / "error.txt")})
    stderr = result.stderr if hasattr(result, "stderr") else result.output
    assert "Traceback" not in stderr
    expected = (FIXTURES / "invalid" / name / "expected.txt").read_text()
    assert stderr == expected
    assert result.exit_code == 2
    # The one line the Jenkins step shows names file, line and key of the first problem.
    error_line = (tmp_path / "error.txt").read_text()
    assert error_line.count("\n") == 1 and error_line.strip()


def test_base_is_valid(tmp_path, monkeypatch):
    repo = build_case(CASES[0], tmp_path / "repo")  # any case: then restore the base
    shutil.rmtree(repo)
    shutil.copytree(FIXTURES / "base", repo)
    monkeypatch.chdir(repo)
    result = CliRunner().invoke(main, ["validate", "."])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("ok: config.yaml valid")
