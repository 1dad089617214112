"""Each stack's own conversion of an MCP tool's input schema, and what it loses.

Every checker takes a tools/list (as JSON) and returns, per tool, the problems found: the converter
raised, fell back to non-strict, dropped a description, produced a node a provider API rejects, or
can no longer express a sample argument (a full create body). No problems means the stack takes the
tool as it is. The functions called are the stacks' own, as the report on issue 8 traced them:

- google-genai: `_mcp_utils.mcp_to_gemini_tools`, what `generate_content` runs on an MCP session
  passed as a tool (`_extra_utils.parse_config_for_mcp_sessions`);
- OpenAI Agents: `MCPUtil.to_function_tool(..., convert_schemas_to_strict=True)`, which falls back
  to a non-strict tool when `ensure_strict_json_schema` refuses;
- pydantic-ai: the JSON-schema transformers of its OpenAI (strict and auto), Google and Anthropic
  (strict) profiles;
- Anthropic: `anthropic.transform_schema`, its strict-mode transform.
"""

from __future__ import annotations

import warnings
from typing import Any, cast

from tests.compat.support import Schema, ToolDict, samples_for, schema_of, unexpressible

Problems = dict[str, list[str]]


def _failed(exc: BaseException) -> str:
    return f"raises {type(exc).__name__}: {str(exc)[:200]}"


def _walk(node: Any, path: str = "#") -> list[tuple[str, Schema]]:
    """Every sub-schema (properties, items, unions) with its path."""
    if not isinstance(node, dict):
        return []
    schema = cast(Schema, node)
    found = [(path, schema)]
    for name, sub in cast(dict[str, Any], schema.get("properties") or {}).items():
        found += _walk(sub, f"{path}/properties/{name}")
    found += _walk(schema.get("items"), f"{path}/items")
    for key in ("anyOf", "any_of", "oneOf"):
        for index, sub in enumerate(cast(list[Any], schema.get(key) or [])):
            found += _walk(sub, f"{path}/{key}/{index}")
    return found


# google-genai ---------------------------------------------------------------------------------------

_GEMINI_FORMATS = {"STRING": {"enum", "date-time"}, "NUMBER": {"float", "double"}, "INTEGER": {"int32", "int64"}}


def _gemini_lint(parameters: Schema) -> list[str]:
    """Rules the Gemini API enforces on `FunctionDeclaration.parameters` (its 400 INVALID_ARGUMENT answers)."""
    issues: list[str] = []
    for path, node in _walk(parameters):
        kind = node.get("type")
        if kind is None and not node.get("any_of"):
            issues.append(f"{path}: no type (a keyword was dropped)")
        if kind == "OBJECT" and not node.get("properties"):
            issues.append(f"{path}: OBJECT without properties (API: 'should be non-empty for OBJECT type')")
        if node.get("enum") and kind != "STRING":
            issues.append(f"{path}: enum on {kind}")
        if node.get("format") and node["format"] not in _GEMINI_FORMATS.get(str(kind), set()):
            issues.append(f"{path}: format {node['format']!r} on {kind}")
    return issues


def _gemini_as_json_schema(node: Any) -> Any:
    """A Gemini `Schema` dump as JSON schema again, to check what a model held to it can send."""
    if not isinstance(node, dict):
        return {}
    schema = cast(Schema, node)
    out: Schema = {}
    kind = schema.get("type")
    nullable = bool(schema.get("nullable"))
    if kind:
        out["type"] = [str(kind).lower(), "null"] if nullable else str(kind).lower()
    if "any_of" in schema:
        out["anyOf"] = [_gemini_as_json_schema(branch) for branch in schema["any_of"]]
        if nullable:
            out["anyOf"].append({"type": "null"})
    if "properties" in schema:
        properties = cast(dict[str, Any], schema["properties"])
        out["properties"] = {name: _gemini_as_json_schema(sub) for name, sub in properties.items()}
        out["additionalProperties"] = not properties
    if "required" in schema:
        out["required"] = schema["required"]
    if "items" in schema:
        out["items"] = _gemini_as_json_schema(schema["items"])
    if "enum" in schema:
        out["enum"] = [*schema["enum"], *([None] if nullable else [])]
    return out


def gemini_problems(tools: list[ToolDict]) -> Problems:
    from google.genai import _mcp_utils  # pyright: ignore[reportPrivateUsage] - the MCP path's own converter
    from mcp.types import Tool

    samples = samples_for(tools)
    problems: Problems = {}
    for tool in tools:
        name = tool["name"]
        try:
            (converted,) = _mcp_utils.mcp_to_gemini_tools([Tool.model_validate(tool)])
        except Exception as exc:
            problems[name] = [_failed(exc)]
            continue
        declarations = converted.function_declarations or []
        parameters = declarations[0].parameters if declarations else None
        if parameters is None:
            problems[name] = ["no parameters declared"]
            continue
        dumped: Schema = parameters.model_dump(mode="json", exclude_none=True)
        found = _gemini_lint(dumped)
        kept = cast(dict[str, Any], dumped.get("properties") or {})
        for prop, sub in cast(dict[str, Any], tool["inputSchema"].get("properties") or {}).items():
            described = any("description" in node for _, node in _walk(sub))
            if described and not cast(Schema, kept.get(prop) or {}).get("description"):
                found.append(f"{prop}: description dropped")
        found += unexpressible(samples.get(name, []), cast(Schema, _gemini_as_json_schema(dumped)), strict=False)
        if found:
            problems[name] = found
    return problems


