"""A team service: several real `parallel-mcp serve` replicas over one PostgreSQL, one upstream that pushes webhooks.

Any call may land on any replica: a run created on one is read on a second and listed on a third;
identical creates on two replicas at once make one run; a replica killed mid-wait loses nothing; a
webhook delivered to one replica wakes a call waiting on another; PostgreSQL may stop and start.
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import Any

import anyio
import httpx2
import pytest
from mcp import Client
from mcp.types import CallToolResult

from parallel_mcp.emulator.config import EmulatorConfig
from parallel_mcp.emulator.runner import RunningEmulator, serve_emulator
from tests.postgres import TemporaryPostgres
from tests.processes import HttpServer, free_port, http_server, server_env
from tests.support import structured, text_of

pytestmark = pytest.mark.anyio

KEY = "replica-test-key"
SECRET = "replica-webhook-secret"


@dataclass
class Team:
    """Replicas over one database, the emulator upstream, and the database's password (never to be shown)."""

    replicas: list[HttpServer]
    emulator: RunningEmulator
    password: str

    def mcp(self, index: int) -> Client:
        return Client(self.replicas[index].url)


@asynccontextmanager
async def team(postgres_url: str, count: int = 3, config: EmulatorConfig | None = None) -> AsyncGenerator[Team]:
    """`count` replicas; webhooks are delivered to the second one, as a load balancer might route them."""
    config = (config or EmulatorConfig()).model_copy(update={"api_key": KEY, "webhook_secret": SECRET})
    receiver_port = free_port()
    async with serve_emulator(config) as emulator, AsyncExitStack() as stack:
        env = server_env(
            PARALLEL_API_KEY=KEY,
            PARALLEL_BASE_URL=emulator.base_url,
            PARALLEL_MCP_DATABASE_URL=postgres_url,
            PARALLEL_MCP_PUBLIC_URL=f"http://127.0.0.1:{receiver_port}",
            PARALLEL_WEBHOOK_SECRET=SECRET,
        )
        replicas: list[HttpServer] = []
        for index in range(count):
            port = receiver_port if index == 1 else 0
            replicas.append(
                await stack.enter_async_context(
                    http_server("serve", "--transport", "streamable-http", env=env, port=port)
                )
            )
        password = postgres_url.split(":")[2].split("@")[0]
        yield Team(replicas=replicas, emulator=emulator, password=password)


async def call(client: Client, tool: str, arguments: dict[str, Any]) -> CallToolResult:
    return await client.call_tool(tool, arguments)


async def test_a_run_created_on_one_replica_is_read_on_a_second_and_listed_on_a_third(postgres_url: str) -> None:
    async with team(postgres_url, config=EmulatorConfig(speed=400)) as service:
        async with service.mcp(0) as a, service.mcp(1) as b, service.mcp(2) as c:
            with anyio.fail_after(30):
                created = structured(await call(a, "create_task_run", {"input": "q", "wait_seconds": 0}))
                read = structured(await call(b, "get_task_run", {"run_id": created["run_id"], "wait_seconds": 30}))
                listed = structured(await call(c, "list_task_runs", {}))
        assert service.emulator.state.run_count == 1
    assert read["status"] == "completed" and read["output"] is not None
    assert [run["run_id"] for run in listed["runs"]] == [created["run_id"]]
    assert listed["runs"][0]["status"] == "completed"


async def test_identical_creates_on_two_replicas_at_once_make_one_run(postgres_url: str) -> None:
    async with team(postgres_url, count=2, config=EmulatorConfig(frozen=True)) as service:
        async with service.mcp(0) as a, service.mcp(1) as b:
            ids: list[str] = []

            async def create(client: Client, arguments: dict[str, Any]) -> None:
                ids.append(structured(await call(client, "create_task_run", arguments))["run_id"])

            keyed = {"input": "Who founded Acme?", "idempotency_key": "shared-key", "wait_seconds": 0}
            keyless = {"input": "Who runs Acme?", "wait_seconds": 0}
            with anyio.fail_after(30):
                for arguments in (keyed, keyless):
                    async with anyio.create_task_group() as tasks:
                        for client in (a, b, a, b):
                            tasks.start_soon(create, client, arguments)
        assert service.emulator.state.run_count == 2  # one per intent
    assert len(ids) == 8 and len(set(ids)) == 2


async def test_a_replica_killed_mid_wait_loses_nothing_and_the_retry_on_another_finds_the_result(
    postgres_url: str,
) -> None:
    async with team(postgres_url, count=2, config=EmulatorConfig(frozen=True)) as service:
        async with service.mcp(1) as b:
            created = structured(await call(b, "create_task_run", {"input": "q", "wait_seconds": 0}))
            run_id = created["run_id"]
            waiting = anyio.Event()
            async with anyio.create_task_group() as tasks:

                async def parked(progress: float, total: float | None, message: str | None) -> None:
                    waiting.set()

                async def wait_on_a() -> None:
                    async with service.mcp(0) as a:
                        arguments = {"run_id": run_id, "wait_seconds": 45}
                        await a.call_tool("get_task_run", arguments, progress_callback=parked)

                tasks.start_soon(wait_on_a)
                with anyio.fail_after(10):
                    await waiting.wait()  # A's call is waiting for the run
                service.replicas[0].process.kill()  # kill -9 mid-wait
                tasks.cancel_scope.cancel()
            service.emulator.state.finish(run_id)
            with anyio.fail_after(20):
                again = structured(await call(b, "get_task_run", {"run_id": run_id, "wait_seconds": 10}))
                listed = structured(await call(b, "list_task_runs", {}))
        assert service.emulator.state.run_count == 1
    assert again["status"] == "completed" and [r["run_id"] for r in listed["runs"]] == [run_id]


