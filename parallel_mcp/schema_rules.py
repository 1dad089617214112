"""The Task API's rules for output JSON schemas, as pure functions.

The API rejects (422) a schema that breaks a hard rule and warns about soft ones. Checking before
a create saves a billed round trip and lets the model fix its schema from a precise message.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, cast

MAX_DEPTH = 5
MAX_PROPERTIES = 100
MAX_SCHEMA_CHARS = 25_000
MAX_ENUM_VALUES = 500
LARGE_ENUM = 250
MAX_LARGE_ENUM_CHARS = 7_500

UNSUPPORTED_KEYWORDS = frozenset(
    {
        "contains",
        "format",
        "maxContains",
        "maxItems",
        "maxLength",
        "maxProperties",
        "maximum",
        "minContains",
        "minItems",
        "minLength",
        "minimum",
        "minProperties",
        "multipleOf",
        "pattern",
        "patternProperties",
        "propertyNames",
        "uniqueItems",
        "unevaluatedItems",
        "unevaluatedProperties",
    }
)
RESERVED_PROPERTY_NAMES = frozenset(
    {"citations", "confidence", "evidence", "reasoning", "source", "sources", "source_urls"}
)


@dataclass
class SchemaReport:
    """What the API would say about an output schema: errors reject it, warnings do not."""

    errors: list[str] = field(default_factory=list[str])
    warnings: list[str] = field(default_factory=list[str])


def as_schema(value: object) -> dict[str, Any] | None:
    """The value as a schema object, or None when it is not a JSON object."""
    return cast(dict[str, Any], value) if isinstance(value, dict) else None


def schema_types(node: dict[str, Any]) -> list[str]:
    """The node's `type` as a list (a union like ``["string", "null"]`` or a single type)."""
    raw = node.get("type")
    if isinstance(raw, str):
        return [raw]
    if isinstance(raw, list):
        return [str(t) for t in cast(list[object], raw)]
    return []


def check_output_schema(schema: dict[str, Any]) -> SchemaReport:
    """Check a `json_schema` against the documented output-schema rules.

    Args:
        schema: the JSON Schema given as `task_spec.output_schema.json_schema`.

    Returns:
        A report whose `errors` name the offending path (``$.properties.x``) and the limit.
    """
    report = SchemaReport()
    if "anyOf" in schema:
        report.errors.append("the root of the output schema must not use anyOf; make it one object")
    if schema_types(schema) != ["object"] or not isinstance(schema.get("properties"), dict):
        report.errors.append('the root of the output schema must be {"type": "object", "properties": {...}}')
    counts = {"properties": 0, "enum_values": 0}
    _walk(schema, "$", 1, report, counts)
    if counts["properties"] > MAX_PROPERTIES:
        report.errors.append(
            f"the output schema has {counts['properties']} properties; the limit is {MAX_PROPERTIES} in total"
        )
    if counts["enum_values"] > MAX_ENUM_VALUES:
        report.errors.append(
            f"the output schema has {counts['enum_values']} enum values; the limit is {MAX_ENUM_VALUES} in total"
        )
    size = _string_chars(schema)
    if size > MAX_SCHEMA_CHARS:
        report.errors.append(
            f"the output schema's names and values total {size} characters; the limit is {MAX_SCHEMA_CHARS}"
        )
    return report


def _walk(
    node: dict[str, Any], path: str, depth: int, report: SchemaReport, counts: dict[str, int], in_union: bool = False
) -> None:
    if depth > MAX_DEPTH:
        report.errors.append(f"{path} is nested {depth} levels deep; the limit is {MAX_DEPTH}")
        return
    for keyword in sorted(UNSUPPORTED_KEYWORDS.intersection(node)):
        report.errors.append(f"{path} uses the unsupported keyword {keyword!r}; describe the constraint in words")
    types = schema_types(node)
    # `{"type": "null"}` as an anyOf/oneOf option is how pydantic spells Optional: a union, so allowed.
    if types == ["null"] and not in_union:
        report.errors.append(f'{path} has type "null" alone; null is allowed only in a union like ["string", "null"]')
    enum = node.get("enum")
    if isinstance(enum, list):
        values = cast(list[object], enum)
        counts["enum_values"] += len(values)
        if len(values) > LARGE_ENUM and sum(len(str(v)) for v in values) > MAX_LARGE_ENUM_CHARS:
            report.errors.append(
                f"{path} has an enum of {len(values)} values over {MAX_LARGE_ENUM_CHARS} characters in total"
            )
    properties = as_schema(node.get("properties"))
    if properties is not None:
        counts["properties"] += len(properties)
        required = node.get("required")
        required_names = set(cast(list[str], required)) if isinstance(required, list) else set[str]()
        for name in properties:
            if name not in required_names:
                report.warnings.append(f"{path}.properties.{name} is not required; use a null union for optional")
            if name in RESERVED_PROPERTY_NAMES:
                report.warnings.append(f"{path}.properties.{name} duplicates the basis the API already returns")
        if node.get("additionalProperties") is not False:
            report.warnings.append(f"{path} should set additionalProperties to false")
        for name, child in properties.items():
            child_dict = as_schema(child)
            if child_dict is not None:
                _walk(child_dict, f"{path}.properties.{name}", depth + 1, report, counts)
    items = as_schema(node.get("items"))
    if items is not None:
        _walk(items, f"{path}.items", depth + 1, report, counts)
    for union_key in ("anyOf", "oneOf", "allOf"):
        options = node.get(union_key)
        if isinstance(options, list):
            for index, option in enumerate(cast(list[object], options)):
                option_dict = as_schema(option)
                if option_dict is not None:
                    _walk(option_dict, f"{path}.{union_key}[{index}]", depth, report, counts, union_key != "allOf")
    for defs_key in ("$defs", "definitions"):
        defs = as_schema(node.get(defs_key))
        if defs is not None:
            for name, child in defs.items():
                child_dict = as_schema(child)
                if child_dict is not None:
                    _walk(child_dict, f"{path}.{defs_key}.{name}", depth, report, counts)


def _string_chars(value: object) -> int:
    if isinstance(value, str):
        return len(value)
    if isinstance(value, dict):
        mapping = cast(dict[str, object], value)
        return sum(len(k) + _string_chars(v) for k, v in mapping.items())
    if isinstance(value, list):
        return sum(_string_chars(v) for v in cast(list[object], value))
    return 0
