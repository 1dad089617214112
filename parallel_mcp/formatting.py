"""Paging a run's output under a character budget, and the compact text the model reads.

Research outputs can be huge (one documented auto-mode run had 124 fields and 610 citations) and
MCP clients warn above about 10k tokens and cut at about 25k. So a completed run's output is served
in pages whose JSON stays within a budget, and the text rendering shows the content, numbered
sources and confidences without repeating the JSON.

Everything here is pure: no I/O, no MCP imports, deterministic for a given input.
"""

from __future__ import annotations

import bisect
import json
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from pydantic_core import to_json

from parallel_mcp.models import Citation, FieldBasis, McpToolCall, TaskRunJsonOutput, TaskRunTextOutput
from parallel_mcp.text import ELLIPSIS, format_duration, shorten
from parallel_mcp.views import (
    BasisEntry,
    CitationRef,
    OutputPage,
    PageInfo,
    RunListView,
    TaskGroupView,
    TaskRunView,
)

CHARS_PER_TOKEN = 4
"""Documented rule of thumb for English text and JSON: about four characters per token."""

MAX_EXCERPTS = 2
EXCERPT_CHARS = 300
TITLE_CHARS = 200
REASONING_CHARS = 300
"""Reasoning is kept in full, except when a lone oversized field has to shed basis."""
TOOL_CALL_CHARS = 300
RENDER_VALUE_CHARS = 2_000
"""Longest value `render_page` shows for one json field; the structured page keeps it whole."""
GET_RUN_TOOL = "get_task_run"

# A URL in markdown ends at whitespace or at a character that closes the markdown around it.
_URL_RE = re.compile(r"https?://[^\s<>\"'`]+")
_URL_TRAILERS = frozenset(").,;:!?]>'\"*_}")


def estimate_tokens(text: str) -> int:
    """Estimate how many tokens a text costs in a model's context.

    Args:
        text: Any text (rendered markdown or JSON).

    Returns:
        `ceil(len(text) / CHARS_PER_TOKEN)`; 0 for an empty text.
    """
    return math.ceil(len(text) / CHARS_PER_TOKEN)


def page_output(
    output: TaskRunJsonOutput | TaskRunTextOutput,
    *,
    offset: int = 0,
    budget_chars: int,
    fields: Sequence[str] | None = None,
    include_basis: bool = True,
) -> OutputPage:
    """Cut one page out of a run's output so that the page's JSON fits a character budget.

    json output (`page.unit == "fields"`):
        The unit is the top-level fields in content order (narrowed by `fields`, in content order;
        offsets then count within the selected fields). A page takes fields from `offset` on while
        `page.model_dump_json()` stays within `budget_chars`, and always holds at least one field.
        A lone field too big for the budget is cut to fit: long strings end with
        `… [truncated N chars]`, long lists end with a `… [N more items truncated]` item and long
        objects with a `"…"` key; such a field has its page to itself and `next_offset` moves on
        to the next field. If the basis of
        such a field alone would take more than its share, its excerpts are dropped, its
        reasoning shortened and, as a last resort, citations or entries left off (said so in the
        last kept entry's reasoning). Basis entries go on the page of the top-level field they
        belong to (`name` or a dot path `name.…`); entries of no content field are left out.

    text output (`page.unit == "chars"`):
        The unit is characters of the markdown. A page ends at a paragraph break (or a line
        break) in the second half of what fits, else at the last paragraph, line or word break,
        and only mid-word when the window has no whitespace at all; the slices of all pages
        concatenate to the original text. A citation goes on every page whose slice contains
        its URL; citations the text never links to are spread evenly over the text (the one
        numbered k of n is anchored at character `k * len / n`) and go on the page holding
        their anchor, so no page has to carry them all and none is lost. Every page repeats the
        text's basis entries (normally one, `output`) with the numbers of that page's citations.
        When the citations anchored at a page's first character do not fit with their excerpts
        (a short answer with many sources), that page's citations come without excerpts.

    Both:
        Citations are de-duplicated by exact URL within the page and numbered 1..n in order of
        first appearance (json: in basis order of the page's fields; text: linked ones in order
        of their first link in the slice, then the unlinked ones); a citation keeps at most
        `MAX_EXCERPTS` excerpts (merged across its occurrences), each shortened to about
        `EXCERPT_CHARS`. `include_basis=False` leaves out basis and citations. `output_schema`
        and `mcp_tool_calls` appear only on the page at offset 0: the schema whole if it takes
        at most a quarter of the budget, else without its descriptions, else not at all; tool
        calls with their strings shortened, as many as fit in a quarter of the budget.
        `next_offset` is None on the last page.

    Args:
        output: The run's output, as returned by `/result`.
        offset: Where the page starts: a field index (json) or a character index (text).
        budget_chars: Most characters the page's JSON may take; values below about 500 are
            met only as far as the page skeleton allows.
        fields: json only: the top-level fields to page through; None or empty for all.
        include_basis: False to return only the content.

    Returns:
        The page, with `page.next_offset` to pass back for the next one.

    Raises:
        ValueError: `fields` names an unknown field (the message lists the valid ones), `fields`
            was given for a text output, `offset` lies outside the output, or `budget_chars` is
            not positive.
    """
    if budget_chars <= 0:
        raise ValueError(f"budget_chars must be positive, got {budget_chars}.")
    if isinstance(output, TaskRunTextOutput):
        if fields:
            raise ValueError("This run has a text (markdown) output: it has no fields to select; omit `fields`.")
        return _page_text(output, offset=offset, budget=budget_chars, include_basis=include_basis)
    return _page_json(output, offset=offset, budget=budget_chars, fields=fields, include_basis=include_basis)


