"""Bounded waiting on a run or a group, with live progress, in as few upstream requests as possible.

A run: one long-poll on `/result` ends the wait the moment the run finishes; one event stream feeds
the progress meter and phase messages; the run is re-read once if it is still going, so a waiting
call makes at most three requests. A group: its event stream reports runs as they end. Both send
a progress notification at least every `interval` seconds from one heartbeat.

Whether to wait at all is decided here too: a finished run costs one read of its result, and a
call that may not wait reads the status once.
"""

from __future__ import annotations

import logging
import math
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import KW_ONLY, dataclass, field

import anyio

from parallel_mcp.client import AsyncTaskClient
from parallel_mcp.errors import APIError, TaskRunFailedError
from parallel_mcp.models import (
    TERMINAL_STATUSES,
    TaskGroup,
    TaskGroupStatus,
    TaskGroupStatusEvent,
    TaskRun,
    TaskRunEvent,
    TaskRunProgressMessageEvent,
    TaskRunProgressStatsEvent,
    TaskRunResult,
    seconds_since,
)
from parallel_mcp.processors import ProcessorTable
from parallel_mcp.store import RESYNC, Store, run_ended

logger = logging.getLogger(__name__)

ProgressSink = Callable[[float, float | None, str], Awaitable[None]]
"""Receives (progress, total, message); progress strictly increases within one wait."""

MAX_MESSAGE_CHARS = 200
MIN_REPORT_GAP = 1.0
DEFAULT_EXPECTED_SECONDS = 120.0
"""What a run of unknown processor is assumed to take, for the progress estimate."""


@dataclass
class ProgressState:
    """What is known about a running run's progress."""

    meter: float | None = None
    sources_considered: int | None = None
    sources_read: int | None = None
    recent: deque[str] = field(default_factory=lambda: deque[str](maxlen=5))
    """The latest progress messages, oldest first."""

    @property
    def message(self) -> str | None:
        """The latest progress message."""
        return self.recent[-1] if self.recent else None

    def apply(self, event: TaskRunProgressStatsEvent | TaskRunProgressMessageEvent) -> None:
        """Fold one progress event into the state."""
        if isinstance(event, TaskRunProgressStatsEvent):
            self.meter = event.progress_meter
            self.sources_considered = event.source_stats.num_sources_considered
            self.sources_read = event.source_stats.num_sources_read
        else:
            self.recent.append(f"{event.kind}: {event.message}")

    @property
    def known(self) -> bool:
        """True once anything has been learnt."""
        return self.meter is not None or self.message is not None or self.sources_read is not None


@dataclass
class WaitOutcome:
    """How a wait ended: with a result, a failure, or the latest state of a run still going."""

    run: TaskRun | None = None
    result: TaskRunResult | None = None
    failure: TaskRunFailedError | None = None
    error: APIError | None = None
    """A read failed after its retries; the run's state is unknown, not failed."""
    progress: ProgressState = field(default_factory=ProgressState)


@dataclass(frozen=True)
class GroupWait:
    """A group after a wait, and whether its last runs ended during it."""

    group: TaskGroup
    ended_now: bool


class MonotonicProgress:
    """Sends progress notifications whose value strictly increases, at most one a second unless forced."""

    def __init__(self, sink: ProgressSink | None) -> None:
        self._sink = sink
        self._last: float = -1.0
        self._last_at: float = -math.inf

    async def send(self, value: float, total: float, message: str, *, force: bool = False, step: float = 0.01) -> None:
        """Notify `value` (raised just above the last one if need be), kept below `total` until the end."""
        if self._sink is None:
            return
        now = anyio.current_time()
        if not force and now - self._last_at < MIN_REPORT_GAP:
            return
        sent = min(total - step, max(value, self._last + step))
        if sent <= self._last:
            return  # at the cap: nothing higher to say until the result
        self._last, self._last_at = sent, now
        await self._sink(sent, total, message[:MAX_MESSAGE_CHARS])


