"""Runs for the tools, free of MCP types: create (once per idempotency key), read back, journal, cache, view.

Waiting belongs to the waiter, words to guidance, paging to paging; this module decides what
happened to a run and shapes it into the agent's view.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections import OrderedDict
from dataclasses import dataclass

import anyio

from parallel_mcp.client import AsyncTaskClient
from parallel_mcp.errors import APIError, NotFoundError, RunMayExistError
from parallel_mcp.guidance import (
    action_required_step,
    completed_step,
    failed_step,
    no_output_step,
    retry_after_hint,
    still_running_step,
    unjournaled_warning,
    unread_warning,
)
from parallel_mcp.intents import INTENT_TAG, Intents, Order, fingerprint
from parallel_mcp.models import ACTIVE_STATUSES, TaskRun, TaskRunInput, TaskRunResult, Webhook, seconds_since
from parallel_mcp.paging import CHARS_PER_TOKEN, page_output
from parallel_mcp.processors import ProcessorTable, list_price
from parallel_mcp.store import Claim, JournalEntry, RunRecord, Store, StoreError, quietly, run_ended
from parallel_mcp.text import shorten
from parallel_mcp.views import OutputPage, Progress, RunError, TaskRunView
from parallel_mcp.waiter import ProgressSink, ProgressState, Waiter, WaitOutcome

logger = logging.getLogger(__name__)

PAGE_SHARE = 0.45
"""The text rendering and the structured page both reach the client; each gets a share of the budget."""
PAGES_KEPT = 512
"""Pages of completed outputs kept as cut, for re-reads (each keyed by run, offset, fields and basis)."""
EXCERPT_CHARS = 160
SUMMARY_CHARS = 100
MAX_METADATA_KEYS = 16
RunOrder = Order[TaskRunInput]


@dataclass(frozen=True)
class PageRequest:
    """Which part of a completed output to return."""

    offset: int = 0
    fields: list[str] | None = None
    include_basis: bool = True


@dataclass(frozen=True)
class Caller:
    """Who a tool call speaks for: the owner of its runs, and the client that sends its requests."""

    client: AsyncTaskClient
    owner: str


def owner_of(api_key: str, secret: bytes) -> str:
    """A stable id for an API key, keyed by the installation's secret: the journal never lets anyone check a
    guessed key, and nothing (cache, journal, claims) ever crosses keys."""
    return "key:" + hmac.new(secret, api_key.encode(), hashlib.sha256).hexdigest()[:32]


def excerpt(value: object) -> str:
    """A short one-line excerpt of a run's input, for the journal."""
    return shorten(value if isinstance(value, str) else str(value), EXCERPT_CHARS, one_line=True)


def run_fingerprint(body: TaskRunInput) -> str:
    """The digest of everything a create sends upstream: two creates with the same one are the same request."""
    return fingerprint("run", body.model_dump(mode="json", exclude_none=True))


def summary(value: object) -> str:
    """The input in one short line, for the user asked to approve its price."""
    return shorten(excerpt(value), SUMMARY_CHARS)


def run_order(body: TaskRunInput, *, idempotency_key: str | None = None, force_new: bool = False) -> RunOrder:
    """`create_task_run`'s body as the create it is."""
    price = list_price(body.processor)
    return Order(
        "run", body, run_fingerprint(body), body.processor, 1, price, summary(body.input), idempotency_key, force_new
    )


