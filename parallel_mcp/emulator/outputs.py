"""Deterministic, obviously emulated outputs and progress scripts for the Task API emulator.

Everything derives from the request's seeded random sources (`seeded`), so the same request always
gets the same answer and the same progress events, across processes. Outputs have the shapes the
real API returns (json content conforming to the schema, markdown reports with inline citations,
large auto-mode deep research) and say plainly that they are emulated; citations point at invented
sites on reserved TLDs (see `fake_web`).
"""

from __future__ import annotations

import functools
import json
import random
from dataclasses import dataclass, replace
from importlib import resources
from typing import Any, Final, cast

from parallel_mcp.emulator.filler import SchemaFiller, humanize
from parallel_mcp.emulator.mcp_calls import max_tool_calls
from parallel_mcp.emulator.seeded import FACETS, SeededRun
from parallel_mcp.models import (
    AutoSchema,
    Citation,
    FieldBasis,
    JsonSchema,
    McpToolCall,
    TaskRunInput,
    TaskRunJsonOutput,
    TaskRunTextOutput,
    TextSchema,
)
from parallel_mcp.text import shorten

__all__ = ["ProgressStep", "build_output", "progress_script"]


@dataclass(frozen=True, slots=True)
class ProgressStep:
    """One event of an emulated run's progress, placed at a fraction of the run's duration."""

    at: float
    """Fraction of the run's duration, in (0, 1), strictly increasing across a script."""
    kind: str
    """`plan`, `search`, `result`, `exec_status`, `tool_call` (progress messages) or `stats`."""
    message: str | None = None
    """The message of a progress-message step."""
    progress_meter: float | None = None
    """For `stats`: 0..100, increasing across the script."""
    num_sources_considered: int | None = None
    num_sources_read: int | None = None
    sources_read_sample: list[str] | None = None


# --- per-tier sizes ---------------------------------------------------------------------------

# Auto-mode basis fields per premium tier; ultra8x mirrors a documented run (124 fields, 610 citations).
_AUTO_FIELDS: Final[dict[str, int]] = {"pro": 20, "ultra": 40, "ultra2x": 60, "ultra4x": 90, "ultra8x": 124}
# (min, max) citations per auto basis field; the ultra8x average of 5 gives ~600 citations.
_AUTO_CITATIONS: Final[dict[str, tuple[int, int]]] = {
    "pro": (1, 3),
    "ultra": (2, 4),
    "ultra2x": (2, 5),
    "ultra4x": (3, 6),
    "ultra8x": (4, 6),
}
_SEARCHES: Final[tuple[int, ...]] = (2, 3, 4, 5, 6, 8, 10, 12, 15)
_REPORT_SECTIONS: Final[tuple[int, ...]] = (1, 1, 2, 2, 3, 4, 5, 6, 8)
_CONFIDENCE: Final[tuple[str, ...]] = ("high", "high", "medium", "medium", "low")
_REASONING: Final[tuple[str, ...]] = (
    "Emulated reasoning: {what} for {subject} was assembled from {n} invented source(s); no web research ran.",
    "The emulator derived {what} deterministically from the request about {subject}, citing {n} invented page(s).",
    "Emulated: {n} invented source(s) were 'read' to produce {what}; treat the value as a placeholder.",
)


# --- basis ------------------------------------------------------------------------------------


def _basis_entry(run: SeededRun, rng: random.Random, field: str, count: int) -> FieldBasis:
    what = humanize(field.replace(".", " "))
    citations = run.web.citations(rng, count, what)
    reasoning = rng.choice(_REASONING).format(what=what, subject=run.subject, n=len(citations))
    return FieldBasis(field=field, reasoning=reasoning, citations=citations, confidence=rng.choice(_CONFIDENCE))


def _paths(value: object, prefix: str, depth: int) -> list[str]:
    """`prefix` and the dot paths below it (object keys and array indexes), `depth` segments deep at most."""
    paths = [prefix]
    if depth <= 1:
        return paths
    if isinstance(value, dict):
        for key, child in cast(dict[str, object], value).items():
            paths += _paths(child, f"{prefix}.{key}", depth - 1)
    elif isinstance(value, list):
        for index, child in enumerate(cast(list[object], value)):
            paths += _paths(child, f"{prefix}.{index}", depth - 1)
    return paths


# --- json outputs -----------------------------------------------------------------------------


