"""Benchmark: the local run of the example model (`mltp run --local`).

Prints where the time goes (start-up and emulator, sync, deploy, start, the
execution, the report), with the one-time setup (a fresh virtualenv with the
helper and the example's packages) measured separately when --setup is given,
and compares the whole run with what a user would otherwise do: run the three
scripts by hand, as examples/fraud-detection/README.md shows, in the same run.
Goal: the run at most 1.3x the scripts by hand, with the emulator (start-up
and validate included), deploy and the report (with shutdown) each under 1 s.
A first run of a new helper renders the definition (the SDKs' import, once per
version: the definition cache) and is not counted. Beside the wall time it
prints the CPU time (user and system, the helper and every job process) of
both: the work the run adds, which a busy machine does not inflate as it does
the wall time.

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
sys.path.insert(0, str(ROOT / "benchmarks"))
EXAMPLE = ROOT / "examples" / "fraud-detection"
# (how the line that ends the phase starts, the phase); the execution ends
# with the verdict line ("fraud-detection run bench: PASSED"), the report and
# shutdown with the process.
PHASES = [("local:", "start-up, validate, emulator"), ("sync:", "registry restore, sync"), ("deploy:", "deploy"),
          ("start:", "start"), (re.compile(r"^\S+ run \S+: [A-Z]+"), "execution (3 jobs, gate, register)")]
REPORT = "report and shutdown"
GOAL_RATIO = 1.3
GOAL_PHASE = 1.0  # seconds, for the emulator, deploy and the report


def _children_cpu() -> float:
    """CPU seconds (user + system) of the processes this one has waited for, and theirs."""
    times = os.times()
    return times.children_user + times.children_system


def timed_lines(cmd, cwd, env):
    """Runs cmd and returns (exit code, [(seconds since start, line)], seconds, CPU seconds)."""
    started, cpu = time.perf_counter(), _children_cpu()
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = [(time.perf_counter() - started, line.rstrip("\n")) for line in proc.stdout]
    proc.wait()
    return proc.returncode, lines, time.perf_counter() - started, _children_cpu() - cpu


def local_run(python: str):
    with tempfile.TemporaryDirectory() as tmp:
        repo = Path(tmp) / "fraud-detection"
        shutil.copytree(EXAMPLE, repo, ignore=shutil.ignore_patterns(".mltp"))
        env = {k: v for k, v in os.environ.items() if not k.startswith(("BUILD_", "BRANCH_", "MLTP_"))}
        code, lines, total, cpu = timed_lines([python, "-m", "mltp.cli", "run", ".", "--local", "--run-name",
                                               "bench"], repo, env)
        if code != 0:
            sys.exit("local run failed:\n" + "\n".join(line for _, line in lines))
    marks = {}
    for at, line in lines:
        for mark, label in PHASES:
            hit = mark.match(line) if hasattr(mark, "match") else line.startswith(mark)
            if hit and label not in marks:
                marks[label] = at
    phases, previous = {}, 0.0
    for _, label in PHASES:
        at = marks.get(label, previous)
        phases[label] = at - previous
        previous = at
    phases[REPORT] = total - previous
    return total, phases, cpu


def by_hand_steps(python: str) -> dict:
    """The three scripts run directly with the documented variables: no emulator, no S3.
    Seconds of each ("prep", "train", "eval"), of all three ("total") and their CPU ("cpu")."""
    took = {}

    def script(name: str, path: Path, *args: str) -> None:
        started = time.perf_counter()
        subprocess.run([python, str(path), *args], env=env, check=True, capture_output=True)
        took[name] = time.perf_counter() - started

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        env = dict(os.environ)
        started, cpu = time.perf_counter(), _children_cpu()
        env.update(MLTP_INPUT_DIR=str(work / "input"), MLTP_OUTPUT_DIR=str(work / "data"))
        script("prep", EXAMPLE / "preprocessing.py")
        (work / "model").mkdir()
        env.update(SM_CHANNEL_TRAIN=str(work / "data/train"), SM_CHANNEL_VALIDATION=str(work / "data/validation"),
                   SM_MODEL_DIR=str(work / "model"))
        hps = re.findall(r"^\s{6}(\w+): ([\w.]+)$", (EXAMPLE / "config.yaml").read_text(), re.M)
        script("train", EXAMPLE / "train.py", *[a for k, v in hps for a in (f"--{k}", v)])
        (work / "packed").mkdir()
        with tarfile.open(work / "packed/model.tar.gz", "w:gz") as tar:
            for path in (work / "model").iterdir():
                tar.add(path, arcname=path.name)
        env.update(MLTP_MODEL_DIR=str(work / "packed"), MLTP_INPUT_DIR=str(work / "data"),
                   MLTP_OUTPUT_DIR=str(work / "evaluation"))
        script("eval", EXAMPLE / "evaluation.py")
        took.update(total=time.perf_counter() - started, cpu=_children_cpu() - cpu)
        return took


def by_hand(python: str):
    """The three scripts by hand (`by_hand_steps`): (seconds, CPU seconds)."""
    took = by_hand_steps(python)
    return took["total"], took["cpu"]


def setup_time() -> float:
    """A fresh virtualenv with the helper (local extra) and the example's packages."""
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        subprocess.run([sys.executable, "-m", "venv", tmp], check=True)
        subprocess.run([f"{tmp}/bin/python", "-m", "pip", "install", "-q", f"{ROOT / 'helper'}[local]",
                        "scikit-learn", "pandas"], check=True)
        return time.perf_counter() - started


