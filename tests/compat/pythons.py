"""The CPython interpreters from 3.9 to 3.13 on this machine, as a Jenkins agent
would have them: on PATH (python3.X), in /usr/bin and /usr/local/bin, and under
pyenv (PYENV_ROOT, default ~/.pyenv). pyenv's shims are skipped: they answer
only for the version pyenv has selected.

    python pythons.py          # one line per version found: "3.12 /path/to/python3.12"
    python pythons.py 3.12     # the path of that version, or exit 1
"""

import glob
import os
import shutil
import subprocess
import sys
from typing import Dict, List

VERSIONS = ("3.9", "3.10", "3.11", "3.12", "3.13")


def _candidates(version: str) -> List[str]:
    found = []
    on_path = shutil.which(f"python{version}")
    if on_path and "/shims/" not in on_path:
        found.append(on_path)
    found += [f"/usr/bin/python{version}", f"/usr/local/bin/python{version}"]
    root = os.environ.get("PYENV_ROOT") or os.path.expanduser("~/.pyenv")
    found += sorted(glob.glob(os.path.join(root, "versions", f"{version}.*", "bin", f"python{version}")), reverse=True)
    return found


def _version_of(path: str) -> str:
    try:
        out = subprocess.run([path, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                             capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return out.stdout.strip() if out.returncode == 0 else ""


def find() -> Dict[str, str]:
    """version -> interpreter path, for each version that runs here."""
    result = {}
    for version in VERSIONS:
        for path in _candidates(version):
            if os.path.isfile(path) and os.access(path, os.X_OK) and _version_of(path) == version:
                result[version] = path
                break
    return result


def main(argv: List[str]) -> int:
    found = find()
    if len(argv) > 1:
        if argv[1] not in found:
            return 1
        print(found[argv[1]])
        return 0
    for version, path in found.items():
        print(version, path)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
