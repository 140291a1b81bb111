"""Installing the helper on an agent, as the Jenkins step does (resources/mltp/install.sh).

Prints, for each mode's lock:
- cold: an empty helper cache and an empty pip cache (a fresh agent), seconds and
  the virtualenv's size on disk;
- warm: the helper already cached, so install.sh only verifies it (what every
  later build pays), median of several runs.
The anchor, in the same run and under the same conditions: a cold
`pip install sagemaker stepfunctions` into a fresh virtualenv, what a user
would install by hand to render a definition with the two SDKs; for warm
installs, the same command again with both installed (pip only checks).
With BENCH_QUICK=1 (rows() for `make bench`), cold installs are skipped and
the helper cache persists in ~/.cache/mltp-bench/install, so only the first
quick run installs.
Goal (AWS mode): cold at most 40 s and 320 MB here.

    python benchmarks/bench_install.py [--python PATH] [--modes aws,local] [--warm-runs N]
"""

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from tests.installer import LOCKS, install  # noqa: E402

GOAL_SECONDS = 40
GOAL_MB = 320


def size_mb(path: Path) -> float:
    total = 0
    for folder, _dirs, files in os.walk(path):
        for name in files:
            full = os.path.join(folder, name)
            if not os.path.islink(full):
                total += os.lstat(full).st_size
    return total / 1e6


def cold_install(python: str, mode: str, work: Path):
    pip_cache = work / f"pip-cache-{mode}"
    started = time.perf_counter()
    done = install(python, work / f"cache-{mode}", work / f"scratch-{mode}", lock=mode, PIP_CACHE_DIR=str(pip_cache))
    seconds = time.perf_counter() - started
    if done.rc != 0:
        raise SystemExit(f"cold install ({mode}) failed: {done.error}\n{done.output[-2000:]}")
    venv = Path(done.mltp).parent.parent.resolve()
    return seconds, size_mb(venv), done


def anchor(python: str, work: Path):
    """pip install sagemaker stepfunctions, cold, into a fresh venv."""
    venv = work / "anchor-venv"
    env = dict(os.environ, PIP_CACHE_DIR=str(work / "pip-cache-anchor"))
    started = time.perf_counter()
    subprocess.run([python, "-m", "venv", str(venv)], check=True)
    subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                    "sagemaker<3", "stepfunctions"], check=True, env=env)
    return time.perf_counter() - started, size_mb(venv)


def warm_anchor(python: str, venv_python: str) -> float:
    """`pip install sagemaker stepfunctions` again where both are installed: what
    a user's build would rerun each time (pip only checks, installs nothing)."""
    times = []
    for _ in range(3):
        started = time.perf_counter()
        subprocess.run([venv_python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                        "sagemaker<3", "stepfunctions"], check=True)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def persistent_cache() -> Path:
    """BENCH_QUICK: the helper cache survives between runs, so only the first quick run installs."""
    root = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(root) / "mltp-bench" / "install"


def measure(python: str, modes, warm_runs: int = 5, cold: bool = True) -> dict:
    """Cold (unless cold=False) and warm seconds per mode, the venv size, and the anchors."""
    work = Path(tempfile.mkdtemp(prefix="mltp-bench-install-"))
    out = {"modes": {}, "cold": cold}
    try:
        if cold:
            out["anchor_cold"], out["anchor_mb"] = anchor(python, work)
            out["anchor_warm"] = warm_anchor(python, str(work / "anchor-venv" / "bin" / "python"))
        else:
            # The development venv holds both SDKs (the local lock): pip only checks them.
            out["anchor_warm"] = warm_anchor(python, sys.executable)
        for mode in modes:
            if cold:
                cold_s, cold_mb, _ = cold_install(python, mode, work)
                cache = work / f"cache-{mode}"
            else:
                cold_s = cold_mb = None
                cache = persistent_cache() / mode
                done = install(python, cache, work / f"prime-{mode}", lock=mode)  # a no-op once primed
                if done.rc != 0:
                    raise SystemExit(f"install ({mode}) failed: {done.error}\n{done.output[-2000:]}")
            warm_s = warm_install_into(python, mode, cache, work, warm_runs)
            out["modes"][mode] = (cold_s, cold_mb, warm_s)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return out


