"""What both kinds of page share: sizes measured exactly, citations merged by URL, values cut to fit."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

from pydantic_core import to_json

from parallel_mcp.errors import ArgumentError
from parallel_mcp.models import Citation, McpToolCall
from parallel_mcp.text import ELLIPSIS, shorten
from parallel_mcp.views import CitationRef, OutputPage

MAX_EXCERPTS = 2
EXCERPT_CHARS = 300
TITLE_CHARS = 200
REASONING_CHARS = 300
"""Reasoning is kept in full, except when a lone oversized field has to shed basis."""
TOOL_CALL_CHARS = 300

# A URL in markdown ends at whitespace or at a character that closes the markdown around it.
URL_RE = re.compile(r"https?://[^\s<>\"'`]+")
URL_TRAILERS = frozenset(").,;:!?]>'\"*_}")


def json_len(value: Any) -> int:
    # pydantic-core is the serializer behind model_dump_json, so sizes measured here add up exactly.
    return len(to_json(value))


def check_offset(offset: int, total: int, unit: str) -> None:
    if total == 0 and offset != 0:
        raise ArgumentError(f"offset {offset} is outside the output: it is empty (use offset 0).")
    if offset < 0 or (offset >= total and total > 0):
        raise ArgumentError(
            f"offset {offset} is outside the output: it has {total} {unit} (valid offsets 0-{total - 1})."
        )


@dataclass
class Cit:
    """A de-duplicated citation being collected for a page."""

    number: int
    url: str
    title: str | None
    excerpts: list[str]
    size: int = 0

    def ref(self) -> CitationRef:
        return CitationRef(number=self.number, url=self.url, title=self.title, excerpts=self.excerpts)

    def measure(self) -> Cit:
        self.size = len(self.ref().model_dump_json())
        return self


def merged_citation(
    cit: Cit | None, source: Citation, number: int, with_excerpts: bool, measure: bool = True
) -> Cit | None:
    """The citation after folding in one more occurrence of its URL; None when nothing changes."""
    new_excerpts = [shorten(e, EXCERPT_CHARS) for e in source.excerpts or []] if with_excerpts else []
    title = shorten(source.title, TITLE_CHARS) if source.title else None
    if cit is None:
        merged = Cit(number, source.url, title, dedupe(new_excerpts)[:MAX_EXCERPTS])
    else:
        excerpts = dedupe([*cit.excerpts, *new_excerpts])[:MAX_EXCERPTS]
        if excerpts == cit.excerpts and (cit.title or not title):
            return None
        merged = Cit(cit.number, cit.url, cit.title or title, excerpts)
    return merged.measure() if measure else merged


def dedupe(items: list[str]) -> list[str]:
    return [item for item in dict.fromkeys(items) if item]


def list_size(sizes: int, count: int) -> int:
    """Characters the items of a JSON array take inside its brackets: items plus commas."""
    return sizes + max(0, count - 1)


def fit_schema(schema: dict[str, Any] | None, limit: int) -> dict[str, Any] | None:
    if schema is None or json_len(schema) <= limit:
        return schema
    stripped = cast(dict[str, Any], strip_descriptions(schema))
    return stripped if json_len(stripped) <= limit else None


def strip_descriptions(node: Any) -> Any:
    if isinstance(node, dict):
        items = cast(dict[str, Any], node).items()
        return {k: strip_descriptions(v) for k, v in items if k != "description" or not isinstance(v, str)}
    if isinstance(node, list):
        return [strip_descriptions(v) for v in cast(list[Any], node)]
    return node


def fit_tool_calls(calls: list[McpToolCall] | None, limit: int) -> list[McpToolCall] | None:
    if not calls:
        return calls
    kept: list[McpToolCall] = []
    used = 2
    for call in calls:
        short = call.model_copy(
            update={
                "arguments": shorten(call.arguments, TOOL_CALL_CHARS),
                "content": shorten(call.content, TOOL_CALL_CHARS) if call.content else call.content,
                "error": shorten(call.error, TOOL_CALL_CHARS) if call.error else call.error,
            }
        )
        size = len(short.model_dump_json()) + (1 if kept else 0)
        if used + size > limit:
            break
        kept.append(short)
        used += size
    return kept


def skeleton_size(make: Callable[[int | None], OutputPage], total: int) -> int:
    """Size of the page around its content, basis and citations, for either kind of next_offset."""
    return max(len(make(None).model_dump_json()), len(make(total).model_dump_json()))


def cut_str(text: str, limit: int) -> str:
    """Cut a string so that its JSON fits `limit`, ending with a `… [truncated N chars]` marker."""
    keep = max(0, limit - len(f"{ELLIPSIS} [truncated {len(text)} chars]") - 2)
    while True:
        head = text[:keep]
        space = head.rfind(" ", max(0, keep - 40))
        if space > 0 and keep < len(text) and not text[keep].isspace():
            head = head[:space]  # end on a word break when one is close
        candidate = f"{head.rstrip()}{ELLIPSIS} [truncated {len(text) - len(head.rstrip())} chars]"
        size = json_len(candidate)
        if size <= limit or keep == 0:
            return candidate
        keep = max(0, keep - (size - limit))  # every kept char costs at least one JSON char


def cut_value(value: Any, limit: int) -> Any:
    """Shrink a JSON value so that its JSON takes at most `limit` characters (if it can shrink).

    Strings are cut with a marker; lists and objects keep a prefix, then a marker item or key.
    Numbers, booleans and null cannot shrink and are returned as they are.
    """
    if json_len(value) <= limit:
        return value
    if isinstance(value, str):
        return cut_str(value, limit)
    if isinstance(value, list):
        items = cast(list[Any], value)
        kept: list[Any] = []
        reserve = json_len(f"{ELLIPSIS} [{len(items)} more items truncated]") + 1
        used = 2
        for item in items:
            size = json_len(item) + (1 if kept else 0)
            if used + size + reserve > limit:
                if not kept:
                    kept.append(cut_value(item, limit - used - reserve))
                break
            kept.append(item)
            used += size
        return [*kept, f"{ELLIPSIS} [{len(items) - len(kept)} more items truncated]"]
    if isinstance(value, dict):
        entries = cast(dict[str, Any], value)
        out: dict[str, Any] = {}
        reserve = json_len({ELLIPSIS: f"[{len(entries)} more keys truncated]"}) - 1
        used = 2
        for key, item in entries.items():
            key_size = json_len(key) + 1 + (1 if out else 0)
            size = key_size + json_len(item)
            if used + size + reserve > limit:
                if not out:
                    out[key] = cut_value(item, limit - used - key_size - reserve)
                break
            out[key] = item
            used += size
        out[ELLIPSIS] = f"[{len(entries) - len(out)} more keys truncated]"
        return out
    return value
