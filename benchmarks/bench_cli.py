#!/usr/bin/env python3
"""Benchmark: the helper's own start, `mltp --help` and `mltp validate` on the example.

Not a test: it prints figures. Each command runs as a fresh process (the
interpreter's start and the imports included, as on a Jenkins agent), median
of --repeat runs, alternating with the anchor: `aws --version`, the start of
the AWS CLI a user would otherwise run, on the same Python. The issue sets no
goal for these two; they are in the table so a regression shows.

Usage: python benchmarks/bench_cli.py [--repeat 7]
"""

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
EXAMPLE = ROOT / "examples" / "fraud-detection"


def timed(command) -> float:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLTP_", "BRANCH_", "CHANGE_", "BUILD_"))}
    started = time.perf_counter()
    done = subprocess.run(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"failed ({done.returncode}): {' '.join(command)}\n{done.stdout[-2000:]}")
    return elapsed


def measure(repeat: int = 7) -> dict:
    mltp = [sys.executable, "-m", "mltp.cli"]
    commands = {"help": mltp + ["--help"], "validate": mltp + ["validate", str(EXAMPLE)],
                "anchor": [sys.executable, "-m", "awscli", "--version"]}
    times = {name: [] for name in commands}
    timed(commands["validate"])  # the first start after an install writes the bytecode caches
    for _ in range(repeat):
        for name, command in commands.items():
            times[name].append(timed(command))
    return {name: statistics.median(values) for name, values in times.items()}


def rows(quick: bool = False) -> list:
    from common import Row

    result = measure(5 if quick else 9)
    anchor = result["anchor"]
    return [Row("mltp --help", f"{result['help']:.2f} s", f"aws --version: {anchor:.2f} s", result["help"] / anchor,
                verdict="no goal set"),
            Row("mltp validate (example)", f"{result['validate']:.2f} s", f"aws --version: {anchor:.2f} s",
                result["validate"] / anchor, verdict="no goal set")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    result = measure(args.repeat)
    print(f"fresh process each, median of {args.repeat}, seconds")
    for name in ("help", "validate", "anchor"):
        label = {"help": "mltp --help", "validate": "mltp validate (example)", "anchor": "aws --version"}[name]
        print(f"  {label:<26} {result[name]:6.2f}")


if __name__ == "__main__":
    main()
