"""What the emulator's generators know about one request, and its seeded random sources.

Everything derives from a `random.Random` seeded with a sha256 of the request's canonical JSON, so
the same request always gets the same answer and the same progress events, across processes.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from typing import Any, Final

from parallel_mcp.emulator.fake_web import FakeWeb
from parallel_mcp.models import TaskRunInput
from parallel_mcp.processors import FAST_SUFFIX, TIER_NAMES, is_premium
from parallel_mcp.text import shorten

_TIER_INDEX: Final[dict[str, int]] = {name: index for index, name in enumerate(TIER_NAMES)}
_POOL_SIZE: Final[tuple[int, ...]] = (6, 8, 10, 12, 20, 30, 45, 60, 90)
"""Invented sources per tier, in tier order."""

# fmt: off
_STOPWORDS: Final[frozenset[str]] = frozenset({
    "a", "an", "and", "are", "as", "at", "be", "been", "but", "by", "can", "could", "did", "do", "does", "for",
    "from", "had", "has", "have", "how", "i", "if", "in", "into", "is", "it", "its", "me", "my", "of", "on", "or",
    "our", "should", "so", "than", "that", "the", "their", "them", "then", "there", "these", "they", "this", "to",
    "was", "we", "were", "what", "when", "where", "which", "who", "whom", "why", "will", "with", "would", "you",
    "your", "about", "give", "find", "list", "tell", "please", "compare", "explain", "describe", "show", "provide",
    "latest", "current",
})
# fmt: on
_WORD = re.compile(r"[A-Za-z][A-Za-z0-9]+")
FACETS: Final[tuple[str, ...]] = (
    "overview",
    "latest developments",
    "key players",
    "market size",
    "regulation",
    "criticism and risks",
    "statistics",
    "case studies",
    "expert analysis",
    "historical timeline",
    "outlook",
    "funding and investment",
    "technology",
    "regional differences",
    "customer adoption",
    "open questions",
)
"""Angles of a topic: report sections, searches and the notes in invented values."""


def _seed(run_input: TaskRunInput) -> str:
    """A stable hex digest of the parts of the request that decide its output."""
    wire = run_input.model_dump(
        mode="json", include={"input", "processor", "task_spec", "source_policy"}, exclude_none=True
    )
    canonical = json.dumps(wire, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _flatten_input(value: str | dict[str, Any]) -> str:
    if isinstance(value, str):
        return value
    parts: list[str] = []
    for key, item in value.items():
        if isinstance(item, str | int | float) and not isinstance(item, bool):
            parts.append(str(item))
        else:
            parts.append(key)
    return " ".join(parts)


def _subject(value: str | dict[str, Any]) -> str:
    """A short quotable description of the input."""
    if isinstance(value, str):
        return shorten(value, 70, one_line=True)
    scalars = [str(v) for v in value.values() if isinstance(v, str | int | float) and not isinstance(v, bool)]
    return (
        shorten(", ".join(scalars) if scalars else json.dumps(value, sort_keys=True), 70, one_line=True) or "the input"
    )


def _topic_words(value: str | dict[str, Any]) -> list[str]:
    words: list[str] = []
    for word in _WORD.findall(_flatten_input(value)[:2000]):
        lower = word.lower()
        if len(lower) >= 3 and lower not in _STOPWORDS and lower not in words:
            words.append(lower)
        if len(words) == 6:
            break
    return words or ["research"]


class SeededRun:
    """What the generators know about one request, plus its seeded random sources."""

    def __init__(self, run_input: TaskRunInput) -> None:
        self.input = run_input
        self.seed = _seed(run_input)
        self.tier = run_input.processor.removesuffix(FAST_SUFFIX)
        # Unknown processors are rejected before a run exists; default to `core` sizes just in case.
        self.tier_index = _TIER_INDEX.get(self.tier, 2)
        self.premium = is_premium(run_input.processor)
        self.subject = _subject(run_input.input)
        # Field values quote a shorter form so json content stays compact.
        self.short = shorten(self.subject, 40, one_line=True).rstrip("?.!:;, ")
        self.words = _topic_words(run_input.input)
        self.topic = " ".join(self.words[:3])
        self.web = FakeWeb(
            self.rng("web"), self.words, self.subject, run_input.source_policy, _POOL_SIZE[self.tier_index]
        )

    def rng(self, purpose: str) -> random.Random:
        """An independent random source per purpose, so the output and the script don't disturb each other."""
        return random.Random(f"{self.seed}:{purpose}")
