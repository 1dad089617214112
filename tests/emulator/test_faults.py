"""Scripted faults, the config file, and webhook delivery of the emulator."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from parallel_mcp.emulator import ManualClock
from parallel_mcp.emulator.config import EmulatorConfig
from parallel_mcp.emulator.faults import Fault
from parallel_mcp.emulator.webhooks import verify_webhook
from parallel_mcp.serving import serve_asgi
from tests.emulator.conftest import assert_api_error, beta_headers, body, create, iter_sse, running

pytestmark = [pytest.mark.anyio, pytest.mark.virtual_time]

QUESTION = {"input": "q", "processor": "lite"}


async def test_a_status_fault_answers_n_times_with_retry_after_then_stops() -> None:
    async with running(frozen=True) as (emu, client):
        fault = emu.state.faults.add(
            Fault(kind="status", method="POST", path="/v1/tasks/runs", status=503, retry_after=2, times=2)
        )
        for _ in range(2):
            response = await client.post("/v1/tasks/runs", json=QUESTION)
            assert_api_error(response, 503)
            assert response.headers["retry-after"] == "2"
        assert (await client.post("/v1/tasks/runs", json=QUESTION)).status_code == 202
        assert fault.fired == 2 and fault.exhausted
        assert [r.status for r in emu.state.request_log] == [503, 503, 202]


async def test_a_latency_fault_holds_matching_requests() -> None:
    async with running(frozen=True) as (emu, client):
        emu.state.faults.add(Fault(kind="latency", method="GET", path="/v1/tasks/runs/*", delay=0.3))
        started = anyio.current_time()
        await client.get("/v1/tasks/runs/trun_x")
        assert anyio.current_time() - started >= 0.3


async def test_a_drop_fault_closes_the_connection_without_a_response() -> None:
    async with running(frozen=True) as (emu, client):
        fault = emu.state.faults.add(Fault(kind="drop", path="/v1/tasks/runs/*", times=1))
        with pytest.raises(httpx2.TransportError):
            await client.get("/v1/tasks/runs/trun_x")
        assert fault.fired == 1
        assert (await client.get("/v1/tasks/runs/trun_x")).status_code == 404
        assert emu.state.request_log[0].status is None


async def test_an_sse_cut_fault_ends_the_stream_after_n_events() -> None:
    async with running(frozen=True) as (emu, client):
        run_id = (await create(client, processor="pro"))["run_id"]
        emu.state.advance(run_id, 0.9)
        fault = emu.state.faults.add(Fault(kind="sse_cut", path="*/events", after_events=2))
        received: list[str] = []
        with anyio.fail_after(5):
            try:
                async with client.stream("GET", f"/v1/tasks/runs/{run_id}/events") as response:
                    async for kind, _ in iter_sse(response):
                        received.append(kind)
            except httpx2.TransportError:
                pass  # the cut closes the socket mid-body
        assert len(received) == 2 and fault.fired == 1


async def test_fail_and_hang_faults_match_runs_by_input_or_processor() -> None:
    clock = ManualClock()
    async with running(clock=clock) as (emu, client):
        emu.state.faults.add(Fault(kind="fail_run", match_input="explode", message="upstream exploded"))
        hang = emu.state.faults.add(Fault(kind="hang_run", match_processor="base*"))
        failing = (await create(client, input="please explode"))["run_id"]
        hanging = (await create(client, processor="base-fast"))["run_id"]
        fine = (await create(client))["run_id"]
        with anyio.fail_after(5):
            await clock.wait_for_sleepers(3)
            clock.advance(3600)
            result = await client.get(f"/v1/tasks/runs/{failing}/result", params={"timeout": 5})
            assert_api_error(result, 404, "upstream exploded")
            assert (await client.get(f"/v1/tasks/runs/{fine}/result", params={"timeout": 5})).status_code == 200
            timed_out = await client.get(f"/v1/tasks/runs/{hanging}/result", params={"timeout": 0})
        assert_api_error(timed_out, 408)
        assert body(await client.get(f"/v1/tasks/runs/{hanging}"))["status"] == "running"
        assert hang.fired == 1
        emu.state.finish(hanging)
        assert body(await client.get(f"/v1/tasks/runs/{hanging}"))["status"] == "completed"


def test_faults_and_settings_load_from_a_toml_or_json_file(tmp_path: Path) -> None:
    toml = tmp_path / "emulator.toml"
    toml.write_text(
        'speed = 50\ncredit_usd = 1.5\n[[faults]]\nkind = "status"\npath = "/v1/tasks/runs"\nstatus = 429\n'
        'retry_after = 3\ntimes = 1\n[[faults]]\nkind = "hang_run"\nmatch_processor = "ultra"\n'
    )
    config = EmulatorConfig.from_file(toml, api_key="k")
    assert config.speed == 50 and config.credit_usd == 1.5 and config.api_key == "k"
    assert [f.kind for f in config.faults] == ["status", "hang_run"] and config.faults[0].retry_after == 3
    just_faults = tmp_path / "faults.json"
    just_faults.write_text(json.dumps([{"kind": "drop", "path": "/v1/*"}]))
    assert EmulatorConfig.from_file(just_faults).faults[0].kind == "drop"


async def test_a_fault_from_the_config_is_in_force_from_the_start() -> None:
    config_faults = [Fault(kind="status", path="/v1/tasks/runs", status=429, retry_after=1, times=1)]
    async with running(faults=config_faults, frozen=True) as (_, client):
        assert_api_error(await client.post("/v1/tasks/runs", json=QUESTION), 429)
        assert (await client.post("/v1/tasks/runs", json=QUESTION)).status_code == 202


async def test_a_webhook_is_posted_on_completion_with_a_signature_that_verifies() -> None:
    received: list[tuple[dict[str, str], bytes]] = []
    arrived = anyio.Event()

    async def hook(request: Request) -> Response:
        received.append((dict(request.headers), await request.body()))
        arrived.set()
        return Response(status_code=204)

    receiver = Starlette(routes=[Route("/hook", hook, methods=["POST"])])
    async with serve_asgi(receiver) as hook_url, running(frozen=True, webhook_secret="s3cret") as (emu, client):
        webhook = {"url": f"{hook_url}/hook", "event_types": ["task_run.status"]}
        run_id = (await create(client, webhook=webhook))["run_id"]
        emu.state.finish(run_id)
        with anyio.fail_after(5):
            await arrived.wait()
    headers, raw = received[0]
    assert verify_webhook("s3cret", headers, raw)
    assert not verify_webhook("other", headers, raw)
    payload: dict[str, Any] = json.loads(raw)
    assert payload["type"] == "task_run.status" and payload["timestamp"]
    assert payload["data"]["run_id"] == run_id and payload["data"]["status"] == "completed"
    assert "output" not in payload["data"]


async def test_a_webhook_without_event_types_still_gets_the_status_event() -> None:
    arrived = anyio.Event()

    async def hook(request: Request) -> Response:
        arrived.set()
        return Response(status_code=204)

    receiver = Starlette(routes=[Route("/hook", hook, methods=["POST"])])
    async with serve_asgi(receiver) as hook_url, running(frozen=True, webhook_secret="s3cret") as (emu, client):
        run_id = (await create(client, webhook={"url": f"{hook_url}/hook"}))["run_id"]
        emu.state.finish(run_id)
        with anyio.fail_after(5):
            await arrived.wait()
        webhook = emu.state.runs[run_id].input.webhook
        assert webhook is not None and webhook.event_types == []


async def test_a_create_whose_client_leaves_before_the_answer_still_creates_the_run_quietly(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with running(frozen=True) as (emu, client):
        emu.state.faults.add(Fault(kind="latency", method="POST", path="/v1/tasks/runs", delay=0.3, times=1))
        with anyio.fail_after(5):
            with pytest.raises(httpx2.ReadTimeout):
                await client.post("/v1/tasks/runs", json=QUESTION, timeout=0.05)
            await emu.state.wait_for_requests(1)
        assert emu.state.run_count == 1
    assert not [record for record in caplog.records if record.levelno >= logging.ERROR]


async def test_drop_response_creates_the_run_then_drops_the_connection_without_the_202() -> None:
    received: list[dict[str, Any]] = []
    arrived = anyio.Event()

    async def hook(request: Request) -> Response:
        received.append(json.loads(await request.body()))
        arrived.set()
        return Response(status_code=204)

    receiver = Starlette(routes=[Route("/hook", hook, methods=["POST"])])
    config: dict[str, Any] = {"frozen": True, "webhook_secret": "s3cret", "credit_usd": 1.0}
    async with serve_asgi(receiver) as hook_url, running(**config) as (emu, client):
        fault = emu.state.faults.add(Fault(kind="drop_response", method="POST", path="/v1/tasks/runs", times=1))
        payload = {**QUESTION, "webhook": {"url": f"{hook_url}/hook"}}
        with anyio.fail_after(5), pytest.raises(httpx2.RemoteProtocolError):
            await client.post("/v1/tasks/runs", json=payload, headers=beta_headers(payload))
        assert fault.fired == 1 and emu.state.run_count == 1
        assert [(r.method, r.status) for r in emu.state.request_log] == [("POST", None)]
        (run_id,) = emu.state.runs
        assert emu.state.credit_remaining == pytest.approx(1.0 - 0.005)
        assert body(await client.get(f"/v1/tasks/runs/{run_id}"))["status"] == "queued"
        emu.state.finish(run_id)
        with anyio.fail_after(5):
            await arrived.wait()
    assert received[0]["data"]["run_id"] == run_id


@pytest.mark.parametrize("prefix", ["/v1", "/v1beta"])
async def test_drop_response_on_group_create_and_add_runs_keeps_what_was_done(prefix: str) -> None:
    async with running(frozen=True) as (emu, client):
        emu.state.faults.add(Fault(kind="drop_response", method="POST", path=f"{prefix}/tasks/groups", times=1))
        with anyio.fail_after(5), pytest.raises(httpx2.RemoteProtocolError):
            await client.post(f"{prefix}/tasks/groups", json={"metadata": {"batch": "lost"}})
        (group_id,) = emu.state.groups
        assert emu.state.groups[group_id].metadata == {"batch": "lost"}
        emu.state.faults.add(Fault(kind="drop_response", method="POST", path=f"{prefix}/tasks/groups/*/runs", times=1))
        with anyio.fail_after(5), pytest.raises(httpx2.RemoteProtocolError):
            await client.post(f"{prefix}/tasks/groups/{group_id}/runs", json={"inputs": [QUESTION, QUESTION]})
        assert emu.state.run_count == 2 and len(emu.state.groups[group_id].run_ids) == 2
        group = body(await client.get(f"{prefix}/tasks/groups/{group_id}"))
        assert group["status"]["num_task_runs"] == 2


@pytest.mark.parametrize("prefix", ["/v1", "/v1beta"])
@pytest.mark.parametrize("stream", ["events", "runs"])
async def test_an_sse_cut_closes_a_group_stream_abruptly_after_n_events(prefix: str, stream: str) -> None:
    async with running(frozen=True) as (emu, client):
        group_id = body(await client.post(f"{prefix}/tasks/groups", json={}))["taskgroup_id"]
        added = body(await client.post(f"{prefix}/tasks/groups/{group_id}/runs", json={"inputs": [QUESTION] * 3}))
        for run_id in added["run_ids"][:2]:
            emu.state.finish(run_id)
        fault = emu.state.faults.add(
            Fault(kind="sse_cut", path=f"{prefix}/tasks/groups/*/{stream}", after_events=2, times=1)
        )
        received: list[str] = []
        with anyio.fail_after(5), pytest.raises(httpx2.RemoteProtocolError):
            async with client.stream("GET", f"{prefix}/tasks/groups/{group_id}/{stream}") as response:
                async for kind, _ in iter_sse(response):
                    received.append(kind)
        assert len(received) == 2 and fault.fired == 1
        # The cut fires once; the next connection gets the whole stream (the events one waits on the last run).
        emu.state.finish(added["run_ids"][2])
        with anyio.fail_after(5):
            async with client.stream("GET", f"{prefix}/tasks/groups/{group_id}/{stream}") as response:
                assert len([kind async for kind, _ in iter_sse(response)]) > 2
