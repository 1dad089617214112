"""Objects shared by requests, responses and events: errors, warnings, citations, basis."""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator


class WireModel(BaseModel):
    """Base for response objects: tolerant, keeps fields the API adds later."""

    # serialize_by_alias: a plain dump must give wire names (`taskgroup_id`), as the SDK and the emulator need.
    # defer_build: schemas are built on first use, keeping them off the start-up path.
    model_config = ConfigDict(extra="allow", populate_by_name=True, serialize_by_alias=True, defer_build=True)


class ErrorObject(WireModel):
    """An API error: `ref_id` is what Parallel's support asks for."""

    ref_id: str
    message: str
    detail: dict[str, Any] | None = None


class ErrorResponse(WireModel):
    """The body of every non-2xx answer from the run endpoints."""

    type: Literal["error"] = "error"
    error: ErrorObject


class Warning(WireModel):
    """A non-fatal problem with a run (spec or input validation, MCP server trouble)."""

    type: str
    """`spec_validation_warning`, `input_validation_warning`, `warning`, or a newer type."""
    message: str
    detail: dict[str, Any] | None = None


class Citation(WireModel):
    """A source that supports an output field."""

    url: str
    title: str | None = None
    excerpts: list[str] | None = None


class FieldBasis(WireModel):
    """Citations, reasoning and confidence for one output field (or `output` for text)."""

    field: str
    reasoning: str
    citations: list[Citation] = Field(default_factory=list[Citation])
    confidence: str | None = None

    @field_validator("citations", mode="before")
    @classmethod
    def _null_is_empty(cls, value: Any) -> Any:
        # The spec says a non-null array, but the SDK types it Optional; accept null as "no citations".
        return [] if value is None else value


class McpToolCall(WireModel):
    """One tool call the processor made on a user-supplied MCP server."""

    tool_call_id: str
    server_name: str
    tool_name: str
    arguments: str
    """JSON-encoded arguments."""
    content: str | None = None
    error: str | None = None


def seconds_since(timestamp: str | None, now: dt.datetime | None = None) -> float | None:
    """Seconds since an RFC 3339 timestamp of the API, or None when it is missing or unreadable."""
    if not timestamp:
        return None
    try:
        start = dt.datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
    except ValueError:
        return None
    if start.tzinfo is None:
        start = start.replace(tzinfo=dt.UTC)
    current = now or dt.datetime.now(dt.UTC)
    return max(0.0, (current - start).total_seconds())
