#!/usr/bin/env python3
"""`make bench`: every benchmark's figures in one table.

Each row: the figure, mltp's value, the anchor it is compared with (what a
user would otherwise run, measured in the same run), the ratio, the goal and
whether it is met, or by how much it is missed. The benchmarks run one after
the other (each bench_*.py's rows()); a benchmark that fails is a row saying so.

BENCH_QUICK=1 makes it quick: fewer repetitions, and no cold installs (the
table says they were skipped). The exit code is 1 only when a benchmark could
not run: a missed goal is a figure to read, not a failure of `make bench`.

Usage: python benchmarks/table.py [--only cli,sync,...]
"""

import argparse
import importlib
import sys
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import Row, quick  # noqa: E402

# In the order of the table (the list).
BENCHMARKS = ("cli", "sync", "wait", "install", "local", "requirements", "push", "cache")
HEADER = ("figure", "mltp", "anchor", "ratio", "goal", "verdict")


def collect(names, fast: bool):
    rows, seconds = [], {}
    for name in names:
        started = time.perf_counter()
        print(f"bench: {name} ...", file=sys.stderr, flush=True)
        try:
            module = importlib.import_module(f"bench_{name}")
            rows.extend(module.rows(quick=fast))
        except (Exception, SystemExit) as exc:  # one broken benchmark must not hide the others' figures
            traceback.print_exc(file=sys.stderr)
            rows.append(Row(f"bench_{name}.py", "FAILED", verdict=f"FAILED: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"))
        seconds[name] = time.perf_counter() - started
    return rows, seconds


def render(rows) -> str:
    cells = [HEADER] + [(r.figure, r.mltp, r.anchor, "-" if r.ratio is None else f"{r.ratio:.2f}x", r.goal,
                         r.verdict or "-") for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(HEADER))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in cells]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default=",".join(BENCHMARKS), help=f"some of {', '.join(BENCHMARKS)}")
    args = parser.parse_args()
    names = [n for n in args.only.split(",") if n]
    unknown = set(names) - set(BENCHMARKS)
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(sorted(unknown))}")
    fast = quick()
    rows, seconds = collect(names, fast)
    print()
    print(render(rows))
    missed = [r for r in rows if r.verdict.startswith(("MISSED", "FAILED"))]
    failed = [r for r in rows if r.verdict.startswith("FAILED")]
    skipped = [r for r in rows if r.verdict.startswith("skipped")]
    print()
    mode = "BENCH_QUICK=1: fewer repetitions, cold installs skipped" if fast else "full run"
    print(f"{mode}; {sum(seconds.values()):.0f} s in all ({', '.join(f'{n} {s:.0f} s' for n, s in seconds.items())})")
    if missed:
        print(f"{len(missed)} goal{'s' if len(missed) != 1 else ''} missed: "
              + "; ".join(f"{r.figure.strip()}: {r.verdict}" for r in missed))
    else:
        print("every goal measured is met" + (f" ({len(skipped)} skipped)" if skipped else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
