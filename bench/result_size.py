"""Result size: a large auto-mode output (ultra8x) as raw JSON vs the text the model reads, in tokens.

The output comes from the emulator's `build_output`; pages are cut by the server's own `RunService`
at the default budget (`Settings().result_budget_tokens`), exactly as `get_task_run` serves them.
Tokens are estimated at 4 characters per token (`parallel_mcp.paging.estimate_tokens`).
"""

from __future__ import annotations

import datetime
import json

from bench.common import Mode, Outcome
from bench.report import Table, Target

NAME = "result_size"


def run(mode: Mode) -> Outcome:  # noqa: ARG001 - the same work in quick and full mode
    from parallel_mcp.config import Settings
    from parallel_mcp.emulator.outputs import build_output
    from parallel_mcp.models import TaskRun, TaskRunInput, TaskRunJsonOutput, TaskRunResult
    from parallel_mcp.paging import estimate_tokens, page_output
    from parallel_mcp.processors import ProcessorTable
    from parallel_mcp.render import render_view
    from parallel_mcp.runs import page_budget_chars, run_view

    settings = Settings()
    body = TaskRunInput(input="The European heat-pump market: players, prices, policy and outlook", processor="ultra8x")
    output = build_output(body)
    if not isinstance(output, TaskRunJsonOutput):
        raise RuntimeError("an ultra8x auto-mode run should have a json output")
    now = datetime.datetime.now(datetime.UTC).isoformat()
    run_model = TaskRun(
        run_id="trun_bench",
        interaction_id="trun_bench",
        status="completed",
        is_active=False,
        processor="ultra8x",
        created_at=now,
        modified_at=now,
    )
    result = TaskRunResult(run=run_model, output=output)
    budget_chars = page_budget_chars(settings.result_budget_tokens)

    pages: list[tuple[str, str]] = []  # (text, structured JSON) of each tool result
    offset: int | None = 0
    while offset is not None:
        page = page_output(output, offset=offset, budget_chars=budget_chars)
        view = run_view(run_model, page, ProcessorTable())
        structured = json.dumps(view.model_dump(mode="json"), ensure_ascii=False, separators=(",", ":"))
        pages.append((render_view(view), structured))
        assert view.output is not None
        next_offset = view.output.page.next_offset
        if next_offset is not None and next_offset <= offset:
            raise RuntimeError(f"paging does not advance: offset {offset} -> {next_offset}")
        offset = next_offset

    raw = result.model_dump_json(by_alias=True)
    citations = [citation for entry in output.basis for citation in entry.citations or []]
    unique_urls = {citation.url for citation in citations}
    raw_tokens = estimate_tokens(raw)
    budget = settings.result_budget_tokens

    table = Table(
        f"Result size: ultra8x auto-mode output ({len(output.content)} top-level fields, {len(output.basis)} "
        f"basis fields, {len(citations)} citations, {len(unique_urls)} unique URLs)",
        ["what", "chars", "tokens (4 chars/token)", "ratio vs raw JSON"],
    )
    table.add("raw JSON of the result (GET /result body)", len(raw), raw_tokens, 1.0)
    first_text, first_json = pages[0]
    table.add(
        "text rendering, page 1", len(first_text), estimate_tokens(first_text), estimate_tokens(first_text) / raw_tokens
    )
    all_chars = sum(len(text) for text, _ in pages)
    all_tokens = sum(estimate_tokens(text) for text, _ in pages)
    table.add(f"text renderings, all {len(pages)} pages", all_chars, all_tokens, all_tokens / raw_tokens)
    first_json_tokens = estimate_tokens(first_json)
    table.add("structured content (JSON), page 1", len(first_json), first_json_tokens, first_json_tokens / raw_tokens)
    sizes = [estimate_tokens(text) + estimate_tokens(data) for text, data in pages]
    largest = max(sizes)
    table.add("tool result page 1 (text + structured)", None, sizes[0], sizes[0] / raw_tokens)
    table.add(f"largest tool result of the {len(pages)} pages (text + structured)", None, largest, largest / raw_tokens)

    pages_table = Table(
        f"Result size: pages at the default budget ({budget:,} tokens; structured page budget {budget_chars:,} chars)",
        ["pages", "tokens per tool result: min / median / max", "budget", "met"],
    )
    ordered = sorted(sizes)
    pages_table.add(
        len(pages), f"{ordered[0]:,} / {ordered[len(ordered) // 2]:,} / {ordered[-1]:,}", budget, largest <= budget
    )
    target = Target(
        "result size",
        f"every tool result ≤ {budget:,} tokens (result_budget_tokens)",
        f"largest {largest:,} tokens over {len(pages)} pages; raw JSON {raw_tokens:,} tokens",
        largest <= budget,
    )
    return Outcome(tables=[table, pages_table], targets=[target])
