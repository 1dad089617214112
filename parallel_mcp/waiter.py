"""Bounded waiting on a run, with live progress, in at most three upstream requests.

One long-poll on `/result` ends the wait the moment the run finishes; one event stream feeds the
progress meter and phase messages; a heartbeat keeps progress notifications coming at least every
few seconds. The run's latest state comes from the stream, so a run still going after the wait
costs no extra request.
"""

from __future__ import annotations

import logging
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import anyio

from parallel_mcp.client import AsyncTaskClient
from parallel_mcp.errors import APIError, TaskRunFailedError
from parallel_mcp.guidance import elapsed_seconds
from parallel_mcp.models import (
    TaskRun,
    TaskRunEvent,
    TaskRunProgressMessageEvent,
    TaskRunProgressStatsEvent,
    TaskRunResult,
)
from parallel_mcp.processors import get_processor
from parallel_mcp.views import Progress

logger = logging.getLogger(__name__)

ProgressSink = Callable[[float, float | None, str], Awaitable[None]]
"""Receives (progress, total, message); progress strictly increases within one wait."""

MAX_MESSAGE_CHARS = 200
MIN_REPORT_GAP = 1.0


@dataclass
class ProgressState:
    """What is known about a running run's progress."""

    meter: float | None = None
    message: str | None = None
    sources_considered: int | None = None
    sources_read: int | None = None
    recent: deque[str] = field(default_factory=lambda: deque[str](maxlen=5))

    def apply(self, event: TaskRunProgressStatsEvent | TaskRunProgressMessageEvent) -> None:
        """Fold one progress event into the state."""
        if isinstance(event, TaskRunProgressStatsEvent):
            self.meter = event.progress_meter
            self.sources_considered = event.source_stats.num_sources_considered
            self.sources_read = event.source_stats.num_sources_read
        else:
            self.message = f"{event.kind}: {event.message}"
            self.recent.append(self.message)

    def to_view(self) -> Progress | None:
        """The agent-facing snapshot, or None when nothing is known yet."""
        if self.meter is None and self.message is None and self.sources_read is None:
            return None
        return Progress(
            progress_meter=self.meter,
            message=self.message,
            sources_considered=self.sources_considered,
            sources_read=self.sources_read,
            recent_messages=list(self.recent),
        )


@dataclass
class WaitOutcome:
    """How a wait ended: with a result, a failure, or the latest state of a run still going."""

    run: TaskRun | None = None
    result: TaskRunResult | None = None
    failure: TaskRunFailedError | None = None
    error: APIError | None = None
    """The long-poll failed after its retries; the run's state is unknown, not failed."""
    progress: ProgressState = field(default_factory=ProgressState)


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
        now = time.monotonic()
        if not force and now - self._last_at < MIN_REPORT_GAP:
            return
        sent = min(total - step, max(value, self._last + step))
        if sent <= self._last:
            return  # at the cap: nothing higher to say until the result
        self._last, self._last_at = sent, now
        await self._sink(sent, total, message[:MAX_MESSAGE_CHARS])


class ProgressReporter:
    """Turns a run's progress state into notifications: the API's meter, or an estimate from its band."""

    def __init__(self, sink: ProgressSink | None, time_scale: float, run: TaskRun | None = None) -> None:
        self._progress = MonotonicProgress(sink)
        self._time_scale = time_scale
        self._started = time.monotonic()
        self._expected = 120.0 / time_scale
        if run is not None:
            self.learn(run)

    def learn(self, run: TaskRun) -> None:
        """Base the estimate on the run's processor band and age once they are known."""
        self._started = time.monotonic() - (elapsed_seconds(run.created_at) or 0.0)
        proc = get_processor(run.processor)
        mid = (proc.min_seconds + proc.max_seconds) / 2 if proc else 120.0
        self._expected = mid / self._time_scale

    def estimate(self, state: ProgressState) -> float:
        """The API's meter when it reports one, else a guess from the processor's latency band."""
        if state.meter is not None:
            return state.meter
        elapsed = time.monotonic() - self._started
        return min(95.0, 100.0 * elapsed / self._expected)

    async def report(self, state: ProgressState, *, force: bool = False) -> None:
        """Send one notification (rate-limited unless forced, e.g. by the heartbeat)."""
        parts = [state.message or "working"]
        if state.sources_read:
            parts.append(f"{state.sources_read} sources read")
        parts.append(f"{time.monotonic() - self._started:.0f} s")
        await self._progress.send(self.estimate(state), 100.0, " · ".join(parts), force=force)


async def wait_for_run(
    client: AsyncTaskClient,
    run_id: str,
    *,
    wait: float,
    run: TaskRun | None = None,
    sink: ProgressSink | None = None,
    interval: float = 4.0,
    time_scale: float = 1.0,
) -> WaitOutcome:
    """Wait up to `wait` seconds for a run to finish, reporting progress to `sink`.

    Returns as soon as the run ends (the `/result` long-poll answers at once). A run still going
    after the wait is re-read once, since the event stream only reports state changes at its
    ends: at most three requests in all. Errors are returned in the outcome, never raised, so
    the caller still knows the run. Cancelling the caller stops the wait only; the run itself is
    never touched.

    Args:
        run_id: the run to wait for.
        wait: seconds to wait at most.
        run: the run's state when already known (after a create), for the progress estimate.
    """
    outcome = WaitOutcome(run=run)
    reporter = ProgressReporter(sink, time_scale, run)
    with anyio.move_on_after(wait + 1.0):
        async with anyio.create_task_group() as group:
            group.start_soon(_watch_events, client, run_id, outcome, reporter)
            group.start_soon(_heartbeat, outcome, reporter, interval)
            try:
                outcome.result = await client.get_result(run_id, timeout=max(1, math.floor(wait)))
            except TaskRunFailedError as failure:
                outcome.failure = failure
                outcome.run = failure.run
            except APIError as error:
                outcome.error = error
            if outcome.result is not None:
                outcome.run = outcome.result.run
            group.cancel_scope.cancel()
    if outcome.result is None and outcome.failure is None and outcome.error is None:
        try:
            outcome.run = await client.get_run(run_id)
        except APIError as error:
            outcome.error = error
    return outcome


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


async def _heartbeat(outcome: WaitOutcome, reporter: ProgressReporter, interval: float) -> None:
    await reporter.report(outcome.progress, force=True)
    while True:
        await anyio.sleep(interval)
        await reporter.report(outcome.progress, force=True)