def _json_output(
    run: SeededRun, schema: dict[str, Any], mcp_tool_calls: list[McpToolCall] | None, *, per_element_basis: bool
) -> TaskRunJsonOutput:
    rng = run.rng("json")
    content = SchemaFiller(run, rng, schema, (1, 3)).object(schema, 1)
    basis: list[FieldBasis] = []
    for key, value in content.items():
        basis.append(_basis_entry(run, rng, key, rng.randint(1, 3)))
        if per_element_basis and isinstance(value, list):
            for index in range(len(cast(list[object], value))):
                basis.append(_basis_entry(run, rng, f"{key}.{index}", rng.randint(1, 2)))
    return TaskRunJsonOutput(content=content, basis=basis, mcp_tool_calls=mcp_tool_calls)


def _string(description: str) -> dict[str, Any]:
    return {"type": "string", "description": description}


@functools.cache
def _auto_sections() -> dict[str, dict[str, Any]]:
    """Sections an auto run may invent, in the style of real deep-research outputs (JSON schemas, kept as data)."""
    text = resources.files("parallel_mcp.emulator").joinpath(_AUTO_SECTIONS_FILE).read_text("utf-8")
    return cast(dict[str, dict[str, Any]], json.loads(text))


_AUTO_SECTIONS_FILE = "auto_sections.json"
_AUTO_FIRST = "executive_summary"
_AUTO_LAST = "methodology_note"


def _auto_output(run: SeededRun, mcp_tool_calls: list[McpToolCall] | None) -> TaskRunJsonOutput:
    rng = run.rng("auto")
    target = _AUTO_FIELDS.get(run.tier, _AUTO_FIELDS["pro"])
    properties: dict[str, dict[str, Any]] = {_AUTO_FIRST: _string("Executive summary of the findings")}
    content: dict[str, Any] = {
        _AUTO_FIRST: f'Emulated deep research on "{run.subject}". Every figure and source below is invented.'
    }
    count = 1
    last = _string("How this output was produced")
    # Leave room for the closing note; each section adds its own paths (object keys, array indexes).
    sections = _auto_sections()
    names = list(sections)
    rng.shuffle(names)
    for name in names:
        if count >= target - 1:
            break
        schema = sections[name]
        value = SchemaFiller(run, rng, schema, (2, 4)).value(schema, name, 2)
        cost = len(_paths(value, name, 3))
        if count + cost > target + 3:
            continue
        properties[name] = schema
        content[name] = value
        count += cost
    properties[_AUTO_LAST] = last
    content[_AUTO_LAST] = "Produced by the parallel-mcp emulator: deterministic placeholder text, no web research."
    output_schema = {
        "type": "object",
        "description": f"Deep research schema invented (emulated) for: {run.subject}",
        "properties": properties,
        "required": list(properties),
        "additionalProperties": False,
    }
    low, high = _AUTO_CITATIONS.get(run.tier, _AUTO_CITATIONS["pro"])
    basis = [
        _basis_entry(run, rng, path, rng.randint(low, high))
        for key, value in content.items()
        for path in _paths(value, key, 3)
    ]
    return TaskRunJsonOutput(content=content, basis=basis, output_schema=output_schema, mcp_tool_calls=mcp_tool_calls)


# --- text outputs -----------------------------------------------------------------------------


def _text_output(
    run: SeededRun, description: str | None, mcp_tool_calls: list[McpToolCall] | None, *, short: bool
) -> TaskRunTextOutput:
    rng = run.rng("text")
    # Distinct citations in order of first use: the numbered source list and the basis share them.
    citations_by_url: dict[str, Citation] = {}

    def cite(about: str) -> str:
        citation = run.web.citations(rng, 1, about)[0]
        citations_by_url.setdefault(citation.url, citation)
        return f"([{citation.title}]({citation.url}))"

    if short:
        content = (
            f"Emulated answer about {run.subject}: the emulator has no web access, so this short reply is "
            f"placeholder text {cite('overview')}. A real `{run.input.processor}` run would answer in a few "
            f"sentences with sources such as {cite(rng.choice(FACETS))}.\n"
        )
    else:
        lines = [
            f"# {run.topic.title()}: emulated research report",
            "",
            f'*This report was generated by the parallel-mcp emulator for: "{run.subject}". '
            "No web research ran; every source is invented.*",
            "",
        ]
        if description:
            lines += [f"Requested format: {shorten(description, 200, one_line=True)}", ""]
        lines += [
            "## Summary",
            "",
            f"In this emulated summary, {run.subject} is examined from several angles {cite('summary')}. "
            f"The findings below are deterministic placeholders {cite('method')}.",
            "",
        ]
        facets = rng.sample(FACETS, min(_REPORT_SECTIONS[run.tier_index], len(FACETS)))
        for facet in facets:
            lines += [
                f"## {facet.capitalize()}",
                "",
                f"Emulated analysis of {facet} for {run.topic}: invented observations stand in for real "
                f"findings {cite(facet)}. A second invented source points the same way {cite(facet)}.",
                "",
                f"- Emulated point on {facet} {cite(facet)}",
                f"- Another emulated point on {facet} {cite(facet)}",
                "",
            ]
        lines += ["## Sources", ""]
        lines += [f"{i}. [{c.title}]({url})" for i, (url, c) in enumerate(citations_by_url.items(), 1)]
        content = "\n".join(lines) + "\n"
    reasoning = f"Emulated: the report on {run.subject} cites {len(citations_by_url)} invented sources."
    basis = FieldBasis(
        field="output", reasoning=reasoning, citations=list(citations_by_url.values()), confidence="medium"
    )
    return TaskRunTextOutput(content=content, basis=[basis], mcp_tool_calls=mcp_tool_calls)