class ProgressReporter:
    """Turns a run's progress state into notifications: the API's meter, or an estimate from its band."""

    def __init__(self, sink: ProgressSink | None, processors: ProcessorTable, run: TaskRun | None = None) -> None:
        self._progress = MonotonicProgress(sink)
        self._processors = processors
        self._started = anyio.current_time()
        self._expected = DEFAULT_EXPECTED_SECONDS / processors.pace
        if run is not None:
            self.learn(run)

    def learn(self, run: TaskRun) -> None:
        """Base the estimate on the run's processor band and age once they are known."""
        self._started = anyio.current_time() - (seconds_since(run.created_at) or 0.0)
        proc = self._processors.get(run.processor)
        if proc is not None:
            self._expected = (proc.min_seconds + proc.max_seconds) / 2

    def estimate(self, state: ProgressState) -> float:
        """The API's meter when it reports one, else a guess from the processor's latency band."""
        if state.meter is not None:
            return state.meter
        elapsed = anyio.current_time() - self._started
        return min(95.0, 100.0 * elapsed / self._expected)

    async def report(self, state: ProgressState, *, force: bool = False) -> None:
        """Send one notification (rate-limited unless forced, e.g. by the heartbeat)."""
        parts = [state.message or "working"]
        if state.sources_read:
            parts.append(f"{state.sources_read} sources read")
        parts.append(f"{anyio.current_time() - self._started:.0f} s")
        await self._progress.send(self.estimate(state), 100.0, " · ".join(parts), force=force)


def ended_runs(status: TaskGroupStatus) -> int:
    """How many of a group's runs have ended."""
    return sum(count for name, count in status.task_run_status_counts.items() if name in TERMINAL_STATUSES)


