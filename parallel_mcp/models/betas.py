"""Which `parallel-beta` values a request needs: one rule for the client that sends and the emulator that checks."""

from __future__ import annotations

from typing import Any

from parallel_mcp.models.requests import JsonSchema, TaskRunInput

BETA_MCP = "mcp-server-2025-07-17"
BETA_EVENTS = "events-sse-2025-07-24"
BETA_WEBHOOK = "webhook-2025-08-12"
BETA_FIELD_BASIS = "field-basis-2025-11-25"


def _schema_has_arrays(schema: Any) -> bool:
    if isinstance(schema, dict):
        for key, value in schema.items():  # pyright: ignore[reportUnknownVariableType]
            if key == "type" and (value == "array" or (isinstance(value, list) and "array" in value)):
                return True
            if _schema_has_arrays(value):
                return True
    elif isinstance(schema, list):
        return any(_schema_has_arrays(item) for item in schema)  # pyright: ignore[reportUnknownVariableType]
    return False


def required_betas(body: TaskRunInput) -> dict[str, str]:
    """The beta values a run body needs, each with the field that needs it (in a stable order)."""
    needs: dict[str, str] = {}
    if body.mcp_servers:
        needs[BETA_MCP] = "mcp_servers"
    if body.enable_events:
        needs[BETA_EVENTS] = "enable_events"
    if body.webhook is not None:
        needs[BETA_WEBHOOK] = "webhook"
    schema = body.task_spec.output_schema if body.task_spec is not None else None
    if isinstance(schema, JsonSchema) and _schema_has_arrays(schema.json_schema):
        needs[BETA_FIELD_BASIS] = "task_spec.output_schema (per-element basis of arrays)"
    return needs


def betas_for(body: TaskRunInput | None = None, *, events: bool = False, extra: tuple[str, ...] = ()) -> list[str]:
    """The `parallel-beta` values a request needs, each once, in a stable order."""
    values: list[str] = list(required_betas(body)) if body is not None else []
    if events:
        values.append(BETA_EVENTS)
    values.extend(extra)
    return list(dict.fromkeys(v for v in values if v))
