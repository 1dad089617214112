"""Server-sent events of runs and task groups.

Event types may grow: `parse_run_event` keeps an unknown type as `UnknownEvent` instead of failing.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, ValidationError, field_validator

from parallel_mcp.models.common import ErrorObject, WireModel
from parallel_mcp.models.groups import TaskGroupStatus
from parallel_mcp.models.requests import TaskRunInput
from parallel_mcp.models.responses import TaskRun, TaskRunOutput

PROGRESS_MSG_PREFIX = "task_run.progress_msg."


class TaskRunEvent(WireModel):
    """`task_run.state`: the run's state; the final one of a completed run carries the output."""

    type: Literal["task_run.state"] = "task_run.state"
    event_id: str | None = None
    run: TaskRun
    input: TaskRunInput | None = None
    output: TaskRunOutput | None = None


class TaskRunSourceStats(WireModel):
    """How many sources a run has considered and read so far."""

    num_sources_considered: int | None = None
    num_sources_read: int | None = None
    sources_read_sample: list[str] | None = None


class TaskRunProgressStatsEvent(WireModel):
    """`task_run.progress_stats`: a progress meter (0-100) and source counts."""

    type: Literal["task_run.progress_stats"] = "task_run.progress_stats"
    progress_meter: float
    source_stats: TaskRunSourceStats = Field(default_factory=TaskRunSourceStats)


class TaskRunProgressMessageEvent(WireModel):
    """`task_run.progress_msg.*`: a plan, search, result, tool-call or status message."""

    type: str
    message: str
    timestamp: str | None = None

    @field_validator("type")
    @classmethod
    def _check_prefix(cls, value: str) -> str:
        if not value.startswith(PROGRESS_MSG_PREFIX):
            raise ValueError(f"progress message types start with {PROGRESS_MSG_PREFIX!r}")
        return value

    @property
    def kind(self) -> str:
        """The part after the prefix: `plan`, `search`, `result`, `tool_call`, `exec_status`, ..."""
        return self.type.removeprefix(PROGRESS_MSG_PREFIX)


class ErrorEvent(WireModel):
    """`error`: the stream or the run hit an error."""

    type: Literal["error"] = "error"
    error: ErrorObject


class TaskGroupStatusEvent(WireModel):
    """`task_group_status`: the group's aggregate status, with a resume cursor."""

    type: Literal["task_group_status"] = "task_group_status"
    event_id: str
    status: TaskGroupStatus


class UnknownEvent(WireModel):
    """An event type this version does not know; kept so nothing is lost."""

    type: str
    data: dict[str, Any] = Field(default_factory=dict[str, Any])


RunEvent = TaskRunEvent | TaskRunProgressStatsEvent | TaskRunProgressMessageEvent | ErrorEvent | UnknownEvent
GroupEvent = TaskGroupStatusEvent | TaskRunEvent | ErrorEvent | UnknownEvent

_KNOWN: dict[str, type[TaskRunEvent | TaskRunProgressStatsEvent | ErrorEvent | TaskGroupStatusEvent]] = {
    "task_run.state": TaskRunEvent,
    "task_run.progress_stats": TaskRunProgressStatsEvent,
    "error": ErrorEvent,
    "task_group_status": TaskGroupStatusEvent,
}


def parse_event(data: dict[str, Any]) -> RunEvent | TaskGroupStatusEvent:
    """Parse one event payload by its `type`; unknown or malformed ones become `UnknownEvent`."""
    event_type = str(data.get("type", ""))
    try:
        if event_type in _KNOWN:
            return _KNOWN[event_type].model_validate(data)
        if event_type.startswith(PROGRESS_MSG_PREFIX):
            return TaskRunProgressMessageEvent.model_validate(data)
    except ValidationError:
        pass
    return UnknownEvent(type=event_type or "unknown", data=data)
