"""The compact text rendering the model reads: status, progress, next step, fields, sources."""

from __future__ import annotations

from typing import Any

import pytest

from parallel_mcp.models import TaskRunJsonOutput
from parallel_mcp.paging import page_output
from parallel_mcp.render import render_page, render_view
from parallel_mcp.views import Progress, RunError
from tests.sample_outputs import big_json_output, report, url, view, walk


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (
            {"status": "queued", "is_active": True, "elapsed_seconds": 3.0, "next_step": "Wait 10s then poll."},
            ["trun_abc123", "queued", "ultra", "3 s elapsed", "Next step: Wait 10s then poll."],
        ),
        (
            {
                "status": "running",
                "is_active": True,
                "progress": Progress(progress_meter=42.0, message="Searching filings", sources_read=12),
                "retry_after_seconds": 30,
                "next_step": "Call get_task_run again in 30 s.",
            },
            ["running", "42%", "Searching filings", "12 sources read", "Call get_task_run again in 30 s."],
        ),
        (
            {"status": "failed", "error": RunError(message="Processor crashed", ref_id="ref_999")},
            ["failed", "Processor crashed", "ref_id: ref_999"],
        ),
        (
            {"emulated": True, "warnings": ["MCP server crm: auth failed"]},
            ["[EMULATED]", "MCP server crm: auth failed", "125 s elapsed"],
        ),
    ],
    ids=["queued", "running", "failed", "emulated-with-warnings"],
)
def test_render_view_shows_status_progress_next_step_errors_and_markers(
    overrides: dict[str, Any], expected: list[str]
) -> None:
    text = render_view(view(**overrides))
    for fragment in expected:
        assert fragment in text
    assert "EMULATED" in text if overrides.get("emulated") else "EMULATED" not in text


def test_render_view_of_a_completed_json_page_lists_fields_sources_confidence_and_the_next_call() -> None:
    output = big_json_output()
    page = page_output(output, budget_chars=12_000)
    text = render_view(view(output=page))

    assert "- field_000: Value of field_000" in text
    assert "[1] Source number 0 — " + url(0) in text
    assert "confidence: field_000=high" in text
    assert f"Page: fields 1-{len(page.content)} of 124." in text
    assert f'More: call get_task_run(run_id="trun_abc123", offset={page.page.next_offset}).' in text


def test_render_view_carries_the_fields_filter_into_the_next_call() -> None:
    page = page_output(big_json_output(20, 20), budget_chars=600, fields=["field_001", "field_002"])
    text = render_view(view(output=page))
    assert 'fields=["field_001", "field_002"]' in text


def test_render_view_of_a_text_page_shows_the_text_as_is() -> None:
    output = report(5, linked=2)
    page = page_output(output, budget_chars=100_000)
    text = render_view(view(output=page))

    assert output.content in text
    assert "Page: characters 1-" in text and "More:" not in text


@pytest.mark.parametrize("budget", [12_000, 40_000])
def test_rendered_text_is_shorter_than_the_page_json_and_names_every_citation_url(budget: int) -> None:
    for page in walk(big_json_output(), budget):
        text = render_page(page)
        assert len(text) < len(page.model_dump_json())
        assert all(c.url in text for c in page.citations)


def test_render_page_without_a_run_id_hints_at_the_offset() -> None:
    page = page_output(big_json_output(), budget_chars=5_000)
    assert f"More: pass offset={page.page.next_offset}." in render_page(page)


def test_long_values_are_shortened_in_the_rendering_but_kept_in_the_page() -> None:
    page = page_output(TaskRunJsonOutput(content={"essay": "word " * 2_000}), budget_chars=100_000)
    text = render_page(page)
    assert page.content == {"essay": "word " * 2_000}
    assert len(text) < 3_000 and "…" in text
