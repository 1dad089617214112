"""text output: pages of characters that end at paragraph breaks, each with the citations it links."""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field

from parallel_mcp.models import TaskRunTextOutput
from parallel_mcp.paging.common import (
    URL_RE,
    URL_TRAILERS,
    Cit,
    check_offset,
    fit_tool_calls,
    json_len,
    list_size,
    merged_citation,
    skeleton_size,
)
from parallel_mcp.views import BasisEntry, CitationRef, OutputPage, PageInfo


@dataclass
class _TextCit:
    """A de-duplicated citation of a text output, with where the text anchors it."""

    cit: Cit
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
            merged = merged_citation(known.cit if known else None, citation, 0, with_excerpts=True, measure=False)
            if known is None:
                assert merged is not None
                known = by_url[citation.url] = _TextCit(merged, [], linked=False)
            elif merged is not None:
                known.cit = merged
            if index not in known.entries:
                known.entries.append(index)

    text = output.content
    for match in URL_RE.finditer(text):
        token = match.group()
        # Strip characters that close the markdown around a URL, trying each shorter form.
        while token:
            hit = by_url.get(token)
            if hit is not None:
                hit.anchors.append(match.start())
                hit.linked = True
                break
            if token[-1] not in URL_TRAILERS:
                break
            token = token[:-1]

    unlinked = [c for c in by_url.values() if not c.linked]
    for k, cit in enumerate(unlinked):
        cit.anchors.append(k * len(text) // len(unlinked))
    return list(by_url.values())


def page_text(output: TaskRunTextOutput, *, offset: int, budget: int, include_basis: bool) -> OutputPage:
    text = output.content
    total = len(text)
    check_offset(offset, total, "characters")
    first = offset == 0
    tool_calls = fit_tool_calls(output.mcp_tool_calls, budget // 4) if first else None
    cits = _text_citations(output) if include_basis else []
    # Sizes are measured with the widest number any citation on any page can get, so a page
    # measured this way can only shrink when it is numbered for real.
    widest = max(1, len(cits))
    for c in cits:
        c.cit.size = len(
            CitationRef(number=widest, url=c.cit.url, title=c.cit.title, excerpts=c.cit.excerpts).model_dump_json()
        )
        c.lean_size = c.cit.size - (json_len(c.cit.excerpts) - 2)  # the same with `"excerpts":[]`
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

    skeleton = skeleton_size(make, total) - 2  # without the empty content's quotes

    def on_page(end: int) -> list[_TextCit]:
        lo = bisect.bisect_left(anchor_pos, offset)
        hi = len(anchors) if end >= total else bisect.bisect_left(anchor_pos, end)
        seen = dict.fromkeys(i for _, i in anchors[lo:hi])
        return [cits[i] for i in seen]

    def size(end: int, lean: bool) -> int:
        chosen = on_page(end)
        cit_sizes = sum((c.lean_size if lean else c.cit.size) + number_cost * len(c.entries) for c in chosen)
        return skeleton + json_len(text[offset:end]) + list_size(cit_sizes, len(chosen))

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
            c.cit = Cit(c.cit.number, c.cit.url, c.cit.title, [])
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