async def test_a_webhook_delivered_to_one_replica_wakes_a_call_waiting_on_another(postgres_url: str) -> None:
    async with team(postgres_url, count=2, config=EmulatorConfig(frozen=True)) as service:
        async with service.mcp(0) as a:
            created = structured(await call(a, "create_task_run", {"input": "q", "wait_seconds": 0}))
            run_id = created["run_id"]
            start = len(service.emulator.state.request_log)

            async def finish_once_parked(progress: float, total: float | None, message: str | None) -> None:
                service.emulator.state.finish(run_id)  # its webhook goes to replica B

            with anyio.fail_after(15):
                arguments = {"run_id": run_id, "wait_seconds": 45}
                result = await a.call_tool("get_task_run", arguments, progress_callback=finish_once_parked)
        delivered = service.emulator.state.webhook_results
        gets = [r.path for r in service.emulator.state.request_log[start:] if r.method == "GET"]
    assert structured(result)["status"] == "completed"
    assert delivered == [(run_id, True)]
    assert gets == [f"/v1/tasks/runs/{run_id}/result"]  # A held no long-poll: B's webhook woke it


async def test_legacy_clients_need_no_sticky_session_across_replicas(postgres_url: str) -> None:
    async with team(postgres_url, count=2, config=EmulatorConfig(instant=True)) as service:
        headers = {"accept": "application/json, text/event-stream", "mcp-protocol-version": "2025-11-25"}
        initialize: dict[str, Any] = {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "initialize",
            "params": {
                "protocolVersion": "2025-11-25",
                "capabilities": {},
                "clientInfo": {"name": "t", "version": "0"},
            },
        }
        listing: dict[str, Any] = {
            "jsonrpc": "2.0",
            "id": 2,
            "method": "tools/call",
            "params": {"name": "list_task_runs", "arguments": {}},
        }
        async with httpx2.AsyncClient(timeout=20) as http:
            opened = await http.post(service.replicas[0].url, json=initialize, headers=headers)
            session = {"mcp-session-id": opened.headers["mcp-session-id"]} if "mcp-session-id" in opened.headers else {}
            answered = await http.post(service.replicas[1].url, json=listing, headers={**headers, **session})
    assert opened.status_code == 200 and answered.status_code == 200
    assert "runs" in answered.text and "error" not in json.loads(_last_data(answered.text))


def _last_data(body: str) -> str:
    """The JSON of a streamable-HTTP answer (an SSE `data:` line, or the plain body)."""
    lines = [line.removeprefix("data: ") for line in body.splitlines() if line.startswith("data: ")]
    return lines[-1] if lines else body


async def test_postgresql_stopped_under_load_fails_calls_clearly_and_they_succeed_once_it_is_back(
    postgres_server: TemporaryPostgres, postgres_url: str
) -> None:
    async with team(postgres_url, count=2, config=EmulatorConfig(instant=True)) as service:
        async with service.mcp(0) as a, service.mcp(1) as b:
            before = structured(await call(a, "create_task_run", {"input": "first", "wait_seconds": 5}))
            await anyio.to_thread.run_sync(postgres_server.stop, "fast")
            during: list[CallToolResult] = []

            async def fails(client: Client, tool: str, arguments: dict[str, Any]) -> None:
                during.append(await call(client, tool, arguments))

            try:
                with anyio.fail_after(30):
                    async with anyio.create_task_group() as calls:
                        calls.start_soon(fails, a, "list_task_runs", dict[str, Any]())
                        calls.start_soon(fails, b, "list_task_runs", dict[str, Any]())
                        calls.start_soon(fails, a, "create_task_run", {"input": "during", "wait_seconds": 5})
            finally:
                await anyio.to_thread.run_sync(postgres_server.start)
            with anyio.fail_after(30):
                after = structured(await call(b, "create_task_run", {"input": "after", "wait_seconds": 5}))
                listed = structured(await call(a, "list_task_runs", {}))
        stderr = "\n".join(line for replica in service.replicas for line in replica.stderr)
    assert len(during) == 3
    for result in during:
        assert result.is_error and "database is unavailable" in text_of(result)
        assert service.password not in text_of(result)
    assert "during" not in str(service.emulator.state.runs.values())  # nothing was created without a claim
    assert after["status"] == "completed"
    assert {run["run_id"] for run in listed["runs"]} == {before["run_id"], after["run_id"]}
    assert service.password not in stderr
