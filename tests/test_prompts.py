"""Prompts through a real MCP client: the tool calls they ask for are the right ones, and they work."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from mcp import MCPError
from mcp.types import TextContent

from parallel_mcp.emulator.config import EmulatorConfig
from tests.support import Session, mcp_session, structured

pytestmark = pytest.mark.anyio


async def prompt_text(session: Session, name: str, arguments: dict[str, str]) -> str:
    result = await session.mcp.get_prompt(name, arguments)
    (message,) = result.messages
    assert message.role == "user" and isinstance(message.content, TextContent)
    return message.content.text


def tool_call(text: str) -> tuple[str, dict[str, Any]]:
    """The tool and the JSON arguments a prompt asks for."""
    found = re.search(r"Call (create_task_\w+) with these arguments.*?:\n(\{.*?\n\})", text, re.S)
    assert found is not None, text
    return found.group(1), json.loads(found.group(2))


async def test_the_prompts_are_listed_with_their_arguments() -> None:
    async with mcp_session(EmulatorConfig(instant=True)) as session:
        prompts = {p.name: p for p in (await session.mcp.list_prompts()).prompts}
    assert set(prompts) == {"deep_research", "enrich"}
    research = {a.name: a.required for a in prompts["deep_research"].arguments or []}
    enrich = {a.name: a.required for a in prompts["enrich"].arguments or []}
    assert research == {"topic": True, "depth": False} and enrich == {"rows": True, "fields": True}


@pytest.mark.parametrize(
    ("depth", "processor"), [(None, "pro"), ("quick", "core"), ("deep", "ultra"), ("Exhaustive", "ultra2x")]
)
async def test_deep_research_asks_for_one_report_run_on_the_processor_its_depth_needs(
    depth: str | None, processor: str
) -> None:
    arguments = {"topic": "Solid-state batteries in 2026"} | ({"depth": depth} if depth else {})
    async with mcp_session(EmulatorConfig(instant=True)) as session:
        text = await prompt_text(session, "deep_research", arguments)
        tool, call = tool_call(text)
        result = await session.call(tool, call)
    assert tool == "create_task_run" and call["processor"] == processor and call["input"] == arguments["topic"]
    assert "get_task_run" in text and "[n]" in text
    view = structured(result)
    assert view["status"] == "completed" and view["output"]["type"] == "text"


async def test_enrich_asks_for_a_group_with_every_field_on_the_cheapest_processor_that_holds_them() -> None:
    rows = "Acme Corp\nInitech\n\nGlobex"
    async with mcp_session(EmulatorConfig(instant=True)) as session:
        text = await prompt_text(session, "enrich", {"rows": rows, "fields": "founder, founding year"})
        tool, call = tool_call(text)
        result = await session.call(tool, call)
    assert tool == "create_task_group" and call["inputs"] == ["Acme Corp", "Initech", "Globex"]
    assert call["processor"] == "lite"  # two fields: lite holds them, at $0.005 a row
    schema = json.loads(call["output_schema"])
    assert schema["required"] == ["founder", "founding_year"] and "get_task_group" in text
    view = structured(result)
    assert view["num_task_runs"] == 3 and all(
        set(row["output"]) == {"founder", "founding_year"} for row in view["rows"]
    )


async def test_enrich_with_many_fields_picks_a_processor_that_holds_them_and_one_row_makes_one_run() -> None:
    fields = ", ".join(f"field {n}" for n in range(8))
    async with mcp_session(EmulatorConfig(instant=True)) as session:
        tool, call = tool_call(await prompt_text(session, "enrich", {"rows": '["Acme Corp"]', "fields": fields}))
    assert tool == "create_task_run" and call["processor"] == "core" and call["input"] == "Acme Corp"


@pytest.mark.parametrize(
    ("name", "arguments", "named"),
    [
        ("deep_research", {"topic": "x", "depth": "bottomless"}, "depth"),
        ("deep_research", {"topic": "  "}, "topic"),
        ("enrich", {"rows": "", "fields": "a"}, "rows"),
        ("enrich", {"rows": "a", "fields": " , "}, "fields"),
    ],
)
async def test_bad_prompt_arguments_are_invalid_params_naming_the_argument(
    name: str, arguments: dict[str, str], named: str
) -> None:
    async with mcp_session(EmulatorConfig(instant=True)) as session:
        with pytest.raises(MCPError) as caught:
            await session.mcp.get_prompt(name, arguments)
    assert caught.value.error.code == -32602 and caught.value.error.message.startswith(named)
