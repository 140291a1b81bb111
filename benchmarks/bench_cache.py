"""Benchmark: the step cache (docs/contract.md, 8.4), locally.

The example model with `cache: true` on preprocessing and training: a full
`mltp run --local` (every step runs, the records are written), then, after an
edit of evaluation.py only, the rerun (preprocessing and training taken from
the full run, evaluation runs). Each repetition uses a fresh copy of the repo,
so every full run starts with an empty cache. Goal: the rerun at most 25% of
the full run's time, and no preprocessing or training job in it.

Beside it, the floor of that ratio for this example: evaluation.py alone
against the three scripts, each run by hand (no mltp at all). No rerun can
be cheaper than its evaluation script, nor a full run than the three; where
the floor is above the goal, the example's evaluation costs too much of the
whole for any cache to meet the goal on it, and the figure to judge is how
far above its floor the rerun lands. (That the
same holds on AWS, on Step Functions' interpreter, is a test:
tests/helper/test_step_cache.py.)

usage: python benchmarks/bench_cache.py [--repeat N]
"""

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
EXAMPLE = ROOT / "examples" / "fraud-detection"
GOAL_RATIO = 0.25


def _run(python: str, repo: Path, name: str):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BUILD_", "BRANCH_", "MLTP_"))}
    started = time.perf_counter()
    proc = subprocess.run([python, "-m", "mltp.cli", "run", ".", "--local", "--run-name", name], cwd=repo, env=env,
                          capture_output=True, text=True)
    took = time.perf_counter() - started
    if proc.returncode != 0:
        sys.exit(f"local run {name} failed:\n{proc.stdout[-3000:]}{proc.stderr[-3000:]}")
    jobs = sorted(set(re.findall(r"fraud-detection-(prep|train|eval)-[0-9a-f]+", proc.stdout)))
    return took, jobs


def pair(python: str):
    """(full run seconds, rerun seconds, jobs the rerun started) on a fresh copy."""
    with tempfile.TemporaryDirectory() as tmp:
        repo = Path(tmp) / "fraud-detection"
        shutil.copytree(EXAMPLE, repo, ignore=shutil.ignore_patterns(".mltp"))
        config = repo / "config.yaml"
        text = config.read_text()
        for step in ("preprocessing", "training"):
            text = text.replace(f"  {step}:\n", f"  {step}:\n    cache: true\n", 1)
        config.write_text(text)
        full, _ = _run(python, repo, "full")
        evaluation = repo / "evaluation.py"
        evaluation.write_text(evaluation.read_text() + "\n# edited: only evaluation.py changed\n")
        rerun, jobs = _run(python, repo, "rerun")
        return full, rerun, jobs


def measure(repeat: int = 3) -> dict:
    from bench_local import by_hand_steps

    python = sys.executable
    pair(python)  # warms the local environments and the definition cache: one-time costs
    results, hands = [], []
    for _ in range(repeat):
        results.append(pair(python))
        hands.append(by_hand_steps(python))
    return {"repeat": repeat, "full": statistics.median(r[0] for r in results),
            "rerun": statistics.median(r[1] for r in results), "jobs": results[-1][2],
            "hand_eval": statistics.median(h["eval"] for h in hands),
            "hand_total": statistics.median(h["total"] for h in hands)}


def rows(quick: bool = False) -> list:
    from common import Row, at_most

    result = measure(1 if quick else 3)
    ratio = result["rerun"] / result["full"]
    jobs = ", ".join(result["jobs"]) or "none"
    return [
        Row("rerun after editing evaluation.py (cache on, --local)", f"{result['rerun']:.1f} s",
            f"a full run: {result['full']:.1f} s", ratio, f"<= {GOAL_RATIO}x", at_most(ratio, GOAL_RATIO, "x")),
        Row("  rerun: jobs started", jobs, goal="eval only",
            verdict="met" if result["jobs"] == ["eval"] else f"MISSED: {jobs}"),
        Row("  floor for this example: evaluation.py by hand", f"{result['hand_eval']:.1f} s",
            f"the 3 scripts by hand: {result['hand_total']:.1f} s", result["hand_eval"] / result["hand_total"]),
    ]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=3)
    options = parser.parse_args()
    result = measure(options.repeat)
    ratio = result["rerun"] / result["full"]
    print(f"example model, cache on for preprocessing and training, median of {options.repeat}")
    print(f"  full run (every step)                 {result['full']:6.1f} s")
    print(f"  rerun after editing evaluation.py      {result['rerun']:6.1f} s   jobs: {', '.join(result['jobs'])}")
    print(f"ratio rerun / full: {ratio:.2f}; goal <= {GOAL_RATIO}: {'met' if ratio <= GOAL_RATIO else 'MISSED'}")
    floor = result["hand_eval"] / result["hand_total"]
    print(f"floor for this example (by hand, no mltp): evaluation.py {result['hand_eval']:.1f} s / "
          f"the 3 scripts {result['hand_total']:.1f} s = {floor:.2f}")


if __name__ == "__main__":
    main()
