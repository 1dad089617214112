"""The waiter on its own: when it waits at all, how few requests a wait costs, progress, and errors kept.

A frozen emulator on a manual clock: runs move only when a test finishes them, and the long-poll's
timeout passes only when the test advances the clock, so nothing here waits in real time.
"""

from __future__ import annotations

import anyio
import pytest

from parallel_mcp.emulator.clock import ManualClock
from parallel_mcp.emulator.config import EmulatorConfig
from parallel_mcp.emulator.faults import Fault
from parallel_mcp.emulator.runner import RunningEmulator
from parallel_mcp.errors import NotFoundError
from parallel_mcp.models import TaskRunInput
from parallel_mcp.processors import ProcessorTable
from parallel_mcp.waiter import MonotonicProgress, Waiter, WaitOutcome
from tests.support import emulator_client, until

pytestmark = [pytest.mark.anyio, pytest.mark.virtual_time]

QUESTION = TaskRunInput(input="What is the capital of France?", processor="lite")
WAITER = Waiter(ProcessorTable(pace=20), interval=0.05)


def requests_since(emulator: RunningEmulator, start: int) -> list[str]:
    return [f"{r.method} {r.path.rsplit('/', 1)[-1]}" for r in emulator.state.request_log[start:]]


async def test_a_finished_run_costs_one_read_of_its_result() -> None:
    async with emulator_client(EmulatorConfig(instant=True)) as (emulator, client):
        run = await client.create_run(QUESTION)
        await emulator.state.wait_for(run.run_id)
        finished = await client.get_run(run.run_id)
        start = len(emulator.state.request_log)
        outcome = await WAITER.run(client, run.run_id, wait=30, run=finished)
    assert outcome.result is not None and outcome.run is not None and outcome.run.status == "completed"
    assert requests_since(emulator, start) == ["GET result"]


async def test_a_call_that_may_not_wait_reads_the_status_once() -> None:
    async with emulator_client(EmulatorConfig(frozen=True)) as (emulator, client):
        run = await client.create_run(QUESTION)
        start = len(emulator.state.request_log)
        outcome = await WAITER.run(client, run.run_id, wait=0)
    assert outcome.run is not None and outcome.run.is_active and outcome.result is None
    assert requests_since(emulator, start) == [f"GET {run.run_id}"]


async def test_an_unknown_run_that_may_not_wait_raises_not_found() -> None:
    async with emulator_client(EmulatorConfig(frozen=True)) as (_emulator, client):
        with pytest.raises(NotFoundError):
            await WAITER.run(client, "trun_nope", wait=0)


async def test_a_wait_returns_the_result_as_soon_as_the_run_ends() -> None:
    outcome: WaitOutcome | None = None
    async with emulator_client(EmulatorConfig(frozen=True)) as (emulator, client):
        run = await client.create_run(QUESTION)
        start = len(emulator.state.request_log)
        with anyio.fail_after(10):
            async with anyio.create_task_group() as tasks:

                async def finish_when_polled() -> None:
                    record = emulator.state.runs[run.run_id]
                    await until(lambda: record.pollers > 0)
                    emulator.state.finish(run.run_id)

                tasks.start_soon(finish_when_polled)
                # A wait far beyond fail_after: only the run's end can return it in time.
                outcome = await WAITER.run(client, run.run_id, wait=45, run=run)
                tasks.cancel_scope.cancel()
    assert isinstance(outcome, WaitOutcome)
    assert outcome.result is not None and outcome.run is not None and outcome.run.status == "completed"
    assert len(requests_since(emulator, start)) <= 2  # the long-poll, and the event stream if it opened


async def test_a_run_still_going_after_the_wait_is_read_once_more_in_at_most_three_requests() -> None:
    clock = ManualClock()
    outcome: WaitOutcome | None = None
    async with emulator_client(EmulatorConfig(frozen=True), clock=clock) as (emulator, client):
        run = await client.create_run(QUESTION)
        emulator.state.advance(run.run_id, to=0.5)
        start = len(emulator.state.request_log)
        with anyio.fail_after(10):
            async with anyio.create_task_group() as tasks:

                async def time_out_the_long_poll() -> None:
                    await clock.wait_for_sleepers()
                    clock.advance(2)

                tasks.start_soon(time_out_the_long_poll)
                outcome = await WAITER.run(client, run.run_id, wait=2, run=run)
    assert isinstance(outcome, WaitOutcome)
    assert outcome.result is None and outcome.error is None
    assert outcome.run is not None and outcome.run.status == "running"
    made = requests_since(emulator, start)
    assert len(made) <= 3 and f"GET {run.run_id}" in made  # the long-poll, the stream, one re-read


