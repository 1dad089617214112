"""Run event streams (SSE) of the emulator."""

from __future__ import annotations

import anyio
import pytest

from tests.emulator.conftest import assert_api_error, create, iter_sse, read_sse, running

pytestmark = [pytest.mark.anyio, pytest.mark.virtual_time]


async def test_a_completed_run_stream_starts_with_state_then_progress_and_ends_with_the_output() -> None:
    async with running(frozen=True) as (emu, client):
        run_id = (await create(client, processor="pro"))["run_id"]
        emu.state.finish(run_id)
        with anyio.fail_after(5):
            async with client.stream("GET", f"/v1/tasks/runs/{run_id}/events") as response:
                assert response.headers["content-type"].startswith("text/event-stream")
                events = await read_sse(response)
    kinds = [kind for kind, _ in events]
    assert kinds[0] == "task_run.state" and kinds[-1] == "task_run.state"
    assert any(kind.startswith("task_run.progress_msg.") for kind in kinds)
    assert kinds.count("task_run.progress_stats") == 1  # only the current stats
    first, last = events[0][1], events[-1][1]
    assert first["output"] is None and first["event_id"] is None
    assert last["run"]["status"] == "completed" and last["output"]["type"] in {"json", "text"}
    assert all(payload["type"] == kind for kind, payload in events)


async def test_a_live_stream_follows_the_run_and_a_reconnect_replays_every_message() -> None:
    async with running(frozen=True) as (emu, client):
        run_id = (await create(client, processor="pro"))["run_id"]
        emu.state.advance(run_id, 0.5)
        record = emu.state.runs[run_id]
        early = list(record.messages)
        assert early
        with anyio.fail_after(5):
            async with client.stream("GET", f"/v1beta/tasks/runs/{run_id}/events") as response:
                live: list[str] = []
                async for kind, _ in iter_sse(response):
                    live.append(kind)
                    # Once the replay is through, let the run finish; the stream must follow.
                    if len(live) == 1 + len(early):
                        emu.state.finish(run_id)
            async with client.stream("GET", f"/v1/tasks/runs/{run_id}/events") as again:
                replay = await read_sse(again)
    messages = [payload["message"] for kind, payload in replay if kind.startswith("task_run.progress_msg.")]
    assert messages == [m["message"] for m in record.messages]
    assert messages[: len(early)] == [m["message"] for m in early]
    assert live[-1] == "task_run.state"


async def test_a_failed_run_stream_ends_with_its_error() -> None:
    async with running(frozen=True) as (emu, client):
        run_id = (await create(client))["run_id"]
        emu.state.fail(run_id, "no luck")
        with anyio.fail_after(5):
            async with client.stream("GET", f"/v1/tasks/runs/{run_id}/events") as response:
                events = await read_sse(response)
    final = events[-1][1]
    assert final["run"]["status"] == "failed" and final["run"]["error"]["message"] == "no luck"
    assert final["output"] is None


async def test_the_stream_of_an_unknown_run_is_404() -> None:
    async with running() as (_, client):
        assert_api_error(await client.get("/v1/tasks/runs/trun_missing/events"), 404)
