"""The tools' domain logic, free of MCP types: create, wait, read back, page and cache runs."""

from __future__ import annotations

import hashlib
import logging
from collections import OrderedDict
from dataclasses import dataclass

import anyio

from parallel_mcp.client import AsyncTaskClient
from parallel_mcp.errors import NotFoundError
from parallel_mcp.formatting import CHARS_PER_TOKEN, page_output
from parallel_mcp.guidance import (
    action_required_step,
    completed_step,
    elapsed_seconds,
    failed_step,
    retry_after_hint,
    still_running_step,
)
from parallel_mcp.journal import MEMORY, Journal, JournalEntry
from parallel_mcp.models import ErrorObject, TaskRun, TaskRunInput, TaskRunResult
from parallel_mcp.processors import PROCESSORS, get_processor
from parallel_mcp.views import Progress, RunError, TaskRunView
from parallel_mcp.waiter import ProgressSink, WaitOutcome, wait_for_run

logger = logging.getLogger(__name__)

# The text rendering and the structured page both reach the client; each gets a share of the budget.
PAGE_SHARE = 0.45


class CostLimitError(ValueError):
    """A run's list price is above the configured `max_cost_usd`."""


@dataclass(frozen=True)
class PageRequest:
    """Which part of a completed output to return."""

    offset: int = 0
    fields: list[str] | None = None
    include_basis: bool = True


def owner_of(api_key: str) -> str:
    """A stable, non-reversible id for an API key: cache entries never cross keys."""
    return hashlib.sha256(api_key.encode()).hexdigest()[:16]


class ResultCache:
    """Completed results are immutable: keep recent ones so re-reads and paging cost no request."""

    def __init__(self, capacity: int = 256) -> None:
        self._items: OrderedDict[tuple[str, str], TaskRunResult] = OrderedDict()
        self._capacity = capacity

    def get(self, owner: str, run_id: str) -> TaskRunResult | None:
        """The cached result of `run_id` for this key's owner, if any."""
        key = (owner, run_id)
        result = self._items.get(key)
        if result is not None:
            self._items.move_to_end(key)
        return result

    def put(self, owner: str, result: TaskRunResult) -> None:
        """Remember a completed result."""
        key = (owner, result.run.run_id)
        self._items[key] = result
        self._items.move_to_end(key)
        while len(self._items) > self._capacity:
            self._items.popitem(last=False)


def check_cost(processor: str, max_cost_usd: float | None) -> None:
    """Refuse a processor whose per-run price is above the configured limit.

    Raises:
        CostLimitError: naming the price, the limit and the processors that fit.
    """
    proc = get_processor(processor)
    if max_cost_usd is None or proc is None or proc.usd_per_run <= max_cost_usd:
        return
    fitting = [name for name, p in PROCESSORS.items() if p.usd_per_run <= max_cost_usd]
    raise CostLimitError(
        f"processor {processor!r} costs ${proc.usd_per_run:g} per run, above this server's limit of "
        f"${max_cost_usd:g} (PARALLEL_MCP_MAX_COST_USD). Use one of: {', '.join(fitting) or 'none'}; "
        "or ask the user to raise the limit."
    )


