"""Builders of run outputs for the paging and rendering tests: many fields, many citations, long reports."""

from __future__ import annotations

from typing import Any

from parallel_mcp.models import Citation, FieldBasis, TaskRunJsonOutput, TaskRunTextOutput
from parallel_mcp.paging import page_output
from parallel_mcp.views import OutputPage, TaskRunView

# ---------------------------------------------------------------------------------------------
# Builders


def url(k: int) -> str:
    return f"https://source-{k}.example.com/articles/{k}"


def citation(k: int, excerpts: int = 2) -> Citation:
    return Citation(
        url=url(k),
        title=f"Source number {k}",
        excerpts=[f"Excerpt {j} of source {k}: " + "evidence " * 20 for j in range(excerpts)],
    )


def big_json_output(n_fields: int = 124, n_citations: int = 610, *, schema: bool = True) -> TaskRunJsonOutput:
    """An auto-mode-like output: mixed values, dot-path basis entries, citations spread round-robin.

    Every 7th citation slot reuses an earlier URL, so de-duplication across fields is exercised.
    """
    content: dict[str, Any] = {}
    basis: list[FieldBasis] = []
    for i in range(n_fields):
        name = f"field_{i:03d}"
        kind = i % 4
        if kind == 0:
            content[name] = f"Value of {name}: " + "a fairly long sentence about the market. " * 3
            basis.append(FieldBasis(field=name, reasoning=f"Found {name} in two sources.", confidence="high"))
        elif kind == 1:
            content[name] = i * 1000.5
            basis.append(FieldBasis(field=name, reasoning=f"Reported figure for {name}.", confidence="medium"))
        elif kind == 2:
            content[name] = [{"name": f"Player {j}", "share": j / 10} for j in range(3)]
            basis.extend(
                FieldBasis(field=f"{name}.{j}", reasoning=f"Player {j} from filings.", confidence="low")
                for j in range(3)
            )
        else:
            content[name] = {"growth_cagr": "7.2%", "summary": "Steady growth in most regions."}
            basis.append(FieldBasis(field=f"{name}.growth_cagr", reasoning="Analyst consensus.", confidence="high"))
    for k in range(n_citations):
        source = k - 3 if k % 7 == 6 else k  # a repeat of an earlier URL
        basis[k % len(basis)].citations.append(citation(source))
    output_schema = (
        {
            "type": "object",
            "properties": {name: {"type": "string", "description": f"The {name} of the company."} for name in content},
        }
        if schema
        else None
    )
    return TaskRunJsonOutput(content=content, basis=basis, output_schema=output_schema)


def all_urls(output: TaskRunJsonOutput | TaskRunTextOutput) -> set[str]:
    return {c.url for entry in output.basis for c in entry.citations}


def walk(output: TaskRunJsonOutput | TaskRunTextOutput, budget: int, **kwargs: Any) -> list[OutputPage]:
    """Every page of an output, following next_offset; fails if the chain does not terminate."""
    pages: list[OutputPage] = []
    offset: int | None = 0
    while offset is not None:
        page = page_output(output, offset=offset, budget_chars=budget, **kwargs)
        pages.append(page)
        assert page.page.next_offset is None or page.page.next_offset > offset, "paging must move on"
        assert len(pages) < 10_000, "next_offset chain does not terminate"
        offset = page.page.next_offset
    return pages


def text_output(paragraphs: list[str], citations: list[Citation]) -> TaskRunTextOutput:
    return TaskRunTextOutput(
        content="\n\n".join(paragraphs),
        basis=[FieldBasis(field="output", reasoning="Sites visited.", confidence="high", citations=citations)],
    )


def report(n_paragraphs: int, linked: int) -> TaskRunTextOutput:
    """A markdown report whose paragraphs link to the first `linked` sources; 3x as many are cited."""
    paragraphs = ["## Findings"] + [
        f"Paragraph {i} discusses the findings in some detail. " * 6 + f"See [source]({url(i % linked)})."
        for i in range(n_paragraphs)
    ]
    return text_output(paragraphs, [citation(k) for k in range(3 * linked)])


def view(**overrides: Any) -> TaskRunView:
    base: dict[str, Any] = {
        "run_id": "trun_abc123",
        "status": "completed",
        "is_active": False,
        "processor": "ultra",
        "elapsed_seconds": 125.0,
        "next_step": "Read the output below.",
    }
    return TaskRunView.model_validate(base | overrides)


# ---------------------------------------------------------------------------------------------
# json paging