def measure(repeat: int = 3) -> dict:
    """Median seconds of the local run, of each phase and of the scripts by hand
    (alternating, so machine load hits both alike)."""
    python = sys.executable
    runs, hands = [], []
    local_run(python)  # the first run of a new helper renders the definition: a one-time cost
    for _ in range(repeat):
        runs.append(local_run(python))
        hands.append(by_hand(python))
    totals = [total for total, _, _ in runs]
    return {"repeat": repeat, "total": statistics.median(totals), "min": min(totals), "max": max(totals),
            "hand": statistics.median(h[0] for h in hands),
            "cpu": statistics.median(r[2] for r in runs), "hand_cpu": statistics.median(h[1] for h in hands),
            "phases": {label: statistics.median(r[1][label] for r in runs) for label in runs[0][1]}}


def rows(quick: bool = False) -> list:
    from common import Row, at_most

    result = measure(1 if quick else 3)
    ratio = result["total"] / result["hand"]
    phases = result["phases"]
    out = [Row("local run (mltp run --local, example)", f"{result['total']:.1f} s",
               f"the 3 scripts by hand: {result['hand']:.1f} s", ratio, f"<= {GOAL_RATIO}x",
               at_most(ratio, GOAL_RATIO, "x"))]
    # Every phase, so the table shows where the rest of the overhead goes; three have a goal.
    with_goal = {"start-up, validate, emulator": "emulator (start-up, validate)", "deploy": "deploy",
                 REPORT: "report (and shutdown)"}
    for label, seconds in phases.items():
        if label in with_goal:
            out.append(Row(f"  local run: {with_goal[label]}", f"{seconds:.2f} s", goal=f"< {GOAL_PHASE:g} s",
                           verdict=at_most(seconds, GOAL_PHASE)))
        else:
            out.append(Row(f"  local run: {label}", f"{seconds:.2f} s"))
    out.append(Row("  local run: CPU (helper and jobs)", f"{result['cpu']:.1f} s",
                   f"the 3 scripts by hand: {result['hand_cpu']:.1f} s", result["cpu"] / result["hand_cpu"]))
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--setup", action="store_true", help="also time a fresh install (needs a package index)")
    parser.add_argument("--repeat", type=int, default=3)
    options = parser.parse_args()
    if options.setup:
        print(f"one-time setup (venv + pip install mltp[local] scikit-learn pandas): {setup_time():6.1f} s")
    else:
        print("one-time setup: not measured (pass --setup; `make example` does it once)")
    result = measure(options.repeat)
    median_run, median_hand = result["total"], result["hand"]
    print(f"\nmltp run --local, example model, median of {options.repeat}")
    for label, seconds in result["phases"].items():
        print(f"  {label:<40} {seconds:6.2f} s")
    print(f"  {'total':<40} {median_run:6.1f} s   (min {result['min']:.1f}, max {result['max']:.1f})")
    print(f"\nthe three scripts by hand (no emulator, no S3): {median_hand:6.1f} s")
    ratio = median_run / median_hand
    print(f"ratio mltp local / by hand: {ratio:.2f}  "
          f"(overhead {median_run - median_hand:.1f} s for validate, bundle, state machine, registry, report)")
    print(f"goal: ratio <= {GOAL_RATIO}: {'met' if ratio <= GOAL_RATIO else 'MISSED'}; "
          f"emulator, deploy, report each < {GOAL_PHASE:g} s")
    print(f"CPU (user+sys, helper and jobs): mltp {result['cpu']:.1f} s, by hand {result['hand_cpu']:.1f} s, "
          f"ratio {result['cpu'] / result['hand_cpu']:.2f} (what the run adds; load inflates the wall times, not this)")


if __name__ == "__main__":
    main()
