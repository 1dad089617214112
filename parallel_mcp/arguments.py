"""Tool arguments: what any client's model sends, parsed into wire bodies with one error format.

Arguments arrive in the portable shapes of `tool_schemas` (JSON values as JSON text, the task spec
flattened into `output_schema` and `input_schema`); the richer shapes other clients send (an
object where JSON text is published) are accepted too. Every problem, whatever layer finds it, is
said as `Invalid arguments: <field path>: <reason>`, without library links and without quoting
values back: an MCP header value may be a secret.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Annotated, Any, Literal, TypeVar, cast

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from parallel_mcp.config import MAX_WAIT_SECONDS
from parallel_mcp.errors import ArgumentError
from parallel_mcp.groups import GroupRequest
from parallel_mcp.models import TaskGroupCreateRequest, TaskGroupRunRequest, TaskRunInput, TaskSpec
from parallel_mcp.models.requests import MAX_GROUP_INPUTS, check_spec_and_input
from parallel_mcp.processors import PROCESSORS, TIER_NAMES
from parallel_mcp.text import shorten

MAX_ID_CHARS = 200
_ID = re.compile(r"[A-Za-z0-9_.:-]+")
_SECRET_LOCATIONS = ("headers",)
# Where a wire-body problem is found, and the argument the agent actually sent.
_ARGUMENT_OF = {
    "task_spec": "output_schema",
    "default_task_spec": "output_schema",
    "task_spec.output_schema": "output_schema",
    "task_spec.input_schema": "input_schema",
    "default_task_spec.output_schema": "output_schema",
    "default_task_spec.input_schema": "input_schema",
    "webhook.url": "webhook_url",
}
M = TypeVar("M", bound=BaseModel)


class _Arguments(BaseModel):
    """Base of the argument models: a key they lack is refused by name, a tool argument (by `parse`, with the
    closest one there is) as much as one inside an argument's object (a source policy, an MCP server)."""

    model_config = ConfigDict(extra="forbid", defer_build=True)


JsonValue = str | dict[str, Any] | None
"""A JSON object sent as JSON text (the published shape) or as an object."""
Wait = Annotated[float, Field(ge=0, le=MAX_WAIT_SECONDS)] | None
Key = Annotated[str, Field(min_length=1, max_length=MAX_ID_CHARS)] | None


class SourcePolicyArguments(_Arguments):
    include_domains: list[str] = Field(default_factory=list[str])
    exclude_domains: list[str] = Field(default_factory=list[str])
    after_date: str = ""


class McpServerArguments(_Arguments):
    type: Literal["url"] | None = None  # the API's own shape says it; the only kind there is
    name: str
    url: str
    headers: JsonValue = None
    allowed_tools: list[str] = Field(default_factory=list[str])


class SpecArguments(_Arguments):
    processor: str | None = None
    output_schema: JsonValue = None
    input_schema: JsonValue = None
    metadata: JsonValue = None
    idempotency_key: Key = None
    force_new: bool = False
    wait_seconds: Wait = None
    confirm_token: Key = None


class CreateRunArguments(SpecArguments):
    input: Any = None
    source_policy: SourcePolicyArguments | None = None
    advanced_settings: JsonValue = None
    previous_interaction_id: str | None = None
    mcp_servers: list[McpServerArguments] | None = None
    enable_events: bool | None = None
    webhook_url: str | None = None
    memory_scope_key: str | None = None


class CreateGroupArguments(SpecArguments):
    inputs: Annotated[list[Any], Field(min_length=1, max_length=MAX_GROUP_INPUTS)]


class GetRunArguments(_Arguments):
    run_id: str
    wait_seconds: Wait = None
    offset: Annotated[int, Field(ge=0)] = 0
    fields: list[str] | None = None
    include_basis: bool = True


class ListRunsArguments(_Arguments):
    limit: Annotated[int, Field(ge=1, le=100)] = 20
    active_only: bool = False


class GetGroupArguments(_Arguments):
    task_group_id: str
    wait_seconds: Wait = None
    offset: Annotated[int, Field(ge=0)] = 0


