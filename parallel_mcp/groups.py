"""Task groups for the tools: many inputs, one task spec, watched and read back together.

A group is created and filled in two requests; waiting follows the group's event stream (one
request) until no run is active, and the outputs come from one `runs` stream, paged by rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import anyio

from parallel_mcp.client import AsyncTaskClient
from parallel_mcp.errors import APIError, RunMayExistError
from parallel_mcp.guidance import SUGGESTED_WAIT_SECONDS, retry_after_hint
from parallel_mcp.models import (
    TERMINAL_STATUSES,
    TaskGroup,
    TaskGroupStatus,
    TaskGroupStatusEvent,
    TaskRunEvent,
    TaskRunInput,
    TaskRunJsonOutput,
    TaskSpec,
)
from parallel_mcp.processors import get_processor
from parallel_mcp.views import GroupRunRow, PageInfo, RunError, TaskGroupView
from parallel_mcp.waiter import MonotonicProgress, ProgressSink

MAX_TEXT_OUTPUT_CHARS = 2_000


def _row(event: TaskRunEvent) -> GroupRunRow:
    run = event.run
    output: str | dict[str, Any] | None = None
    if event.output is not None:
        if isinstance(event.output, TaskRunJsonOutput):
            output = event.output.content
        else:
            text = event.output.content
            output = text if len(text) <= MAX_TEXT_OUTPUT_CHARS else text[:MAX_TEXT_OUTPUT_CHARS] + " … [truncated]"
    error = RunError(message=run.error.message, ref_id=run.error.ref_id or None) if run.error else None
    run_input = event.input.input if event.input is not None else None
    return GroupRunRow(run_id=run.run_id, status=run.status, input=run_input, output=output, error=error)


def page_rows(rows: Sequence[GroupRunRow], *, offset: int, budget_chars: int) -> tuple[list[GroupRunRow], PageInfo]:
    """The rows from `offset` that fit in `budget_chars` of JSON (at least one), and where the next page starts.

    Raises:
        ValueError: `offset` is past the last row.
    """
    if offset and offset >= len(rows):
        raise ValueError(f"offset {offset} is past the last row (there are {len(rows)} runs)")
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

    def __init__(self, *, page_budget_chars: int, progress_interval: float, emulated: bool, time_scale: float) -> None:
        self.page_budget_chars = page_budget_chars
        self.progress_interval = progress_interval
        self.emulated = emulated
        self.time_scale = time_scale

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
        """Create a group, add every input as a run, then wait up to `wait` seconds for them."""
        group = await client.create_group(metadata)
        try:
            added = await client.add_runs(group.task_group_id, inputs, default_task_spec=default_task_spec)
        except RunMayExistError as exc:
            # The runs may have been added: point at the group so the agent checks it instead of re-adding.
            raise RunMayExistError(
                f"{exc} Check task group {group.task_group_id} with get_task_group before trying again."
            ) from None
        price = sum((p.usd_per_run if (p := get_processor(i.processor)) else 0.0) for i in inputs)
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
        """A group's status after waiting up to `wait` seconds for its runs; with outputs once all ended."""
        group = await client.get_group(group_id)
        if group.status.is_active and wait > 0:
            await self._wait(client, group, wait=wait, sink=sink)
            group = await client.get_group(group_id)
        status = group.status
        if status.is_active:
            hint = retry_after_hint(processor or "core", None, time_scale=self.time_scale)
            step = (
                f"{_done(status)} of {status.num_task_runs} runs have ended. Call get_task_group("
                f"task_group_id={group_id!r}, wait_seconds={SUGGESTED_WAIT_SECONDS}) to keep waiting; expect about "
                f"{hint} s before the next change."
            )
            return self._view(group, next_step=step, retry_after=hint)
        rows = [_row(event) async for event in client.group_runs(group_id, include_input=True, include_output=True)]
        page, info = page_rows(rows, offset=offset, budget_chars=self.page_budget_chars)
        step = (
            f"All runs ended. This is one page of rows: call get_task_group(task_group_id={group_id!r}, "
            f"offset={info.next_offset}) for the next. Basis and citations of a row: get_task_run(run_id)."
            if info.next_offset is not None
            else "All runs ended; every row is below. Basis and citations of a row: get_task_run(run_id)."
        )
        return self._view(group, next_step=step, rows=page, page=info)

    async def _wait(self, client: AsyncTaskClient, group: TaskGroup, *, wait: float, sink: ProgressSink | None) -> None:
        total = max(1, group.status.num_task_runs)
        done = _done(group.status)
        progress = MonotonicProgress(sink)

        async def report(force: bool = False) -> None:
            await progress.send(done, float(total), f"{done} of {total} runs ended", force=force, step=0.001)

        async def heartbeat() -> None:
            while True:
                await report(force=True)
                await anyio.sleep(self.progress_interval)

        with anyio.move_on_after(wait):
            async with anyio.create_task_group() as tasks:
                tasks.start_soon(heartbeat)
                try:
                    async for event in client.group_events(group.task_group_id, timeout=wait):
                        if isinstance(event, TaskGroupStatusEvent):
                            done = _done(event.status)
                            await report()
                except APIError:
                    pass  # the status read that follows says where the group stands
                tasks.cancel_scope.cancel()

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
            emulated=self.emulated,
        )


def _done(status: TaskGroupStatus) -> int:
    return sum(count for name, count in status.task_run_status_counts.items() if name in TERMINAL_STATUSES)
