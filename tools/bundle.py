"""Builds the helper bundle the Jenkins step installs: `make bundle`.

Writes into resources/mltp/:
- mltp-<version>-py3-none-any.whl, built from helper/ reproducibly
  (SOURCE_DATE_EPOCH fixes every timestamp: same sources, same bytes);
- requirements-local.txt, the helper's dependencies with the `local` extra
  (the embedded emulator), pinned with hashes for every Python from 3.9 on
  (`uv pip compile --universal`), so `pip install --require-hashes` on an agent
  installs exactly what was tested;
- requirements-aws.txt, the same without the emulator, for `mode: 'aws'` (and
  'validate'): compiled under the local lock as constraints, so every package
  the two share has one version;
- bundle.txt, the wheel's file name, which the step reads first.

tests/helper/test_bundle_resources.py fails when the wheel is stale against helper/.
"""

import glob
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "resources" / "mltp"
EPOCH = "315532800"  # 1980-01-01, the earliest time a zip entry can hold


def run(*cmd: str, **kwargs) -> None:
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True, **kwargs)


def build_wheel() -> str:
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ, SOURCE_DATE_EPOCH=EPOCH)
        run(sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", tmp, str(ROOT / "helper"), env=env)
        shutil.rmtree(ROOT / "helper" / "build", ignore_errors=True)
        (wheel,) = glob.glob(os.path.join(tmp, "mltp-*.whl"))
        for old in OUT.glob("mltp-*.whl"):
            old.unlink()
        shutil.copy(wheel, OUT / Path(wheel).name)
        return Path(wheel).name


LOCKS = {"local": "requirements-local.txt", "aws": "requirements-aws.txt"}


def compile_requirements() -> None:
    uv = shutil.which("uv") or str(Path(sys.executable).parent / "uv")
    common = ("pip", "compile", "--quiet", "--universal", "--python-version", "3.9", "--generate-hashes",
              "--no-header", "--no-annotate")
    pyproject = str(ROOT / "helper" / "pyproject.toml")
    local = OUT / LOCKS["local"]
    run(uv, *common, "--extra", "local", "-o", str(local), pyproject)
    run(uv, *common, "--constraint", str(local), "-o", str(OUT / LOCKS["aws"]), pyproject)
    (OUT / "requirements.txt").unlink(missing_ok=True)


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    wheel = build_wheel()
    if "--wheel-only" not in sys.argv:
        compile_requirements()
    (OUT / "bundle.txt").write_text(wheel + "\n")
    print(f"bundle: resources/mltp/{wheel}, {', '.join(LOCKS.values())}, bundle.txt")


if __name__ == "__main__":
    main()