def describe_validation_error(error: ValidationError, *, prefix: str = "") -> str:
    """One `path: reason` per problem, naming the argument the agent sent; input values are never quoted."""
    lines: list[str] = []
    for item in error.errors(include_input=False, include_url=False):
        loc = ".".join(str(part) for part in item["loc"] if not str(part).startswith("function-"))
        loc = f"{prefix}{loc}" if loc else prefix.rstrip(".")
        # The longest match wins: task_spec.input_schema is the input_schema argument, task_spec alone the output's.
        for found in sorted(_ARGUMENT_OF, key=len, reverse=True):
            if loc == found or loc.startswith(found + "."):
                loc = _ARGUMENT_OF[found] + loc[len(found) :]
                break
        message = item["msg"].removeprefix("Value error, ")
        if any(part in _SECRET_LOCATIONS for part in map(str, item["loc"])):
            message = "must be an object of string header names to string values"
        lines.append(f"{loc or 'arguments'}: {message}")
    return "; ".join(lines)


def _invalid(problems: str) -> ArgumentError:
    return ArgumentError(f"Invalid arguments: {problems}")


def parse(model: type[M], arguments: Mapping[str, Any]) -> M:
    """Validate a tool's arguments (None values are absent ones) into its argument model.

    An argument the tool does not take is refused, not dropped: an agent that believes `max_cost` caps
    a run, or misspells `processor`, must hear so before anything is billed.

    Raises:
        ArgumentError: naming every problem by its argument path.
    """
    given = {key: value for key, value in arguments.items() if value is not None}
    unknown = [name for name in given if name not in model.model_fields]
    if unknown:
        raise _invalid("; ".join(_unknown_argument(name, list(model.model_fields)) for name in unknown))
    try:
        return model.model_validate(given)
    except ValidationError as exc:
        raise _invalid(describe_validation_error(exc)) from None


def _unknown_argument(name: str, known: list[str]) -> str:
    import difflib  # only a refused call pays for it, not every start

    close = difflib.get_close_matches(name, known, n=1)
    hint = f"did you mean {close[0]}? " if close else ""
    return f"{shorten(name, 40)}: not an argument of this tool ({hint}it takes {', '.join(sorted(known))})"


def _json_object(value: JsonValue, field: str) -> dict[str, Any] | None:
    """A JSON object argument, from JSON text or an object; empty text means absent."""
    if value is None or isinstance(value, dict):
        return value
    text = value.strip()
    if not text:
        return None
    try:
        parsed: Any = json.loads(text)
    except json.JSONDecodeError as exc:
        raise _invalid(f"{field}: not valid JSON ({exc.msg} at character {exc.pos})") from None
    if not isinstance(parsed, dict):
        raise _invalid(f"{field}: must be a JSON object, got {type(parsed).__name__}")
    return cast(dict[str, Any], parsed)


def schema_argument(value: JsonValue, field: str, *, auto: bool) -> dict[str, Any] | None:
    """An `output_schema`/`input_schema` argument as the API's schema object.

    A JSON object (or JSON text of one) is a JSON schema, or already the API's `{"type": "json" |
    "text" | "auto", ...}` form; `"auto"` (output only) and `"text"` are those kinds; any other text
    describes a markdown report. Text that starts like JSON but does not parse is an error, never
    silently a description: the agent meant fields.
    """
    if value is None:
        return None
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return None
        if text in ("auto", "text", "json") and (auto or text != "auto"):
            if text == "json":
                raise _invalid(f"{field}: 'json' needs the schema itself: pass the JSON schema as JSON text")
            return {"type": text}
        if not text.startswith(("{", "[")):
            return {"type": "text", "description": text}
    schema = _json_object(value, field)
    assert schema is not None
    kind = schema.get("type")
    if kind == "json" and "json_schema" in schema:
        return schema
    if kind in ("text", "auto") and ("json_schema" not in schema) and set(schema) <= {"type", "description"}:
        if kind == "auto" and not auto:
            raise _invalid(f"{field}: 'auto' applies to output_schema only")
        return schema
    return {"type": "json", "json_schema": schema}


def _spec(arguments: SpecArguments) -> dict[str, Any] | None:
    output = schema_argument(arguments.output_schema, "output_schema", auto=True)
    given = schema_argument(arguments.input_schema, "input_schema", auto=False)
    if output is None and given is None:
        return None
    if output is None:
        raise _invalid("input_schema: needs an output_schema too (say what to produce, or 'auto')")
    return {"output_schema": output, **({"input_schema": given} if given else {})}


def processor_name(value: str | None, default: str) -> str:
    """The processor to use: named, or the server's default.

    Raises:
        ArgumentError: naming the tiers when the name is not one.
    """
    name = (value or default).strip()
    if name not in PROCESSORS:
        tiers = ", ".join(TIER_NAMES)
        raise _invalid(f"processor: {name[:60]!r} is not a processor; use one of {tiers}, or any with -fast")
    return name


