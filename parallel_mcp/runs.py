"""Runs for the tools, free of MCP types: create (once per idempotency key), read back, journal, cache, view.

Waiting belongs to the waiter, words to guidance, paging to paging; this module decides what
happened to a run and shapes it into the agent's view.
"""

from __future__ import annotations

import hashlib
import logging
from collections import OrderedDict
from dataclasses import dataclass

import anyio

from parallel_mcp.client import AsyncTaskClient
from parallel_mcp.errors import NotFoundError
from parallel_mcp.guidance import (
    action_required_step,
    completed_step,
    failed_step,
    no_output_step,
    retry_after_hint,
    reused_run_warning,
    still_running_step,
    unread_status_warning,
)
from parallel_mcp.journal import Journal, JournalEntry
from parallel_mcp.models import TaskRun, TaskRunInput, TaskRunResult, seconds_since
from parallel_mcp.paging import CHARS_PER_TOKEN, page_output
from parallel_mcp.processors import ProcessorTable
from parallel_mcp.views import Progress, RunError, TaskRunView
from parallel_mcp.waiter import ProgressSink, ProgressState, Waiter, WaitOutcome

logger = logging.getLogger(__name__)

PAGE_SHARE = 0.45
"""The text rendering and the structured page both reach the client; each gets a share of the budget."""


@dataclass(frozen=True)
class PageRequest:
    """Which part of a completed output to return."""

    offset: int = 0
    fields: list[str] | None = None
    include_basis: bool = True


def owner_of(api_key: str) -> str:
    """A stable, non-reversible id for an API key: cache entries never cross keys."""
    return hashlib.sha256(api_key.encode()).hexdigest()[:16]


def page_budget_chars(budget_tokens: int) -> int:
    """Characters allowed for the structured page of one result."""
    return int(budget_tokens * CHARS_PER_TOKEN * PAGE_SHARE)


def progress_view(state: ProgressState) -> Progress | None:
    """The agent-facing snapshot of a run's progress, or None when nothing is known yet."""
    if not state.known:
        return None
    return Progress(
        progress_meter=state.meter,
        message=state.message,
        sources_considered=state.sources_considered,
        sources_read=state.sources_read,
        recent_messages=list(state.recent),
    )


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


class RunService:
    """Creates and reads runs for the tools; one per server, shared by all users."""

    def __init__(
        self,
        *,
        waiter: Waiter,
        journal: Journal,
        budget_tokens: int,
        cache: ResultCache | None = None,
    ) -> None:
        self.waiter = waiter
        self.journal = journal
        self.page_budget_chars = page_budget_chars(budget_tokens)
        self.cache = cache or ResultCache()
        self._key_locks: dict[tuple[str, str], anyio.Lock] = {}

    @property
    def processors(self) -> ProcessorTable:
        """The processor table at the pace runs go (the emulator's runs go faster)."""
        return self.waiter.processors

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
        view.warnings.append(reused_run_warning(idempotency_key, earlier))
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
        outcome = await self.waiter.run(client, run.run_id, wait=wait, run=run, sink=sink)
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

        A cached completed result costs no request.

        Raises:
            APIError: the run cannot be read (no such run, or the API failed).
            ArgumentError: `page` asks for a field or an offset the output does not have.
        """
        cached = self.cache.get(owner, run_id)
        if cached is not None:
            return self.view(cached.run, result=cached, page=page)
        outcome = await self.waiter.run(client, run_id, wait=wait, sink=sink)
        if outcome.error is not None or outcome.run is None:
            raise outcome.error or NotFoundError(f"run {run_id!r} not found", status_code=404)
        return self._outcome_view(owner, outcome, page=page)

    def _outcome_view(self, owner: str, outcome: WaitOutcome, *, page: PageRequest) -> TaskRunView:
        assert outcome.run is not None
        self.journal.update(owner, outcome.run)
        if outcome.result is not None:
            self.cache.put(owner, outcome.result)
        view = self.view(outcome.run, result=outcome.result, page=page, progress=progress_view(outcome.progress))
        if outcome.error is not None:
            # The run exists: hand back its id rather than an error that invites a second create.
            view.warnings.append(unread_status_warning(outcome.error))
        return view

    def view(
        self, run: TaskRun, *, result: TaskRunResult | None, page: PageRequest, progress: Progress | None = None
    ) -> TaskRunView:
        """The agent-facing view of a run at this service's page budget and pace (see `run_view`)."""
        return run_view(
            run,
            result=result,
            page=page,
            progress=progress,
            budget_chars=self.page_budget_chars,
            processors=self.processors,
        )


def run_view(
    run: TaskRun,
    *,
    result: TaskRunResult | None,
    page: PageRequest,
    budget_chars: int,
    processors: ProcessorTable,
    progress: Progress | None = None,
) -> TaskRunView:
    """The agent-facing view of a run, and of one page of its output once completed.

    Raises:
        ArgumentError: `page.fields` names a field the output does not have, or `page.offset`
            lies outside it.
    """
    elapsed = seconds_since(run.created_at)
    output = None
    retry_after = None
    if result is not None:
        output = page_output(
            result.output,
            offset=page.offset,
            budget_chars=budget_chars,
            fields=page.fields,
            include_basis=page.include_basis,
        )
        next_step = completed_step(run.run_id, output.page.next_offset)
    elif run.status == "failed":
        next_step = failed_step(run.processor)
    elif run.status == "action_required":
        next_step = action_required_step()
    elif run.is_active:
        retry_after = retry_after_hint(processors, run.processor, elapsed)
        next_step = still_running_step(run.run_id, retry_after)
    else:
        next_step = no_output_step(run.status)
    proc = processors.get(run.processor)
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
        error=RunError.of(run.error),
        warnings=[w.message for w in run.warnings or []],
        metadata=run.metadata,
        task_group_id=run.task_group_id,
        estimated_cost_usd=proc.usd_per_run if proc else None,
    )
