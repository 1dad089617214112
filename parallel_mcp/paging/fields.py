"""json output: pages of top-level fields, each with its own basis and numbered citations."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from parallel_mcp.errors import ArgumentError
from parallel_mcp.models import Citation, FieldBasis, TaskRunJsonOutput
from parallel_mcp.paging.common import (
    REASONING_CHARS,
    TITLE_CHARS,
    Cit,
    check_offset,
    cut_value,
    fit_schema,
    fit_tool_calls,
    json_len,
    list_size,
    merged_citation,
    skeleton_size,
)
from parallel_mcp.text import shorten
from parallel_mcp.views import BasisEntry, CitationRef, OutputPage, PageInfo


def _select_keys(content: dict[str, Any], fields: Sequence[str] | None) -> tuple[list[str], list[str] | None]:
    if not fields:
        return list(content), None
    if isinstance(fields, str):
        fields = [fields]  # a lone name is a common slip; a str is a Sequence of characters
    wanted = list(dict.fromkeys(fields))
    unknown = [name for name in wanted if name not in content]
    if unknown:
        valid = ", ".join(content) or "(none)"
        raise ArgumentError(f"Unknown output field(s): {', '.join(unknown)}. Valid fields: {valid}.")
    chosen = set(wanted)
    return [key for key in content if key in chosen], wanted


def owner_field(path: str, keys: set[str]) -> str | None:
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
    cits: dict[str, Cit] = field(default_factory=dict[str, Cit])
    basis_size: int = 0
    cit_size: int = 0


@dataclass
class _Basis:
    """The basis of one field, staged: entries, new or changed citations, and the size they add."""

    entries: list[BasisEntry]
    staged: dict[str, Cit]
    delta: int


def _stage_basis(page: _JsonPage, source: list[FieldBasis], *, excerpts: bool, reasoning: int | None) -> _Basis:
    staged: dict[str, Cit] = {}
    entries: list[BasisEntry] = []
    next_number = len(page.cits) + 1
    for item in source:
        numbers: list[int] = []
        for citation in item.citations:
            current = staged.get(citation.url) or page.cits.get(citation.url)
            merged = merged_citation(current, citation, next_number, excerpts)
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


def _basis_delta(page: _JsonPage, entries: list[BasisEntry], staged: dict[str, Cit]) -> int:
    entry_sizes = sum(len(e.model_dump_json()) for e in entries)
    new_basis = list_size(page.basis_size + entry_sizes, len(page.basis) + len(entries))
    cit_sizes = page.cit_size + sum(c.size - (page.cits[u].size if u in page.cits else 0) for u, c in staged.items())
    new_cits = list_size(cit_sizes, len(page.cits | staged))
    return new_basis - list_size(page.basis_size, len(page.basis)) + new_cits - list_size(page.cit_size, len(page.cits))


def _commit(page: _JsonPage, key: str, value: Any, basis: _Basis) -> None:
    page.content[key] = value
    page.basis.extend(basis.entries)
    page.basis_size += sum(len(e.model_dump_json()) for e in basis.entries)
    page.cits.update(basis.staged)
    page.cit_size = sum(c.size for c in page.cits.values())


def _content_delta(page: _JsonPage, key: str, value: Any) -> int:
    return json_len(key) + 1 + json_len(value) + (1 if page.content else 0)


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


def page_json(
    output: TaskRunJsonOutput, *, offset: int, budget: int, fields: Sequence[str] | None, include_basis: bool
) -> OutputPage:
    keys, selected = _select_keys(output.content, fields)
    total = len(keys)
    check_offset(offset, total, "fields")
    first = offset == 0
    schema = fit_schema(output.output_schema, budget // 4) if first else None
    tool_calls = fit_tool_calls(output.mcp_tool_calls, budget // 4) if first else None

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

    skeleton = skeleton_size(make, total)
    owned: dict[str, list[FieldBasis]] = {}
    if include_basis:
        keyset = set(keys[offset:])
        for item in output.basis:
            owner = owner_field(item.field, keyset)
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
            key_cost = json_len(key) + 1
            room = budget - skeleton - key_cost
            basis = _trim_basis(page, source, room - min(json_len(value), room // 2), basis)
            value = cut_value(value, room - basis.delta)
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
        page.content[key] = cut_value(page.content[key], json_len(page.content[key]) - excess)
        result = make(next_offset, page)
    return result
