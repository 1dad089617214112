"""The shared text helpers: shortening at word breaks and durations written as the docs write them."""

from __future__ import annotations

import pytest

from parallel_mcp.text import ELLIPSIS, format_duration, shorten


def test_shorten_keeps_a_text_that_fits_and_cuts_a_long_one_at_a_word_break() -> None:
    assert shorten("short text", 50) == "short text"
    cut = shorten("alpha beta gamma delta epsilon zeta", 20)
    assert cut.endswith(ELLIPSIS) and len(cut) <= 20
    assert cut.removesuffix(ELLIPSIS) in {"alpha beta gamma", "alpha beta"}


def test_shorten_one_line_folds_newlines_and_runs_of_spaces() -> None:
    assert shorten("a\n  b\tc", 50, one_line=True) == "a b c"
    assert len(shorten("x" * 1000, 160, one_line=True)) == 160


def test_shorten_cuts_mid_word_when_the_text_has_no_space() -> None:
    assert shorten("y" * 100, 10) == "y" * 9 + ELLIPSIS


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (3, "3 s"),
        (45.4, "45 s"),
        (60, "1 min"),
        (100, "100 s"),
        (125, "125 s"),
        (600, "10 min"),
        (725, "12 min 5 s"),
        (3600, "1 h"),
        (5400, "1.5 h"),
        (7200, "2 h"),
        (3725, "1 h 2 min"),
    ],
)
def test_format_duration_writes_bands_as_the_docs_and_long_times_in_larger_units(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text
