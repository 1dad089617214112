"""Task Group endpoints of the emulator, on the GA (/v1) and legacy (/v1beta) paths."""

from __future__ import annotations

from typing import Any

import anyio
import httpx2
import pytest

from parallel_mcp.emulator import ManualClock
from tests.emulator.conftest import assert_api_error, body, read_sse, running

pytestmark = [pytest.mark.anyio, pytest.mark.virtual_time]

SPEC = {"output_schema": {"type": "text", "description": "One sentence."}}


async def new_group(client: httpx2.AsyncClient, prefix: str = "/v1") -> str:
    response = await client.post(f"{prefix}/tasks/groups", json={"metadata": {"batch": "one"}})
    assert response.status_code == 200, response.text
    group = body(response)
    assert group["metadata"] == {"batch": "one"} and group["status"]["num_task_runs"] == 0
    return str(group["taskgroup_id"])


async def add(
    client: httpx2.AsyncClient, group_id: str, count: int, prefix: str = "/v1", **extra: Any
) -> dict[str, Any]:
    inputs = [{"input": f"question {i}", "processor": "lite"} for i in range(count)]
    response = await client.post(f"{prefix}/tasks/groups/{group_id}/runs", json={"inputs": inputs, **extra})
    assert response.status_code == 200, response.text
    return body(response)


@pytest.mark.parametrize("prefix", ["/v1", "/v1beta"])
async def test_a_group_aggregates_the_status_of_its_runs(prefix: str) -> None:
    async with running(frozen=True) as (emu, client):
        group_id = await new_group(client, prefix)
        added = await add(client, group_id, 3, prefix, default_task_spec=SPEC)
        assert len(added["run_ids"]) == 3 and added["run_cursor"] is None and added["event_cursor"] is None
        assert added["status"]["task_run_status_counts"] == {"queued": 3}
        emu.state.finish(added["run_ids"][0])
        emu.state.fail(added["run_ids"][1], "nope")
        status = body(await client.get(f"{prefix}/tasks/groups/{group_id}"))["status"]
        assert status["num_task_runs"] == 3 and status["is_active"] is True
        assert status["task_run_status_counts"] == {"completed": 1, "failed": 1, "queued": 1}
        run = body(await client.get(f"{prefix}/tasks/groups/{group_id}/runs/{added['run_ids'][0]}"))
        assert run["taskgroup_id"] == group_id and run["status"] == "completed"
        # The group's default task spec applies to runs without their own.
        result = body(await client.get(f"/v1/tasks/runs/{added['run_ids'][0]}/result"))
        assert result["output"]["type"] == "text"


async def test_a_second_batch_returns_cursors_that_resume_both_streams_after_the_first() -> None:
    async with running(frozen=True) as (emu, client):
        group_id = await new_group(client)
        first = await add(client, group_id, 2)
        second = await add(client, group_id, 1)
        assert second["run_cursor"] and second["event_cursor"]
        async with client.stream(
            "GET", f"/v1/tasks/groups/{group_id}/runs", params={"last_event_id": second["run_cursor"]}
        ) as response:
            runs = await read_sse(response)
        assert [payload["run"]["run_id"] for _, payload in runs] == second["run_ids"]
        emu.state.advance()
        with anyio.fail_after(5):
            async with client.stream(
                "GET", f"/v1/tasks/groups/{group_id}/events", params={"last_event_id": second["event_cursor"]}
            ) as response:
                events = await read_sse(response)
    ended = {payload["run"]["run_id"] for kind, payload in events if kind == "task_run.state"}
    assert ended == set(first["run_ids"] + second["run_ids"])
    assert all(payload["event_id"] for _, payload in events)
    assert events[-1][0] == "task_group_status" and events[-1][1]["status"]["is_active"] is False


async def test_group_events_follow_runs_live_and_close_when_none_is_active() -> None:
    async with running(frozen=True) as (emu, client):
        group_id = await new_group(client)
        run_ids = (await add(client, group_id, 2))["run_ids"]
        seen: list[str] = []
        with anyio.fail_after(5):
            async with client.stream("GET", f"/v1/tasks/groups/{group_id}/events") as response:
                async for sse in httpx2.EventSource(response):
                    seen.append(sse.event)
                    if len(seen) == 1:
                        for run_id in run_ids:
                            emu.state.finish(run_id)
    assert seen.count("task_run.state") == 2 and seen[-1] == "task_group_status"


async def test_group_events_stop_at_the_timeout_while_runs_are_active() -> None:
    clock = ManualClock()
    async with running(clock=clock, frozen=True) as (_, client):
        group_id = await new_group(client)
        await add(client, group_id, 1)
        events: list[tuple[str, dict[str, Any]]] = []

        async def read() -> None:
            async with client.stream("GET", f"/v1/tasks/groups/{group_id}/events", params={"timeout": 20}) as response:
                events.extend(await read_sse(response))

        with anyio.fail_after(5):
            async with anyio.create_task_group() as tg:
                tg.start_soon(read)
                await clock.wait_for_sleepers()
                clock.advance(20)
    assert [kind for kind, _ in events] == ["task_group_status"]


