"""Helpers shared by the benchmarks: statistics and paths (server environments come from tests.processes)."""

from __future__ import annotations

import math
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path

from bench.report import Table, Target

BENCH_DIR = Path(__file__).resolve().parent
OUT_DIR = BENCH_DIR / "out"
LOG_DIR = OUT_DIR / "logs"
HELLO_SERVER = BENCH_DIR / "hello_server.py"
BENCH_KEY = "bench-key"
DEAD_UPSTREAM = "http://127.0.0.1:9"
"""The discard port: nothing listens, and nothing is requested at start-up anyway."""


@dataclass(frozen=True)
class Mode:
    """How big a run is: `quick` for the CI smoke, full for people."""

    quick: bool

    def pick(self, quick: int, full: int) -> int:
        return quick if self.quick else full


@dataclass
class Outcome:
    """What a benchmark hands back: its tables (see `bench.report`) and targets."""

    tables: list[Table]
    targets: list[Target]


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0..100), nearest-rank; NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def median(values: list[float]) -> float:
    return statistics.median(values) if values else math.nan


def python() -> str:
    """The interpreter running the benchmarks (servers run on the same one)."""
    return sys.executable


def log_file(name: str) -> Path:
    """A file under bench/out/logs/ for a server's stderr (truncated)."""
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    path = LOG_DIR / f"{name}.log"
    path.write_text("", encoding="utf-8")
    return path


def tail(path: Path, lines: int = 20) -> str:
    """The last lines of a log, for error messages."""
    try:
        return "\n".join(path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])
    except OSError:
        return ""
