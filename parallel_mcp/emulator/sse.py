"""Server-sent event streams of runs and groups, as async generators of sse-starlette event dicts.

Streams wait on `Notifier` snapshots, never poll, and end on their deadline (on the emulator's
clock) or at server shutdown.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import anyio

from parallel_mcp.emulator.clock import wait_until
from parallel_mcp.emulator.state import EmulatorState, GroupRecord, RunRecord
from parallel_mcp.models import TaskRunStatus

SseEvent = dict[str, str]


def sse_event(payload: dict[str, Any]) -> SseEvent:
    """One SSE frame: `event:` is the payload's type, `data:` its compact JSON, `id:` its cursor if any."""
    frame = {"event": str(payload["type"]), "data": json.dumps(payload, separators=(",", ":"))}
    event_id = payload.get("event_id")
    if event_id:
        frame["id"] = str(event_id)
    return frame


async def run_events(state: EmulatorState, run: RunRecord) -> AsyncIterator[SseEvent]:
    """A run's stream: its state, every progress message so far, the current stats, then live events.

    A reconnect replays all messages from the beginning but only the current stats, as the API does.
    The stream ends with a `task_run.state` carrying the output once the run is over, or after
    `sse_max_seconds` (570 s by default) with nothing more.
    """
    deadline = state.clock.now() + state.config.sse_max_seconds
    yield sse_event(run.state_event())
    sent_messages = 0
    sent_stats = 0
    while True:
        snapshot = run.changed.snapshot()
        for message in run.messages[sent_messages:]:
            sent_messages += 1
            yield sse_event(message)
        if run.stats is not None and run.stats_version != sent_stats:
            sent_stats = run.stats_version
            yield sse_event(run.stats)
        if not run.is_active:
            yield sse_event(run.state_event(with_output=True))
            return
        if state.closing.is_set() or not await wait_until(state.clock, snapshot, deadline):
            return


def _group_active(state: EmulatorState, group: GroupRecord) -> bool:
    return any(state.runs[run_id].is_active for run_id in group.run_ids)


async def group_events(
    state: EmulatorState, group: GroupRecord, *, after: int, timeout: float | None
) -> AsyncIterator[SseEvent]:
    """A group's resumable stream: status changes and run terminations after the first `after` events.

    Stays open while any run is active, up to `timeout` seconds (capped at the API's hour).
    """
    limit = state.config.group_sse_max_seconds if timeout is None else min(timeout, state.config.group_sse_max_seconds)
    deadline = state.clock.now() + limit
    sent = after
    while True:
        snapshot = group.changed.snapshot()
        for event in group.events[sent:]:
            sent += 1
            yield sse_event(event)
        if (
            not _group_active(state, group)
            or state.closing.is_set()
            or not await wait_until(state.clock, snapshot, deadline)
        ):
            return


async def group_runs(
    state: EmulatorState,
    group: GroupRecord,
    *,
    after: int,
    status: TaskRunStatus | None,
    include_input: bool,
    include_output: bool,
) -> AsyncIterator[SseEvent]:
    """Every run of a group after the first `after`, at once (this stream does not wait for runs to end)."""
    for run_id, cursor in zip(group.run_ids[after:], group.run_cursors[after:], strict=True):
        run = state.runs[run_id]
        if status is None or run.status == status:
            yield sse_event(run.state_event(event_id=cursor, with_input=include_input, with_output=include_output))


async def cut_after(events: AsyncIterator[SseEvent], count: int, cut: Callable[[], bool]) -> AsyncIterator[SseEvent]:
    """Pass `count` events through, then `cut()` the connection at once, abruptly (no closing chunk).

    A stream that ends by itself before `count` events ends normally; so does one whose `cut` could
    not close the socket (it returned False).
    """
    try:
        if count > 0:
            sent = 0
            async for event in events:
                yield event
                sent += 1
                if sent >= count:
                    break
            else:
                return
        if cut():
            # Let the transport report the lost connection before the response machinery looks at it.
            await anyio.sleep(0)
    finally:
        aclose = getattr(events, "aclose", None)
        if aclose is not None:
            await aclose()
