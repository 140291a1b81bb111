"""The contract is documented inside this repository (docs/contract.md), and
whatever points to it, the shipped JSON Schema, errors, READMEs, lands on a real
section; nothing in the repository points outside it."""

import json
import re
import subprocess
from pathlib import Path

from mltp.config_schema import json_schema

ROOT = Path(__file__).resolve().parents[2]
CONTRACT = ROOT / "docs" / "contract.md"


def _anchors(markdown: str) -> set:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens."""
    out = set()
    for line in markdown.splitlines():
        match = re.match(r"^#{1,6}\s+(.*?)\s*$", line)
        if match:
            text = re.sub(r"[^\w\- ]", "", match.group(1).lower().replace("`", ""))
            out.add(text.replace(" ", "-"))
    return out


def _tracked_text_files():
    names = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    for name in names:
        path = ROOT / name
        if path.suffix in (".whl", ".gz", ".png") or not path.is_file():
            continue
        try:
            yield name, path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue


def test_every_schema_description_points_to_a_section_of_the_contract():
    anchors = _anchors(CONTRACT.read_text())
    found = re.findall(r"docs/contract\.md(#[\w-]+)?", json.dumps(json_schema()))
    assert len(found) >= 10
    for anchor in found:
        assert anchor, "every pointer names a section"
        assert anchor[1:] in anchors, f"{anchor} is not a heading of docs/contract.md"


def test_the_shipped_schema_is_the_documented_one():
    shipped = json.loads((ROOT / "resources" / "mltp" / "config.schema.json").read_text())
    assert shipped == json_schema(), "run `make schema`"
    assert "docs/contract.md#2-configyaml" in shipped["description"]


def test_links_into_the_contract_land_on_a_heading():
    anchors = _anchors(CONTRACT.read_text())
    for name, text in _tracked_text_files():
        for anchor in re.findall(r"contract\.md#([\w-]+)", text):
            assert anchor in anchors, f"{name}: #{anchor} is not a heading of docs/contract.md"


def test_nothing_in_the_repository_points_outside_it():
    for name, text in _tracked_text_files():
        if name == "tests/helper/test_docs.py":
            continue
        assert "../shared" not in text and "shared/CONTRACT" not in text, name
        assert not re.search(r"\bCONTRACT(\.md| section| \d)", text), f"{name} refers to the old CONTRACT"


def test_every_relative_link_in_the_docs_lands_on_a_file_and_heading():
    """README is the front door and the guides link each other: a moved section
    must not leave a link behind that lands nowhere."""
    checked = 0
    for name, text in _tracked_text_files():
        if not name.endswith(".md"):
            continue
        base = (ROOT / name).parent
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if re.match(r"[a-z]+:", target):
                continue
            path, _, anchor = target.partition("#")
            dest = (base / path).resolve() if path else ROOT / name
            assert dest.exists(), f"{name}: link to {target} lands on no file"
            if anchor and dest.suffix == ".md":
                assert anchor in _anchors(dest.read_text()), f"{name}: #{anchor} is not a heading of {path or name}"
            checked += 1
    assert checked >= 20


def test_readme_is_a_front_door():
    """README says what mltp is, how to try it, the one-line Jenkinsfile and
    where to read on; the details live in docs/ (each guide linked once)."""
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 250
    assert "mlTrainingPipeline()" in readme and "mltp run my-model --local" in readme
    for guide in sorted((ROOT / "docs").glob("*.md")):
        if guide.name == "README.md":
            continue
        assert readme.count(f"](docs/{guide.name})") == 1, f"README links docs/{guide.name} once"
