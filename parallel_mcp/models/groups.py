"""Task-group objects: many runs created and watched together."""

from __future__ import annotations

from pydantic import Field

from parallel_mcp.models.common import WireModel


class TaskGroupStatus(WireModel):
    """Aggregate status of a group's runs."""

    num_task_runs: int
    task_run_status_counts: dict[str, int]
    is_active: bool
    status_message: str | None = None
    modified_at: str | None = None


class TaskGroup(WireModel):
    """A task group (`TaskGroupResponse` on the wire; the SDK calls it `TaskGroup`)."""

    task_group_id: str = Field(alias="taskgroup_id")
    status: TaskGroupStatus
    metadata: dict[str, str | int | float | bool] | None = None
    created_at: str | None = None


class TaskGroupRunResponse(WireModel):
    """What adding runs to a group returns: the new run ids and the stream cursors."""

    status: TaskGroupStatus
    run_ids: list[str]
    run_cursor: str | None = None
    event_cursor: str | None = None
