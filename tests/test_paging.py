"""Paging a run's output under a budget: every field and citation lands on some page, each page fits."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from parallel_mcp.models import Citation, FieldBasis, McpToolCall, TaskRunJsonOutput
from parallel_mcp.paging import CHARS_PER_TOKEN, estimate_tokens, page_output
from parallel_mcp.paging.common import EXCERPT_CHARS
from tests.sample_outputs import all_urls, big_json_output, citation, report, text_output, url, walk


@pytest.mark.parametrize("budget", [4_000, 12_000, 40_000, 100_000])
def test_pages_of_a_124_field_610_citation_output_fit_the_budget_and_cover_everything(budget: int) -> None:
    output = big_json_output()
    pages = walk(output, budget)

    seen_fields = [key for page in pages for key in page.content]
    assert seen_fields == list(output.content)  # every field exactly once, in content order
    assert all(len(page.model_dump_json()) <= budget for page in pages)
    assert all(page.page.total == 124 and page.page.unit == "fields" for page in pages)
    assert {c.url for page in pages for c in page.citations} == all_urls(output)
    assert pages[-1].page.next_offset is None


def test_a_page_takes_well_under_20_ms_for_a_124_field_610_citation_output() -> None:
    output = big_json_output()
    started = time.perf_counter()
    pages = walk(output, 12_000)
    per_page = (time.perf_counter() - started) / len(pages)
    assert per_page < 0.020


def test_citations_on_a_page_are_deduplicated_by_url_and_numbered_in_order_of_first_appearance() -> None:
    output = TaskRunJsonOutput(
        content={"a": 1, "b": 2},
        basis=[
            FieldBasis(field="a", reasoning="r", citations=[citation(5), citation(9)]),
            FieldBasis(field="b", reasoning="r", citations=[citation(9), citation(5), citation(7), citation(7)]),
        ],
    )
    page = page_output(output, budget_chars=10_000)

    assert [(c.number, c.url) for c in page.citations] == [(1, url(5)), (2, url(9)), (3, url(7))]
    assert [entry.citations for entry in page.basis] == [[1, 2], [2, 1, 3]]


def test_a_citation_keeps_at_most_two_excerpts_merged_across_fields_each_shortened() -> None:
    long = Citation(url=url(1), excerpts=["x" * 1_000, "first"])
    again = Citation(url=url(1), title="Late title", excerpts=["second", "third"])
    output = TaskRunJsonOutput(
        content={"a": 1, "b": 2},
        basis=[
            FieldBasis(field="a", reasoning="r", citations=[long]),
            FieldBasis(field="b", reasoning="r", citations=[again]),
        ],
    )
    (cited,) = page_output(output, budget_chars=10_000).citations

    assert len(cited.excerpts) == 2
    assert len(cited.excerpts[0]) <= EXCERPT_CHARS + 1 and cited.excerpts[0].endswith("…")
    assert cited.excerpts[1] == "first"
    assert cited.title == "Late title"


def test_basis_dot_paths_go_on_the_page_of_their_top_level_field() -> None:
    output = TaskRunJsonOutput(
        content={"key_players": ["A", "B"], "industry_overview": {"growth_cagr": "5%"}, "a.b": 1},
        basis=[
            FieldBasis(field="key_players.0", reasoning="r", citations=[citation(1)]),
            FieldBasis(field="industry_overview.growth_cagr", reasoning="r", citations=[citation(2)]),
            FieldBasis(field="a.b", reasoning="a key with a dot", citations=[citation(3)]),
            FieldBasis(field="not_in_content", reasoning="r", citations=[citation(4)]),
        ],
    )
    pages = {key: page_output(output, budget_chars=10_000, fields=[key]) for key in output.content}

    assert [e.field for e in pages["key_players"].basis] == ["key_players.0"]
    assert [e.field for e in pages["industry_overview"].basis] == ["industry_overview.growth_cagr"]
    assert [e.field for e in pages["a.b"].basis] == ["a.b"]
    assert [c.url for c in pages["industry_overview"].citations] == [url(2)]


def test_fields_narrows_the_pages_to_the_selected_fields_and_records_the_selection() -> None:
    output = big_json_output(20, 60)
    selected = ["field_010", "field_002", "field_005"]
    pages = walk(output, 1_200, fields=selected)

    assert [key for page in pages for key in page.content] == ["field_002", "field_005", "field_010"]
    assert all(page.page.selected_fields == selected and page.page.total == 3 for page in pages)
    assert {e.field.split(".")[0] for page in pages for e in page.basis} <= set(selected)


@pytest.mark.parametrize("fields", [["field_001", "nope"], ["nope"]])
def test_an_unknown_field_raises_a_value_error_naming_it_and_the_valid_fields(fields: list[str]) -> None:
    output = big_json_output(3, 3)
    with pytest.raises(ValueError, match="nope") as caught:
        page_output(output, budget_chars=10_000, fields=fields)
    assert "field_000, field_001, field_002" in str(caught.value)


def test_empty_fields_means_all_fields() -> None:
    output = big_json_output(3, 3)
    page = page_output(output, budget_chars=100_000, fields=[])
    assert list(page.content) == list(output.content) and page.page.selected_fields is None


def test_include_basis_false_returns_only_the_content() -> None:
    output = big_json_output(10, 40)
    page = page_output(output, budget_chars=100_000, include_basis=False)

    assert page.basis == [] and page.citations == []
    assert page.content == output.content


def test_output_schema_and_mcp_tool_calls_come_only_on_the_first_page() -> None:
    output = big_json_output(10, 10)
    output.mcp_tool_calls = [McpToolCall(tool_call_id="c1", server_name="crm", tool_name="lookup", arguments="{}")]
    first, *rest = walk(output, 4_000)

    assert first.output_schema == output.output_schema and first.mcp_tool_calls == output.mcp_tool_calls
    assert rest and all(p.output_schema is None and p.mcp_tool_calls is None for p in rest)


def test_an_output_schema_too_big_for_a_quarter_of_the_budget_loses_its_descriptions() -> None:
    output = big_json_output()
    page = page_output(output, budget_chars=20_000)
    assert output.output_schema is not None and len(json.dumps(output.output_schema)) > 20_000 // 4
    assert page.output_schema is not None
    assert "description" not in json.dumps(page.output_schema)
    assert len(page.model_dump_json()) <= 20_000


@pytest.mark.parametrize(
    ("value", "marker"),
    [
        ("word " * 5_000, "[truncated "),
        (list(range(5_000)), "more items truncated]"),
        ({f"k{i}": "v" * 50 for i in range(500)}, "more keys truncated]"),
        ([["nested " * 2_000]], "[truncated "),
    ],
    ids=["string", "list", "object", "nested"],
)
def test_a_lone_field_bigger_than_the_budget_is_cut_with_a_marker_and_paging_moves_on(value: Any, marker: str) -> None:
    output = TaskRunJsonOutput(
        content={"small": 1, "huge": value, "after": 2},
        basis=[FieldBasis(field="huge", reasoning="r", citations=[citation(1)])],
    )
    page = page_output(output, offset=1, budget_chars=2_000)

    assert list(page.content) == ["huge"]
    assert marker in json.dumps(page.content, ensure_ascii=False)
    assert len(page.model_dump_json()) <= 2_000
    assert page.page.next_offset == 2
    assert [c.url for c in page.citations] == [url(1)]


def test_a_lone_field_whose_basis_alone_exceeds_the_budget_sheds_basis_and_says_so() -> None:
    output = TaskRunJsonOutput(
        content={"summary": "short"},
        basis=[FieldBasis(field="summary", reasoning="why " * 200, citations=[citation(k) for k in range(200)])],
    )
    page = page_output(output, budget_chars=3_000)

    assert len(page.model_dump_json()) <= 3_000
    assert page.content == {"summary": "short"}
    assert page.citations and all(c.excerpts == [] for c in page.citations)
    assert "basis cut to fit the page" in page.basis[-1].reasoning


@pytest.mark.parametrize("offset", [-1, 124, 500])
def test_an_offset_outside_the_output_raises_a_value_error(offset: int) -> None:
    with pytest.raises(ValueError, match="offset"):
        page_output(big_json_output(), offset=offset, budget_chars=10_000)


def test_an_empty_json_output_is_one_empty_last_page() -> None:
    page = page_output(TaskRunJsonOutput(content={}), budget_chars=1_000)
    assert page.content == {} and page.page.total == 0 and page.page.next_offset is None


# ---------------------------------------------------------------------------------------------
# text paging


@pytest.mark.parametrize(("budget", "ends"), [(1_500, (" ", "\n")), (4_000, ("\n\n",)), (20_000, ("\n\n",))])
def test_text_pages_cut_at_paragraph_boundaries_fit_the_budget_and_reassemble_to_the_original(
    budget: int, ends: tuple[str, ...]
) -> None:
    """With a budget too small for a paragraph and its sources, pages still end between words."""
    output = report(40, linked=10)
    pages = walk(output, budget)

    assert "".join(str(p.content) for p in pages) == output.content
    assert all(len(p.model_dump_json()) <= budget for p in pages)
    assert all(str(p.content).endswith(ends) for p in pages[:-1])
    assert all(p.page.unit == "chars" and p.page.total == len(output.content) for p in pages)


def test_text_citations_go_on_the_page_that_links_them_and_none_is_lost() -> None:
    output = report(40, linked=10)
    pages = walk(output, 4_000)

    assert {c.url for p in pages for c in p.citations} == all_urls(output)
    for p in pages:
        linked_here = [url(k) for k in range(10) if url(k) in str(p.content)]
        assert set(linked_here) <= {c.url for c in p.citations}
        numbers = [c.number for c in p.citations]
        assert numbers == list(range(1, len(numbers) + 1))
        assert p.basis[0].field == "output" and p.basis[0].citations == numbers


def test_a_text_paragraph_longer_than_a_page_is_cut_between_words() -> None:
    output = text_output(["lorem ipsum dolor " * 500], [])
    pages = walk(output, 1_000)

    assert len(pages) > 1
    assert "".join(str(p.content) for p in pages) == output.content
    assert all(str(p.content).endswith(" ") for p in pages[:-1])


def test_a_short_text_answer_with_many_sources_still_fits_by_dropping_excerpts() -> None:
    output = text_output(["Yes."], [citation(k) for k in range(30)])
    pages = walk(output, 2_500)

    assert "".join(str(p.content) for p in pages) == "Yes."
    assert {c.url for p in pages for c in p.citations} == all_urls(output)


def test_fields_on_a_text_output_raises_a_value_error() -> None:
    with pytest.raises(ValueError, match="text"):
        page_output(report(3, 2), budget_chars=1_000, fields=["output"])


@settings(max_examples=60, deadline=None)
@given(
    paragraphs=st.lists(st.text(alphabet='ab \n"\\é', min_size=1, max_size=300), min_size=1, max_size=20),
    budget=st.integers(min_value=600, max_value=3_000),
)
def test_any_text_reassembles_exactly_from_its_pages(paragraphs: list[str], budget: int) -> None:
    output = text_output(paragraphs, [citation(1)])
    pages = walk(output, budget)
    assert "".join(str(p.content) for p in pages) == output.content
    assert all(len(p.model_dump_json()) <= budget for p in pages)


# ---------------------------------------------------------------------------------------------
# rendering


@pytest.mark.parametrize(("text", "tokens"), [("", 0), ("abc", 1), ("abcd", 1), ("abcde", 2), ("x" * 400, 100)])
def test_estimate_tokens_is_four_characters_per_token_rounded_up(text: str, tokens: int) -> None:
    assert CHARS_PER_TOKEN == 4
    assert estimate_tokens(text) == tokens