# OpenAI Agents --------------------------------------------------------------------------------------


def openai_agents_problems(tools: list[ToolDict]) -> Problems:
    from agents.mcp import MCPServerStdio, MCPUtil
    from agents.strict_schema import ensure_strict_json_schema
    from mcp.types import Tool

    server = MCPServerStdio(params={"command": "true"}, name="never-connected")
    samples = samples_for(tools)
    problems: Problems = {}
    for tool in tools:
        name = tool["name"]
        function_tool = MCPUtil.to_function_tool(Tool.model_validate(tool), server, convert_schemas_to_strict=True)
        if not function_tool.strict_json_schema:
            # It logs the reason at INFO and carries on non-strict; say the reason.
            try:
                ensure_strict_json_schema(schema_of(tool), _reject_open_objects=True)
                reason = "unknown"
            except Exception as exc:
                reason = _failed(exc)
            problems[name] = [f"strict conversion refused, non-strict fallback: {reason}"]
            continue
        found = unexpressible(samples.get(name, []), function_tool.params_json_schema, strict=True)
        if found:
            problems[name] = found
    return problems


# pydantic-ai ----------------------------------------------------------------------------------------


def pydantic_ai_problems(tools: list[ToolDict], profile: str) -> Problems:
    """`profile`: openai-strict (strict forced), openai-auto (strict when compatible), google, anthropic-strict."""
    from pydantic_ai.profiles.google import GoogleJsonSchemaTransformer
    from pydantic_ai.profiles.openai import OpenAIJsonSchemaTransformer
    from pydantic_ai.providers.anthropic import AnthropicJsonSchemaTransformer

    samples = samples_for(tools)
    problems: Problems = {}
    for tool in tools:
        name = tool["name"]
        found: list[str] = []
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            if profile == "openai-strict":
                transformer = OpenAIJsonSchemaTransformer(schema_of(tool), strict=True)
            elif profile == "openai-auto":
                transformer = OpenAIJsonSchemaTransformer(schema_of(tool), strict=None)
            elif profile == "google":
                transformer = GoogleJsonSchemaTransformer(schema_of(tool))
            else:
                transformer = AnthropicJsonSchemaTransformer(schema_of(tool), strict=True)
            converted = transformer.walk()
        found += [f"warns: {str(warning.message)[:160]}" for warning in caught]
        strict = profile.endswith("-strict") or (profile == "openai-auto" and transformer.is_strict_compatible)
        found += unexpressible(samples.get(name, []), converted, strict=strict)
        if found:
            problems[name] = found
    return problems


# Anthropic ------------------------------------------------------------------------------------------


def anthropic_problems(tools: list[ToolDict]) -> Problems:
    import anthropic

    samples = samples_for(tools)
    problems: Problems = {}
    for tool in tools:
        name = tool["name"]
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                converted: Schema = anthropic.transform_schema(schema_of(tool))
            except Exception as exc:
                problems[name] = [_failed(exc)]
                continue
        found = [f"warns: {str(warning.message)[:160]}" for warning in caught]
        found += unexpressible(samples.get(name, []), converted, strict=True)
        if found:
            problems[name] = found
    return problems


# LangChain --------------------------------------------------------------------------------------------


def langchain_problems(tools: list[ToolDict], target: str) -> Problems:
    """`target`: openai-strict (`bind_tools(..., strict=True)` of ChatOpenAI and ChatAnthropic) or gemini
    (langchain-google-genai). The tool is built as langchain-mcp-adapters builds it, a `StructuredTool`
    whose `args_schema` is the input schema; `test_langchain` runs the adapters themselves."""
    from langchain_core.tools import StructuredTool
    from langchain_core.utils.function_calling import convert_to_openai_tool
    from langchain_google_genai._function_utils import (  # pyright: ignore[reportPrivateUsage] - what bind_tools runs
        convert_to_genai_function_declarations,
    )

    async def never_called(**kwargs: Any) -> tuple[str, None]:
        raise AssertionError(kwargs)

    samples = samples_for(tools)
    problems: Problems = {}
    for tool in tools:
        name = tool["name"]
        structured = StructuredTool(
            name=name,
            description=tool.get("description") or "",
            args_schema=schema_of(tool),
            coroutine=never_called,
            response_format="content_and_artifact",
        )
        found: list[str] = []
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                if target == "openai-strict":
                    converted: Schema = convert_to_openai_tool(structured, strict=True)["function"]["parameters"]
                    found += unexpressible(samples.get(name, []), converted, strict=True)
                else:
                    (declared,) = convert_to_genai_function_declarations([structured])
                    declaration = (declared.function_declarations or [])[0]
                    assert declaration.parameters is not None
                    dumped: Schema = declaration.parameters.model_dump(mode="json", exclude_none=True)
                    found += _gemini_lint(dumped)
                    found += unexpressible(
                        samples.get(name, []), cast(Schema, _gemini_as_json_schema(dumped)), strict=False
                    )
            except Exception as exc:
                found.append(_failed(exc))
        found += [f"warns: {str(warning.message)[:160]}" for warning in caught]
        if found:
            problems[name] = found
    return problems
