"""Task Run endpoints of the emulator, over real loopback HTTP."""

from __future__ import annotations

import re
from typing import Any

import anyio
import pytest

from parallel_mcp.emulator.state import RunRecord
from parallel_mcp.processors import PROCESSORS
from tests.emulator.conftest import API_KEY, assert_api_error, body, create, running

pytestmark = [pytest.mark.anyio, pytest.mark.virtual_time]

RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")
SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"capital": {"type": "string", "description": "The capital city"}},
    "required": ["capital"],
    "additionalProperties": False,
}


async def wait_for_poller(run: RunRecord) -> None:
    """Until a `/result` long-poll is parked on `run`."""
    while run.pollers == 0:
        await run.changed.snapshot().wait()


async def test_create_returns_a_queued_run_with_ids_and_timestamps() -> None:
    async with running(frozen=True) as (emu, client):
        run = await create(client, metadata={"team": "a", "n": 3})
    assert re.fullmatch(r"trun_[0-9a-f]{32}", run["run_id"])
    assert run["interaction_id"] and run["interaction_id"] != run["run_id"]
    assert run["status"] == "queued" and run["is_active"] is True
    assert run["processor"] == "lite" and run["metadata"] == {"team": "a", "n": 3}
    assert RFC3339.match(run["created_at"]) and RFC3339.match(run["modified_at"])
    assert emu.state.run_count == 1


async def test_a_missing_api_key_is_401_in_the_error_shape() -> None:
    async with running() as (_, client):
        response = await client.post(
            "/v1/tasks/runs", json={"input": "x", "processor": "lite"}, headers={"x-api-key": ""}
        )
        assert_api_error(response, 401, "x-api-key")
        other = await client.get("/v1/tasks/runs/trun_x", headers={"x-api-key": API_KEY + "-wrong"})
        assert_api_error(other, 401)


async def test_any_non_empty_key_is_accepted_when_no_key_is_configured() -> None:
    async with running(api_key=None, frozen=True) as (_, client):
        response = await client.post(
            "/v1/tasks/runs", json={"input": "x", "processor": "lite"}, headers={"x-api-key": "anything"}
        )
        assert response.status_code == 202


async def test_an_unknown_processor_is_403_and_every_documented_tier_is_accepted() -> None:
    async with running(frozen=True) as (emu, client):
        response = await client.post("/v1/tasks/runs", json={"input": "x", "processor": "turbo"})
        assert_api_error(response, 403, "processor", "turbo")
        for name in PROCESSORS:
            await create(client, processor=name)
        assert emu.state.run_count == len(PROCESSORS) == 18


@pytest.mark.parametrize(
    ("fields", "needle"),
    [
        ({"metadata": {"a_key_that_is_far_too_long": "v"}}, "metadata"),
        ({"source_policy": {"include_domains": [f"d{i}.com" for i in range(201)]}}, "source_policy"),
        ({"task_spec": {"output_schema": {"type": "json", "json_schema": {"type": "string"}}}}, "task_spec"),
        ({"mcp_servers": [{"name": f"s{i}", "url": "http://127.0.0.1:9/mcp"} for i in range(11)]}, "mcp_servers"),
        ({"advanced_settings": {"location": "france"}}, "advanced_settings.location"),
        ({"input": ""}, "input"),
        ({"surprise": 1}, "surprise"),
    ],
)
async def test_an_invalid_body_is_422_with_a_message_naming_the_field(fields: dict[str, Any], needle: str) -> None:
    async with running(frozen=True) as (emu, client):
        response = await client.post("/v1/tasks/runs", json={"input": "q", "processor": "lite", **fields})
        error = assert_api_error(response, 422, needle)
        assert emu.state.run_count == 0
    assert error["detail"]["errors"]


async def test_invalid_json_and_a_non_object_body_are_422_not_500() -> None:
    async with running() as (_, client):
        broken = await client.post("/v1/tasks/runs", content=b"{not json", headers={"content-type": "application/json"})
        assert_api_error(broken, 422, "JSON")
        listed = await client.post("/v1/tasks/runs", json=[1, 2])
        assert_api_error(listed, 422)