class RunService:
    """Creates and reads runs for the tools; one per server, shared by all users."""

    def __init__(
        self,
        *,
        budget_tokens: int,
        progress_interval: float,
        emulated: bool,
        time_scale: float = 1.0,
        cache: ResultCache | None = None,
        journal: Journal | None = None,
    ) -> None:
        self.budget_tokens = budget_tokens
        self.progress_interval = progress_interval
        self.emulated = emulated
        self.time_scale = time_scale
        self.cache = cache or ResultCache()
        self.journal = journal or Journal(MEMORY)
        self._key_locks: dict[tuple[str, str], anyio.Lock] = {}

    @property
    def page_budget_chars(self) -> int:
        """Characters allowed for the structured page of one result."""
        return int(self.budget_tokens * CHARS_PER_TOKEN * PAGE_SHARE)

    async def create(
        self,
        client: AsyncTaskClient,
        owner: str,
        body: TaskRunInput,
        *,
        wait: float,
        sink: ProgressSink | None,
        idempotency_key: str | None = None,
    ) -> TaskRunView:
        """Create a run, then wait up to `wait` seconds for it.

        With an `idempotency_key` that created a run before (for this key's owner), that run is
        returned instead and nothing new is billed.
        """
        if idempotency_key is None:
            return await self._create(client, owner, body, wait=wait, sink=sink, idempotency_key=None)
        slot = (owner, idempotency_key)
        lock = self._key_locks.setdefault(slot, anyio.Lock())
        try:
            async with lock:
                earlier = self.journal.find_by_key(owner, idempotency_key)
                if earlier is None:
                    return await self._create(
                        client, owner, body, wait=wait, sink=sink, idempotency_key=idempotency_key
                    )
        finally:
            if lock.statistics().tasks_waiting == 0:
                self._key_locks.pop(slot, None)
        view = await self.get(client, owner, earlier, wait=wait, sink=sink, page=PageRequest())
        view.warnings.append(
            f"idempotency_key {idempotency_key!r} already created run {earlier}: returned it; nothing new was billed."
        )
        return view

    async def _create(
        self,
        client: AsyncTaskClient,
        owner: str,
        body: TaskRunInput,
        *,
        wait: float,
        sink: ProgressSink | None,
        idempotency_key: str | None,
    ) -> TaskRunView:
        run = await client.create_run(body)
        logger.info("created run %s on %s", run.run_id, run.processor)
        self.journal.record(owner, run, input_value=body.input, idempotency_key=idempotency_key)
        outcome = await self._settle(client, run, wait=wait, sink=sink)
        if outcome.run is None:
            outcome.run = run
        return self._outcome_view(owner, outcome, page=PageRequest())

    def recent_runs(self, owner: str, *, limit: int, active_only: bool) -> list[JournalEntry]:
        """The runs this server created for this owner, newest first (from the journal)."""
        return self.journal.recent(owner, limit=limit, active_only=active_only)

    async def get(
        self,
        client: AsyncTaskClient,
        owner: str,
        run_id: str,
        *,
        wait: float,
        sink: ProgressSink | None,
        page: PageRequest,
    ) -> TaskRunView:
        """Read a run (waiting up to `wait` seconds while it is active) and page its output.

        A cached completed result costs no request; a wait goes straight to the long-poll, so a
        waiting call makes at most three requests however long the run.
        """
        cached = self.cache.get(owner, run_id)
        if cached is not None:
            return self.view(cached.run, result=cached, page=page)
        if wait <= 0:
            run = await client.get_run(run_id)
            outcome = await self._settle(client, run, wait=0, sink=None)
        else:
            outcome = await wait_for_run(
                client, run_id, wait=wait, sink=sink, interval=self.progress_interval, time_scale=self.time_scale
            )
        if outcome.error is not None or outcome.run is None:
            raise outcome.error or NotFoundError(f"run {run_id!r} not found", status_code=404)
        return self._outcome_view(owner, outcome, page=page)

    async def _settle(
        self, client: AsyncTaskClient, run: TaskRun, *, wait: float, sink: ProgressSink | None
    ) -> WaitOutcome:
        if run.status == "completed":
            # Finished already: one read of the result, no event stream.
            return WaitOutcome(run=run, result=await client.get_result(run.run_id, timeout=1))
        if run.is_active and wait > 0:
            return await wait_for_run(
                client,
                run.run_id,
                run=run,
                wait=wait,
                sink=sink,
                interval=self.progress_interval,
                time_scale=self.time_scale,
            )
        return WaitOutcome(run=run)

    def _outcome_view(self, owner: str, outcome: WaitOutcome, *, page: PageRequest) -> TaskRunView:
        assert outcome.run is not None
        self.journal.update(owner, outcome.run)
        if outcome.result is not None:
            self.cache.put(owner, outcome.result)
        progress = outcome.progress.to_view()
        view = self.view(outcome.run, result=outcome.result, page=page, progress=progress)
        if outcome.error is not None:
            # The run exists: hand back its id rather than an error that invites a second create.
            view.warnings.append(f"The run was created, but reading its status failed: {outcome.error}")
        return view

    def view(
        self,
        run: TaskRun,
        *,
        result: TaskRunResult | None,
        page: PageRequest,
        progress: Progress | None = None,
    ) -> TaskRunView:
        """Build the agent-facing view of a run (and of one page of its output).

        Raises:
            ValueError: `page.fields` names a field the output does not have.
        """
        elapsed = elapsed_seconds(run.created_at)
        output = None
        retry_after = None
        if result is not None:
            output = page_output(
                result.output,
                offset=page.offset,
                budget_chars=self.page_budget_chars,
                fields=page.fields,
                include_basis=page.include_basis,
            )
            next_step = completed_step(run.run_id, output.page.next_offset)
        elif run.status == "failed":
            next_step = failed_step(run.processor)
        elif run.status == "action_required":
            next_step = action_required_step()
        elif run.is_active:
            retry_after = retry_after_hint(run.processor, elapsed, time_scale=self.time_scale)
            next_step = still_running_step(run.run_id, retry_after)
        else:
            next_step = f"The run is {run.status}; there is no output to read."
        proc = get_processor(run.processor)
        return TaskRunView(
            run_id=run.run_id,
            interaction_id=run.interaction_id,
            status=run.status,
            is_active=run.is_active,
            processor=run.processor,
            elapsed_seconds=round(elapsed, 1) if elapsed is not None else None,
            progress=progress if run.is_active else None,
            retry_after_seconds=retry_after,
            next_step=next_step,
            output=output,
            error=_run_error(run.error),
            warnings=[w.message for w in run.warnings or []],
            metadata=run.metadata,
            task_group_id=run.task_group_id,
            estimated_cost_usd=proc.usd_per_run if proc else None,
            emulated=self.emulated,
        )


def _run_error(error: ErrorObject | None) -> RunError | None:
    return RunError(message=error.message, ref_id=error.ref_id or None) if error else None
