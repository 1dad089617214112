"""Task groups for the tools: many inputs, one task spec, watched and read back together.

A group is created and filled in two requests; the waiter follows the group's event stream until
no run is active, and the outputs come from one `runs` stream, paged by rows.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import anyio

from parallel_mcp.errors import APIError, ArgumentError, NotFoundError, RunMayExistError
from parallel_mcp.guidance import (
    group_rows_step,
    group_running_step,
    retry_after_hint,
    unjournaled_warning,
    unread_warning,
)
from parallel_mcp.intents import Intents, Order, fingerprint
from parallel_mcp.models import TaskGroup, TaskRunEvent, TaskRunInput, TaskRunJsonOutput, TaskSpec
from parallel_mcp.paging import cut_value
from parallel_mcp.processors import list_price
from parallel_mcp.runs import Caller, excerpt, summary
from parallel_mcp.store import Claim, GroupRecord, RunRecord, Store, StoreError, group_ended, quietly
from parallel_mcp.views import GroupRunRow, PageInfo, RunError, TaskGroupView
from parallel_mcp.waiter import ProgressSink, Waiter, ended_runs

logger = logging.getLogger(__name__)

MAX_TEXT_OUTPUT_CHARS = 2_000
DEFAULT_HINT_PROCESSOR = "core"
"""Whose band sets the polling hint of a group read without knowing its processor."""


@dataclass(frozen=True)
class GroupRequest:
    """A validated group: its runs, the spec they share and the group's metadata."""

    inputs: list[TaskRunInput]
    default_task_spec: TaskSpec | None
    metadata: dict[str, str | int | float | bool] | None

    @property
    def processor(self) -> str:
        """The processor of the group's runs (one for all)."""
        return self.inputs[0].processor

    @property
    def price(self) -> float:
        """The list price of every run together, in US dollars."""
        return sum(list_price(i.processor) for i in self.inputs)


GroupOrder = Order[GroupRequest]


def group_fingerprint(request: GroupRequest) -> str:
    """The digest of everything a group's creation sends upstream."""
    spec = request.default_task_spec
    return fingerprint(
        "group",
        {
            "inputs": [item.model_dump(mode="json", exclude_none=True) for item in request.inputs],
            "default_task_spec": spec.model_dump(mode="json", exclude_none=True) if spec is not None else None,
            "metadata": request.metadata,
        },
    )


def group_order(request: GroupRequest, *, idempotency_key: str | None = None, force_new: bool = False) -> GroupOrder:
    """`create_task_group`'s request as the create it is."""
    first = summary(request.inputs[0].input)
    rows = len(request.inputs)
    said = first if rows == 1 else f"{rows} rows; the first: {first}"
    digest = group_fingerprint(request)
    return Order("group", request, digest, request.processor, rows, request.price, said, idempotency_key, force_new)


def _run_records(request: GroupRequest, group_id: str, run_ids: list[str]) -> list[RunRecord]:
    now = dt.datetime.now(dt.UTC).isoformat().replace("+00:00", "Z")
    price = list_price(request.processor)
    return [
        RunRecord(
            run_id=run_id,
            processor=request.processor,
            status="queued",
            input_excerpt=excerpt(item.input),
            created_at=now,
            group_id=group_id,
            cost_usd=price,
        )
        for run_id, item in zip(run_ids, request.inputs, strict=False)
    ]


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


