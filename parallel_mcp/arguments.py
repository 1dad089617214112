"""Tool arguments: JSON schemas that mirror the create body, and safe parsing into wire models.

Nested objects (task_spec, mcp_servers, ...) are published with the schemas of our request
models but validated here, not by the SDK: pydantic's own messages quote the offending input,
and an `mcp_servers` header value must never be echoed back to the model.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, cast

from pydantic import BaseModel, ValidationError

from parallel_mcp.errors import ArgumentError
from parallel_mcp.models import (
    McpServer,
    SourcePolicy,
    TaskAdvancedSettings,
    TaskGroupCreateRequest,
    TaskGroupRunRequest,
    TaskRunInput,
    TaskSpec,
    Webhook,
)
from parallel_mcp.models.requests import check_spec_and_input


def inline_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The model's JSON schema with every `$ref` inlined, so it can be embedded in a tool schema."""
    schema = model.model_json_schema()
    defs = cast(dict[str, Any], schema.pop("$defs", {}))

    def resolve(node: Any) -> Any:
        if isinstance(node, dict):
            mapping = cast(dict[str, Any], node)
            ref = mapping.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                target = copy.deepcopy(defs[ref.removeprefix("#/$defs/")])
                extra = {k: v for k, v in mapping.items() if k != "$ref"}
                return resolve({**target, **extra})
            return {key: resolve(value) for key, value in mapping.items()}
        if isinstance(node, list):
            return [resolve(item) for item in cast(list[Any], node)]
        return node

    return cast(dict[str, Any], resolve(schema))


def nullable(schema: dict[str, Any]) -> dict[str, Any]:
    """Allow null besides the schema (an omitted optional argument)."""
    return {"anyOf": [schema, {"type": "null"}]}


TASK_SPEC_SCHEMA = nullable(inline_schema(TaskSpec))
SOURCE_POLICY_SCHEMA = nullable(inline_schema(SourcePolicy))
ADVANCED_SETTINGS_SCHEMA = nullable(inline_schema(TaskAdvancedSettings))
WEBHOOK_SCHEMA = nullable(inline_schema(Webhook))
MCP_SERVERS_SCHEMA = nullable({"type": "array", "items": inline_schema(McpServer), "maxItems": 10})
METADATA_SCHEMA = nullable(
    {
        "type": "object",
        # anyOf rather than a type array: clients that map schemas to one-type dialects (Gemini) accept it.
        "additionalProperties": {"anyOf": [{"type": t} for t in ("string", "integer", "number", "boolean")]},
        "description": "Keys up to 16 characters, values up to 512.",
    }
)

_SECRET_LOCATIONS = ("headers",)


def describe_validation_error(error: ValidationError, *, prefix: str = "") -> str:
    """One line per problem, naming the argument path; input values are never quoted."""
    lines: list[str] = []
    for item in error.errors(include_input=False, include_url=False):
        loc = ".".join(str(part) for part in item["loc"] if not str(part).startswith("function-"))
        path = f"{prefix}{loc}" if loc else prefix.rstrip(".") or "arguments"
        message = item["msg"].removeprefix("Value error, ")
        if any(part in _SECRET_LOCATIONS for part in map(str, item["loc"])):
            message = "must be an object of string header names to string values"
        lines.append(f"{path}: {message}")
    return "; ".join(lines)


def build_run_input(arguments: Mapping[str, Any]) -> TaskRunInput:
    """Validate create arguments (already without None values) into the wire body.

    Raises:
        ArgumentError: with every problem named by its argument path.
    """
    try:
        return TaskRunInput.model_validate(dict(arguments))
    except ValidationError as exc:
        raise ArgumentError(f"Invalid arguments: {describe_validation_error(exc)}") from None


def parse_fields(fields: list[str] | None) -> list[str] | None:
    """Normalise a `fields` filter: empty means all."""
    if not fields:
        return None
    cleaned = [name.strip() for name in fields if name.strip()]
    return cleaned or None


def build_group_inputs(
    inputs: list[str | dict[str, Any]],
    *,
    processor: str,
    task_spec: Mapping[str, Any] | None,
    metadata: Mapping[str, Any] | None,
) -> GroupRequest:
    """Validate a group's rows, shared task spec and metadata into wire models.

    Raises:
        ArgumentError: with every problem named by its argument path (``inputs.3``, ``task_spec...``).
    """
    try:
        spec = TaskSpec.model_validate(dict(task_spec)) if task_spec is not None else None
    except ValidationError as exc:
        raise ArgumentError(f"Invalid arguments: {describe_validation_error(exc, prefix='task_spec.')}") from None
    try:
        request = TaskGroupRunRequest.model_validate(
            {"inputs": [{"input": value, "processor": processor} for value in inputs], "default_task_spec": spec}
        )
        group = TaskGroupCreateRequest.model_validate({"metadata": dict(metadata) if metadata else None})
    except ValidationError as exc:
        raise ArgumentError(f"Invalid arguments: {describe_validation_error(exc)}") from None
    for index, item in enumerate(request.inputs):
        try:
            check_spec_and_input(spec, item.input)
        except ValueError as exc:
            raise ArgumentError(f"Invalid arguments: inputs.{index}: {exc}") from None
    return GroupRequest(inputs=request.inputs, default_task_spec=spec, metadata=group.metadata)


@dataclass(frozen=True)
class GroupRequest:
    """A validated group: its runs, the spec they share and the group's metadata."""

    inputs: list[TaskRunInput]
    default_task_spec: TaskSpec | None
    metadata: dict[str, str | int | float | bool] | None