# ---------------------------------------------------------------------------------------------
# Shared pieces


def _json_len(value: Any) -> int:
    # pydantic-core is the serializer behind model_dump_json, so sizes measured here add up exactly.
    return len(to_json(value))


def _check_offset(offset: int, total: int, unit: str) -> None:
    if total == 0 and offset != 0:
        raise ValueError(f"offset {offset} is outside the output: it is empty (use offset 0).")
    if offset < 0 or (offset >= total and total > 0):
        raise ValueError(f"offset {offset} is outside the output: it has {total} {unit} (valid offsets 0-{total - 1}).")


@dataclass
class _Cit:
    """A de-duplicated citation being collected for a page."""

    number: int
    url: str
    title: str | None
    excerpts: list[str]
    size: int = 0

    def ref(self) -> CitationRef:
        return CitationRef(number=self.number, url=self.url, title=self.title, excerpts=self.excerpts)

    def measure(self) -> _Cit:
        self.size = len(self.ref().model_dump_json())
        return self


def _merged(cit: _Cit | None, source: Citation, number: int, with_excerpts: bool, measure: bool = True) -> _Cit | None:
    """The citation after folding in one more occurrence of its URL; None when nothing changes."""
    new_excerpts = [shorten(e, EXCERPT_CHARS) for e in source.excerpts or []] if with_excerpts else []
    title = shorten(source.title, TITLE_CHARS) if source.title else None
    if cit is None:
        merged = _Cit(number, source.url, title, _dedupe(new_excerpts)[:MAX_EXCERPTS])
    else:
        excerpts = _dedupe([*cit.excerpts, *new_excerpts])[:MAX_EXCERPTS]
        if excerpts == cit.excerpts and (cit.title or not title):
            return None
        merged = _Cit(cit.number, cit.url, cit.title or title, excerpts)
    return merged.measure() if measure else merged


def _dedupe(items: list[str]) -> list[str]:
    return [item for item in dict.fromkeys(items) if item]


def _list_size(sizes: int, count: int) -> int:
    """Characters the items of a JSON array take inside its brackets: items plus commas."""
    return sizes + max(0, count - 1)


def _fit_schema(schema: dict[str, Any] | None, limit: int) -> dict[str, Any] | None:
    if schema is None or _json_len(schema) <= limit:
        return schema
    stripped = cast(dict[str, Any], _strip_descriptions(schema))
    return stripped if _json_len(stripped) <= limit else None


def _strip_descriptions(node: Any) -> Any:
    if isinstance(node, dict):
        items = cast(dict[str, Any], node).items()
        return {k: _strip_descriptions(v) for k, v in items if k != "description" or not isinstance(v, str)}
    if isinstance(node, list):
        return [_strip_descriptions(v) for v in cast(list[Any], node)]
    return node


