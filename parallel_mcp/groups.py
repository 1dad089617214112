"""Task groups for the tools: many inputs, one task spec, watched and read back together.

A group is created and filled in two requests; the waiter follows the group's event stream until
no run is active, and the outputs come from one `runs` stream, paged by rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from parallel_mcp.client import AsyncTaskClient
from parallel_mcp.errors import ArgumentError, RunMayExistError
from parallel_mcp.guidance import group_rows_step, group_running_step, retry_after_hint
from parallel_mcp.models import TaskGroup, TaskRunEvent, TaskRunInput, TaskRunJsonOutput, TaskSpec
from parallel_mcp.paging import cut_value
from parallel_mcp.views import GroupRunRow, PageInfo, RunError, TaskGroupView
from parallel_mcp.waiter import ProgressSink, Waiter, ended_runs

MAX_TEXT_OUTPUT_CHARS = 2_000
DEFAULT_HINT_PROCESSOR = "core"
"""Whose band sets the polling hint of a group read without knowing its processor."""


def _row(event: TaskRunEvent) -> GroupRunRow:
    run = event.run
    output: str | dict[str, Any] | None = None
    if event.output is not None:
        if isinstance(event.output, TaskRunJsonOutput):
            output = event.output.content
        else:
            # The row shows the start; the whole report is one get_task_run(run_id) away.
            output = cut_value(event.output.content, MAX_TEXT_OUTPUT_CHARS)
    run_input = event.input.input if event.input is not None else None
    return GroupRunRow(
        run_id=run.run_id, status=run.status, input=run_input, output=output, error=RunError.of(run.error)
    )


def page_rows(rows: Sequence[GroupRunRow], *, offset: int, budget_chars: int) -> tuple[list[GroupRunRow], PageInfo]:
    """The rows from `offset` that fit in `budget_chars` of JSON (at least one), and where the next page starts.

    Raises:
        ArgumentError: `offset` is past the last row.
    """
    if offset and offset >= len(rows):
        raise ArgumentError(f"offset {offset} is past the last row (there are {len(rows)} runs)")
    page: list[GroupRunRow] = []
    used = 0
    for row in rows[offset:]:
        size = len(row.model_dump_json()) + 1
        if page and used + size > budget_chars:
            break
        page.append(row)
        used += size
    end = offset + len(page)
    info = PageInfo(unit="fields", offset=offset, next_offset=end if end < len(rows) else None, total=len(rows))
    return page, info


class GroupService:
    """Creates, waits on and reads back task groups for the tools."""

    def __init__(self, *, waiter: Waiter, page_budget_chars: int) -> None:
        self.waiter = waiter
        self.page_budget_chars = page_budget_chars

    async def create(
        self,
        client: AsyncTaskClient,
        inputs: list[TaskRunInput],
        *,
        default_task_spec: TaskSpec | None,
        metadata: dict[str, str | int | float | bool] | None,
        wait: float,
        sink: ProgressSink | None,
    ) -> TaskGroupView:
        """Create a group, add every input as a run, then wait up to `wait` seconds for them.

        Raises:
            RunMayExistError: adding the runs failed after the request was sent; it names the group.
        """
        group = await client.create_group(metadata)
        try:
            added = await client.add_runs(group.task_group_id, inputs, default_task_spec=default_task_spec)
        except RunMayExistError as exc:
            raise RunMayExistError(str(exc), group_id=group.task_group_id) from None
        price = 0.0
        for item in inputs:
            proc = self.waiter.processors.get(item.processor)
            price += proc.usd_per_run if proc else 0.0
        view = await self.get(
            client, group.task_group_id, wait=wait, sink=sink, offset=0, processor=inputs[0].processor
        )
        view.run_ids = added.run_ids
        view.estimated_cost_usd = round(price, 6)
        return view

    async def get(
        self,
        client: AsyncTaskClient,
        group_id: str,
        *,
        wait: float,
        sink: ProgressSink | None,
        offset: int,
        processor: str | None = None,
    ) -> TaskGroupView:
        """A group's status after waiting up to `wait` seconds for its runs; with outputs once all ended.

        Raises:
            APIError: the group cannot be read.
            ArgumentError: `offset` is past the last row.
        """
        group = await self.waiter.group(client, group_id, wait=wait, sink=sink)
        status = group.status
        if status.is_active:
            hint = retry_after_hint(self.waiter.processors, processor or DEFAULT_HINT_PROCESSOR, None)
            step = group_running_step(group_id, ended_runs(status), status.num_task_runs, hint)
            return self._view(group, next_step=step, retry_after=hint)
        rows = [_row(event) async for event in client.group_runs(group_id, include_input=True, include_output=True)]
        page, info = page_rows(rows, offset=offset, budget_chars=self.page_budget_chars)
        return self._view(group, next_step=group_rows_step(group_id, info.next_offset), rows=page, page=info)

    def _view(
        self,
        group: TaskGroup,
        *,
        next_step: str,
        retry_after: int | None = None,
        rows: list[GroupRunRow] | None = None,
        page: PageInfo | None = None,
    ) -> TaskGroupView:
        status = group.status
        return TaskGroupView(
            task_group_id=group.task_group_id,
            is_active=status.is_active,
            num_task_runs=status.num_task_runs,
            status_counts=status.task_run_status_counts,
            status_message=status.status_message,
            retry_after_seconds=retry_after,
            next_step=next_step,
            rows=rows,
            page=page,
        )
