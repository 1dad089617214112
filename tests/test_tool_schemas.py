"""What every model sees of the tools: few characters, one portable dialect, and the whole create body.

The converters themselves (google-genai, OpenAI Agents strict mode, pydantic-ai, LangChain) run in
the compatibility suite (`tests/compat/`); these tests hold the rules that make them pass.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from mcp.types import Tool

from parallel_mcp.arguments import (
    CreateGroupArguments,
    CreateRunArguments,
    GetGroupArguments,
    GetRunArguments,
    ListRunsArguments,
)
from parallel_mcp.emulator.config import EmulatorConfig
from parallel_mcp.models import TaskRunInput
from tests.support import mcp_session

pytestmark = pytest.mark.anyio

BUDGET_CHARS = 8_000
"""What all tool definitions together may cost in a model's context (name, description, input schema)."""
FORBIDDEN = {
    "additionalProperties",  # google-genai's MCP path crashes on a boolean here
    "$ref",
    "$defs",
    "oneOf",
    "allOf",
    "const",
    "default",
    "format",
    "title",
    "minimum",
    "maximum",
    "minLength",
    "maxLength",
    "minItems",
    "maxItems",
    "pattern",
}
ARGUMENT_MODELS = {
    "create_task_run": CreateRunArguments,
    "get_task_run": GetRunArguments,
    "list_task_runs": ListRunsArguments,
    "create_task_group": CreateGroupArguments,
    "get_task_group": GetGroupArguments,
}


async def listed_tools() -> list[Tool]:
    async with mcp_session(EmulatorConfig(instant=True)) as session:
        return (await session.mcp.list_tools()).tools


def model_visible(tool: Tool) -> int:
    """Characters of what a client puts in the model's context for one tool."""
    shown = {"name": tool.name, "description": tool.description, "inputSchema": tool.input_schema}
    return len(json.dumps(shown, separators=(",", ":"), ensure_ascii=False))


def walk(node: Any, path: str = "") -> list[tuple[str, dict[str, Any]]]:
    """Every schema object in a schema, with its path."""
    found: list[tuple[str, dict[str, Any]]] = []
    if isinstance(node, dict):
        schema: dict[str, Any] = node  # pyright: ignore[reportUnknownVariableType]
        found.append((path, schema))
        for key, value in schema.items():
            found.extend(walk(value, f"{path}/{key}"))
    elif isinstance(node, list):
        for index, item in enumerate(node):  # pyright: ignore[reportUnknownVariableType, reportUnknownArgumentType]
            found.extend(walk(item, f"{path}/{index}"))
    return found


async def test_all_tool_definitions_together_fit_the_budget() -> None:
    sizes = {tool.name: model_visible(tool) for tool in await listed_tools()}
    assert sum(sizes.values()) <= BUDGET_CHARS, sizes


async def test_no_schema_uses_a_keyword_that_common_converters_choke_on() -> None:
    for tool in await listed_tools():
        for path, schema in walk(tool.input_schema):
            if path.endswith("/properties"):
                continue  # property names, not keywords
            used = FORBIDDEN & set(schema)
            assert not used, f"{tool.name}{path} uses {used}"
            assert not isinstance(schema.get("type"), list), f"{tool.name}{path}: a type array"


async def test_free_form_json_travels_as_text_and_every_object_declares_its_properties() -> None:
    for tool in await listed_tools():
        for path, schema in walk(tool.input_schema):
            if schema.get("type") == "object":
                properties = schema.get("properties")
                assert properties, f"{tool.name}{path}: a free-form object (strict modes close it to {{}})"
                if path:  # nested objects require every property: strict modes demand it
                    assert sorted(schema["required"]) == sorted(properties), f"{tool.name}{path}"


async def test_an_optional_argument_keeps_its_description_inside_the_non_null_branch() -> None:
    for tool in await listed_tools():
        required = set(tool.input_schema["required"])
        for name, schema in tool.input_schema["properties"].items():
            if name in required:
                assert "description" in schema, f"{tool.name}.{name}"
                continue
            branches = schema["anyOf"]
            assert branches[1] == {"type": "null"} and "description" in branches[0], f"{tool.name}.{name}"


async def test_every_published_argument_is_one_the_tool_parses() -> None:
    for tool in await listed_tools():
        published = set(tool.input_schema["properties"])
        assert published == set(ARGUMENT_MODELS[tool.name].model_fields), tool.name


def test_every_field_of_the_create_body_is_reachable_from_create_task_run() -> None:
    reached = {
        "input": "input",
        "processor": "processor",
        "task_spec": "output_schema",
        "metadata": "metadata",
        "source_policy": "source_policy",
        "advanced_settings": "advanced_settings",
        "previous_interaction_id": "previous_interaction_id",
        "mcp_servers": "mcp_servers",
        "enable_events": "enable_events",
        "webhook": "webhook_url",
        "memory_scope_key": "memory_scope_key",
    }
    assert set(reached) == set(TaskRunInput.model_fields)
    assert set(reached.values()) <= set(CreateRunArguments.model_fields)
