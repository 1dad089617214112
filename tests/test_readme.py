"""The README's tools table is generated from `list_tools()`; this keeps the two in step."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from mcp.types import Tool

from parallel_mcp.emulator.config import EmulatorConfig
from tests.support import mcp_session

pytestmark = pytest.mark.anyio

README = Path(__file__).resolve().parent.parent / "README.md"


def _annotations(tool: Tool) -> str:
    hints = tool.annotations
    assert hints is not None
    parts = ["read-only" if hints.read_only_hint else "not read-only"]
    parts.append("idempotent" if hints.idempotent_hint else "not idempotent")
    parts.append("open-world" if hints.open_world_hint else "closed-world")
    return ", ".join(parts)


def render_tools_table(tools: list[Tool]) -> str:
    """The markdown table between the README's tools markers."""
    rows = ["| Tool | Annotations | Arguments |", "| --- | --- | --- |"]
    for tool in tools:
        arguments = ", ".join(f"`{name}`" for name in tool.input_schema.get("properties", {}))
        rows.append(f"| `{tool.name}` | {_annotations(tool)} | {arguments} |")
    return "\n".join(rows)


async def test_the_readme_tools_table_matches_the_server() -> None:
    async with mcp_session(EmulatorConfig(instant=True)) as session:
        tools = (await session.mcp.list_tools()).tools
    match = re.search(r"<!-- tools:start -->\n(.*?)\n<!-- tools:end -->", README.read_text(), re.S)
    assert match is not None, "README.md lost its tools markers"
    assert match.group(1) == render_tools_table(tools)


def test_the_readme_quickstart_runs_the_emulator_and_the_tests() -> None:
    text = README.read_text()
    quickstart = text[text.index("## Quickstart") : text.index("## Tools")]
    commands = [line.split("#")[0].strip() for line in quickstart.splitlines() if line.startswith(("uv ", "python3 "))]
    assert commands[:2] == ["python3 -m pip install uv", "uv sync"]
    assert commands[2].startswith("uv run parallel-mcp run ")
    assert commands[3] == "uv run pytest"
    ci = (README.parent / ".ci" / "run").read_text()
    assert "$UV run pytest\n" in ci