async def test_a_failed_run_ends_the_wait_with_its_failure() -> None:
    async with emulator_client(EmulatorConfig(frozen=True)) as (emulator, client):
        run = await client.create_run(QUESTION)
        emulator.state.fail(run.run_id, "upstream exploded")
        outcome = await WAITER.run(client, run.run_id, wait=5, run=run)
    assert outcome.failure is not None and "upstream exploded" in str(outcome.failure)
    assert outcome.run is not None and outcome.run.status == "failed"


async def test_an_error_after_the_run_is_known_is_returned_with_the_run_not_raised() -> None:
    async with emulator_client(EmulatorConfig(frozen=True), max_retries=0) as (emulator, client):
        run = await client.create_run(QUESTION)
        emulator.state.faults.add(Fault(kind="status", method="GET", path="*", status=500))
        outcome = await WAITER.run(client, run.run_id, wait=1, run=run)
    assert outcome.error is not None and outcome.run is not None and outcome.run.run_id == run.run_id


async def test_progress_while_waiting_strictly_increases_and_stays_below_the_total() -> None:
    seen: list[tuple[float, float | None, str]] = []

    async def sink(progress: float, total: float | None, message: str) -> None:
        seen.append((progress, total, message))
        if len(seen) == 3:
            emulator.state.finish(run.run_id)

    async with emulator_client(EmulatorConfig(frozen=True)) as (emulator, client):
        run = await client.create_run(QUESTION)
        with anyio.fail_after(10):
            outcome = await WAITER.run(client, run.run_id, wait=45, run=run, sink=sink)
    assert outcome.result is not None
    values = [progress for progress, _, _ in seen]
    assert len(values) >= 3 and values == sorted(values) and len(set(values)) == len(values)
    assert all(total == 100.0 and progress < 100.0 and message for progress, total, message in seen)


async def test_monotonic_progress_never_repeats_or_reaches_the_total() -> None:
    sent: list[float] = []

    async def sink(progress: float, total: float | None, message: str) -> None:
        sent.append(progress)

    progress = MonotonicProgress(sink)
    for value in (10.0, 5.0, 10.0, 200.0, 200.0):
        await progress.send(value, 100.0, "m", force=True)
    assert sent == [10.0, 10.01, 10.02, 99.99]


async def test_a_group_wait_returns_once_every_run_has_ended_and_reports_ended_counts() -> None:
    counts: list[str] = []

    async def sink(progress: float, total: float | None, message: str) -> None:
        counts.append(message)
        for run_id in group_runs:
            emulator.state.finish(run_id)

    async with emulator_client(EmulatorConfig(frozen=True)) as (emulator, client):
        group = await client.create_group()
        added = await client.add_runs(group.task_group_id, [QUESTION, QUESTION])
        group_runs = added.run_ids
        with anyio.fail_after(10):
            waited = await WAITER.group(client, group.task_group_id, wait=45, sink=sink)
    assert waited.ended_now and not waited.group.status.is_active and waited.group.status.num_task_runs == 2
    assert counts and counts[0] == "0 of 2 runs ended"


async def test_a_cut_group_stream_ends_the_wait_with_the_groups_status_not_an_error() -> None:
    async with emulator_client(EmulatorConfig(frozen=True)) as (emulator, client):
        group = await client.create_group()
        await client.add_runs(group.task_group_id, [QUESTION])
        emulator.state.faults.add(Fault(kind="sse_cut", path="*/groups/*/events", after_events=1))
        with anyio.fail_after(10):
            waited = await WAITER.group(client, group.task_group_id, wait=45)
    assert waited.group.task_group_id == group.task_group_id and waited.group.status.is_active
    assert not waited.ended_now
