"""Response objects of the Task API: runs, results and their outputs.

Tolerant by design: unknown fields are kept, unknown warning types pass, and a json `content`
that arrives as a JSON string is decoded.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from pydantic import Discriminator, Field, field_validator

from parallel_mcp.models.common import ErrorObject, FieldBasis, McpToolCall, Warning, WireModel

TaskRunStatus = Literal["queued", "action_required", "running", "completed", "failed", "cancelling", "cancelled"]
ACTIVE_STATUSES: frozenset[str] = frozenset({"queued", "running", "cancelling"})
TERMINAL_STATUSES: frozenset[str] = frozenset({"completed", "failed", "cancelled"})


class TaskRun(WireModel):
    """The status of a run (no output): what create and retrieve return."""

    run_id: str
    interaction_id: str
    status: TaskRunStatus
    is_active: bool
    processor: str
    metadata: dict[str, str | int | float | bool] | None = None
    task_group_id: str | None = Field(default=None, alias="taskgroup_id")
    warnings: list[Warning] | None = None
    error: ErrorObject | None = None
    created_at: str | None = None
    modified_at: str | None = None


class TaskRunTextOutput(WireModel):
    """A markdown answer (text schemas) with one basis entry for the field `output`."""

    type: Literal["text"] = "text"
    content: str
    basis: list[FieldBasis] = Field(default_factory=list[FieldBasis])
    mcp_tool_calls: list[McpToolCall] | None = None
    beta_fields: dict[str, Any] | None = None


class TaskRunJsonOutput(WireModel):
    """A JSON answer with a basis entry per field (dot paths in auto mode)."""

    type: Literal["json"] = "json"
    content: dict[str, Any]
    basis: list[FieldBasis] = Field(default_factory=list[FieldBasis])
    output_schema: dict[str, Any] | None = None
    """The schema the processor invented; set only for auto schemas."""
    mcp_tool_calls: list[McpToolCall] | None = None
    beta_fields: dict[str, Any] | None = None

    @field_validator("content", mode="before")
    @classmethod
    def _decode_string(cls, value: Any) -> Any:
        if isinstance(value, str):
            try:
                return json.loads(value)
            except json.JSONDecodeError:
                return {"output": value}
        return value


TaskRunOutput = Annotated[TaskRunTextOutput | TaskRunJsonOutput, Discriminator("type")]


class TaskRunResult(WireModel):
    """What `/result` returns once a run has completed."""

    run: TaskRun
    output: TaskRunOutput