@pytest.mark.parametrize(
    "raw",
    [
        b'{"input": NaN, "processor": "lite"}',
        b'{"input": {"x": Infinity}, "processor": "lite"}',
        b'{"input": "q", "processor": "lite", "metadata": {"a": 1e400}}',
    ],
)
async def test_non_finite_numbers_are_422_rather_than_stored(raw: bytes) -> None:
    async with running(frozen=True) as (emu, client):
        response = await client.post("/v1/tasks/runs", content=raw, headers={"content-type": "application/json"})
        assert_api_error(response, 422, "JSON")
        assert emu.state.run_count == 0


async def test_every_error_gets_its_own_ref_id() -> None:
    async with running() as (_, client):
        refs = {assert_api_error(await client.get(f"/v1/tasks/runs/trun_{i}"), 404)["ref_id"] for i in range(5)}
    assert len(refs) == 5


async def test_credit_runs_out_with_402_once_reservations_exceed_it() -> None:
    # lite costs $0.005 per run: two fit in a cent, the third does not.
    async with running(frozen=True, credit_usd=0.01) as (emu, client):
        await create(client)
        await create(client)
        response = await client.post("/v1/tasks/runs", json={"input": "q", "processor": "lite"})
        assert_api_error(response, 402, "credit")
        assert emu.state.run_count == 2


async def test_creates_above_the_rate_limit_get_429_with_retry_after() -> None:
    async with running(frozen=True, rate_limit_per_minute=2) as (emu, client):
        await create(client)
        await create(client)
        response = await client.post("/v1/tasks/runs", json={"input": "q", "processor": "lite"})
        assert_api_error(response, 429)
        assert 1 <= int(response.headers["retry-after"]) <= 60
        # Reads do not count against the limit.
        assert (await client.get(f"/v1/tasks/runs/{next(iter(emu.state.runs))}")).status_code == 200


async def test_result_long_poll_answers_as_soon_as_the_run_completes() -> None:
    async with running(frozen=True) as (emu, client):
        run_id = (await create(client))["run_id"]
        record = emu.state.runs[run_id]
        answers: list[Any] = []
        finished_at = 0.0

        async def poll() -> None:
            answers.append(await client.get(f"/v1/tasks/runs/{run_id}/result", params={"timeout": 30}))

        async with anyio.create_task_group() as tg:
            tg.start_soon(poll)
            with anyio.fail_after(5):
                await wait_for_poller(record)
            finished_at = anyio.current_time()
            emu.state.finish(run_id)
        waited = anyio.current_time() - finished_at
    response = answers[0]
    assert response.status_code == 200, response.text
    data = body(response)
    assert data["run"]["status"] == "completed" and data["run"]["is_active"] is False
    assert data["output"]["type"] in {"json", "text"}
    assert waited < 0.5


async def test_result_is_408_in_the_error_shape_while_the_run_is_still_active() -> None:
    async with running(frozen=True) as (_, client):
        run_id = (await create(client))["run_id"]
        with anyio.fail_after(5):
            response = await client.get(f"/v1/tasks/runs/{run_id}/result", params={"timeout": 0})
        assert_api_error(response, 408, "still active")


async def test_result_is_404_for_a_failed_run_and_for_an_unknown_run() -> None:
    async with running(frozen=True) as (emu, client):
        run_id = (await create(client))["run_id"]
        emu.state.fail(run_id, "upstream exploded")
        failed = await client.get(f"/v1/tasks/runs/{run_id}/result", params={"timeout": 1})
        assert_api_error(failed, 404, "upstream exploded")
        run = body(await client.get(f"/v1/tasks/runs/{run_id}"))
        assert run["status"] == "failed" and run["error"]["message"] == "upstream exploded"
        assert run["error"]["ref_id"]
        unknown = await client.get("/v1/tasks/runs/trun_00000000000000000000000000000000/result")
        assert_api_error(unknown, 404)
        assert_api_error(await client.get("/v1/tasks/runs/nope/input"), 404)


async def test_an_instant_run_completes_without_anyone_moving_it() -> None:
    async with running(instant=True) as (emu, client):
        run_id = (await create(client, task_spec={"output_schema": {"type": "json", "json_schema": SCHEMA}}))["run_id"]
        with anyio.fail_after(5):
            response = await client.get(f"/v1/tasks/runs/{run_id}/result", params={"timeout": 5})
        assert response.status_code == 200
        output = body(response)["output"]
        assert output["type"] == "json" and "capital" in output["content"]
        assert emu.state.runs[run_id].status == "completed"


