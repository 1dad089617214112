"""The input schemas the tools publish: small, and in the one dialect every tool-calling stack accepts.

Every token of `tools/list` is paid on every turn, and converters differ (Gemini's MCP path crashes
on a boolean `additionalProperties`; strict modes close free-form objects to `{}` or refuse them).
So these schemas are written by hand, to rules a test enforces (`tests/test_tool_schemas.py`):
- no `additionalProperties`, `$ref`, `oneOf`, `const`, `default`, `format`, `title` or range keywords
  (limits and defaults are said in descriptions and enforced by `arguments`);
- free-form JSON (an object input, a JSON schema, metadata, headers) travels as JSON text;
- an optional argument is `anyOf: [<schema with its description>, {"type": "null"}]`;
- nested objects require every property, with "" or [] meaning unset.
"""

from __future__ import annotations

from typing import Any, cast

Schema = dict[str, Any]


def string(description: str) -> Schema:
    return {"type": "string", "description": description}


def number(description: str) -> Schema:
    return {"type": "number", "description": description}


def integer(description: str) -> Schema:
    return {"type": "integer", "description": description}


def boolean(description: str) -> Schema:
    return {"type": "boolean", "description": description}


def strings(description: str) -> Schema:
    return {"type": "array", "items": {"type": "string"}, "description": description}


def optional(schema: Schema) -> Schema:
    """An argument that may be left out or null (the description stays with the value, where converters keep it)."""
    return {"anyOf": [schema, {"type": "null"}]}


def record(description: str, **properties: Schema) -> Schema:
    """A nested object whose every property is required (strict modes demand it; "" or [] mean unset)."""
    return {"type": "object", "properties": properties, "required": list(properties), "description": description}


def arguments(required: list[str], **properties: Schema) -> Schema:
    """A tool's input schema."""
    return {"type": "object", "properties": properties, "required": required}


WAIT = optional(number("Seconds to wait in this call, 0-50; default ~25. Returns early when the run ends."))
PROCESSOR = optional(
    string("lite, base, core, core2x, pro, ultra, ultra2x, ultra4x or ultra8x; add -fast for 2-5x speed.")
)
OUTPUT_SCHEMA = optional(
    string(
        "What to produce: a JSON schema as JSON text for fields (root object, all properties required, depth<=5, "
        "<=100 properties); plain text describing a markdown report; or auto (pro+: the processor designs fields)."
    )
)
INPUT_SCHEMA = optional(string("JSON schema (JSON text) or description of the input."))
METADATA = optional(string('Labels as a JSON object text, e.g. {"ticket":"A-1"}: keys<=16 chars, values<=512.'))
IDEMPOTENCY_KEY = optional(string("Unique per intended run: a repeat with this key returns the first run."))
FORCE_NEW = optional(
    boolean("true: create even if the same request made a run in the last 10 min (normally it is returned).")
)
CONFIRM_TOKEN = optional(string("Only after the user agreed: the confirm_token a result gave."))

# What both create tools take: the task spec and labels first, the intent and the wait last.
SPEC = {"processor": PROCESSOR, "output_schema": OUTPUT_SCHEMA, "input_schema": INPUT_SCHEMA, "metadata": METADATA}
INTENT = {
    "idempotency_key": IDEMPOTENCY_KEY,
    "force_new": FORCE_NEW,
    "wait_seconds": WAIT,
    "confirm_token": CONFIRM_TOKEN,
}

CREATE_TASK_RUN = arguments(
    ["input"],
    input=string("The question or research brief, or a JSON object of data to enrich as JSON text."),
    **SPEC,
    source_policy=optional(
        record(
            "Restrict sources (can lower quality).",
            include_domains=strings("Only these domains, e.g. example.com, .gov."),
            exclude_domains=strings("Never these domains."),
            after_date=string("Only sources after YYYY-MM-DD, or empty."),
        )
    ),
    advanced_settings=optional(string('JSON object text, e.g. {"location":"us"} for geo-targeted search.')),
    previous_interaction_id=optional(string("interaction_id of an earlier run, to follow up on it.")),
    mcp_servers=optional(
        {
            "type": "array",
            "description": "Up to 10 remote MCP servers the run may call.",
            "items": record(
                "A streamable-HTTP MCP server.",
                name=string("A name for it."),
                url=string("Its URL."),
                headers=string('JSON object text of headers, e.g. {"Authorization":"Bearer ..."}, or empty.'),
                allowed_tools=strings("Tools it may call; empty for all."),
            ),
        }
    ),
    enable_events=optional(boolean("Record detailed progress events (default on for pro and above).")),
    webhook_url=optional(string("URL that receives a signed task_run.status POST when the run ends.")),
    memory_scope_key=optional(string("Memory scope of the run.")),
    **INTENT,
)

