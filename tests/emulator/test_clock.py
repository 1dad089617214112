"""The emulator's clock seam: a manual clock moves runs, long-polls, stream ages and the rate window."""

from __future__ import annotations

from typing import Any

import anyio
import anyio.lowlevel
import httpx2
import pytest

from parallel_mcp.emulator import ManualClock, RealClock
from parallel_mcp.emulator.clock import EmulatorClock, wait_until
from tests.emulator.conftest import assert_api_error, body, create, read_sse, running

pytestmark = [pytest.mark.anyio, pytest.mark.virtual_time]


def test_both_clocks_satisfy_the_protocol() -> None:
    assert isinstance(ManualClock(), EmulatorClock) and isinstance(RealClock(), EmulatorClock)


async def test_a_manual_clock_wakes_sleepers_whose_instant_has_come_and_no_others() -> None:
    clock = ManualClock(start=100.0)
    woke: list[float] = []

    async def sleeper(deadline: float) -> None:
        await clock.sleep_until(deadline)
        woke.append(deadline)

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            for deadline in (101.0, 105.0, 110.0):
                tg.start_soon(sleeper, deadline)
            await clock.wait_for_sleepers(3)
            clock.advance(5)
            await clock.wait_for_sleepers(1)
            while len(woke) < 2:
                await anyio.lowlevel.checkpoint()
            assert sorted(woke) == [101.0, 105.0] and clock.sleepers == 1 and clock.now() == 105.0
            clock.advance(5)
    assert sorted(woke) == [101.0, 105.0, 110.0] and clock.sleepers == 0


async def test_a_manual_clock_returns_at_once_for_a_past_instant_and_never_goes_back() -> None:
    clock = ManualClock()
    with anyio.fail_after(5):
        await clock.sleep_until(0.0)
    with pytest.raises(ValueError):
        clock.advance(-1)


async def test_wait_until_gives_up_when_the_clock_passes_the_deadline() -> None:
    clock = ManualClock()
    event = anyio.Event()
    outcome: list[bool] = []

    async def wait() -> None:
        outcome.append(await wait_until(clock, event, 10.0))

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(wait)
            await clock.wait_for_sleepers()
            clock.advance(10)
    assert outcome == [False]


async def test_runs_move_from_queued_through_running_to_completed_only_as_the_clock_advances() -> None:
    clock = ManualClock()
    async with running(clock=clock) as (emu, client):
        run_id = (await create(client))["run_id"]
        record = emu.state.runs[run_id]
        with anyio.fail_after(5):
            await clock.wait_for_sleepers()
            assert body(await client.get(f"/v1/tasks/runs/{run_id}"))["status"] == "queued"
            clock.advance(record.duration / 2)
            while record.status == "queued":
                await record.changed.snapshot().wait()
            assert record.status == "running" and record.progress >= 0.5
            clock.advance(record.duration)
            assert await emu.state.wait_for(run_id, timeout=5)
    assert record.status == "completed" and record.output is not None


async def test_one_big_step_of_the_clock_catches_a_run_up_with_every_progress_event() -> None:
    clock = ManualClock()
    async with running(clock=clock) as (emu, client):
        run_id = (await create(client, processor="pro"))["run_id"]
        with anyio.fail_after(5):
            await clock.wait_for_sleepers()
            clock.advance(3600)
            assert await emu.state.wait_for(run_id, timeout=5)
        record = emu.state.runs[run_id]
    assert record.step_index == len(record.script) and record.stats is not None


async def test_the_result_long_poll_times_out_on_the_emulator_clock() -> None:
    clock = ManualClock()
    async with running(clock=clock, frozen=True) as (emu, client):
        run_id = (await create(client))["run_id"]
        answers: list[httpx2.Response] = []

        async def poll() -> None:
            answers.append(await client.get(f"/v1/tasks/runs/{run_id}/result", params={"timeout": 30}))

        with anyio.fail_after(5):
            async with anyio.create_task_group() as tg:
                tg.start_soon(poll)
                await clock.wait_for_sleepers()
                assert emu.state.runs[run_id].pollers == 1
                clock.advance(30)
    assert_api_error(answers[0], 408, "still active")


async def test_a_run_stream_closes_after_570_emulated_seconds() -> None:
    clock = ManualClock()
    async with running(clock=clock, frozen=True) as (_, client):
        run_id = (await create(client))["run_id"]
        events: list[tuple[str, dict[str, Any]]] = []

        async def read() -> None:
            async with client.stream("GET", f"/v1/tasks/runs/{run_id}/events") as response:
                events.extend(await read_sse(response))

        with anyio.fail_after(5):
            async with anyio.create_task_group() as tg:
                tg.start_soon(read)
                await clock.wait_for_sleepers()
                clock.advance(569)
                await anyio.lowlevel.checkpoint()
                assert clock.sleepers == 1  # still open a second before its end
                clock.advance(1)
    assert [kind for kind, _ in events] == ["task_run.state"]


async def test_the_rate_limit_window_slides_with_the_emulator_clock() -> None:
    clock = ManualClock()
    async with running(clock=clock, frozen=True, rate_limit_per_minute=1) as (_, client):
        await create(client)
        refused = await client.post("/v1/tasks/runs", json={"input": "q", "processor": "lite"})
        assert_api_error(refused, 429)
        assert refused.headers["retry-after"] == "60"
        clock.advance(60)
        await create(client)
