"""config.yaml texts found valid are remembered by content with their parsed
document (mltp/config/schema_cache.py): a later verb on the same text neither
parses nor checks it again, nor imports PyYAML, jsonschema or the semantic
checks; any other text is checked, and the config built is the same."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "fraud-detection"

PROBE = """
import sys
from mltp import config
from mltp.errors import InvalidInput
try:
    config.load(sys.argv[1])
    print("valid", "jsonschema" in sys.modules, "yaml" in sys.modules, "mltp.config.checks" in sys.modules)
except InvalidInput as exc:
    print("invalid", "jsonschema" in sys.modules, *exc.details)
"""


def load(repo: Path, cache: Path, **extra) -> str:
    env = dict(os.environ, MLTP_CACHE_DIR=str(cache))
    env.pop("MLTP_NO_DEFINITION_CACHE", None)
    env.update(extra)
    done = subprocess.run([sys.executable, "-c", PROBE, str(repo)], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_a_text_found_valid_is_not_validated_again(tmp_path):
    repo = tmp_path / "fraud-detection"
    shutil.copytree(EXAMPLE, repo, ignore=shutil.ignore_patterns(".mltp", "__pycache__"))
    cache = tmp_path / "cache"
    assert load(repo, cache) == "valid True True True"
    assert load(repo, cache) == "valid False False False"  # the same text: no parser, validator or checks at all
    text = (repo / "config.yaml").read_text()
    (repo / "config.yaml").write_text(text.replace("max_runtime_minutes: 30", "max_runtime_minutes: -5", 1))
    second = load(repo, cache)
    assert second.startswith("invalid True") and "max_runtime_minutes" in second, second  # another text: checked
    assert load(repo, cache).startswith("invalid True")  # a text with problems is never remembered
    (repo / "config.yaml").write_text(text)
    assert load(repo, cache) == "valid False False False"
    assert load(repo, cache, MLTP_NO_DEFINITION_CACHE="1") == "valid True True True"  # the cache turned off


def test_the_entry_depends_on_mltp_and_the_checkers(monkeypatch, tmp_path):
    """mltp's code, the validator and what the semantic checks read (botocore's
    instance types, the SageMaker SDK's framework versions) are in the key."""
    from mltp import definition_cache
    from mltp.config import schema_cache

    monkeypatch.setenv("MLTP_CACHE_DIR", str(tmp_path))
    monkeypatch.delenv("MLTP_NO_DEFINITION_CACHE", raising=False)
    text = (EXAMPLE / "config.yaml").read_text()
    schema_cache.remember_valid(text, {"name": "x"}, {("name",): 3})
    assert schema_cache.known_valid(text) == ({"name": "x"}, {("name",): 3})
    assert schema_cache.known_valid(text + "\n# edited\n") is None
    with monkeypatch.context() as patched:
        patched.setattr(definition_cache, "_code_digest", lambda: "another helper")
        assert schema_cache.known_valid(text) is None
    real = schema_cache.installed_version
    for package in schema_cache.CHECKED_WITH:
        with monkeypatch.context() as patched:
            patched.setattr(schema_cache, "installed_version",
                            lambda name, package=package: "0.0.1" if name == package else real(name))
            assert schema_cache.known_valid(text) is None, package
    assert schema_cache.known_valid(text) is not None


def test_a_damaged_or_misfiled_entry_is_not_used(monkeypatch, tmp_path):
    from mltp.config import schema_cache

    monkeypatch.setenv("MLTP_CACHE_DIR", str(tmp_path))
    monkeypatch.delenv("MLTP_NO_DEFINITION_CACHE", raising=False)
    text, other = "name: a\n", "name: b\n"
    schema_cache.remember_valid(text, {"name": "a"}, {("name",): 1})
    schema_cache.remember_valid(other, {"name": "b"}, {("name",): 1})
    entry = schema_cache._path(schema_cache._key(text))
    entry.write_text(entry.read_text()[:-5])  # truncated
    assert schema_cache.known_valid(text) is None
    entry.write_text(schema_cache._path(schema_cache._key(other)).read_text())  # another text's entry
    assert schema_cache.known_valid(text) is None
    assert schema_cache.known_valid(other) == ({"name": "b"}, {("name",): 1})


def test_the_config_from_the_cache_is_the_one_parsing_builds(monkeypatch, tmp_path):
    """Every field of the typed config, the line of every key among them
    (Config.where), whether it comes from the text or from the cache."""
    from mltp import config

    repo = tmp_path / "fraud-detection"
    shutil.copytree(EXAMPLE, repo, ignore=shutil.ignore_patterns(".mltp", "__pycache__"))
    monkeypatch.setenv("MLTP_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("MLTP_NO_DEFINITION_CACHE", "1")
    parsed = config.load(repo)
    monkeypatch.delenv("MLTP_NO_DEFINITION_CACHE")
    assert config.load(repo) == parsed  # parsed, checked and remembered
    assert list((tmp_path / "cache" / "valid-configs").glob("*.json"))
    from mltp import yaml_source

    monkeypatch.setattr(yaml_source, "parse", lambda text: pytest.fail("parsed again"))
    cached = config.load(repo)  # from the cache
    assert cached == parsed and cached.lines == parsed.lines
    assert cached.where("steps.training.instance_type") == parsed.where("steps.training.instance_type")


def test_the_validator_version_is_read_without_importlib_metadata():
    """The version in the key is the installed one (what importlib.metadata says),
    read from the .dist-info folder's name, without asking importlib.metadata."""
    from importlib import metadata

    from mltp.config import schema_cache

    assert schema_cache.validator_version() == metadata.version("jsonschema")
