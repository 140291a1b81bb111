"""The definition cache: a hit is the fresh render byte for byte, any change to
an input misses, a damaged entry is ignored and rewritten, and a hit imports
neither SDK."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from mltp import config as config_mod
from mltp import definition, definition_cache

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "fraud-detection"


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MLTP_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("MLTP_NO_DEFINITION_CACHE", raising=False)
    return tmp_path / "cache" / "definitions"


@pytest.fixture
def cfg():
    return config_mod.load(EXAMPLE, None)


def _entries(cache):
    return sorted(cache.glob("*.json")) if cache.is_dir() else []


def test_a_hit_is_the_fresh_render_byte_for_byte(cache, cfg):
    first = definition.render(cfg)
    assert len(_entries(cache)) == 1
    again = definition.render(cfg)
    assert again == first == definition.render_fresh(cfg)
    assert len(_entries(cache)) == 1


def test_where_the_repo_lives_does_not_matter(cache, cfg, tmp_path):
    copy = tmp_path / "elsewhere" / "repo"
    shutil.copytree(EXAMPLE, copy, ignore=shutil.ignore_patterns(".mltp"))
    assert definition_cache.key(config_mod.load(copy, None)) == definition_cache.key(cfg)


def test_every_input_is_in_the_key(cache, cfg, tmp_path, monkeypatch):
    base = definition_cache.key(cfg)
    changed = tmp_path / "changed"
    shutil.copytree(EXAMPLE, changed, ignore=shutil.ignore_patterns(".mltp"))
    text = (changed / "config.yaml").read_text()
    (changed / "config.yaml").write_text(text.replace("min: 0.90", "min: 0.91"))
    assert "min: 0.91" in (changed / "config.yaml").read_text()
    assert definition_cache.key(config_mod.load(changed, None)) != base

    monkeypatch.setattr(definition_cache, "__version__", "9.9.9")
    assert definition_cache.key(cfg) != base
    monkeypatch.undo()
    monkeypatch.setenv("MLTP_CACHE_DIR", str(cache.parent))

    monkeypatch.setattr(definition_cache, "_code_digest", lambda: "edited in place")
    assert definition_cache.key(cfg) != base
    monkeypatch.undo()
    monkeypatch.setenv("MLTP_CACHE_DIR", str(cache.parent))

    for sdk in definition_cache.SDKS:
        versions = dict(definition_cache._sdk_versions(), **{sdk: "0.0.1"})
        monkeypatch.setattr(definition_cache, "_sdk_versions", lambda v=versions: v)
        assert definition_cache.key(cfg) != base, sdk
        monkeypatch.undo()
    assert definition_cache.key(cfg) == base


@pytest.mark.parametrize("damage", ["truncated", "edited", "other-key", "not-json"])
def test_a_damaged_entry_is_ignored_and_rewritten(cache, cfg, damage):
    good = definition.render(cfg)
    (entry,) = _entries(cache)
    doc = json.loads(entry.read_text())
    if damage == "truncated":
        entry.write_text(entry.read_text()[:100])
    elif damage == "edited":
        doc["definition"] = doc["definition"].replace('"NumericGreaterThanEquals": 0.9', '"NumericGreaterThanEquals": 0.1')
        assert doc["definition"] != good
        entry.write_text(json.dumps(doc))
    elif damage == "other-key":
        doc["key"] = "0" * 64
        entry.write_text(json.dumps(doc))
    else:
        entry.write_bytes(b"\x00\xff")
    assert definition.render(cfg) == good
    assert json.loads(entry.read_text())["definition"] == good


def test_turned_off_by_the_environment(cache, cfg, monkeypatch):
    monkeypatch.setenv("MLTP_NO_DEFINITION_CACHE", "1")
    definition.render(cfg)
    assert _entries(cache) == []


def test_a_hit_imports_neither_sdk(tmp_path):
    """What makes an unchanged deploy fast: the SDKs are not even imported."""
    env = {"MLTP_CACHE_DIR": str(tmp_path / "cache"), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    probe = ("import sys; from mltp import config; from mltp.commands.render import render; "
             "text = render(config.load(sys.argv[1], None)); "
             "print(sorted(m for m in ('sagemaker', 'stepfunctions') if m in sys.modules))")
    cold = subprocess.run([sys.executable, "-c", probe, str(EXAMPLE)], env=env, capture_output=True, text=True)
    assert cold.returncode == 0, cold.stderr
    assert cold.stdout.strip() == "['sagemaker', 'stepfunctions']"
    warm = subprocess.run([sys.executable, "-c", probe, str(EXAMPLE)], env=env, capture_output=True, text=True)
    assert warm.returncode == 0, warm.stderr
    assert warm.stdout.strip() == "[]"
