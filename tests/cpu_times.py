"""The CPU time of each test, for finding what makes `make test` slow on a busy machine.

Wall times (`--durations`) grow with the machine's load; CPU seconds hardly do.
This plugin records, per test, the CPU of the worker process and of the
processes it started and waited for (local runs, installs, environment
builds), with the wall time beside it, one JSON line per test in a file per
pytest-xdist worker:

    MLTP_TEST_CPU=/tmp/cpu .venv/bin/python -m pytest tests/helper tests/compat -n auto -p tests.cpu_times
    .venv/bin/python -m tests.cpu_times /tmp/cpu        # the slowest tests and modules by CPU

A process a test leaves running, or one waited for by a process that is still
running, is not counted (the kernel adds a child's CPU to its parent's when the
parent waits for it).
"""

import json
import os
import resource
import sys
import time
from collections import defaultdict
from pathlib import Path

import pytest


def _cpu() -> float:
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    folder = os.environ.get("MLTP_TEST_CPU")
    cpu, wall = _cpu(), time.time()
    yield
    if folder:
        line = {"test": item.nodeid, "cpu": round(_cpu() - cpu, 2), "wall": round(time.time() - wall, 2)}
        Path(folder).mkdir(parents=True, exist_ok=True)
        worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
        with open(Path(folder) / f"{worker}.jsonl", "a", encoding="utf-8") as handle:
            handle.write(json.dumps(line) + "\n")


def main(folder: str, top: int = 15) -> None:
    rows = [json.loads(line) for path in sorted(Path(folder).glob("*.jsonl")) for line in path.open(encoding="utf-8")]
    rows.sort(key=lambda row: -row["cpu"])
    print(f"{len(rows)} tests, {sum(r['cpu'] for r in rows):.0f} s CPU\n\nslowest {top} tests (CPU s, wall s):")
    for row in rows[:top]:
        print(f"{row['cpu']:7.1f} {row['wall']:7.1f}  {row['test']}")
    modules = defaultdict(lambda: [0.0, 0])
    for row in rows:
        module = modules[row["test"].split("::")[0]]
        module[0] += row["cpu"]
        module[1] += 1
    print(f"\nslowest {top} modules (CPU s, tests):")
    for name, (cpu, count) in sorted(modules.items(), key=lambda item: -item[1][0])[:top]:
        print(f"{cpu:7.1f} {count:5d}  {name}")


if __name__ == "__main__":
    main(*sys.argv[1:2], *[int(a) for a in sys.argv[2:3]])
