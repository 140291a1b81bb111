"""Benchmark: the local run of the example model (`mltp run --local`).

Prints where the time goes (start-up and emulator, sync, deploy, start, the
execution, the report), with the one-time setup (a fresh virtualenv with the
helper and the example's packages) measured separately when --setup is given,
and compares the whole run with what a user would otherwise do: run the three
scripts by hand, as examples/fraud-detection/README.md shows, in the same run.
Target: the local run under 60 s on a 2-core machine.

usage: python benchmarks/bench_local.py [--setup] [--repeat N]
"""

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "fraud-detection"
PHASES = [("local:", "start-up, validate, emulator"), ("sync:", "sync"), ("deploy:", "deploy"),
          ("start:", "start"), ("report:", "execution (3 jobs, gate, register)")]


def timed_lines(cmd, cwd, env):
    """Runs cmd and returns (exit code, [(seconds since start, line)])."""
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = [(time.perf_counter() - started, line.rstrip("\n")) for line in proc.stdout]
    proc.wait()
    return proc.returncode, lines, time.perf_counter() - started


def local_run(python: str):
    with tempfile.TemporaryDirectory() as tmp:
        repo = Path(tmp) / "fraud-detection"
        shutil.copytree(EXAMPLE, repo, ignore=shutil.ignore_patterns(".mltp"))
        env = {k: v for k, v in os.environ.items() if not k.startswith(("BUILD_", "BRANCH_", "MLTP_"))}
        code, lines, total = timed_lines([python, "-m", "mltp.cli", "run", ".", "--local", "--run-name", "bench"],
                                         repo, env)
        if code != 0:
            sys.exit("local run failed:\n" + "\n".join(line for _, line in lines))
    marks = {}
    for at, line in lines:
        for prefix, _ in PHASES:
            if line.startswith(prefix) and prefix not in marks:
                marks[prefix] = at
    phases, previous = {}, 0.0
    for prefix, label in PHASES:
        at = marks.get(prefix, previous)
        phases[label] = at - previous
        previous = at
    phases["report and shutdown"] = total - previous
    return total, phases


def by_hand(python: str):
    """The three scripts run directly with the documented variables: no emulator, no S3."""
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        env = dict(os.environ)
        started = time.perf_counter()
        env.update(MLTP_INPUT_DIR=str(work / "input"), MLTP_OUTPUT_DIR=str(work / "data"))
        subprocess.run([python, str(EXAMPLE / "preprocessing.py")], env=env, check=True, capture_output=True)
        (work / "model").mkdir()
        env.update(SM_CHANNEL_TRAIN=str(work / "data/train"), SM_CHANNEL_VALIDATION=str(work / "data/validation"),
                   SM_MODEL_DIR=str(work / "model"))
        hps = re.findall(r"^\s{6}(\w+): ([\w.]+)$", (EXAMPLE / "config.yaml").read_text(), re.M)
        args = [a for k, v in hps for a in (f"--{k}", v)]
        subprocess.run([python, str(EXAMPLE / "train.py"), *args], env=env, check=True, capture_output=True)
        (work / "packed").mkdir()
        with tarfile.open(work / "packed/model.tar.gz", "w:gz") as tar:
            for path in (work / "model").iterdir():
                tar.add(path, arcname=path.name)
        env.update(MLTP_MODEL_DIR=str(work / "packed"), MLTP_INPUT_DIR=str(work / "data"),
                   MLTP_OUTPUT_DIR=str(work / "evaluation"))
        subprocess.run([python, str(EXAMPLE / "evaluation.py")], env=env, check=True, capture_output=True)
        return time.perf_counter() - started


def setup_time() -> float:
    """A fresh virtualenv with the helper (local extra) and the example's packages."""
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        subprocess.run([sys.executable, "-m", "venv", tmp], check=True)
        subprocess.run([f"{tmp}/bin/python", "-m", "pip", "install", "-q", f"{ROOT / 'helper'}[local]",
                        "scikit-learn", "pandas"], check=True)
        return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--setup", action="store_true", help="also time a fresh install (needs a package index)")
    parser.add_argument("--repeat", type=int, default=3)
    options = parser.parse_args()
    python = sys.executable
    if options.setup:
        print(f"one-time setup (venv + pip install mltp[local] scikit-learn pandas): {setup_time():6.1f} s")
    else:
        print("one-time setup: not measured (pass --setup; `make example` does it once)")
    runs = [local_run(python) for _ in range(options.repeat)]
    hands = [by_hand(python) for _ in range(options.repeat)]
    totals = [total for total, _ in runs]
    median_run = statistics.median(totals)
    median_hand = statistics.median(hands)
    print(f"\nmltp run --local, example model, median of {options.repeat} (2-core target: < 60 s)")
    for label in runs[0][1]:
        print(f"  {label:<40} {statistics.median(r[1][label] for r in runs):6.1f} s")
    print(f"  {'total':<40} {median_run:6.1f} s   (min {min(totals):.1f}, max {max(totals):.1f})")
    print(f"\nthe three scripts by hand (no emulator, no S3): {median_hand:6.1f} s")
    print(f"ratio mltp local / by hand: {median_run / median_hand:.2f}  "
          f"(overhead {median_run - median_hand:.1f} s for validate, bundle, state machine, registry, report)")
    print(f"under 60 s: {'yes' if median_run < 60 else 'NO'}")


if __name__ == "__main__":
    main()