# --- public API -------------------------------------------------------------------------------


def build_output(
    run_input: TaskRunInput, *, mcp_tool_calls: list[McpToolCall] | None = None, per_element_basis: bool = True
) -> TaskRunJsonOutput | TaskRunTextOutput:
    """Build the completed output of an emulated run, deterministically from the request.

    Args:
        run_input: the create-run body.
        mcp_tool_calls: tool calls the emulator made; passed through into the output.
        per_element_basis: json outputs get a basis entry per array element (`key.0`), as the
            API gives them with the field-basis beta; without it, top-level entries only.

    Returns:
        A json output conforming to the requested schema (or an invented one in auto mode on
        `pro` and above), or a markdown text output with inline citations.
    """
    run = SeededRun(run_input)
    spec = run_input.task_spec
    schema = spec.output_schema if spec is not None else AutoSchema()
    if isinstance(schema, JsonSchema):
        return _json_output(run, schema.json_schema, mcp_tool_calls, per_element_basis=per_element_basis)
    if isinstance(schema, TextSchema):
        return _text_output(run, schema.description, mcp_tool_calls, short=False)
    if isinstance(schema, str):
        return _text_output(run, schema, mcp_tool_calls, short=False)
    if run.premium:
        return _auto_output(run, mcp_tool_calls)
    # The docs say lower tiers may answer auto requests in plain text.
    return _text_output(run, None, mcp_tool_calls, short=True)


def progress_script(run_input: TaskRunInput) -> list[ProgressStep]:
    """The progress events of an emulated run, as fractions of its duration.

    Args:
        run_input: the create-run body.

    Returns:
        Steps with strictly increasing `at` in (0, 1): a plan, searches derived from the input
        with stats and results in between, MCP tool calls when servers are given, and a final
        `exec_status` of "Finalizing". Higher tiers search more.
    """
    run = SeededRun(run_input)
    rng = run.rng("progress")
    searches = _SEARCHES[run.tier_index]
    facets = rng.sample(FACETS, min(searches, len(FACETS)))
    while len(facets) < searches:
        facets.append(rng.choice(FACETS))
    # `at` is placed once the number of steps is known.
    pending: list[ProgressStep] = []

    def message(kind: str, text: str) -> None:
        pending.append(ProgressStep(at=0.0, kind=kind, message=text))

    message("plan", f"Planning research on {run.subject}: {searches} searches, then a synthesis (emulated).")
    tool_calls = _tool_call_messages(run)
    tool_call_after = rng.randint(0, max(searches - 2, 0))
    considered = read = 0
    urls = [s.url for s in run.web.sources]
    for index, facet in enumerate(facets):
        message("search", f"Searching: {run.topic} {facet}")
        considered += rng.randint(8, 25)
        read = min(read + rng.randint(2, 6), considered)
        meter = round(5 + 85 * (index + 1) / searches, 1)
        sample = [urls[(read + offset) % len(urls)] for offset in range(min(3, len(urls)))]
        pending.append(
            ProgressStep(
                at=0.0,
                kind="stats",
                progress_meter=meter,
                num_sources_considered=considered,
                num_sources_read=read,
                sources_read_sample=sample,
            )
        )
        if index % 2 == 1 or index == searches - 1:
            message("result", f"Read {read} sources so far; emulated findings on {facet} for {run.topic}.")
        if index == tool_call_after:
            for text in tool_calls:
                message("tool_call", text)
    message("exec_status", "Finalizing")
    count = len(pending)
    # Each step lands inside its own 1/count slot, so `at` is strictly increasing and inside (0, 1).
    return [replace(step, at=round((i + 0.5 + rng.uniform(-0.3, 0.3)) / count, 4)) for i, step in enumerate(pending)]


def _tool_call_messages(run: SeededRun) -> list[str]:
    servers = run.input.mcp_servers or []
    messages = [
        f"Calling tool {(server.allowed_tools or ['search'])[0]} on MCP server {server.name} (emulated)"
        for server in servers
    ]
    return messages[: max_tool_calls(run.input.processor)]