async def test_frozen_runs_move_only_when_advanced() -> None:
    async with running(frozen=True) as (emu, client):
        run_id = (await create(client))["run_id"]
        assert body(await client.get(f"/v1/tasks/runs/{run_id}"))["status"] == "queued"
        emu.state.advance(run_id, 0.5)
        assert body(await client.get(f"/v1/tasks/runs/{run_id}"))["status"] == "running"
        emu.state.advance()
        assert body(await client.get(f"/v1/tasks/runs/{run_id}"))["status"] == "completed"


async def test_input_echo_never_returns_mcp_server_headers() -> None:
    server = {"name": "tools", "url": "http://127.0.0.1:9/mcp", "headers": {"Authorization": "Bearer s3cret"}}
    async with running(frozen=True) as (_, client):
        run_id = (await create(client, mcp_servers=[server], metadata={"k": "v"}))["run_id"]
        response = await client.get(f"/v1/tasks/runs/{run_id}/input")
    assert response.status_code == 200
    echoed = body(response)
    assert "s3cret" not in response.text
    assert echoed["mcp_servers"][0]["headers"] is None
    assert echoed["mcp_servers"][0]["name"] == "tools"
    assert echoed["input"] == "What is the capital of France?" and echoed["metadata"] == {"k": "v"}


async def test_previous_interaction_id_chains_and_an_unknown_one_is_422() -> None:
    async with running(frozen=True) as (_, client):
        first = await create(client)
        second = await create(client, previous_interaction_id=first["interaction_id"])
        assert second["run_id"] != first["run_id"]
        response = await client.post(
            "/v1/tasks/runs", json={"input": "q", "processor": "lite", "previous_interaction_id": "tint_unknown"}
        )
        assert_api_error(response, 422, "previous_interaction_id")


async def test_soft_schema_problems_become_spec_validation_warnings_on_the_run() -> None:
    loose = {"type": "object", "properties": {"capital": {"type": "string"}}}
    async with running(frozen=True) as (_, client):
        run = await create(client, task_spec={"output_schema": {"type": "json", "json_schema": loose}})
    kinds = {warning["type"] for warning in run["warnings"]}
    assert kinds == {"spec_validation_warning"}
    assert any("additionalProperties" in warning["message"] for warning in run["warnings"])


async def test_an_unreachable_mcp_server_adds_a_warning_and_the_run_still_completes() -> None:
    server = {"name": "gone", "url": "http://127.0.0.1:9/mcp"}
    async with running(instant=True, mcp_timeout=2) as (_, client):
        run_id = (await create(client, mcp_servers=[server]))["run_id"]
        with anyio.fail_after(10):
            response = await client.get(f"/v1/tasks/runs/{run_id}/result", params={"timeout": 10})
    assert response.status_code == 200
    data = body(response)
    assert data["output"]["mcp_tool_calls"] is None
    assert any("gone" in warning["message"] for warning in data["run"]["warnings"])


async def test_the_request_log_records_method_path_and_status() -> None:
    async with running(frozen=True) as (emu, client):
        await create(client)
        await client.get("/v1/tasks/runs/unknown")
    logged = [(r.method, r.path, r.status) for r in emu.state.request_log]
    assert logged == [("POST", "/v1/tasks/runs", 202), ("GET", "/v1/tasks/runs/unknown", 404)]


async def test_unknown_paths_and_methods_answer_in_the_error_shape() -> None:
    async with running() as (_, client):
        assert_api_error(await client.get("/v1/nothing/here"), 404)
        assert_api_error(await client.delete("/v1/tasks/runs"), 405)


async def test_runs_and_groups_belong_to_the_key_that_created_them() -> None:
    async with running(api_key=None, instant=True) as (_emu, client):
        run = await create(client)
        group = body(await client.post("/v1/tasks/groups", json={}))
        other = {"x-api-key": "someone-else"}
        for path in (
            f"/v1/tasks/runs/{run['run_id']}",
            f"/v1/tasks/runs/{run['run_id']}/input",
            f"/v1/tasks/runs/{run['run_id']}/result",
            f"/v1/tasks/groups/{group['taskgroup_id']}",
        ):
            assert (await client.get(path, headers=other)).status_code == 404, path
            assert (await client.get(path)).status_code == 200, path
