"""The processor tiers of the Task API: latency bands and prices, as documented by Parallel, and
the pricing policy that guards them.

Pure data, lookups and the cost check. Used for tool descriptions, `retry_after_seconds` hints, the
cost of a run, and the emulator's run durations. A `ProcessorTable` is the table at a pace: the
real one, or the embedded emulator's, whose runs go `pace` times faster.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from parallel_mcp.errors import ParallelMCPError
from parallel_mcp.text import format_duration

FAST_SUFFIX = "-fast"


@dataclass(frozen=True, slots=True)
class Processor:
    """One processor tier (a `-fast` variant has its own entry)."""

    name: str
    min_seconds: float
    max_seconds: float
    usd_per_1000_runs: float
    max_fields: int

    @property
    def usd_per_run(self) -> float:
        """Price of one run in US dollars (pricing is per run, not per field)."""
        return self.usd_per_1000_runs / 1000

    @property
    def band(self) -> str:
        """The latency band as a short human string, e.g. ``"2 min-10 min"``."""
        return f"{format_duration(self.min_seconds)}-{format_duration(self.max_seconds)}"


_MIN = 60.0
_H = 3600.0
# name: (standard band, -fast band, $ per 1000 runs, ~max output fields)
_TIERS: dict[str, tuple[tuple[float, float], tuple[float, float], float, int]] = {
    "lite": ((10, 60), (10, 20), 5, 2),
    "base": ((15, 100), (15, 50), 10, 5),
    "core": ((60, 5 * _MIN), (15, 100), 25, 10),
    "core2x": ((60, 10 * _MIN), (15, 3 * _MIN), 50, 10),
    "pro": ((2 * _MIN, 10 * _MIN), (30, 5 * _MIN), 100, 20),
    "ultra": ((5 * _MIN, 25 * _MIN), (1 * _MIN, 10 * _MIN), 300, 20),
    "ultra2x": ((5 * _MIN, 50 * _MIN), (1 * _MIN, 20 * _MIN), 600, 25),
    "ultra4x": ((5 * _MIN, 90 * _MIN), (1 * _MIN, 40 * _MIN), 1200, 25),
    "ultra8x": ((5 * _MIN, 2 * _H), (1 * _MIN, 1 * _H), 2400, 25),
}


def _build() -> dict[str, Processor]:
    table: dict[str, Processor] = {}
    for tier, (standard, fast, price, fields) in _TIERS.items():
        table[tier] = Processor(tier, standard[0], standard[1], price, fields)
        fast_name = tier + FAST_SUFFIX
        table[fast_name] = Processor(fast_name, fast[0], fast[1], price, fields)
    return table


PROCESSORS: dict[str, Processor] = _build()
"""Every valid processor name, standard tiers first then their `-fast` variants."""

TIER_NAMES: tuple[str, ...] = tuple(_TIERS)
PREMIUM_TIERS = frozenset(t for t in TIER_NAMES if t.startswith(("pro", "ultra")))


def get_processor(name: str) -> Processor | None:
    """Look up a processor by name; ``None`` when the API would reject it with 403."""
    return PROCESSORS.get(name)


def list_price(name: str) -> float:
    """The list price of one run on processor `name`, in US dollars; 0 for a name the API refuses (403)."""
    proc = PROCESSORS.get(name)
    return proc.usd_per_run if proc else 0.0


def is_premium(name: str) -> bool:
    """True for `pro` and above (events on by default, deep-research auto output)."""
    return name.removesuffix(FAST_SUFFIX) in PREMIUM_TIERS


@dataclass(frozen=True)
class ProcessorTable:
    """The processors at a pace: latency bands divided by `pace` (1 on the real API), prices unchanged."""

    pace: float = 1.0

    def get(self, name: str) -> Processor | None:
        """The processor with its band at this table's pace; None for an unknown name."""
        proc = PROCESSORS.get(name)
        if proc is None or self.pace == 1.0:
            return proc
        return replace(proc, min_seconds=proc.min_seconds / self.pace, max_seconds=proc.max_seconds / self.pace)

    @property
    def min_poll_seconds(self) -> int:
        """The shortest polling hint worth giving: a few seconds for real runs, one for a sped-up emulator."""
        return 1 if self.pace > 1 else 5


class CostLimitError(ParallelMCPError):
    """A run's list price is above the configured `max_cost_usd`."""

    def __init__(self, processor: str, price: float, limit: float) -> None:
        self.processor = processor
        self.price = price
        self.limit = limit
        self.fitting = [name for name, p in PROCESSORS.items() if p.usd_per_run <= limit]
        super().__init__(f"processor {processor!r} costs ${price:g} per run, above the limit of ${limit:g}")


def check_cost(processor: str, max_cost_usd: float | None) -> None:
    """Refuse a processor whose per-run price is above the configured limit.

    Raises:
        CostLimitError: the processor's price is above `max_cost_usd`.
    """
    proc = get_processor(processor)
    if max_cost_usd is not None and proc is not None and proc.usd_per_run > max_cost_usd:
        raise CostLimitError(processor, proc.usd_per_run, max_cost_usd)