async def test_group_runs_stream_filters_by_status_and_includes_inputs_and_outputs_on_request() -> None:
    async with running(frozen=True) as (emu, client):
        group_id = await new_group(client)
        run_ids = (await add(client, group_id, 3))["run_ids"]
        emu.state.finish(run_ids[1])
        params = {"status": "completed", "include_input": "true", "include_output": "true"}
        async with client.stream("GET", f"/v1/tasks/groups/{group_id}/runs", params=params) as response:
            completed = await read_sse(response)
        async with client.stream("GET", f"/v1/tasks/groups/{group_id}/runs") as response:
            bare = await read_sse(response)
    assert [payload["run"]["run_id"] for _, payload in completed] == [run_ids[1]]
    assert completed[0][1]["input"]["input"] == "question 1" and completed[0][1]["output"] is not None
    assert len(bare) == 3 and all(p["input"] is None and p["output"] is None for _, p in bare)


async def test_group_validation_errors_use_the_fastapi_shape() -> None:
    async with running(frozen=True) as (_, client):
        group_id = await new_group(client)
        too_many = {"inputs": [{"input": "q", "processor": "lite"}] * 1001}
        response = await client.post(f"/v1/tasks/groups/{group_id}/runs", json=too_many)
        assert response.status_code == 422
        detail = body(response)["detail"]
        assert detail[0]["loc"][:2] == ["body", "inputs"] and "1000" in detail[0]["msg"]
        bad_meta = await client.post("/v1/tasks/groups", json={"metadata": {"k" * 17: "v"}})
        assert bad_meta.status_code == 422 and body(bad_meta)["detail"][0]["loc"] == ["body", "metadata"]
        bad_query = await client.post(
            f"/v1/tasks/groups/{group_id}/runs", params={"refresh_status": "maybe"}, json={"inputs": []}
        )
        assert body(bad_query)["detail"][0]["loc"] == ["query", "refresh_status"]
        broken = await client.post(f"/v1/tasks/groups/{group_id}/runs", content=b"[")
        assert broken.status_code == 422 and "detail" in body(broken)


async def test_an_unknown_group_is_404_and_a_run_of_another_group_is_404() -> None:
    async with running(frozen=True) as (_, client):
        assert_api_error(await client.get("/v1/tasks/groups/tgrp_missing"), 404, "TaskGroup")
        assert_api_error(await client.get("/v1/tasks/groups/tgrp_missing/events"), 404)
        one, other = await new_group(client), await new_group(client)
        run_id = (await add(client, one, 1))["run_ids"][0]
        assert_api_error(await client.get(f"/v1/tasks/groups/{other}/runs/{run_id}"), 404)


async def test_adding_runs_reserves_credit_for_the_whole_batch_up_front() -> None:
    async with running(frozen=True, credit_usd=0.01) as (emu, client):
        group_id = await new_group(client)
        inputs = [{"input": f"q{i}", "processor": "lite"} for i in range(3)]
        response = await client.post(f"/v1/tasks/groups/{group_id}/runs", json={"inputs": inputs})
        assert_api_error(response, 402)
        assert emu.state.run_count == 0


async def test_cursors_are_opaque_and_a_stream_resumes_after_any_event_id_it_issued() -> None:
    async with running(frozen=True) as (emu, client):
        group_id = await new_group(client)
        run_ids = (await add(client, group_id, 3))["run_ids"]
        for run_id in run_ids:
            emu.state.finish(run_id)
        async with client.stream("GET", f"/v1/tasks/groups/{group_id}/events") as response:
            events = await read_sse(response)
        async with client.stream("GET", f"/v1beta/tasks/groups/{group_id}/runs") as response:
            runs = await read_sse(response)
        ids = [payload["event_id"] for _, payload in events]
        assert not any(event_id.isdigit() for event_id in ids)
        for index, event_id in enumerate(ids):
            async with client.stream(
                "GET", f"/v1/tasks/groups/{group_id}/events", params={"last_event_id": event_id}
            ) as response:
                assert [p["event_id"] for _, p in await read_sse(response)] == ids[index + 1 :]
        # The header an EventSource sends on reconnect works as well as the query parameter.
        second_run = runs[1][1]["event_id"]
        async with client.stream(
            "GET", f"/v1/tasks/groups/{group_id}/runs", headers={"last-event-id": second_run}
        ) as response:
            assert [p["run"]["run_id"] for _, p in await read_sse(response)] == run_ids[2:]


@pytest.mark.parametrize("stream", ["events", "runs"])
async def test_a_last_event_id_the_stream_never_issued_is_422_in_the_fastapi_shape(stream: str) -> None:
    async with running(frozen=True) as (_, client):
        group_id = await new_group(client)
        added = await add(client, group_id, 1)
        await add(client, group_id, 1)
        foreign = {"events": added["run_ids"][0], "runs": "42"}[stream]
        response = await client.get(f"/v1/tasks/groups/{group_id}/{stream}", params={"last_event_id": foreign})
        assert response.status_code == 422
        item = body(response)["detail"][0]
        assert item["loc"] == ["query", "last_event_id"] and foreign in item["msg"]
        # A cursor of the other stream is foreign too.
        other = await add(client, group_id, 1)
        wrong = other["run_cursor"] if stream == "events" else other["event_cursor"]
        crossed = await client.get(f"/v1/tasks/groups/{group_id}/{stream}", params={"last_event_id": wrong})
        assert crossed.status_code == 422
