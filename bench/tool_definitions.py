"""Tool definitions: what a model sees of `tools/list` (name, description, input schema), paid on every turn.

Measured from a real `parallel-mcp serve` subprocess over stdio (keyless: its embedded emulator), as
compact JSON characters, the way `tests/test_tool_schemas.py` counts them; tokens at 4 characters per
token, as `parallel_mcp.paging.estimate_tokens` counts them. `outputSchema` is left out: clients do not show it to
the model by default. Reference rows: the design before issue 8 (`tests/compat/old_tools.json`, its
tools/list, measured the same way) and the issue's minimal two-tool design (1,167 characters, quoted).
"""

from __future__ import annotations

import json
import math
from typing import Any, cast

from bench.common import BENCH_DIR, Mode, Outcome, python
from bench.report import Table, Target

NAME = "tool_definitions"
BUDGET_CHARS = 8_000
MINIMAL_DESIGN_CHARS = 1_167
"""Issue 8's minimal two-tool design, which cannot reach every field of the create body."""
OLD_TOOLS = BENCH_DIR.parent / "tests" / "compat" / "old_tools.json"


def _visible(tool: dict[str, Any]) -> str:
    shown = {"name": tool["name"], "description": tool.get("description"), "inputSchema": tool["inputSchema"]}
    return json.dumps(shown, separators=(",", ":"), ensure_ascii=False)


def _tokens(chars: int) -> int:
    return math.ceil(chars / 4)


def _part(value: object) -> int:
    return len(json.dumps(value, separators=(",", ":"), ensure_ascii=False))


async def _listed_tools() -> list[dict[str, Any]]:
    from mcp import ClientSession, StdioServerParameters
    from mcp.client.stdio import stdio_client

    from tests.processes import server_env

    params = StdioServerParameters(command=python(), args=["-m", "parallel_mcp", "serve"], env=server_env())
    async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        listed = await session.list_tools()
    return [tool.model_dump(mode="json", by_alias=True, exclude_none=True) for tool in listed.tools]


async def run(mode: Mode) -> Outcome:  # noqa: ARG001 - the same work in quick and full mode
    tools = await _listed_tools()
    table = Table(
        "Tool definitions: model-visible tools/list of a real server (compact JSON of name, description, inputSchema)",
        ["tool", "description chars", "inputSchema chars", "model-visible chars", "tokens (4 chars/token)"],
    )
    total = 0
    for tool in tools:
        shown = _visible(tool)
        total += len(shown)
        table.add(
            f"`{tool['name']}`",
            _part(tool.get("description")),
            _part(tool["inputSchema"]),
            len(shown),
            _tokens(len(shown)),
        )
    table.add(f"**all {len(tools)} tools (this design)**", None, None, total, _tokens(total))

    old_tools = cast(list[dict[str, Any]], json.loads(OLD_TOOLS.read_text(encoding="utf-8")))
    old = sum(len(_visible(tool)) for tool in old_tools)
    table.add("reference: the design before issue 8 (tests/compat/old_tools.json)", None, None, old, _tokens(old))
    table.add(
        "reference: issue 8's minimal two-tool design (quoted)",
        None,
        None,
        MINIMAL_DESIGN_CHARS,
        _tokens(MINIMAL_DESIGN_CHARS),
    )
    target = Target(
        "tool definitions",
        f"model-visible tools/list ≤ {BUDGET_CHARS:,} characters, every create-body field reachable",
        f"{total:,} chars (~{_tokens(total):,} tokens); before: {old:,}; minimal design: {MINIMAL_DESIGN_CHARS:,}",
        total <= BUDGET_CHARS,
    )
    return Outcome(tables=[table], targets=[target])