def _fit_tool_calls(calls: list[McpToolCall] | None, limit: int) -> list[McpToolCall] | None:
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


def _skeleton(make: Callable[[int | None], OutputPage], total: int) -> int:
    """Size of the page around its content, basis and citations, for either kind of next_offset."""
    return max(len(make(None).model_dump_json()), len(make(total).model_dump_json()))


# ---------------------------------------------------------------------------------------------
# Cutting values that do not fit


def _cut_str(text: str, limit: int) -> str:
    """Cut a string so that its JSON fits `limit`, ending with a `… [truncated N chars]` marker."""
    keep = max(0, limit - len(f"{ELLIPSIS} [truncated {len(text)} chars]") - 2)
    while True:
        head = text[:keep]
        space = head.rfind(" ", max(0, keep - 40))
        if space > 0 and keep < len(text) and not text[keep].isspace():
            head = head[:space]  # end on a word break when one is close
        candidate = f"{head.rstrip()}{ELLIPSIS} [truncated {len(text) - len(head.rstrip())} chars]"
        size = _json_len(candidate)
        if size <= limit or keep == 0:
            return candidate
        keep = max(0, keep - (size - limit))  # every kept char costs at least one JSON char


def _cut_value(value: Any, limit: int) -> Any:
    """Shrink a JSON value so that its JSON takes at most `limit` characters (if it can shrink).

    Strings are cut with a marker; lists and objects keep a prefix, then a marker item or key.
    Numbers, booleans and null cannot shrink and are returned as they are.
    """
    if _json_len(value) <= limit:
        return value
    if isinstance(value, str):
        return _cut_str(value, limit)
    if isinstance(value, list):
        items = cast(list[Any], value)
        kept: list[Any] = []
        reserve = _json_len(f"{ELLIPSIS} [{len(items)} more items truncated]") + 1
        used = 2
        for item in items:
            size = _json_len(item) + (1 if kept else 0)
            if used + size + reserve > limit:
                if not kept:
                    kept.append(_cut_value(item, limit - used - reserve))
                break
            kept.append(item)
            used += size
        return [*kept, f"{ELLIPSIS} [{len(items) - len(kept)} more items truncated]"]
    if isinstance(value, dict):
        entries = cast(dict[str, Any], value)
        out: dict[str, Any] = {}
        reserve = _json_len({ELLIPSIS: f"[{len(entries)} more keys truncated]"}) - 1
        used = 2
        for key, item in entries.items():
            key_size = _json_len(key) + 1 + (1 if out else 0)
            size = key_size + _json_len(item)
            if used + size + reserve > limit:
                if not out:
                    out[key] = _cut_value(item, limit - used - key_size - reserve)
                break
            out[key] = item
            used += size
        out[ELLIPSIS] = f"[{len(entries) - len(out)} more keys truncated]"
        return out
    return value


# ---------------------------------------------------------------------------------------------
# json output: pages of top-level fields


def _select_keys(content: dict[str, Any], fields: Sequence[str] | None) -> tuple[list[str], list[str] | None]:
    if not fields:
        return list(content), None
    if isinstance(fields, str):
        fields = [fields]  # a lone name is a common slip; a str is a Sequence of characters
    wanted = list(dict.fromkeys(fields))
    unknown = [name for name in wanted if name not in content]
    if unknown:
        valid = ", ".join(content) or "(none)"
        raise ValueError(f"Unknown output field(s): {', '.join(unknown)}. Valid fields: {valid}.")
    chosen = set(wanted)
    return [key for key in content if key in chosen], wanted


def _owner(path: str, keys: set[str]) -> str | None:
    """The top-level field a basis path belongs to; the longest match wins (names may hold dots)."""
    if path in keys:
        return path
    end = path.rfind(".")
    while end > 0:
        if path[:end] in keys:
            return path[:end]
        end = path.rfind(".", 0, end)
    return None


@dataclass
class _JsonPage:
    """The fields, basis and citations collected so far, and the page's JSON size."""

    size: int
    content: dict[str, Any] = field(default_factory=dict[str, Any])
    basis: list[BasisEntry] = field(default_factory=list[BasisEntry])
    cits: dict[str, _Cit] = field(default_factory=dict[str, _Cit])
    basis_size: int = 0
    cit_size: int = 0


