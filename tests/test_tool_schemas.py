"""What every model sees of the tools: few characters, one portable dialect, and the whole create body.

The converters themselves (google-genai, OpenAI Agents strict mode, pydantic-ai, LangChain) run in
the compatibility suite (`tests/compat/`); these tests hold the rules that make them pass.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from jsonschema import Draft202012Validator
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
from parallel_mcp.tool_schemas import compact_output
from parallel_mcp.tools import OUTPUT_SCHEMAS, build_tools, derive_output_schemas
from tests.support import mcp_session, structured

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


X_WITH_A_TITLE_PROPERTY = {"type": "object", "properties": {"title": {"type": "string", "title": "Title"}}}
NULLABLE_CASES: list[tuple[dict[str, Any], list[Any]]] = [
    ({"anyOf": [{"type": "string"}, {"type": "null"}], "default": None}, ["a", 1, []]),
    ({"anyOf": [{"type": "array", "items": {"type": "integer"}}, {"type": "null"}]}, [[1], ["x"], "x", {}]),
    ({"anyOf": [{"type": "object", "additionalProperties": True}, {"type": "null"}]}, [{"a": 1}, [], "x"]),
    ({"anyOf": [{"enum": ["a", "b"], "type": "string"}, {"type": "null"}]}, ["a", "c", 1]),
    ({"anyOf": [{"type": "object"}, {"type": "string"}, {"type": "null"}]}, [{}, "x", 1]),
    ({"anyOf": [{"type": "object"}, {"type": "string"}]}, [None, {}, "x", 1]),
    (
        {"anyOf": [{"$ref": "#/$defs/X"}, {"type": "null"}], "$defs": {"X": X_WITH_A_TITLE_PROPERTY}},
        [{"title": "t"}, {"title": 1}, "x"],
    ),
]


def accepts(schema: dict[str, Any], instance: Any) -> bool:
    return bool(Draft202012Validator(schema).is_valid(instance))  # pyright: ignore[reportUnknownMemberType]


@pytest.mark.parametrize(("schema", "instances"), NULLABLE_CASES)
def test_a_compacted_output_schema_accepts_what_the_original_accepts_but_null(
    schema: dict[str, Any], instances: list[Any]
) -> None:
    compact = compact_output(schema)
    assert '"null"' not in json.dumps(compact)
    for instance in instances:
        assert accepts(compact, instance) == accepts(schema, instance), (compact, instance)


def test_an_optional_field_left_out_of_a_result_is_valid_and_a_null_one_is_not() -> None:
    view = {
        "type": "object",
        "properties": {"ref_id": {"anyOf": [{"type": "string"}, {"type": "null"}], "default": None}},
    }
    compact = compact_output(view)
    assert compact == {"type": "object", "properties": {"ref_id": {"type": "string"}}}
    assert accepts(compact, {}) and accepts(compact, {"ref_id": "r"}) and not accepts(compact, {"ref_id": None})


def test_a_view_that_requires_a_field_that_may_be_none_is_refused_by_name() -> None:
    view = {
        "type": "object",
        "properties": {"next_offset": {"anyOf": [{"type": "integer"}, {"type": "null"}]}},
        "required": ["next_offset"],
    }
    with pytest.raises(ValueError, match="next_offset may be None but has no default"):
        compact_output(view)


def test_compacting_writes_references_out_keeps_a_property_named_title_and_drops_the_title_keyword() -> None:
    compact = compact_output({"$defs": {"X": X_WITH_A_TITLE_PROPERTY}, "$ref": "#/$defs/X", "title": "Outer"})
    assert compact == {"type": "object", "properties": {"title": {"type": "string"}}}


def test_compacting_leaves_defaults_and_enumerated_values_as_they_are() -> None:
    schema = {"type": "object", "default": {"title": "kept"}, "properties": {"k": {"enum": [{"title": "kept"}]}}}
    assert compact_output(schema) == schema


def test_a_schema_that_refers_to_itself_is_refused_by_name() -> None:
    looping = {"$defs": {"Node": {"type": "object", "properties": {"next": {"$ref": "#/$defs/Node"}}}}}
    with pytest.raises(ValueError, match="Node refers to itself"):
        compact_output({**looping, "$ref": "#/$defs/Node"})


async def test_published_output_schemas_accept_real_results_and_are_as_portable_as_the_input_schemas() -> None:
    async with mcp_session(EmulatorConfig(instant=True)) as session:
        tools = {tool.name: tool for tool in (await session.mcp.list_tools()).tools}
        created = await session.mcp.call_tool("create_task_run", {"input": "Who wrote Middlemarch?", "wait_seconds": 5})
        run_id = structured(created)["run_id"]
        got = await session.mcp.call_tool("get_task_run", {"run_id": run_id})
    for name, result in (("create_task_run", created), ("get_task_run", got)):
        schema = tools[name].output_schema
        assert schema is not None
        assert accepts(schema, result.structured_content), name
    for tool in tools.values():
        assert tool.output_schema is not None and "$ref" not in json.dumps(tool.output_schema), tool.name
        for path, node in walk(tool.output_schema):
            if not path.endswith("/properties"):
                assert not isinstance(node.get("type"), list), f"{tool.name}{path}: a type array"


def test_the_sdk_hands_each_tool_the_arguments_its_schema_publishes_under_their_own_names() -> None:
    for tool in build_tools():
        fields = tool.fn_metadata.arg_model.model_fields
        assert list(fields) == list(tool.parameters["properties"]), tool.name
        assert all(info.alias is None for info in fields.values()), tool.name


def test_the_output_schemas_file_is_what_the_views_derive() -> None:
    published = json.loads(OUTPUT_SCHEMAS.read_text(encoding="utf-8"))
    assert published == derive_output_schemas(), "a view changed: run `uv run python -m parallel_mcp.tools`"
