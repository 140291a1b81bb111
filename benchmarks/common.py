"""What the benchmarks share: a row of the `make bench` table and how a goal is judged.

Each bench_*.py runs alone (and prints its own detail) and also has a
`rows(quick=False)` function returning Row objects, which benchmarks/table.py
collects into the one table `make bench` prints.
"""

import os
import socket
from dataclasses import dataclass
from typing import Optional


@dataclass
class Row:
    figure: str  # what is measured
    mltp: str  # mltp's figure, with its unit
    anchor: str = "-"  # what a user would otherwise run, and its figure
    ratio: Optional[float] = None  # mltp / anchor, when both are comparable numbers
    goal: str = "-"  # the goal, as text ("<= 0.5x", "<= 1.5 s"); "-" when none is set
    verdict: str = ""  # "met", "MISSED by ...", "skipped: ..."; "" when there is no goal


def quick() -> bool:
    """BENCH_QUICK=1: fewer repetitions, and the slow figures (cold installs) skipped."""
    return os.environ.get("BENCH_QUICK", "") not in ("", "0")


def at_most(value: float, limit: float, unit: str = " s", digits: int = 2) -> str:
    """'met', or 'MISSED by <how much> (<percent>)' for a value that must stay <= limit."""
    if value <= limit:
        return "met"
    over = value - limit
    return f"MISSED by {over:.{digits}f}{unit} ({over / limit * 100:.0f}% over)"


def seconds(value: float, digits: int = 2) -> str:
    return f"{value:.{digits}f} s"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