@dataclass
class _Basis:
    """The basis of one field, staged: entries, new or changed citations, and the size they add."""

    entries: list[BasisEntry]
    staged: dict[str, _Cit]
    delta: int


def _stage_basis(page: _JsonPage, source: list[FieldBasis], *, excerpts: bool, reasoning: int | None) -> _Basis:
    staged: dict[str, _Cit] = {}
    entries: list[BasisEntry] = []
    next_number = len(page.cits) + 1
    for item in source:
        numbers: list[int] = []
        for citation in item.citations:
            current = staged.get(citation.url) or page.cits.get(citation.url)
            merged = _merged(current, citation, next_number, excerpts)
            if merged is not None:
                next_number += current is None
                staged[citation.url] = merged
                current = merged
            assert current is not None
            if current.number not in numbers:
                numbers.append(current.number)
        text = item.reasoning if reasoning is None else shorten(item.reasoning, reasoning)
        entries.append(BasisEntry(field=item.field, confidence=item.confidence, reasoning=text, citations=numbers))
    return _Basis(entries, staged, _basis_delta(page, entries, staged))


def _basis_delta(page: _JsonPage, entries: list[BasisEntry], staged: dict[str, _Cit]) -> int:
    entry_sizes = sum(len(e.model_dump_json()) for e in entries)
    new_basis = _list_size(page.basis_size + entry_sizes, len(page.basis) + len(entries))
    cit_sizes = page.cit_size + sum(c.size - (page.cits[u].size if u in page.cits else 0) for u, c in staged.items())
    new_cits = _list_size(cit_sizes, len(page.cits | staged))
    return (
        new_basis - _list_size(page.basis_size, len(page.basis)) + new_cits - _list_size(page.cit_size, len(page.cits))
    )


def _commit(page: _JsonPage, key: str, value: Any, basis: _Basis) -> None:
    page.content[key] = value
    page.basis.extend(basis.entries)
    page.basis_size += sum(len(e.model_dump_json()) for e in basis.entries)
    page.cits.update(basis.staged)
    page.cit_size = sum(c.size for c in page.cits.values())


def _content_delta(page: _JsonPage, key: str, value: Any) -> int:
    return _json_len(key) + 1 + _json_len(value) + (1 if page.content else 0)


def _trim_basis(page: _JsonPage, source: list[FieldBasis], allowance: int, full: _Basis) -> _Basis:
    """The basis of a lone oversized field (`full` as staged), shed to take at most `allowance`."""
    if full.delta <= allowance:
        return full
    lean = _stage_basis(page, source, excerpts=False, reasoning=REASONING_CHARS)
    if lean.delta <= allowance:
        return lean
    # Last resort: keep entries and citations in order while they fit (the page is empty, as the
    # field is alone on it), then say what was left off. Measured one citation at a time, since
    # re-staging the whole basis per trial is quadratic.
    reserve = 90  # the note appended below
    numbers: dict[str, int] = {}
    kept: list[FieldBasis] = []
    used = 0
    fits = True
    for item in source:
        bare = item.model_copy(update={"reasoning": shorten(item.reasoning, REASONING_CHARS), "citations": []})
        entry = BasisEntry(field=bare.field, confidence=bare.confidence, reasoning=bare.reasoning)
        cost = len(entry.model_dump_json()) + (1 if kept else 0)
        if used + cost + reserve > allowance:
            break
        used += cost
        cited: list[Citation] = []
        for citation in item.citations:
            number = numbers.get(citation.url)
            cost = len(str(number or len(numbers) + 1)) + (1 if cited else 0)
            if number is None:
                title = shorten(citation.title, TITLE_CHARS) if citation.title else None
                ref = CitationRef(number=len(numbers) + 1, url=citation.url, title=title)
                cost += len(ref.model_dump_json()) + (1 if numbers else 0)
            if used + cost + reserve > allowance:
                fits = False
                break
            used += cost
            numbers.setdefault(citation.url, len(numbers) + 1)
            cited.append(citation)
        kept.append(bare.model_copy(update={"citations": cited}))
        if not fits:
            break
    dropped_cits = sum(len(item.citations) for item in source) - sum(len(item.citations) for item in kept)
    dropped_entries = len(source) - len(kept)
    if kept:
        note = f" [basis cut to fit the page: {dropped_cits} citations and {dropped_entries} entries left off]"
        last = kept[-1]
        kept[-1] = last.model_copy(update={"reasoning": shorten(last.reasoning, REASONING_CHARS) + note})
    return _stage_basis(page, kept, excerpts=False, reasoning=None)


