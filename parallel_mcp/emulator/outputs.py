"""Deterministic, obviously emulated outputs and progress scripts for the Task API emulator.

Everything derives from a `random.Random` seeded with a sha256 of the request's canonical JSON, so
the same request always gets the same answer and the same progress events, across processes.
Outputs have the shapes the real API returns (json content conforming to the schema, markdown
reports with inline citations, large auto-mode deep research) and say plainly that they are
emulated; citations point at invented sites on reserved TLDs (see `fake_web`).
"""

from __future__ import annotations

import functools
import hashlib
import json
import random
import re
from dataclasses import dataclass, replace
from importlib import resources
from typing import Any, Final, cast

from parallel_mcp.emulator.fake_web import FakeWeb
from parallel_mcp.emulator.mcp_calls import max_tool_calls
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
from parallel_mcp.processors import FAST_SUFFIX, TIER_NAMES, is_premium
from parallel_mcp.schema_rules import as_schema, schema_types
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

_TIER_INDEX: Final[dict[str, int]] = {name: index for index, name in enumerate(TIER_NAMES)}
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
_POOL_SIZE: Final[tuple[int, ...]] = (6, 8, 10, 12, 20, 30, 45, 60, 90)
_SEARCHES: Final[tuple[int, ...]] = (2, 3, 4, 5, 6, 8, 10, 12, 15)
_REPORT_SECTIONS: Final[tuple[int, ...]] = (1, 1, 2, 2, 3, 4, 5, 6, 8)
# Fill depth guard for recursive `$ref`s.
_MAX_FILL_DEPTH: Final[int] = 12

# --- vocabulary -------------------------------------------------------------------------------

# fmt: off
_STOPWORDS: Final[frozenset[str]] = frozenset({
    "a", "an", "and", "are", "as", "at", "be", "been", "but", "by", "can", "could", "did", "do", "does", "for",
    "from", "had", "has", "have", "how", "i", "if", "in", "into", "is", "it", "its", "me", "my", "of", "on", "or",
    "our", "should", "so", "than", "that", "the", "their", "them", "then", "there", "these", "they", "this", "to",
    "was", "we", "were", "what", "when", "where", "which", "who", "whom", "why", "will", "with", "would", "you",
    "your", "about", "give", "find", "list", "tell", "please", "compare", "explain", "describe", "show", "provide",
    "latest", "current",
})
# fmt: on
_WORD = re.compile(r"[A-Za-z][A-Za-z0-9]+")
_FACETS: Final[tuple[str, ...]] = (
    "overview",
    "latest developments",
    "key players",
    "market size",
    "regulation",
    "criticism and risks",
    "statistics",
    "case studies",
    "expert analysis",
    "historical timeline",
    "outlook",
    "funding and investment",
    "technology",
    "regional differences",
    "customer adoption",
    "open questions",
)
_ORG_SUFFIXES: Final[tuple[str, ...]] = ("Labs", "Group", "Institute", "Systems", "Partners", "Holdings", "Collective")
_FIRST_NAMES: Final[tuple[str, ...]] = ("Alex", "Sam", "Jordan", "Robin", "Casey", "Morgan", "Avery", "Quinn")
_LAST_NAMES: Final[tuple[str, ...]] = ("Example", "Placeholder", "Sample", "Mock", "Fixture", "Stand-in")
_CONFIDENCE: Final[tuple[str, ...]] = ("high", "high", "medium", "medium", "low")
_REASONING: Final[tuple[str, ...]] = (
    "Emulated reasoning: {what} for {subject} was assembled from {n} invented source(s); no web research ran.",
    "The emulator derived {what} deterministically from the request about {subject}, citing {n} invented page(s).",
    "Emulated: {n} invented source(s) were 'read' to produce {what}; treat the value as a placeholder.",
)


# --- request context --------------------------------------------------------------------------