def warm_install_into(python: str, mode: str, cache: Path, work: Path, runs: int) -> float:
    times = []
    for i in range(runs):
        started = time.perf_counter()
        done = install(python, cache, work / f"warm-{mode}-{i}", lock=mode)
        times.append(time.perf_counter() - started)
        if done.rc != 0 or "(verified)" not in done.output:
            raise SystemExit(f"warm install ({mode}) did not hit the cache: {done.output}")
    return statistics.median(times)


WARM_GOAL = 0.3


def rows(quick: bool = False) -> list:
    from common import Row, at_most

    result = measure(sys.executable, list(LOCKS), warm_runs=3 if quick else 5, cold=not quick)
    out = []
    for mode, (cold_s, cold_mb, warm_s) in result["modes"].items():
        out.append(Row(f"helper install, warm, {mode} lock", f"{warm_s:.2f} s",
                       f"pip install sagemaker stepfunctions (installed): {result['anchor_warm']:.2f} s",
                       warm_s / result["anchor_warm"], f"<= {WARM_GOAL} s", at_most(warm_s, WARM_GOAL)))
        if cold_s is None:
            out.append(Row(f"helper install, cold, {mode} lock", "not measured",
                           goal=f"<= {GOAL_SECONDS} s, {GOAL_MB} MB" if mode == "aws" else "-",
                           verdict="skipped: BENCH_QUICK=1"))
            continue
        anchor_text = f"pip install sagemaker stepfunctions: {result['anchor_cold']:.1f} s, {result['anchor_mb']:.0f} MB"
        if mode == "aws":
            verdicts = [v for v in (at_most(cold_s, GOAL_SECONDS, " s", 1), at_most(cold_mb, GOAL_MB, " MB", 0))
                        if v != "met"]
            out.append(Row(f"helper install, cold, {mode} lock", f"{cold_s:.1f} s, {cold_mb:.0f} MB", anchor_text,
                           cold_s / result["anchor_cold"], f"<= {GOAL_SECONDS} s, {GOAL_MB} MB",
                           "; ".join(verdicts) or "met"))
        else:
            out.append(Row(f"helper install, cold, {mode} lock", f"{cold_s:.1f} s, {cold_mb:.0f} MB", anchor_text,
                           cold_s / result["anchor_cold"]))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--python", default=sys.executable, help="the agent's interpreter (default: this one)")
    parser.add_argument("--modes", default="aws,local")
    parser.add_argument("--warm-runs", type=int, default=5)
    args = parser.parse_args()
    modes = [m for m in args.modes.split(",") if m]
    unknown = set(modes) - set(LOCKS)
    if unknown:
        raise SystemExit(f"unknown mode(s): {', '.join(sorted(unknown))}")
    version = subprocess.run([args.python, "-c", "import sys; print(sys.version.split()[0])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    result = measure(args.python, modes, args.warm_runs)
    anchor_s, anchor_mb = result["anchor_cold"], result["anchor_mb"]
    print(f"helper install on Python {version} (cold: empty helper and pip caches; warm: median of {args.warm_runs})")
    print(f"anchor: pip install sagemaker stepfunctions: {anchor_s:.1f} s, {anchor_mb:.0f} MB cold; "
          f"{result['anchor_warm']:.2f} s again with both installed")
    print(f"{'mode':<6} {'cold s':>7} {'ratio':>6} {'MB':>5} {'ratio':>6} {'warm s':>7}  goal")
    for mode, (cold_s, cold_mb, warm_s) in result["modes"].items():
        goal = ""
        if mode == "aws":
            ok = cold_s <= GOAL_SECONDS and cold_mb <= GOAL_MB
            goal = f"<= {GOAL_SECONDS} s and {GOAL_MB} MB cold: {'met' if ok else 'MISSED'}"
        goal += f"{'; ' if goal else ''}warm <= {WARM_GOAL} s: {'met' if warm_s <= WARM_GOAL else 'MISSED'}"
        print(f"{mode:<6} {cold_s:7.1f} {cold_s / anchor_s:6.2f} {cold_mb:5.0f} {cold_mb / anchor_mb:6.2f} {warm_s:7.3f}  {goal}")


if __name__ == "__main__":
    main()
