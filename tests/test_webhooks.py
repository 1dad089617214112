"""Completions pushed by Parallel's signed webhooks: waiting calls wake without polling; bad deliveries change nothing.

The server runs over real loopback HTTP with a public URL and a webhook secret; the emulator upstream
signs and delivers `task_run.status` events to the server's `/webhooks/parallel`, as Parallel does.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from mcp import Client
from pydantic import SecretStr

from parallel_mcp.client import AsyncTaskClient
from parallel_mcp.config import Settings
from parallel_mcp.emulator.config import EmulatorConfig
from parallel_mcp.emulator.faults import Fault
from parallel_mcp.emulator.runner import RunningEmulator, serve_emulator
from parallel_mcp.http_app import build_http_app
from parallel_mcp.server import create_server
from parallel_mcp.serving import base_url, listening_socket, serve_asgi
from parallel_mcp.webhooks import WEBHOOK_PATH, sign_webhook
from tests.support import API_KEY, Sleeps, structured, text_of, until

pytestmark = [pytest.mark.anyio, pytest.mark.virtual_time]

SECRET = "whsec-test-0123456789"


@dataclass
class Pushed:
    """A server receiving webhooks, an MCP client of it, and the emulator that delivers them."""

    mcp: Client
    emulator: RunningEmulator
    url: str

    def gets_since(self, start: int) -> list[str]:
        return [r.path for r in self.emulator.state.request_log[start:] if r.method == "GET"]


@asynccontextmanager
async def pushed_server(tmp_path: Path, config: EmulatorConfig | None = None) -> AsyncGenerator[Pushed]:
    sock = listening_socket()
    url = base_url(sock)
    config = (config or EmulatorConfig()).model_copy(update={"api_key": API_KEY, "webhook_secret": SECRET})
    settings = Settings(
        transport="streamable-http",
        api_key=SecretStr(API_KEY),
        public_url=url,
        webhook_secret=SecretStr(SECRET),
        journal=str(tmp_path / "journal.sqlite3"),
        emulator_speed=config.speed,
    )
    async with (
        serve_emulator(config) as emulator,
        AsyncTaskClient(api_key=API_KEY, base_url=emulator.base_url, sleep=Sleeps()) as client,
    ):
        server = create_server(settings, client=client, emulated=True)
        async with serve_asgi(build_http_app(server, settings), sock=sock), Client(f"{url}/mcp") as mcp:
            yield Pushed(mcp=mcp, emulator=emulator, url=url)


async def test_a_waiting_create_wakes_on_the_webhook_and_reads_upstream_once(tmp_path: Path) -> None:
    async with pushed_server(tmp_path, EmulatorConfig(speed=400)) as pushed:
        start = len(pushed.emulator.state.request_log)
        with anyio.fail_after(20):
            result = await pushed.mcp.call_tool(
                "create_task_run", {"input": "q", "processor": "lite", "wait_seconds": 30}
            )
        view = structured(result)
        assert view["status"] == "completed" and view["output"] is not None
        assert pushed.gets_since(start) == [f"/v1/tasks/runs/{view['run_id']}/result"]  # no stream, no long-poll
        assert pushed.emulator.state.webhook_results == [(view["run_id"], True)]


async def test_a_waiting_get_wakes_on_the_webhook(tmp_path: Path) -> None:
    async with pushed_server(tmp_path, EmulatorConfig(frozen=True)) as pushed:
        created = structured(await pushed.mcp.call_tool("create_task_run", {"input": "q", "wait_seconds": 0}))
        run_id = created["run_id"]
        start = len(pushed.emulator.state.request_log)

        async def finish_once_parked(progress: float, total: float | None, message: str | None) -> None:
            # The first progress comes from a call parked on the store's events: nothing polls upstream.
            pushed.emulator.state.finish(run_id)

        with anyio.fail_after(10):
            arguments = {"run_id": run_id, "wait_seconds": 45}
            result = await pushed.mcp.call_tool("get_task_run", arguments, progress_callback=finish_once_parked)
        assert structured(result)["status"] == "completed"
        assert pushed.gets_since(start) == [f"/v1/tasks/runs/{run_id}/result"]


def delivery(
    run: dict[str, Any], *, webhook_id: str, timestamp: int, secret: str = SECRET
) -> tuple[dict[str, str], bytes]:
    body = json.dumps({"type": "task_run.status", "timestamp": "2026-11-30T00:00:00Z", "data": run}).encode()
    headers = {
        "content-type": "application/json",
        "webhook-id": webhook_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign_webhook(secret, webhook_id, timestamp, body),
    }
    return headers, body


async def test_tampered_stale_unsigned_and_replayed_deliveries_get_4xx_or_change_nothing(tmp_path: Path) -> None:
    async with pushed_server(tmp_path, EmulatorConfig(frozen=True)) as pushed:
        created = structured(await pushed.mcp.call_tool("create_task_run", {"input": "q", "wait_seconds": 0}))
        run = pushed.emulator.state.runs[created["run_id"]].run_json() | {"status": "completed", "is_active": False}
        now = int(time.time())
        hook = pushed.url + WEBHOOK_PATH
        async with httpx2.AsyncClient() as http:
            headers, body = delivery(run, webhook_id="whevent_1", timestamp=now)
            tampered = await http.post(hook, content=body.replace(b"completed", b"failed"), headers=headers)
            stale_headers, stale_body = delivery(run, webhook_id="whevent_2", timestamp=now - 3600)
            stale = await http.post(hook, content=stale_body, headers=stale_headers)
            unsigned = await http.post(hook, content=body, headers={"content-type": "application/json"})
            wrong_key_headers, wrong_key_body = delivery(run, webhook_id="whevent_3", timestamp=now, secret="other")
            wrong_key = await http.post(hook, content=wrong_key_body, headers=wrong_key_headers)
            listed = structured(await pushed.mcp.call_tool("list_task_runs", {}))
            assert [r["status"] for r in listed["runs"]] == ["queued"]  # nothing changed
            first = await http.post(hook, content=body, headers=headers)
            replayed = await http.post(hook, content=body, headers=headers)
            listed = structured(await pushed.mcp.call_tool("list_task_runs", {}))
    assert [r.status_code for r in (tampered, stale, unsigned, wrong_key)] == [401, 401, 401, 401]
    assert first.status_code == 200 and replayed.status_code == 200 and replayed.json() == {"duplicate": True}
    assert [r["status"] for r in listed["runs"]] == ["completed"]


async def test_the_webhook_of_a_run_whose_create_answer_was_lost_reconciles_it(tmp_path: Path) -> None:
    lost = Fault(kind="drop_response", method="POST", path="/v1/tasks/runs", times=1)
    async with pushed_server(tmp_path, EmulatorConfig(frozen=True, faults=[lost])) as pushed:
        arguments = {"input": "q", "idempotency_key": "k-lost", "wait_seconds": 0}
        first = await pushed.mcp.call_tool("create_task_run", arguments)
        assert first.is_error and pushed.emulator.state.run_count == 1
        (run_id,) = pushed.emulator.state.runs
        pushed.emulator.state.finish(run_id)  # its webhook arrives, carrying the intent's tag
        await until(lambda: bool(pushed.emulator.state.webhook_results))
        with anyio.fail_after(10):
            again = await pushed.mcp.call_tool("create_task_run", arguments)
            listed = structured(await pushed.mcp.call_tool("list_task_runs", {}))
        assert pushed.emulator.state.run_count == 1
    assert structured(again)["run_id"] == run_id and "nothing new was billed" in text_of(again)
    assert [r["run_id"] for r in listed["runs"]] == [run_id]
