"""Paging a run's output under a character budget.

Research outputs can be huge (one documented auto-mode run had 124 fields and 610 citations) and
MCP clients warn above about 10k tokens and cut at about 25k. So a completed run's output is served
in pages whose JSON stays within a budget. Everything here is pure: no I/O, no MCP imports,
deterministic for a given input.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from parallel_mcp.errors import ArgumentError
from parallel_mcp.models import TaskRunJsonOutput, TaskRunTextOutput
from parallel_mcp.paging.chars import page_text
from parallel_mcp.paging.common import cut_value
from parallel_mcp.paging.fields import owner_field, page_json
from parallel_mcp.views import OutputPage

CHARS_PER_TOKEN = 4
"""Documented rule of thumb for English text and JSON: about four characters per token."""


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
        ArgumentError: `fields` names an unknown field (the message lists the valid ones), `fields`
            was given for a text output, or `offset` lies outside the output.
        ValueError: `budget_chars` is not positive.
    """
    if budget_chars <= 0:
        raise ValueError(f"budget_chars must be positive, got {budget_chars}.")
    if isinstance(output, TaskRunTextOutput):
        if fields:
            raise ArgumentError("This run has a text (markdown) output: it has no fields to select; omit `fields`.")
        return page_text(output, offset=offset, budget=budget_chars, include_basis=include_basis)
    return page_json(output, offset=offset, budget=budget_chars, fields=fields, include_basis=include_basis)


__all__ = ["CHARS_PER_TOKEN", "cut_value", "estimate_tokens", "owner_field", "page_output"]
