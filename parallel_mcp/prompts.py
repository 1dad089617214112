"""MCP prompts for the two main jobs: a deep research report, and enriching rows with fields.

Each prompt names the tool to call with ready arguments and a processor fit for the job: the depth
of the research decides the first, the number of fields the second (the cheapest processor that
handles them).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any, cast

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.prompts.base import Prompt, PromptArgument
from mcp.shared.exceptions import MCPError
from mcp_types import INVALID_PARAMS

from parallel_mcp.guidance import deep_research_prompt, enrich_prompt
from parallel_mcp.models.requests import MAX_GROUP_INPUTS
from parallel_mcp.processors import PROCESSORS, TIER_NAMES

DEPTHS = {"quick": "core", "standard": "pro", "deep": "ultra", "exhaustive": "ultra2x"}
"""Research depth -> processor: a few minutes and cents, up to most of an hour and $0.60 a run."""
REPORT_SCHEMA = (
    "A markdown research report: a summary first, then a section per aspect of the topic, every claim cited."
)
MAX_FIELDS = 25


def _invalid(message: str) -> MCPError:
    return MCPError(code=INVALID_PARAMS, message=message)


def _arguments(arguments: dict[str, Any]) -> str:
    return json.dumps(arguments, ensure_ascii=False, indent=2)


async def deep_research(topic: str, depth: str = "standard") -> str:
    """A cited research report on a topic: quick, standard, deep or exhaustive (how far the research goes)."""
    processor = DEPTHS.get(depth.strip().lower())
    if not topic.strip():
        raise _invalid("topic: say what to research")
    if processor is None:
        raise _invalid(f"depth: {depth[:40]!r} is not one of {', '.join(DEPTHS)}")
    arguments = {"input": topic.strip(), "processor": processor, "output_schema": REPORT_SCHEMA}
    return deep_research_prompt(topic.strip(), depth.strip().lower(), processor, _arguments(arguments))


def _rows(rows: str) -> list[str]:
    text = rows.strip()
    if text.startswith("["):
        try:
            parsed: Any = json.loads(text)
        except json.JSONDecodeError:
            parsed = None
        if isinstance(parsed, list):
            items = cast(list[Any], parsed)
            return [item if isinstance(item, str) else json.dumps(item, ensure_ascii=False) for item in items]
    return [line.strip() for line in text.splitlines() if line.strip()]


def _fields(fields: str) -> list[str]:
    names: list[str] = []
    for name in fields.replace("\n", ",").split(","):
        cleaned = "_".join(name.strip().split())
        if cleaned and cleaned not in names:
            names.append(cleaned)
    return names


def processor_for(fields: int) -> str:
    """The cheapest processor whose outputs hold this many fields."""
    fitting = [PROCESSORS[tier] for tier in TIER_NAMES if PROCESSORS[tier].max_fields >= fields]
    return min(fitting, key=lambda proc: proc.usd_per_run).name


async def enrich(rows: str, fields: str) -> str:
    """Find the same fields for every row (one per line, or a JSON array), e.g. fields "founder, founding_year"."""
    found_rows, names = _rows(rows), _fields(fields)
    if not found_rows:
        raise _invalid("rows: give one row per line (a company, a person, a product...), or a JSON array")
    if len(found_rows) > MAX_GROUP_INPUTS:
        raise _invalid(f"rows: at most {MAX_GROUP_INPUTS} rows per task group, got {len(found_rows)}")
    if not names or len(names) > MAX_FIELDS:
        raise _invalid(f"fields: give 1 to {MAX_FIELDS} field names, separated by commas")
    processor = processor_for(len(names))
    schema = {
        "type": "object",
        "properties": {name: {"type": "string", "description": name.replace("_", " ")} for name in names},
        "required": names,
        "additionalProperties": False,
    }
    spec: dict[str, Any] = {"processor": processor, "output_schema": json.dumps(schema)}
    if len(found_rows) == 1:
        tool, arguments = "create_task_run", {"input": found_rows[0], **spec}
    else:
        tool, arguments = "create_task_group", {"inputs": found_rows, **spec}
    return enrich_prompt(len(found_rows), names, processor, tool, _arguments(arguments))


_PROMPTS: list[tuple[Callable[..., Awaitable[str]], str, list[PromptArgument]]] = [
    (
        deep_research,
        "Deep research report",
        [
            PromptArgument(name="topic", description="What to research.", required=True),
            PromptArgument(name="depth", description="quick, standard (the default), deep or exhaustive."),
        ],
    ),
    (
        enrich,
        "Enrich rows with fields",
        [
            PromptArgument(name="rows", description="One row per line, or a JSON array.", required=True),
            PromptArgument(name="fields", description="The fields to find, separated by commas.", required=True),
        ],
    ),
]


def add_prompts(server: MCPServer[Any]) -> None:
    """Register the prompts (built directly: deriving their arguments from the signatures costs start-up time)."""
    for fn, title, arguments in _PROMPTS:
        server.add_prompt(
            Prompt(
                name=fn.__name__,
                title=title,
                description=fn.__doc__,
                arguments=arguments,
                fn=fn,
                context_kwarg=None,
            )
        )
