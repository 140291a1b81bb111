"""Benchmark: one more package in requirements.txt, for a local run.

A repo's requirements.txt goes into a small overlay on the cached framework
environment (helper/src/mltp/local/envs.py): this times what a local run pays
before Preprocessing starts when requirements.txt gained one small pure-Python
package (`tabulate`), with the framework environment already cached, as on any
agent that ran the framework before. Each repetition uses a requirements.txt
never seen before (a comment with a fresh token), so each builds a new overlay.
Anchor: the same with the framework environment's cache entry reused as it is
(no requirements.txt): what the run pays when nothing changed. Goal: <= 15 s.

The environments go to the helper's usual cache (MLTP_CACHE_DIR, else
~/.cache/mltp): the framework environment is built there once if missing
(a minute, not counted); the overlays the benchmark builds are left there too
(a few hundred KB each).

usage: python benchmarks/bench_requirements.py [--repeat N]
"""

import argparse
import resource
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

GOAL_SECONDS = 15.0
FRAMEWORK, VERSION = "sklearn", "1.2-1"


def measure(repeat: int = 3) -> dict:
    from mltp.local import envs

    quiet = lambda line: None  # noqa: E731
    envs.prepare(FRAMEWORK, VERSION, None, say=quiet)  # the framework environment, built once if missing
    added, reused, cpu = [], [], []
    with tempfile.TemporaryDirectory(prefix="mltp-bench-requirements-") as scratch:
        for _ in range(repeat):
            requirements = Path(scratch) / "requirements.txt"
            requirements.write_text(f"tabulate==0.9.0\n# bench {uuid.uuid4().hex}\n")
            started, used = time.perf_counter(), _cpu()
            env = envs.prepare(FRAMEWORK, VERSION, requirements, say=quiet)
            added.append(time.perf_counter() - started)
            cpu.append(_cpu() - used)
            assert env.base is not None and env.requirements == envs.requirements_digest(requirements)
            started = time.perf_counter()
            envs.prepare(FRAMEWORK, VERSION, None, say=quiet)
            reused.append(time.perf_counter() - started)
    return {"added": statistics.median(added), "reused": statistics.median(reused), "cpu": statistics.median(cpu),
            "repeat": repeat}


def _cpu() -> float:
    """CPU seconds of this process and its finished children: what a busy machine does not inflate."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def rows(quick: bool = False) -> list:
    from common import Row, at_most

    result = measure(1 if quick else 3)
    return [Row("one more package in requirements.txt (local)", f"{result['added']:.1f} s (CPU {result['cpu']:.1f} s)",
                f"environment reused as is: {result['reused']:.1f} s", result["added"] / result["reused"],
                f"<= {GOAL_SECONDS:g} s", at_most(result["added"], GOAL_SECONDS))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    result = measure(args.repeat)
    print(f"one more package in requirements.txt, median of {args.repeat}: {result['added']:.1f} s "
          f"(overlay on the cached {FRAMEWORK} {VERSION} environment); environment reused as is: "
          f"{result['reused']:.1f} s; CPU time of the overlay {result['cpu']:.1f} s; goal <= {GOAL_SECONDS:g} s: "
          f"{'met' if result['added'] <= GOAL_SECONDS else 'MISSED'}")


if __name__ == "__main__":
    sys.exit(main())