@dataclass(eq=False)
class Waiter:
    """Waits on runs and groups for the services; one per server."""

    processors: ProcessorTable
    _: KW_ONLY
    interval: float = 4.0
    """Seconds between heartbeats: a progress report at least this often while waiting."""
    events: Store | None = None
    """A store whose webhook receiver publishes `run_ended`: a run created with the server's webhook
    is then waited for without any upstream request. The webhook, on whichever replica it lands, says
    when it ended, and one read returns where it stands."""

    async def pushed(
        self,
        client: AsyncTaskClient,
        run_id: str,
        *,
        wait: float,
        run: TaskRun | None = None,
        ended: bool = False,
        sink: ProgressSink | None = None,
        recheck: Callable[[], Awaitable[bool]] | None = None,
    ) -> WaitOutcome:
        """Where a run whose end a webhook will announce stands after waiting up to `wait` seconds for that.

        One upstream read in all: the result once it ended (or `ended` says it already has), else its
        status. `recheck` says whether the end was already announced; it runs once the wait listens, so
        an announcement that came just before is not missed either.
        """
        assert self.events is not None, "pushed waits need the store's events"
        if not ended and wait > 0:
            reporter = ProgressReporter(sink, self.processors, run)
            ended = await self._announced(run_id, wait, reporter, recheck)
        outcome = WaitOutcome(run=run)
        try:
            if ended:
                outcome.result = await client.get_result(run_id, timeout=1)
                if outcome.result is not None:
                    outcome.run = outcome.result.run
                    return outcome
            outcome.run = await client.get_run(run_id)
            if outcome.run.status == "completed":
                outcome.result = await client.get_result(run_id, timeout=1)
        except TaskRunFailedError as failure:
            outcome.failure, outcome.run = failure, failure.run
        except APIError as error:
            outcome.error = error
        return outcome

    async def _announced(
        self,
        run_id: str,
        wait: float,
        reporter: ProgressReporter,
        recheck: Callable[[], Awaitable[bool]] | None,
    ) -> bool:
        assert self.events is not None
        ended = anyio.Event()
        wanted = {run_ended(run_id), RESYNC}

        def hear(event: str) -> None:
            if event in wanted:
                ended.set()

        unsubscribe = self.events.subscribe(hear)
        try:
            if recheck is not None and await recheck():
                return True
            with anyio.move_on_after(wait):
                async with anyio.create_task_group() as tasks:
                    state = ProgressState()
                    tasks.start_soon(_beat, self.interval, lambda: reporter.report(state, force=True))
                    await ended.wait()
                    tasks.cancel_scope.cancel()
        finally:
            unsubscribe()
        return ended.is_set()

    async def run(
        self,
        client: AsyncTaskClient,
        run_id: str,
        *,
        wait: float,
        run: TaskRun | None = None,
        sink: ProgressSink | None = None,
    ) -> WaitOutcome:
        """Where a run stands after waiting up to `wait` seconds for it.

        A run known to be finished costs one read of its result; a call that may not wait reads
        the status once; otherwise the wait goes straight to the long-poll. Errors after the run
        is known are returned in the outcome, never raised, so the caller still has the run.
        Cancelling the caller stops the wait only; the run itself is never touched.

        Args:
            run_id: the run to wait for.
            wait: seconds to wait at most.
            run: the run's state when already known (after a create), for the progress estimate.

        Raises:
            APIError: reading an unknown run's status failed (e.g. there is no such run).
        """
        if run is None and wait <= 0:
            run = await client.get_run(run_id)
        if run is not None and run.status == "completed":
            outcome = WaitOutcome(run=run)
            try:
                # Finished already: one read of the result, no event stream.
                outcome.result = await client.get_result(run.run_id, timeout=1)
            except APIError as error:
                outcome.error = error
            return outcome
        if run is not None and (not run.is_active or wait <= 0):
            return WaitOutcome(run=run)
        return await self._wait_active(client, run_id, run=run, wait=wait, sink=sink)

    async def _wait_active(
        self, client: AsyncTaskClient, run_id: str, *, run: TaskRun | None, wait: float, sink: ProgressSink | None
    ) -> WaitOutcome:
        outcome = WaitOutcome(run=run)
        reporter = ProgressReporter(sink, self.processors, run)
        with anyio.move_on_after(wait + 1.0):
            async with anyio.create_task_group() as tasks:
                tasks.start_soon(_watch_events, client, run_id, outcome, reporter)
                tasks.start_soon(_beat, self.interval, lambda: reporter.report(outcome.progress, force=True))
                try:
                    outcome.result = await client.get_result(run_id, timeout=max(1, math.floor(wait)))
                except TaskRunFailedError as failure:
                    outcome.failure = failure
                    outcome.run = failure.run
                except APIError as error:
                    outcome.error = error
                if outcome.result is not None:
                    outcome.run = outcome.result.run
                tasks.cancel_scope.cancel()
        if outcome.result is None and outcome.failure is None and outcome.error is None:
            # The event stream reports state only at its ends: one read says where a running run stands.
            try:
                outcome.run = await client.get_run(run_id)
            except APIError as error:
                outcome.error = error
        return outcome

    async def group(
        self, client: AsyncTaskClient, group_id: str, *, wait: float, sink: ProgressSink | None = None
    ) -> GroupWait:
        """A group's status after waiting up to `wait` seconds for its active runs to end.

        Raises:
            APIError: reading the group's status failed.
        """
        group = await client.get_group(group_id)
        if not group.status.is_active or wait <= 0:
            return GroupWait(group, ended_now=False)
        total = max(1, group.status.num_task_runs)
        ended = ended_runs(group.status)
        progress = MonotonicProgress(sink)

        async def report(*, force: bool = False) -> None:
            await progress.send(ended, float(total), f"{ended} of {total} runs ended", force=force, step=0.001)

        with anyio.move_on_after(wait):
            async with anyio.create_task_group() as tasks:
                tasks.start_soon(_beat, self.interval, lambda: report(force=True))
                try:
                    async for event in client.group_events(group_id, timeout=wait):
                        if isinstance(event, TaskGroupStatusEvent):
                            ended = ended_runs(event.status)
                            await report()
                except APIError as exc:
                    logger.debug("group stream for %s ended early: %s", group_id, type(exc).__name__)
                tasks.cancel_scope.cancel()
        final = await client.get_group(group_id)
        return GroupWait(final, ended_now=not final.status.is_active)


async def _watch_events(client: AsyncTaskClient, run_id: str, outcome: WaitOutcome, reporter: ProgressReporter) -> None:
    try:
        async for event in client.events(run_id, reconnects=0):
            if isinstance(event, TaskRunEvent):
                if outcome.run is None:
                    reporter.learn(event.run)
                outcome.run = event.run
            elif isinstance(event, TaskRunProgressStatsEvent | TaskRunProgressMessageEvent):
                outcome.progress.apply(event)
                await reporter.report(outcome.progress)
    except APIError as exc:
        # Progress is a nicety: the long-poll still delivers the result without it.
        logger.debug("no event stream for %s: %s", run_id, type(exc).__name__)


async def _beat(interval: float, beat: Callable[[], Awaitable[None]]) -> None:
    """The one heartbeat: a forced progress notification now and every `interval` seconds."""
    while True:
        await beat()
        await anyio.sleep(interval)
