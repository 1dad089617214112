"""The compact text the model reads: each view rendered as markdown, without repeating the JSON.

Pure functions of the views; no I/O.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from parallel_mcp.models import Citation, FieldBasis, TaskRunResult
from parallel_mcp.paging import owner_field
from parallel_mcp.text import format_duration, shorten
from parallel_mcp.views import ConfirmationNeeded, OutputPage, RunListView, TaskGroupView, TaskRunView

RENDER_VALUE_CHARS = 2_000
"""Longest value `render_page` shows for one json field; the structured page keeps it whole."""
GET_RUN_TOOL = "get_task_run"


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
            owner = owner_field(entry.field, keys) or entry.field
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
    lines.extend(_warnings(view.warnings))
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


def _warnings(warnings: list[str]) -> list[str]:
    return ["Warnings:", *(f"- {w}" for w in warnings)] if warnings else []


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
    lines.extend(_warnings(view.warnings))
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


def render(view: TaskRunView | RunListView | TaskGroupView) -> str:
    """The text of any tool result."""
    if isinstance(view, TaskRunView):
        return render_view(view)
    if isinstance(view, RunListView):
        return render_run_list(view)
    return render_group(view)


def render_confirmation(step: str, confirmation: ConfirmationNeeded, *, emulated: bool) -> str:
    """The compact text of a create that waits for the user's yes (its token included: the agent passes it back)."""
    lines = [
        f"Confirmation needed{' [EMULATED]' if emulated else ''}: {confirmation.runs} x {confirmation.processor} "
        f"for ${confirmation.price_usd:.4g} (confirm_above_usd ${confirmation.limit_usd:g})",
        f"Input: {confirmation.input_summary}",
        f"Next step: {step}",
        f"confirm_token: {confirmation.confirm_token} (valid {confirmation.expires_in_seconds} s, once)",
    ]
    return "\n".join(lines)


def _numbered_sources(basis: Sequence[FieldBasis]) -> tuple[dict[str, int], list[Citation]]:
    """Every cited URL numbered once, in order of first citation, with all the excerpts given for it."""
    numbers: dict[str, int] = {}
    sources: list[Citation] = []
    for entry in basis:
        for citation in entry.citations:
            if citation.url not in numbers:
                numbers[citation.url] = len(sources) + 1
                sources.append(citation.model_copy(update={"excerpts": list(citation.excerpts or [])}))
                continue
            kept = sources[numbers[citation.url] - 1]
            assert kept.excerpts is not None
            kept.excerpts.extend(e for e in citation.excerpts or [] if e not in kept.excerpts)
            if kept.title is None and citation.title:
                kept.title = citation.title
    return numbers, sources


def _report_value(value: Any) -> str:
    if isinstance(value, str):
        return value
    return "```json\n" + json.dumps(value, ensure_ascii=False, indent=2, default=str) + "\n```"


def _basis_lines(entry: FieldBasis, numbers: dict[str, int]) -> list[str]:
    marks = _citation_marks([numbers[c.url] for c in entry.citations])
    lines = [f"Sources: {marks}"] if marks else []
    if entry.confidence:
        lines.append(f"Confidence: {entry.confidence}")
    if entry.reasoning:
        lines.append(f"Reasoning: {entry.reasoning}")
    return lines


def render_report(result: TaskRunResult, *, emulated: bool = False) -> str:
    """A completed run's whole output as one markdown document, unpaged and uncut, with every citation.

    Text output: the report itself, then its basis. JSON output: a section per field (nested values
    as JSON), with its citations, confidence and reasoning. Then every source, numbered once in
    order of first citation, with its title and all its excerpts; then any MCP tool calls.
    """
    run = result.run
    output = result.output
    numbers, sources = _numbered_sources(output.basis)
    lines = [f"# Task run {run.run_id}", ""]
    facts = [f"processor {run.processor}", f"status {run.status}"]
    if run.created_at:
        facts.append(f"created {run.created_at}")
    if run.interaction_id:
        facts.append(f"interaction_id {run.interaction_id}")
    lines.append(" · ".join(facts) + (" · [EMULATED] local emulator, not real research" if emulated else ""))
    lines.append("")
    if isinstance(output.content, str):
        lines.extend([output.content.rstrip(), ""])
        for entry in output.basis:
            basis = _basis_lines(entry, numbers)
            if basis:
                lines.extend([f"## Basis ({entry.field})", "", *basis, ""])
    else:
        by_field: dict[str, list[FieldBasis]] = {}
        for entry in output.basis:
            by_field.setdefault(owner_field(entry.field, set(output.content)) or entry.field, []).append(entry)
        for key, value in output.content.items():
            lines.extend([f"## {key}", "", _report_value(value), ""])
            for entry in by_field.get(key, []):
                label = [] if entry.field == key else [f"{entry.field}:"]
                lines.extend([*label, *_basis_lines(entry, numbers), ""])
    if sources:
        lines.extend(["## Sources", ""])
        for number, source in enumerate(sources, start=1):
            lines.append(f"[{number}] {source.title} — {source.url}" if source.title else f"[{number}] {source.url}")
            lines.extend(f"    > {' '.join(excerpt.split())}" for excerpt in source.excerpts or [])
        lines.append("")
    if output.mcp_tool_calls:
        lines.extend(["## MCP tool calls", ""])
        for call in output.mcp_tool_calls:
            outcome = f"error: {call.error}" if call.error else (call.content or "ok")
            lines.append(f"- {call.server_name}.{call.tool_name}({call.arguments}) → {outcome}")
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"