def tag_intent(body: TaskRunInput, intent_id: str) -> TaskRunInput:
    """The body with its intent id in the metadata (when there is room), so a webhook can name its run."""
    metadata = dict(body.metadata or {})
    if INTENT_TAG in metadata or len(metadata) >= MAX_METADATA_KEYS:
        return body
    metadata[INTENT_TAG] = intent_id
    return body.model_copy(update={"metadata": metadata})


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
        store: Store,
        intents: Intents,
        budget_tokens: int,
        cache: ResultCache | None = None,
        webhook_url: str | None = None,
        owned_only: bool = False,
    ) -> None:
        self.waiter = waiter
        self.store = store
        self.intents = intents
        self.page_budget_chars = page_budget_chars(budget_tokens)
        self.cache = cache or ResultCache()
        self._pages: OrderedDict[tuple[str, int, tuple[str, ...], bool], tuple[TaskRunResult, OutputPage]] = (
            OrderedDict()
        )
        self.webhook_url = webhook_url
        """This server's webhook receiver: runs carry it (and their intent's tag), and waits listen for it."""
        self.owned_only = owned_only
        """Serve only runs journaled for the caller (users who share the server's API key)."""

    @property
    def processors(self) -> ProcessorTable:
        """The processor table at the pace runs go (the emulator's runs go faster)."""
        return self.waiter.processors

    async def create(
        self,
        who: Caller,
        order: RunOrder,
        *,
        wait: float,
        sink: ProgressSink | None,
        repeat_only: bool = False,
    ) -> TaskRunView:
        """Create a run once per intent, then wait up to `wait` seconds for it.

        A repeat of an intent that made a run (same idempotency key, or same body within the dedupe
        window) returns that run and bills nothing; a repeat of one whose answer was lost is refused
        unless `force_new`. With `repeat_only` (the call was let through unasked as a repeat), nothing
        is ever sent.

        Raises:
            RepeatLapsedError: `repeat_only`, and the earlier create no longer counts as this one.
            RunMayExistError: this request, or the earlier one it repeats, may have created a run.
            APIError: the API refused the create (nothing was billed).
        """
        client, owner, body = who.client, who.owner, order.request
        claim = await self.intents.claim(order.intent(owner), budgeted=not repeat_only)
        repeat = await self.intents.admit(claim, "run", repeat_only=repeat_only)
        if repeat is not None:
            # A repeat answers at once: it is often a call the client cut, sent again under the same short
            # timeout, and what the agent lacks is the run's id (get_task_run waits for it next).
            view = await self.get(who, repeat.target_id, wait=0, sink=sink, page=PageRequest())
            view.warnings.append(repeat.warning)
            return view
        pushed = self.webhook_url is not None and body.webhook is None
        # Heard from before the create is sent: a fast run's webhook may come before its answer is read.
        heard: set[str] = set()
        unsubscribe = self.store.subscribe(heard.add) if pushed else None
        try:
            # Once sent, a create is answered and journaled even if the caller goes away: a cut call must
            # find its run on the next try, not a second one.
            sent: tuple[TaskRun, str | None] | None = None
            with anyio.CancelScope(shield=True):
                sent = await self._send(client, owner, body, claim)
            assert sent is not None
            run, warning = sent
            if pushed:
                ended = run_ended(run.run_id)

                async def announced() -> bool:
                    return ended in heard or await self._journal_says_ended(owner, run.run_id)

                outcome = await self.waiter.pushed(
                    client, run.run_id, wait=wait, run=run, sink=sink, ended=ended in heard, recheck=announced
                )
            else:
                outcome = await self.waiter.run(client, run.run_id, wait=wait, run=run, sink=sink)
        finally:
            if unsubscribe is not None:
                unsubscribe()
        if outcome.run is None:
            outcome.run = run
        view = await self._outcome_view(owner, outcome, page=PageRequest())
        if warning is not None:
            view.warnings.append(warning)
        return view

    async def _send(
        self, client: AsyncTaskClient, owner: str, body: TaskRunInput, claim: Claim
    ) -> tuple[TaskRun, str | None]:
        sent = self._pushed(body, claim.intent_id)
        try:
            run = await client.create_run(sent)
        except RunMayExistError:
            await quietly(self.store.unknown(claim.intent_id))
            raise
        except APIError:
            await quietly(self.store.release(claim.intent_id))
            raise
        logger.info("created run %s on %s", run.run_id, run.processor)
        record = RunRecord(
            run_id=run.run_id,
            processor=run.processor,
            status=run.status,
            input_excerpt=excerpt(body.input),
            interaction_id=run.interaction_id,
            created_at=run.created_at,
            cost_usd=list_price(run.processor),
        )
        try:
            await self.store.created(claim.intent_id, owner, record, idempotency_key=claim.idempotency_key)
        except StoreError as exc:
            logger.error("run %s was created but not journaled: %s", run.run_id, exc)
            return run, unjournaled_warning(run.run_id)
        return run, None

    async def _journal_says_ended(self, owner: str, run_id: str) -> bool:
        """True when a webhook already noted the run's end (the receiver writes the status before it announces)."""
        status = await quietly(self.store.run_status(owner, run_id))
        return status is not None and status not in ACTIVE_STATUSES

    def _pushed(self, body: TaskRunInput, intent_id: str) -> TaskRunInput:
        """The body as sent: with this server's webhook and the intent's tag, unless the agent set its own webhook."""
        if self.webhook_url is None or body.webhook is not None:
            return body
        tagged = tag_intent(body, intent_id)
        return tagged.model_copy(update={"webhook": Webhook(url=self.webhook_url, event_types=["task_run.status"])})

    async def recent_runs(self, owner: str, *, limit: int, active_only: bool) -> list[JournalEntry]:
        """The runs this server created for this owner, newest first (from the journal)."""
        return await self.store.recent(owner, limit=limit, active_only=active_only)

    async def get(
        self,
        who: Caller,
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
        client, owner = who.client, who.owner
        if self.owned_only and not await self.store.owns(owner, run_id):
            # Another user's run reads exactly like a run that does not exist.
            raise NotFoundError(f"run {run_id!r} not found", status_code=404)
        cached = await self._kept_result(owner, run_id)
        if cached is not None:
            return self.view(cached.run, result=cached, page=page)
        known = await quietly(self.store.run_status(owner, run_id)) if self.webhook_url else None
        if known is not None:

            async def announced() -> bool:
                return await self._journal_says_ended(owner, run_id)

            ended = known not in ACTIVE_STATUSES
            outcome = await self.waiter.pushed(client, run_id, wait=wait, ended=ended, sink=sink, recheck=announced)
        else:
            outcome = await self.waiter.run(client, run_id, wait=wait, sink=sink)
        if outcome.error is not None or outcome.run is None:
            raise outcome.error or NotFoundError(f"run {run_id!r} not found", status_code=404)
        return await self._outcome_view(owner, outcome, page=page)

    async def _kept_result(self, owner: str, run_id: str) -> TaskRunResult | None:
        cached = self.cache.get(owner, run_id)
        if cached is None:
            body = await self.store.get_result(owner, run_id)
            if body is not None:
                cached = TaskRunResult.model_validate_json(body)
                self.cache.put(owner, cached)
        return cached

    async def _outcome_view(self, owner: str, outcome: WaitOutcome, *, page: PageRequest) -> TaskRunView:
        assert outcome.run is not None
        changed = await quietly(self.store.update_status(owner, outcome.run.run_id, outcome.run.status))
        if changed and not outcome.run.is_active:
            # Whoever listens (a subscription, a waiting call on another replica) learns it ended.
            await quietly(self.store.publish(run_ended(outcome.run.run_id)))
        if outcome.result is not None:
            self.cache.put(owner, outcome.result)
            await quietly(self.store.put_result(owner, outcome.run.run_id, outcome.result.model_dump_json()))
        view = self.view(outcome.run, result=outcome.result, page=page, progress=progress_view(outcome.progress))
        if outcome.error is not None:
            # The run exists: hand back its id rather than an error that invites a second create.
            view.warnings.append(unread_warning("run", outcome.error))
        return view

    def view(
        self, run: TaskRun, *, result: TaskRunResult | None, page: PageRequest, progress: Progress | None = None
    ) -> TaskRunView:
        """The agent-facing view of a run, and of one page of its output once completed.

        Raises:
            ArgumentError: `page.fields` names a field the output does not have, or `page.offset`
                lies outside it.
        """
        output = self._page(run.run_id, result, page) if result is not None else None
        return run_view(run, output, self.processors, progress)

    def _page(self, run_id: str, result: TaskRunResult, page: PageRequest) -> OutputPage:
        """A page of a completed output; results never change, so a page read again is cut once."""
        key = (run_id, page.offset, tuple(page.fields or ()), page.include_basis)
        found = self._pages.get(key)
        if found is None or found[0] is not result:
            paged = page_output(
                result.output,
                offset=page.offset,
                budget_chars=self.page_budget_chars,
                fields=page.fields,
                include_basis=page.include_basis,
            )
            found = (result, paged)
            self._pages[key] = found
            while len(self._pages) > PAGES_KEPT:
                self._pages.popitem(last=False)
        self._pages.move_to_end(key)
        return found[1]


def run_view(
    run: TaskRun, output: OutputPage | None, processors: ProcessorTable, progress: Progress | None = None
) -> TaskRunView:
    """The agent-facing view of a run, with one page of its output once completed; the processor table
    (at the pace runs go) sets the polling hint."""
    elapsed = seconds_since(run.created_at)
    retry_after = None
    if output is not None:
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
