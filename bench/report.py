"""Tables of figures: printed to stdout and written, with the machine's description, to a markdown file."""

from __future__ import annotations

import datetime
import importlib.metadata
import math
import os
import platform
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Target:
    """One target of an issue, the figure measured against it, and whether it is met."""

    benchmark: str
    target: str
    measured: str
    met: bool

    @property
    def verdict(self) -> str:
        return "yes" if self.met else "**no**"


@dataclass
class Table:
    """One benchmark's results: a title, column names, rows of formatted cells and notes."""

    title: str
    columns: list[str]
    rows: list[list[str]] = field(default_factory=list[list[str]])
    notes: list[str] = field(default_factory=list[str])

    def add(self, *cells: object) -> None:
        """Append a row; numbers are formatted by `fmt`."""
        self.rows.append([fmt(cell) for cell in cells])

    def markdown(self) -> str:
        """The table as GitHub markdown, notes below it."""
        lines = [f"### {self.title}", ""]
        lines.append("| " + " | ".join(self.columns) + " |")
        lines.append("| " + " | ".join("---" for _ in self.columns) + " |")
        lines.extend("| " + " | ".join(row) + " |" for row in self.rows)
        if self.notes:
            lines.append("")
            lines.extend(f"- {note}" for note in self.notes)
        return "\n".join(lines)

    def text(self) -> str:
        """The table aligned for a terminal."""
        widths = [len(name) for name in self.columns]
        for row in self.rows:
            for index, cell in enumerate(row):
                widths[index] = max(widths[index], len(cell))
        lines = [self.title, "=" * len(self.title)]
        lines.append("  ".join(name.ljust(widths[i]) for i, name in enumerate(self.columns)))
        lines.append("  ".join("-" * width for width in widths))
        lines.extend("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)) for row in self.rows)
        lines.extend(f"  * {note}" for note in self.notes)
        return "\n".join(lines)


def fmt(value: object) -> str:
    """Cells: floats with 3 significant decimals, bools as yes/no, None as a dash."""
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "**no**"
    if isinstance(value, float):
        if math.isnan(value):
            return "–"
        if abs(value) >= 100:
            return f"{value:,.0f}"
        if abs(value) >= 10:
            return f"{value:.1f}"
        if abs(value) >= 1:
            return f"{value:.2f}"
        return f"{value:.3f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def targets_table(targets: list[Target]) -> Table:
    """The summary of every target measured in this run."""
    table = Table("Targets", ["benchmark", "target", "measured", "met"])
    for target in targets:
        table.rows.append([target.benchmark, target.target, target.measured, target.verdict])
    return table


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _ram() -> str:
    try:
        for line in Path("/proc/meminfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("MemTotal:"):
                return f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    except OSError:
        pass
    return "unknown"


def _code_revision() -> str:
    """The commit measured, and whether the server's code differed from it (uncommitted changes)."""
    root = Path(__file__).resolve().parent.parent
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True, check=True, timeout=10
        ).stdout.strip()
        changed = subprocess.run(
            ["git", "status", "--porcelain", "--", "parallel_mcp"],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.splitlines()
    except (OSError, subprocess.SubprocessError):
        return "unknown (no git)"
    return f"commit {head}" + (
        f", with uncommitted changes in {len(changed)} file(s) of parallel_mcp/"
        if changed
        else ", parallel_mcp/ as committed"
    )


def machine_description() -> list[str]:
    """What the figures were measured on."""
    return [
        f"CPU: {_cpu_model()}",
        f"Cores: {os.cpu_count()}",
        f"RAM: {_ram()}",
        f"OS: {platform.system()} {platform.release()}",
        f"Python: {sys.version.split()[0]} ({platform.python_implementation()})",
        f"mcp: {importlib.metadata.version('mcp')}, parallel-mcp: {importlib.metadata.version('parallel-mcp')}",
        f"Code: {_code_revision()}",
        f"Date: {datetime.datetime.now(datetime.UTC).strftime('%Y-%m-%d %H:%M UTC')}",
    ]


@dataclass(frozen=True)
class Load:
    """The machine's load when a run starts: load averages and CPU counters, to compare with its end."""

    averages: tuple[float, float, float]
    busy: int
    total: int
    own: float
    """CPU seconds of this process and its waited-for children so far."""

    @classmethod
    def now(cls) -> Load:
        busy, total = _cpu_jiffies()
        times = os.times()
        own = times.user + times.system + times.children_user + times.children_system
        return cls(os.getloadavg(), busy, total, own)

    def since(self) -> list[str]:
        """What the machine did between `self` and now: load averages, and whose CPU time it was."""
        end = Load.now()
        lines = [
            "Load average (1/5/15 min) at the start: "
            + " / ".join(f"{value:.2f}" for value in self.averages)
            + "; at the end: "
            + " / ".join(f"{value:.2f}" for value in end.averages)
        ]
        jiffies = end.total - self.total
        if jiffies > 0:
            tick = os.sysconf("SC_CLK_TCK")
            cores = os.cpu_count() or 1
            wall = jiffies / tick / cores
            busy = (end.busy - self.busy) / tick
            own = end.own - self.own
            lines.append(
                f"CPU busy during the run: {busy / wall / cores:.0%} of {cores} cores; this benchmark and its "
                f"servers {min(own, busy) / wall / cores:.0%}, everything else (PostgreSQL, other people's work) "
                f"{max(0.0, busy - own) / wall / cores:.0%}"
            )
        return lines


def _cpu_jiffies() -> tuple[int, int]:
    """Busy and total CPU time of the whole machine (all cores) so far, in clock ticks (/proc/stat)."""
    try:
        fields = [int(value) for value in Path("/proc/stat").read_text(encoding="utf-8").split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return 0, 0
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    total = sum(fields[:8])
    return total - idle, total


def write_results(
    path: Path,
    *,
    command: str,
    seconds: float,
    tables: list[Table],
    failures: list[str],
    load: list[str] | None = None,
) -> None:
    """Write the machine's description (and its load during the run), the command, every table and any
    failures to `path`."""
    lines = [
        "# Benchmark results",
        "",
        f"Generated by `{command}` in {seconds:.0f} s. Each benchmark runs its variants side by side in one run;",
        "ratios compare figures from the same run. Tokens are estimated at 4 characters per token.",
        "",
        "## Machine",
        "",
    ]
    lines.extend(f"- {item}" for item in [*machine_description(), *(load or [])])
    if failures:
        lines += ["", "## Failures", ""]
        lines.extend(f"- {failure}" for failure in failures)
    lines += ["", "## Results", ""]
    for table in tables:
        lines += [table.markdown(), ""]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines), encoding="utf-8")