def _input_value(value: Any, field: str) -> str | dict[str, Any]:
    if value is None:
        raise _invalid(f"{field}: required: a question, or a JSON object of data to enrich")
    if isinstance(value, dict):
        return cast(dict[str, Any], value)
    if isinstance(value, str):
        stripped = value.strip()
        return _json_object(stripped, field) or value if stripped.startswith("{") else value
    # The SDK decodes JSON-looking text (a list, true) before we see it: a question it was, a question it stays.
    return json.dumps(value, ensure_ascii=False)


def _source_policy(policy: SourcePolicyArguments | None) -> dict[str, Any] | None:
    if policy is None:
        return None
    found: dict[str, Any] = {
        "include_domains": [d for d in policy.include_domains if d.strip()] or None,
        "exclude_domains": [d for d in policy.exclude_domains if d.strip()] or None,
        "after_date": policy.after_date.strip() or None,
    }
    kept = {key: value for key, value in found.items() if value is not None}
    return kept or None


def _mcp_servers(servers: list[McpServerArguments] | None) -> list[dict[str, Any]] | None:
    if not servers:
        return None
    return [
        {
            "name": server.name,
            "url": server.url,
            "headers": _json_object(server.headers, f"mcp_servers.{index}.headers"),
            "allowed_tools": server.allowed_tools or None,
        }
        for index, server in enumerate(servers)
    ]


def _validate(model: type[M], body: dict[str, Any]) -> M:
    try:
        return model.model_validate({key: value for key, value in body.items() if value is not None})
    except ValidationError as exc:
        raise _invalid(describe_validation_error(exc)) from None


def run_body(arguments: CreateRunArguments, *, default_processor: str) -> TaskRunInput:
    """The create body of `create_task_run`'s arguments, checked against every documented API rule.

    Raises:
        ArgumentError: naming each problem by the argument that holds it.
    """
    webhook = {"url": arguments.webhook_url, "event_types": ["task_run.status"]} if arguments.webhook_url else None
    body: dict[str, Any] = {
        "input": _input_value(arguments.input, "input"),
        "processor": processor_name(arguments.processor, default_processor),
        "task_spec": _spec(arguments),
        "metadata": _json_object(arguments.metadata, "metadata"),
        "source_policy": _source_policy(arguments.source_policy),
        "advanced_settings": _json_object(arguments.advanced_settings, "advanced_settings"),
        "previous_interaction_id": arguments.previous_interaction_id,
        "mcp_servers": _mcp_servers(arguments.mcp_servers),
        "enable_events": arguments.enable_events,
        "webhook": webhook,
        "memory_scope_key": arguments.memory_scope_key,
    }
    return _validate(TaskRunInput, body)


def group_request(arguments: CreateGroupArguments, *, default_processor: str) -> GroupRequest:
    """A group's runs, shared task spec and metadata from `create_task_group`'s arguments.

    Raises:
        ArgumentError: with every problem named by its argument path (``inputs.3``, ``output_schema``).
    """
    processor = processor_name(arguments.processor, default_processor)
    spec_body = _spec(arguments)
    spec = _validate(TaskSpec, spec_body) if spec_body is not None else None
    values = [_input_value(value, f"inputs.{index}") for index, value in enumerate(arguments.inputs)]
    request = _validate(TaskGroupRunRequest, {"inputs": [{"input": value, "processor": processor} for value in values]})
    group = _validate(TaskGroupCreateRequest, {"metadata": _json_object(arguments.metadata, "metadata")})
    for index, item in enumerate(request.inputs):
        try:
            check_spec_and_input(spec, item.input)
        except ValueError as exc:
            raise _invalid(f"inputs.{index}: {exc}") from None
    return GroupRequest(inputs=request.inputs, default_task_spec=spec, metadata=group.metadata)


def object_id(value: str, field: str, *, looks_like: str) -> str:
    """A run or group id as the agent gave it, checked for form and length before it goes into a URL.

    Raises:
        ArgumentError: the value cannot be an id of ours.
    """
    text = value.strip()
    if not text or len(text) > MAX_ID_CHARS or not _ID.fullmatch(text):
        raise _invalid(
            f"{field}: not an id ({len(value)} characters); use one exactly as it was returned "
            f"(it looks like {looks_like}); list_task_runs shows the runs created here"
        )
    return text


def page_fields(fields: list[str] | None) -> list[str] | None:
    """Normalise a `fields` filter: empty means all."""
    if not fields:
        return None
    cleaned = [name.strip() for name in fields if name.strip()]
    return cleaned or None
