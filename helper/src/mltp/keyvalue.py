"""key=value files: what the Jenkins steps read (no JSON parsing in CPS Groovy)."""

from pathlib import Path


def write_lines(path: Path, items) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{k}={' '.join(str(v).split())}\n" for k, v in items), encoding="utf-8")