def _seed(run_input: TaskRunInput) -> str:
    """A stable hex digest of the parts of the request that decide its output."""
    wire = run_input.model_dump(
        mode="json", include={"input", "processor", "task_spec", "source_policy"}, exclude_none=True
    )
    canonical = json.dumps(wire, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _flatten_input(value: str | dict[str, Any]) -> str:
    if isinstance(value, str):
        return value
    parts: list[str] = []
    for key, item in value.items():
        if isinstance(item, str | int | float) and not isinstance(item, bool):
            parts.append(str(item))
        else:
            parts.append(key)
    return " ".join(parts)


def _subject(value: str | dict[str, Any]) -> str:
    """A short quotable description of the input."""
    if isinstance(value, str):
        return shorten(value, 70, one_line=True)
    scalars = [str(v) for v in value.values() if isinstance(v, str | int | float) and not isinstance(v, bool)]
    return (
        shorten(", ".join(scalars) if scalars else json.dumps(value, sort_keys=True), 70, one_line=True) or "the input"
    )


def _topic_words(value: str | dict[str, Any]) -> list[str]:
    words: list[str] = []
    for word in _WORD.findall(_flatten_input(value)[:2000]):
        lower = word.lower()
        if len(lower) >= 3 and lower not in _STOPWORDS and lower not in words:
            words.append(lower)
        if len(words) == 6:
            break
    return words or ["research"]


class _Run:
    """What the generators know about one request, plus its seeded random sources."""

    def __init__(self, run_input: TaskRunInput) -> None:
        self.input = run_input
        self.seed = _seed(run_input)
        self.tier = run_input.processor.removesuffix(FAST_SUFFIX)
        # Unknown processors are rejected before a run exists; default to `core` sizes just in case.
        self.tier_index = _TIER_INDEX.get(self.tier, 2)
        self.premium = is_premium(run_input.processor)
        self.subject = _subject(run_input.input)
        # Field values quote a shorter form so json content stays compact.
        self.short = shorten(self.subject, 40, one_line=True).rstrip("?.!:;, ")
        self.words = _topic_words(run_input.input)
        self.topic = " ".join(self.words[:3])
        self.web = FakeWeb(
            self.rng("web"), self.words, self.subject, run_input.source_policy, _POOL_SIZE[self.tier_index]
        )

    def rng(self, purpose: str) -> random.Random:
        """An independent random source per purpose, so the output and the script don't disturb each other."""
        return random.Random(f"{self.seed}:{purpose}")


# --- values from JSON schemas -----------------------------------------------------------------


def _humanize(name: str) -> str:
    words = re.sub(r"(?<=[a-z])(?=[A-Z])", " ", name).replace("_", " ").replace("-", " ").split()
    return " ".join(words).lower() or "value"


class _Filler:
    """Builds a value conforming to a JSON schema, with plausible strings that mention the input."""

    def __init__(self, run: _Run, rng: random.Random, root: dict[str, Any], items: tuple[int, int]) -> None:
        self.run = run
        self.rng = rng
        self.root = root
        self.items = items

    def resolve(self, node: dict[str, Any]) -> dict[str, Any]:
        """Follow local `$ref`s (`#`, `#/$defs/...`), keeping sibling keywords such as `description`."""
        for _ in range(_MAX_FILL_DEPTH):
            ref = node.get("$ref")
            if not isinstance(ref, str) or not ref.startswith("#"):
                return node
            target: object = self.root
            for part in ref.removeprefix("#").strip("/").split("/") if ref != "#" else []:
                key = part.replace("~1", "/").replace("~0", "~")
                target = cast(dict[str, object], target).get(key) if isinstance(target, dict) else None
            resolved = as_schema(target)
            if resolved is None:
                return {k: v for k, v in node.items() if k != "$ref"}
            node = {**resolved, **{k: v for k, v in node.items() if k != "$ref"}}
        return node

    def value(self, node: dict[str, Any], name: str, depth: int, index: int = 0) -> Any:
        node = self.resolve(node)
        if "const" in node:
            return node["const"]
        enum = node.get("enum")
        if isinstance(enum, list) and enum:
            options = cast(list[object], enum)
            return self.rng.choice([v for v in options if v is not None] or options)
        for union in ("anyOf", "oneOf"):
            raw_options = node.get(union)
            if isinstance(raw_options, list):
                options = [o for o in map(as_schema, cast(list[object], raw_options)) if o is not None]
                non_null = [o for o in options if schema_types(self.resolve(o)) != ["null"]]
                if options:
                    return self.value(self.rng.choice(non_null or options), name, depth, index)
        all_of = node.get("allOf")
        if isinstance(all_of, list):
            merged = {k: v for k, v in node.items() if k != "allOf"}
            for part in map(as_schema, cast(list[object], all_of)):
                if part is not None:
                    part = self.resolve(part)
                    props = {**cast(dict[str, Any], merged.get("properties", {})), **part.get("properties", {})}
                    merged = {**part, **merged, "properties": props} if props else {**part, **merged}
            return self.value(merged, name, depth, index)
        types = [t for t in schema_types(node) if t != "null"]
        if not types:
            if schema_types(node) == ["null"]:
                return None
            types = ["object" if "properties" in node else "array" if "items" in node else "string"]
        kind = types[0]
        if depth > _MAX_FILL_DEPTH:
            minimal: dict[str, Any] = {"object": {}, "array": [], "string": "", "number": 0, "integer": 0}
            return minimal.get(kind, False)
        if kind == "object":
            return self.object(node, depth)
        if kind == "array":
            return self.array(node, name, depth)
        if kind == "integer":
            return self.integer(name)
        if kind == "number":
            return self.number(name)
        if kind == "boolean":
            return self.rng.random() < 0.6
        return self.string(name, node, index)

    def object(self, node: dict[str, Any], depth: int) -> dict[str, Any]:
        properties = as_schema(node.get("properties")) or {}
        result = {
            key: self.value(child, key, depth + 1)
            for key, raw in properties.items()
            if (child := as_schema(raw)) is not None
        }
        extra = as_schema(node.get("additionalProperties"))
        if not properties and extra is not None:
            result[self.run.words[0]] = self.value(extra, self.run.words[0], depth + 1)
        return result

    def array(self, node: dict[str, Any], name: str, depth: int) -> list[Any]:
        prefix = node.get("prefixItems")
        if isinstance(prefix, list):
            parts = [as_schema(p) or {} for p in cast(list[object], prefix)]
            return [self.value(part, name, depth + 1, i) for i, part in enumerate(parts)]
        items = as_schema(node.get("items")) or {"type": "string"}
        singular = name.removesuffix("s") if len(name) > 3 else name
        count = self.rng.randint(*self.items)
        return [self.value(items, singular, depth + 1, i) for i in range(count)]

    def integer(self, name: str) -> int:
        key = name.lower()
        if "year" in key or "founded" in key:
            return self.rng.randint(1990, 2025)
        if any(k in key for k in ("employee", "headcount", "count", "number", "num_", "total", "size")):
            return self.rng.randint(5, 5000)
        if any(k in key for k in ("rank", "position", "priority")):
            return self.rng.randint(1, 10)
        return self.rng.randint(1, 500)

    def number(self, name: str) -> float:
        key = name.lower()
        if any(k in key for k in ("percent", "share", "rate", "margin", "ratio", "growth", "cagr")):
            return round(self.rng.uniform(1, 60), 1)
        if any(k in key for k in ("revenue", "usd", "price", "cost", "funding", "valuation", "amount", "value")):
            return float(round(self.rng.uniform(1e5, 5e8), -3))
        if any(k in key for k in ("score", "rating")):
            return round(self.rng.uniform(1, 5), 1)
        return round(self.rng.uniform(1, 1000), 2)

    def string(self, name: str, node: dict[str, Any], index: int) -> str:
        key = name.lower()
        rng = self.rng
        run = self.run
        if any(k in key for k in ("url", "website", "link", "homepage")):
            return rng.choice(run.web.sources).url
        if "email" in key:
            return f"contact@{run.words[0]}-emulated.example"
        if "phone" in key:
            return f"+1-555-01{rng.randint(0, 99):02d}"
        if "date" in key or key.endswith("_at") or key == "when":
            return f"{rng.randint(2019, 2025)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
        if "year" in key:
            return str(rng.randint(1990, 2025))
        if any(k in key for k in ("ceo", "founder", "person", "author", "contact", "executive", "expert", "leader")):
            return f"{rng.choice(_FIRST_NAMES)} {rng.choice(_LAST_NAMES)} (emulated)"
        if key in {"name", "company", "organization", "organisation", "player"} or key.endswith(
            ("_name", "company", "player", "organization")
        ):
            return f"{run.words[index % len(run.words)].capitalize()} {rng.choice(_ORG_SUFFIXES)} (emulated)"
        if any(k in key for k in ("country", "region", "location", "headquarters", "city", "jurisdiction")):
            return rng.choice(("Exampleland", "North Placeholder", "Sample Region", "Mock County", "Testshire"))
        long_text = any(
            k in key
            for k in ("description", "summary", "overview", "reason", "note", "explanation", "analysis", "outlook")
        )
        if long_text or "description" in node:
            facet = rng.choice(_FACETS)
            return f"Emulated {_humanize(name)} for {run.short}, with placeholder notes on {facet}."
        return f"{rng.choice(_FACETS).capitalize()} ({_humanize(name)}) of {run.short}"


# --- basis ------------------------------------------------------------------------------------


def _basis_entry(run: _Run, rng: random.Random, field: str, count: int) -> FieldBasis:
    what = _humanize(field.replace(".", " "))
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
    run: _Run, schema: dict[str, Any], mcp_tool_calls: list[McpToolCall] | None, *, per_element_basis: bool
) -> TaskRunJsonOutput:
    rng = run.rng("json")
    content = _Filler(run, rng, schema, (1, 3)).object(schema, 1)
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


def _auto_output(run: _Run, mcp_tool_calls: list[McpToolCall] | None) -> TaskRunJsonOutput:
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
        value = _Filler(run, rng, schema, (2, 4)).value(schema, name, 2)
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
    run: _Run, description: str | None, mcp_tool_calls: list[McpToolCall] | None, *, short: bool
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
            f"sentences with sources such as {cite(rng.choice(_FACETS))}.\n"
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
        facets = rng.sample(_FACETS, min(_REPORT_SECTIONS[run.tier_index], len(_FACETS)))
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
    run = _Run(run_input)
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
    run = _Run(run_input)
    rng = run.rng("progress")
    searches = _SEARCHES[run.tier_index]
    facets = rng.sample(_FACETS, min(searches, len(_FACETS)))
    while len(facets) < searches:
        facets.append(rng.choice(_FACETS))
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


def _tool_call_messages(run: _Run) -> list[str]:
    servers = run.input.mcp_servers or []
    messages = [
        f"Calling tool {(server.allowed_tools or ['search'])[0]} on MCP server {server.name} (emulated)"
        for server in servers
    ]
    return messages[: max_tool_calls(run.input.processor)]