@dataclass(kw_only=True, eq=False)
class GroupService:
    """Creates (once per intent), waits on and reads back task groups for the tools."""

    waiter: Waiter
    store: Store
    intents: Intents
    page_budget_chars: int
    owned_only: bool = False

    async def create(
        self,
        who: Caller,
        order: GroupOrder,
        *,
        wait: float,
        sink: ProgressSink | None,
        repeat_only: bool = False,
    ) -> TaskGroupView:
        """Create a group once per intent, add every input as a run, then wait up to `wait` seconds for them.

        The group is journaled before its runs are added and before any wait: whatever happens after,
        the answer carries its id. With `repeat_only`, nothing is sent (see RunService.create).

        Raises:
            RepeatLapsedError: `repeat_only`, and the earlier create no longer counts as this one.
            RunMayExistError: adding the runs (now or in the request this repeats) may have billed them;
                it names the group.
            APIError: the API refused (nothing was billed).
        """
        request = order.request
        claim = await self.intents.claim(order.intent(who.owner), budgeted=not repeat_only)
        if claim.outcome != "new" and claim.target_id is not None and claim.outcome != "created":
            claim = await self._reconcile(who, claim, request)
        repeat = await self.intents.admit(claim, "group", repeat_only=repeat_only)
        if repeat is not None:
            # A repeat answers at once, with the group's id (see RunService.create).
            view = await self._read(who, repeat.target_id, wait=0, sink=sink, processor=request.processor)
            view.warnings.append(repeat.warning)
            return view
        added: tuple[str, list[str], str | None] | None = None
        with anyio.CancelScope(shield=True):  # see RunService.create: once sent, answered and journaled
            added = await self._send(who, request, claim)
        assert added is not None
        group_id, run_ids, warning = added
        view = await self._read(who, group_id, wait=wait, sink=sink, processor=request.processor)
        view.run_ids = run_ids
        if warning is not None:
            view.warnings.append(warning)
        view.estimated_cost_usd = round(request.price, 6)
        return view

    async def _send(self, who: Caller, request: GroupRequest, claim: Claim) -> tuple[str, list[str], str | None]:
        client, owner = who.client, who.owner
        try:
            group = await client.create_group(request.metadata)
        except APIError:
            await quietly(self.store.release(claim.intent_id))  # an empty group bills nothing: a retry may start over
            raise
        record = GroupRecord(
            group_id=group.task_group_id,
            processor=request.processor,
            input_excerpt=excerpt(request.inputs[0].input),
            num_runs=len(request.inputs),
            created_at=group.created_at,
            cost_usd=request.price,
        )
        await self.store.group_created(claim.intent_id, owner, record)
        try:
            added = await client.add_runs(
                group.task_group_id, request.inputs, default_task_spec=request.default_task_spec
            )
        except RunMayExistError as exc:
            await quietly(self.store.unknown(claim.intent_id))
            raise RunMayExistError(str(exc), group_id=group.task_group_id) from None
        except APIError:
            await quietly(self.store.release(claim.intent_id))
            raise
        try:
            await self.store.group_filled(
                claim.intent_id, owner, _run_records(request, group.task_group_id, added.run_ids)
            )
        except StoreError as exc:
            logger.error("group %s was filled but its runs were not journaled: %s", group.task_group_id, exc)
            return group.task_group_id, added.run_ids, unjournaled_warning(group.task_group_id)
        return group.task_group_id, added.run_ids, None

    async def _reconcile(self, who: Caller, claim: Claim, request: GroupRequest) -> Claim:
        """An earlier add of this group's runs lost its answer: the group itself says whether they arrived."""
        assert claim.target_id is not None
        try:
            group = await who.client.get_group(claim.target_id)
        except APIError:
            return claim
        if group.status.num_task_runs < len(request.inputs):
            return claim
        run_ids = [event.run.run_id async for event in who.client.group_runs(claim.target_id)]
        await self.store.group_filled(claim.intent_id, who.owner, _run_records(request, claim.target_id, run_ids))
        logger.info("group %s: the runs of a lost add arrived; reconciled %d runs", claim.target_id, len(run_ids))
        return replace(claim, outcome="created")

    async def _read(
        self,
        who: Caller,
        group_id: str,
        *,
        wait: float,
        sink: ProgressSink | None,
        processor: str,
    ) -> TaskGroupView:
        """The group's view after creating it; a failed read still answers with the group's id."""
        try:
            return await self.get(who, group_id, wait=wait, sink=sink, offset=0, processor=processor)
        except APIError as exc:
            hint = retry_after_hint(self.waiter.processors, processor, None)
            view = TaskGroupView(
                task_group_id=group_id,
                is_active=True,
                num_task_runs=0,
                status_counts={},
                retry_after_seconds=hint,
                next_step=group_running_step(group_id, 0, 0, hint),
            )
            view.warnings.append(unread_warning("group", exc))
            return view

    async def get(
        self,
        who: Caller,
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
        client = who.client
        if self.owned_only and not await self.store.owns(who.owner, group_id):
            raise NotFoundError(f"task group {group_id!r} not found", status_code=404)
        waited = await self.waiter.group(client, group_id, wait=wait, sink=sink)
        group = waited.group
        if waited.ended_now:
            await quietly(self.store.publish(group_ended(group_id)))
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
        return TaskGroupView(
            task_group_id=group.task_group_id,
            is_active=group.status.is_active,
            num_task_runs=group.status.num_task_runs,
            status_counts=group.status.task_run_status_counts,
            status_message=group.status.status_message,
            retry_after_seconds=retry_after,
            next_step=next_step,
            rows=rows,
            page=page,
        )