GET_TASK_RUN = arguments(
    ["run_id"],
    run_id=string("The run_id (trun_...)."),
    wait_seconds=WAIT,
    offset=optional(integer("Where the output page starts: page.next_offset of the previous call.")),
    fields=optional(strings("Only these output fields (json output).")),
    include_basis=optional(boolean("Include reasoning, confidence and citations per field (default true).")),
)

LIST_TASK_RUNS = arguments(
    [],
    limit=optional(integer("How many runs, newest first (1-100, default 20).")),
    active_only=optional(boolean("Only runs still queued or running when last seen.")),
)

CREATE_TASK_GROUP = arguments(
    ["inputs"],
    inputs=strings("1-1,000 rows, each a question or a JSON object as JSON text; each is one billed run."),
    **SPEC,
    **INTENT,
)

GET_TASK_GROUP = arguments(
    ["task_group_id"],
    task_group_id=string("The task_group_id (tgrp_...)."),
    wait_seconds=WAIT,
    offset=optional(integer("First row of the page: page.next_offset of the previous call.")),
)


_DEFS = "#/$defs/"
_DATA = frozenset({"default", "examples", "enum", "const"})
"""Keywords whose values are instances, not schemas: they are copied as they are."""


def compact_output(schema: Schema) -> Schema:
    """The output schema a tool publishes for results that leave out what is None, from pydantic's `schema`.

    Clients validate every structured result against the tool's output schema, and a validator such as
    Python's `jsonschema` pays for every subschema it enters. So references are written out in place
    (the views do not recurse), titles (which repeat the property names) go, and an optional field is
    simply left out of a result rather than sent as null: its `anyOf: [{type: T}, {type: null}]` becomes
    `T`, neither a union to try nor a type array, which clients of a single-`type` dialect (Gemini's)
    reject and the Inspector flags. Checking get_task_run's result costs a third of what it did.

    Raises:
        ValueError: a view refers to itself, or requires a field that may be None (give it a default).
    """
    defs = cast(Schema, schema.get("$defs", {}))
    return cast(Schema, _compact(schema, defs, ()))


def _compact(node: Any, defs: Schema, path: tuple[str, ...]) -> Any:
    if isinstance(node, list):
        return [_compact(item, defs, path) for item in cast(list[Any], node)]
    if not isinstance(node, dict):
        return node
    given = _not_null(cast(Schema, node))
    out: Schema = {}
    ref = given.get("$ref")
    inlined = isinstance(ref, str) and ref.startswith(_DEFS)
    if inlined:
        name = cast(str, ref).removeprefix(_DEFS)
        if name in path:
            raise ValueError(f"output schema: {name} refers to itself; it cannot be written out in place")
        out.update(_compact(defs[name], defs, (*path, name)))
    for key, value in given.items():
        if key in ("title", "$defs") or (key == "$ref" and inlined):
            continue
        if key == "properties":
            # Property names are data here, never keywords: a property called "title" stays.
            properties = cast(Schema, value)
            for name in given.get("required", ()):
                if _nullable(properties[name]):
                    raise ValueError(f"output schema: {name} may be None but has no default; results leave it out")
            out[key] = {name: _compact(item, defs, path) for name, item in properties.items()}
        elif key in _DATA:
            out[key] = value
        else:
            out[key] = _compact(value, defs, path)
    return out


def _nullable(node: Schema) -> bool:
    return {"type": "null"} in node.get("anyOf", ())


def _not_null(node: Schema) -> Schema:
    """`node` without its null branch (a result leaves a None out) and its null default."""
    if not _nullable(node):
        return node
    rest = {key: value for key, value in node.items() if key != "anyOf" and not (key == "default" and value is None)}
    branches = [branch for branch in cast(list[Schema], node["anyOf"]) if branch != {"type": "null"}]
    return {**branches[0], **rest} if len(branches) == 1 else {**rest, "anyOf": branches}
