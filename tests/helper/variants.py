"""Config variants of a model repo: its config.yaml, edited, in a repo of its own.

The checks that walk every rendered task or recorded call (IAM coverage, the
API's documented rules) render a few variants each, so every optional part of
the definition appears in at least one of them."""

from pathlib import Path

import yaml

from mltp import config as config_mod


def config_variant(tmp_path: Path, source: Path, edit=None, name: str = "variant"):
    data = yaml.safe_load((source / "config.yaml").read_text())
    if edit:
        edit(data)
    repo = tmp_path / name
    repo.mkdir()
    (repo / "config.yaml").write_text(yaml.safe_dump(data))
    return config_mod.load(repo)
