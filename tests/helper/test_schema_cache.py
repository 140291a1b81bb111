"""config.yaml texts the schema found valid are remembered by content
(mltp/config/schema_cache.py): a later verb on the same text neither validates
it against the schema again nor imports jsonschema; any other text is checked."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "fraud-detection"

PROBE = """
import sys
from mltp import config
from mltp.errors import InvalidInput
try:
    config.load(sys.argv[1])
    print("valid", "jsonschema" in sys.modules)
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
    assert load(repo, cache) == "valid True"
    assert load(repo, cache) == "valid False"  # the same text: no jsonschema at all
    text = (repo / "config.yaml").read_text()
    (repo / "config.yaml").write_text(text.replace("max_runtime_minutes: 30", "max_runtime_minutes: -5", 1))
    second = load(repo, cache)
    assert second.startswith("invalid True") and "max_runtime_minutes" in second, second  # another text: checked
    assert load(repo, cache).startswith("invalid True")  # a text with problems is never remembered
    (repo / "config.yaml").write_text(text)
    assert load(repo, cache) == "valid False"
    assert load(repo, cache, MLTP_NO_DEFINITION_CACHE="1") == "valid True"  # the cache turned off


def test_the_entry_depends_on_mltp_and_the_validator(monkeypatch, tmp_path):
    from mltp import definition_cache
    from mltp.config import schema_cache

    monkeypatch.setenv("MLTP_CACHE_DIR", str(tmp_path))
    monkeypatch.delenv("MLTP_NO_DEFINITION_CACHE", raising=False)
    text = (EXAMPLE / "config.yaml").read_text()
    schema_cache.remember_valid(text)
    assert schema_cache.known_valid(text) and not schema_cache.known_valid(text + "\n# edited\n")
    monkeypatch.setattr(definition_cache, "_code_digest", lambda: "another helper")
    assert not schema_cache.known_valid(text)