def _page_json(
    output: TaskRunJsonOutput, *, offset: int, budget: int, fields: Sequence[str] | None, include_basis: bool
) -> OutputPage:
    keys, selected = _select_keys(output.content, fields)
    total = len(keys)
    _check_offset(offset, total, "fields")
    first = offset == 0
    schema = _fit_schema(output.output_schema, budget // 4) if first else None
    tool_calls = _fit_tool_calls(output.mcp_tool_calls, budget // 4) if first else None

    def make(next_offset: int | None, page: _JsonPage | None = None) -> OutputPage:
        return OutputPage(
            type="json",
            content=page.content if page else {},
            basis=page.basis if page else [],
            citations=[c.ref() for c in page.cits.values()] if page else [],
            output_schema=schema,
            mcp_tool_calls=tool_calls,
            page=PageInfo(unit="fields", offset=offset, next_offset=next_offset, total=total, selected_fields=selected),
        )

    skeleton = _skeleton(make, total)
    owned: dict[str, list[FieldBasis]] = {}
    if include_basis:
        keyset = set(keys[offset:])
        for item in output.basis:
            owner = _owner(item.field, keyset)
            if owner is not None:
                owned.setdefault(owner, []).append(item)

    page = _JsonPage(size=skeleton)
    end = offset
    for key in keys[offset:]:
        value = output.content[key]
        source = owned.get(key, [])
        basis = _stage_basis(page, source, excerpts=True, reasoning=None)
        grown = page.size + _content_delta(page, key, value) + basis.delta
        if grown > budget and page.content:
            break
        if grown > budget:
            # A lone field too big for a page: give its basis at most what the value leaves over,
            # then cut the value to the room that is left.
            key_cost = _json_len(key) + 1
            room = budget - skeleton - key_cost
            basis = _trim_basis(page, source, room - min(_json_len(value), room // 2), basis)
            value = _cut_value(value, room - basis.delta)
            grown = page.size + _content_delta(page, key, value) + basis.delta
            _commit(page, key, value, basis)
            end += 1
            break  # a cut field has the page to itself
        _commit(page, key, value, basis)
        page.size = grown
        end += 1

    next_offset = end if end < total else None
    result = make(next_offset, page)
    # The sizes above are exact by construction; this guard only ever shrinks a lone value further.
    for _ in range(3):
        excess = len(result.model_dump_json()) - budget
        if excess <= 0 or len(page.content) != 1:
            break
        (key,) = page.content
        page.content[key] = _cut_value(page.content[key], _json_len(page.content[key]) - excess)
        result = make(next_offset, page)
    return result


# ---------------------------------------------------------------------------------------------
# text output: pages of characters


@dataclass
class _TextCit:
    """A de-duplicated citation of a text output, with where the text anchors it."""

    cit: _Cit
    anchors: list[int]
    linked: bool
    lean_size: int = 0
    entries: list[int] = field(default_factory=list[int])


def _text_citations(output: TaskRunTextOutput) -> list[_TextCit]:
    """All citations of the text basis, de-duplicated by URL, each with its anchor positions."""
    by_url: dict[str, _TextCit] = {}
    for index, item in enumerate(output.basis):
        for citation in item.citations:
            known = by_url.get(citation.url)
            merged = _merged(known.cit if known else None, citation, 0, with_excerpts=True, measure=False)
            if known is None:
                assert merged is not None
                known = by_url[citation.url] = _TextCit(merged, [], linked=False)
            elif merged is not None:
                known.cit = merged
            if index not in known.entries:
                known.entries.append(index)

    text = output.content
    for match in _URL_RE.finditer(text):
        token = match.group()
        # Strip characters that close the markdown around a URL, trying each shorter form.
        while token:
            hit = by_url.get(token)
            if hit is not None:
                hit.anchors.append(match.start())
                hit.linked = True
                break
            if token[-1] not in _URL_TRAILERS:
                break
            token = token[:-1]

    unlinked = [c for c in by_url.values() if not c.linked]
    for k, cit in enumerate(unlinked):
        cit.anchors.append(k * len(text) // len(unlinked))
    return list(by_url.values())


def _page_text(output: TaskRunTextOutput, *, offset: int, budget: int, include_basis: bool) -> OutputPage:
    text = output.content
    total = len(text)
    _check_offset(offset, total, "characters")
    first = offset == 0
    tool_calls = _fit_tool_calls(output.mcp_tool_calls, budget // 4) if first else None
    cits = _text_citations(output) if include_basis else []
    # Sizes are measured with the widest number any citation on any page can get, so a page
    # measured this way can only shrink when it is numbered for real.
    widest = max(1, len(cits))
    for c in cits:
        c.cit.size = len(
            CitationRef(number=widest, url=c.cit.url, title=c.cit.title, excerpts=c.cit.excerpts).model_dump_json()
        )
        c.lean_size = c.cit.size - (_json_len(c.cit.excerpts) - 2)  # the same with `"excerpts":[]`
    number_cost = len(str(widest)) + 1
    anchors = sorted((pos, i) for i, c in enumerate(cits) for pos in c.anchors)
    anchor_pos = [pos for pos, _ in anchors]
    basis_items = output.basis if include_basis else []

    def make(next_offset: int | None, content: str = "", chosen: list[_TextCit] | None = None) -> OutputPage:
        chosen = chosen or []
        numbers = {id(c): n for n, c in enumerate(chosen, start=1)}
        basis = [
            BasisEntry(
                field=item.field,
                confidence=item.confidence,
                reasoning=item.reasoning,
                citations=[numbers[id(c)] for c in chosen if index in c.entries],
            )
            for index, item in enumerate(basis_items)
        ]
        return OutputPage(
            type="text",
            content=content,
            basis=basis,
            citations=[
                CitationRef(number=numbers[id(c)], url=c.cit.url, title=c.cit.title, excerpts=c.cit.excerpts)
                for c in chosen
            ],
            mcp_tool_calls=tool_calls,
            page=PageInfo(unit="chars", offset=offset, next_offset=next_offset, total=total),
        )

    skeleton = _skeleton(make, total) - 2  # without the empty content's quotes

    def on_page(end: int) -> list[_TextCit]:
        lo = bisect.bisect_left(anchor_pos, offset)
        hi = len(anchors) if end >= total else bisect.bisect_left(anchor_pos, end)
        seen = dict.fromkeys(i for _, i in anchors[lo:hi])
        return [cits[i] for i in seen]

    def size(end: int, lean: bool) -> int:
        chosen = on_page(end)
        cit_sizes = sum((c.lean_size if lean else c.cit.size) + number_cost * len(c.entries) for c in chosen)
        return skeleton + _json_len(text[offset:end]) + _list_size(cit_sizes, len(chosen))

    end = 0
    lean = False
    if total:
        # Citations anchored at the very start that do not fit with excerpts get none on this page.
        lean = size(offset + 1, lean=False) > budget
        lo, hi = offset + 1, min(total, offset + budget)
        if size(lo, lean) <= budget:
            # The largest end that fits: size only grows with end, so bisect.
            while lo < hi:
                mid = (lo + hi + 1) // 2
                if size(mid, lean) <= budget:
                    lo = mid
                else:
                    hi = mid - 1
        end = _break_at(text, offset, lo)

    chosen = on_page(end)
    # Linked citations in order of their first link in the slice, then the unlinked ones.
    chosen.sort(key=lambda c: (not c.linked, min((p for p in c.anchors if p >= offset), default=0) if c.linked else 0))
    if lean:
        for c in chosen:
            c.cit = _Cit(c.cit.number, c.cit.url, c.cit.title, [])
    return make(end if end < total else None, text[offset:end], chosen)


def _break_at(text: str, start: int, end: int) -> int:
    """Where a page that may run from `start` to `end` should end (see `page_output`)."""
    if end >= len(text):
        return len(text)
    window = text[start:end]
    half = len(window) // 2
    for sep, floor in (("\n\n", half), ("\n", half), ("\n\n", 1), ("\n", 1), (" ", 1), ("\t", 1)):
        at = window.rfind(sep)
        if at >= floor:
            cut = at + len(sep)
            while cut < len(window) and window[cut] == "\n":
                cut += 1  # keep a run of blank lines together, so the next page starts with text
            return start + cut
    return end  # no break at all in the window: cut mid-word


# ---------------------------------------------------------------------------------------------
# Rendering


def _render_value(value: Any) -> str:
    if isinstance(value, str):
        shown = shorten(value, RENDER_VALUE_CHARS) if len(value) > RENDER_VALUE_CHARS else value
        return shown.replace("\n", "\n  ")  # keep multi-line values inside their list item
    shown = json.dumps(value, ensure_ascii=False, separators=(", ", ": "), default=str)
    return shorten(shown, RENDER_VALUE_CHARS) if len(shown) > RENDER_VALUE_CHARS else shown


def _citation_marks(numbers: Sequence[int]) -> str:
    return "".join(f"[{n}]" for n in numbers)


def _render_page(page: OutputPage, run_id: str | None) -> str:
    lines: list[str] = []
    if isinstance(page.content, str):
        lines.append(page.content)
    else:
        per_field: dict[str, list[int]] = {}
        keys = set(page.content)
        for entry in page.basis:
            owner = _owner(entry.field, keys) or entry.field
            numbers = per_field.setdefault(owner, [])
            numbers.extend(n for n in entry.citations if n not in numbers)
        for key, value in page.content.items():
            marks = _citation_marks(per_field.get(key, []))
            lines.append(f"- {key}: {_render_value(value)}" + (f" {marks}" if marks else ""))
    if page.mcp_tool_calls:
        lines.append("MCP tool calls:")
        for call in page.mcp_tool_calls:
            outcome = f"error: {call.error}" if call.error else "ok"
            lines.append(f"- {call.server_name}.{call.tool_name}({call.arguments}) → {outcome}")
    if page.citations:
        lines.append("Sources:")
        lines.extend(
            f"[{c.number}] {c.title} — {c.url}" if c.title else f"[{c.number}] {c.url}" for c in page.citations
        )
    rated = [f"{e.field}={e.confidence}" for e in page.basis if e.confidence]
    if rated:
        lines.append("confidence: " + ", ".join(rated))
    lines.append(_page_line(page, run_id))
    return "\n".join(lines)


def _page_line(page: OutputPage, run_id: str | None) -> str:
    info = page.page
    if info.unit == "fields":
        shown = len(page.content)
        where = f"fields {info.offset + 1}-{info.offset + shown} of {info.total}" if shown else "no fields"
    else:
        shown = len(page.content)
        where = f"characters {info.offset + 1}-{info.offset + shown} of {info.total}" if shown else "empty text"
    line = f"Page: {where}."
    if info.selected_fields:
        line += f" Selected fields: {', '.join(info.selected_fields)}."
    if info.next_offset is None:
        return line
    if run_id is None:
        return f"{line} More: pass offset={info.next_offset}."
    args = [f'run_id="{run_id}"', f"offset={info.next_offset}"]
    if info.selected_fields:
        args.append(f"fields={json.dumps(info.selected_fields, ensure_ascii=False)}")
    return f"{line} More: call {GET_RUN_TOOL}({', '.join(args)})."


def render_page(page: OutputPage) -> str:
    """Render one output page as compact markdown for the model.

    json content becomes `- field: value [n]…` lines (nested values as one-line JSON, values over
    `RENDER_VALUE_CHARS` shortened), text content is shown as it is; then the numbered sources
    (`[n] Title — url`), per-field confidence, and a page line with the next offset.

    Args:
        page: A page made by `page_output`.

    Returns:
        The markdown; it carries no run id, so its next-page hint names only the offset.
    """
    return _render_page(page, None)


def render_view(view: TaskRunView) -> str:
    """Render a task run view as the compact markdown an agent reads (not a copy of the JSON).

    Args:
        view: The structured result a tool returns.

    Returns:
        A header line (run id, status, processor, elapsed, `[EMULATED]`), progress while the run
        is active, the next step verbatim, any error with its ref_id and warnings, and the output
        page as `render_page` shows it, with a ready-made call for the next page.
    """
    header = f"Task run {view.run_id}: {view.status} (processor {view.processor}"
    if view.elapsed_seconds is not None:
        header += f", {format_duration(view.elapsed_seconds)} elapsed"
    header += ")"
    if view.emulated:
        header += " [EMULATED] local emulator, not real research"
    lines = [header]
    ids = [f"interaction_id: {view.interaction_id}"] if view.interaction_id else []
    if view.task_group_id:
        ids.append(f"task_group_id: {view.task_group_id}")
    if view.estimated_cost_usd is not None:
        ids.append(f"estimated cost: ${view.estimated_cost_usd:.4g}")
    if ids:
        lines.append(" · ".join(ids))
    if view.metadata:
        lines.append("metadata: " + json.dumps(view.metadata, ensure_ascii=False, separators=(",", ":")))
    if view.is_active and view.progress is not None:
        lines.append(_render_progress(view))
    elif view.is_active and view.retry_after_seconds is not None:
        lines.append(f"Check again in about {view.retry_after_seconds}s.")
    if view.error is not None:
        ref = f" (ref_id: {view.error.ref_id})" if view.error.ref_id else ""
        lines.append(f"Error: {view.error.message}{ref}")
    if view.warnings:
        lines.append("Warnings:")
        lines.extend(f"- {w}" for w in view.warnings)
    lines.append(f"Next step: {view.next_step}")
    if view.output is not None:
        lines.append("")
        lines.append(_render_page(view.output, view.run_id))
    return "\n".join(lines)


def _render_progress(view: TaskRunView) -> str:
    progress = view.progress
    assert progress is not None
    parts: list[str] = []
    if progress.progress_meter is not None:
        parts.append(f"{progress.progress_meter:.0f}%")
    if progress.sources_read is not None:
        considered = f" of {progress.sources_considered}" if progress.sources_considered is not None else ""
        parts.append(f"{progress.sources_read}{considered} sources read")
    if progress.message:
        parts.append(f"latest: {shorten(progress.message, 300)}")
    if view.retry_after_seconds is not None:
        parts.append(f"check again in about {view.retry_after_seconds}s")
    return "Progress: " + (" · ".join(parts) if parts else "started")


def render_run_list(view: RunListView) -> str:
    """The compact text of a `list_task_runs` result: one line per run."""
    lines = [f"{len(view.runs)} run(s), newest first{' [EMULATED]' if view.emulated else ''}:"]
    for run in view.runs:
        when = run.created_at or run.updated_at
        key = f" key={run.idempotency_key}" if run.idempotency_key else ""
        lines.append(f"- {run.run_id} {run.status} ({run.processor}, {when}){key}: {run.input_excerpt}")
    lines.append(view.next_step)
    return "\n".join(lines)


def render_group(view: TaskGroupView) -> str:
    """The compact text of a group result: status line, then one line per row."""
    counts = ", ".join(f"{name} {count}" for name, count in sorted(view.status_counts.items()))
    lines = [
        f"Task group {view.task_group_id}: {'active' if view.is_active else 'done'} "
        f"({view.num_task_runs} runs: {counts}){' [EMULATED]' if view.emulated else ''}"
    ]
    if view.estimated_cost_usd is not None:
        lines.append(f"estimated cost: ${view.estimated_cost_usd:g} for {len(view.run_ids)} runs added")
    lines.append(f"Next step: {view.next_step}")
    for row in view.rows or []:
        shown = row.output if row.output is not None else (row.error.message if row.error else row.status)
        text = shown if isinstance(shown, str) else json.dumps(shown, ensure_ascii=False)
        given = row.input if isinstance(row.input, str) or row.input is None else json.dumps(row.input)
        lines.append(f"- {row.run_id} [{row.status}] {given}: {text}")
    if view.page is not None:
        last = view.page.offset + len(view.rows or [])
        lines.append(f"Rows {view.page.offset + 1}-{last} of {view.page.total}.")
    return "\n".join(lines)
