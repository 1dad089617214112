"""The processor table matches Parallel's documented tiers, bands and prices."""

import pytest

from parallel_mcp.processors import (
    FAST_SUFFIX,
    PROCESSORS,
    TIER_NAMES,
    get_processor,
    is_premium,
)

TIERS = ("lite", "base", "core", "core2x", "pro", "ultra", "ultra2x", "ultra4x", "ultra8x")

# name, min s, max s, $ per 1000 runs, ~max fields (docs table, standard and -fast latency columns)
DOCUMENTED = [
    ("lite", 10, 60, 5, 2),
    ("lite-fast", 10, 20, 5, 2),
    ("base", 15, 100, 10, 5),
    ("base-fast", 15, 50, 10, 5),
    ("core", 60, 300, 25, 10),
    ("core-fast", 15, 100, 25, 10),
    ("core2x", 60, 600, 50, 10),
    ("core2x-fast", 15, 180, 50, 10),
    ("pro", 120, 600, 100, 20),
    ("pro-fast", 30, 300, 100, 20),
    ("ultra", 300, 1500, 300, 20),
    ("ultra-fast", 60, 600, 300, 20),
    ("ultra2x", 300, 3000, 600, 25),
    ("ultra2x-fast", 60, 1200, 600, 25),
    ("ultra4x", 300, 5400, 1200, 25),
    ("ultra4x-fast", 60, 2400, 1200, 25),
    ("ultra8x", 300, 7200, 2400, 25),
    ("ultra8x-fast", 60, 3600, 2400, 25),
]


def test_there_are_eighteen_processors_nine_tiers_and_their_fast_variants() -> None:
    assert TIER_NAMES == TIERS
    assert set(PROCESSORS) == {*TIERS, *(t + FAST_SUFFIX for t in TIERS)}
    assert len(PROCESSORS) == 18


@pytest.mark.parametrize(("name", "min_seconds", "max_seconds", "usd_per_1000", "max_fields"), DOCUMENTED)
def test_each_processor_has_its_documented_band_price_and_field_guidance(
    name: str, min_seconds: float, max_seconds: float, usd_per_1000: float, max_fields: int
) -> None:
    processor = get_processor(name)
    assert processor is not None
    assert processor.name == name
    assert (processor.min_seconds, processor.max_seconds) == (min_seconds, max_seconds)
    assert processor.usd_per_1000_runs == usd_per_1000
    assert processor.usd_per_run == pytest.approx(usd_per_1000 / 1000)
    assert processor.max_fields == max_fields


def test_the_table_covers_every_processor_exactly_once() -> None:
    assert sorted(row[0] for row in DOCUMENTED) == sorted(PROCESSORS)


@pytest.mark.parametrize("tier", TIERS)
def test_a_fast_variant_costs_the_same_and_is_no_slower(tier: str) -> None:
    standard = PROCESSORS[tier]
    fast = PROCESSORS[tier + FAST_SUFFIX]
    assert fast.usd_per_1000_runs == standard.usd_per_1000_runs
    assert fast.max_fields == standard.max_fields
    assert fast.max_seconds <= standard.max_seconds
    assert fast.min_seconds <= standard.min_seconds


def test_prices_rise_with_the_tier() -> None:
    prices = [PROCESSORS[t].usd_per_1000_runs for t in TIERS]
    assert prices == sorted(prices)
    assert len(set(prices)) == len(prices)


@pytest.mark.parametrize(
    ("name", "band"),
    [
        ("lite", "10 s-1 min"),
        ("lite-fast", "10 s-20 s"),
        ("base", "15 s-100 s"),
        ("core-fast", "15 s-100 s"),
        ("pro", "2 min-10 min"),
        ("ultra4x", "5 min-1.5 h"),
        ("ultra8x", "5 min-2 h"),
        ("ultra8x-fast", "1 min-1 h"),
    ],
)
def test_the_band_reads_like_the_docs(name: str, band: str) -> None:
    assert PROCESSORS[name].band == band


@pytest.mark.parametrize(
    ("name", "premium"),
    [
        ("lite", False),
        ("base-fast", False),
        ("core", False),
        ("core2x-fast", False),
        ("pro", True),
        ("pro-fast", True),
        ("ultra", True),
        ("ultra2x-fast", True),
        ("ultra4x", True),
        ("ultra8x-fast", True),
        ("unknown", False),
        ("professional", False),
    ],
)
def test_is_premium_is_true_from_pro_upwards(name: str, premium: bool) -> None:
    assert is_premium(name) is premium


@pytest.mark.parametrize("name", ["", "Pro", "pro-", "pro-fast-fast", "ultra16x", "core-slow"])
def test_an_unknown_processor_name_is_not_found(name: str) -> None:
    assert get_processor(name) is None


def test_the_tool_schema_names_every_tier_and_the_fast_variants() -> None:
    from parallel_mcp.tool_schemas import PROCESSOR

    described = str(PROCESSOR)
    assert all(tier in described for tier in TIER_NAMES) and "-fast" in described
