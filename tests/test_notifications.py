"""Notifications of ended runs and groups through a real MCP client (in memory here; stdio and HTTP in
test_long_runs_e2e): `subscriptions/listen` (2026-07-28) and `resources/subscribe` (older clients), one
watcher however many listen, and the end seen by another replica through the shared PostgreSQL store.
"""

from __future__ import annotations

import inspect
import time
import warnings
from collections.abc import AsyncGenerator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client, types
from mcp.server.session import ServerSession
from mcp.server.subscriptions import ResourceUpdated
from pydantic import SecretStr

from parallel_mcp.client import AsyncTaskClient
from parallel_mcp.config import Settings
from parallel_mcp.emulator.config import EmulatorConfig
from parallel_mcp.emulator.runner import RunningEmulator, serve_emulator
from parallel_mcp.server import create_server
from tests.support import emulator_client, structured, until
from tests.test_webhooks import pushed_server

pytestmark = pytest.mark.anyio

QUESTION = {"input": "Who founded Acme?", "processor": "core", "wait_seconds": 0}
PROMPT_SECONDS = 0.1
"""How soon after a run ends its listeners must hear it."""


def upstream(emulator: RunningEmulator, run_id: str, start: int = 0) -> list[str]:
    """The requests about one run since `start`, as `METHOD last-path-segment`."""
    return [f"{r.method} {r.path.rsplit('/', 1)[-1]}" for r in emulator.state.request_log[start:] if run_id in r.path]


async def polled(emulator: RunningEmulator, run_id: str, count: int = 1) -> None:
    """Until `count` long-polls of the run are in flight (bounded)."""
    record = emulator.state.runs[run_id]
    await until(lambda: record.pollers >= count)


@asynccontextmanager
async def served(config: EmulatorConfig, **settings: Any) -> AsyncGenerator[tuple[tuple[Client], RunningEmulator]]:
    async with emulator_client(config) as (emulator, client):
        server = create_server(Settings(emulator_speed=config.speed, **settings), client=client, emulated=True)
        async with Client(server) as connected:
            yield (connected,), emulator


async def heard(subscription: Any) -> ResourceUpdated:
    event = await anext(aiter(subscription))
    assert isinstance(event, ResourceUpdated)
    return event


@pytest.mark.virtual_time
async def test_every_listener_hears_a_run_end_within_100_ms_and_one_watcher_reads_it() -> None:
    # One connection, one lifespan (an in-memory client, like a stdio one, runs the server's lifespan for
    # itself): four listen streams on it, to the run and to its report.
    async with served(EmulatorConfig(frozen=True)) as ((client,), emulator):
        run_id = structured(await client.call_tool("create_task_run", QUESTION))["run_id"]
        uri = f"parallel://runs/{run_id}"
        start = len(emulator.state.request_log)
        async with AsyncExitStack() as stack:
            listens = [await stack.enter_async_context(client.listen(resource_subscriptions=[uri])) for _ in range(3)]
            report = await stack.enter_async_context(client.listen(resource_subscriptions=[f"{uri}/report"]))
            await polled(emulator, run_id)
            ended_at = anyio.current_time()
            emulator.state.finish(run_id)
            with anyio.fail_after(5):
                events = [await heard(listen) for listen in listens]
                latest = anyio.current_time() - ended_at
                on_report = await heard(report)
        with anyio.fail_after(5):
            await emulator.state.wait_for_requests(start + 2)
    assert [event.uri for event in events] == [uri] * 3 and on_report.uri == f"{uri}/report"
    assert latest < PROMPT_SECONDS, latest
    made = upstream(emulator, run_id, start)
    assert made.count("GET events") == 1 and made.count("GET result") == 1, made  # one watcher for four listeners


@pytest.mark.virtual_time
async def test_the_watcher_stops_with_the_last_listener() -> None:
    async with served(EmulatorConfig(frozen=True)) as ((client,), emulator):
        run_id = structured(await client.call_tool("create_task_run", QUESTION))["run_id"]
        uri = f"parallel://runs/{run_id}"
        record = emulator.state.runs[run_id]
        async with client.listen(resource_subscriptions=[uri]):
            async with client.listen(resource_subscriptions=[uri]):
                await polled(emulator, run_id)
            await anyio.sleep(0.05)
            still = record.pollers
        await until(lambda: not record.pollers, seconds=5)
    assert still == 1 and record.is_active


@pytest.mark.virtual_time
async def test_a_listener_hears_the_end_a_waiting_call_saw() -> None:
    event: ResourceUpdated | None = None
    async with served(EmulatorConfig(frozen=True)) as ((client,), emulator):
        run_id = structured(await client.call_tool("create_task_run", QUESTION))["run_id"]
        async with (
            client.listen(resource_subscriptions=[f"parallel://runs/{run_id}"]) as listen,
            anyio.create_task_group() as tasks,
        ):
            tasks.start_soon(client.call_tool, "get_task_run", {"run_id": run_id, "wait_seconds": 30})
            await polled(emulator, run_id, count=2)  # the watcher's long-poll, and the call's
            emulator.state.finish(run_id)
            with anyio.fail_after(5):
                event = await heard(listen)
    assert event is not None and event.uri == f"parallel://runs/{run_id}"


@pytest.mark.virtual_time
async def test_a_group_end_is_heard_by_its_listeners() -> None:
    async with served(EmulatorConfig(frozen=True)) as ((client,), emulator):
        created = structured(await client.call_tool("create_task_group", {"inputs": ["a", "b"], "wait_seconds": 0}))
        uri = f"parallel://groups/{created['task_group_id']}"
        async with client.listen(resource_subscriptions=[uri]) as listen:
            for run_id in created["run_ids"]:
                emulator.state.finish(run_id)
            with anyio.fail_after(10):
                event = await heard(listen)
    assert event.uri == uri


@pytest.mark.virtual_time
async def test_a_legacy_subscriber_hears_a_run_end() -> None:
    updates: list[str] = []
    got = anyio.Event()

    async def on_message(message: Any) -> None:
        if isinstance(message, types.ResourceUpdatedNotification):
            updates.append(str(message.params.uri))
            got.set()

    async with emulator_client(EmulatorConfig(frozen=True)) as (emulator, client):
        server = create_server(Settings(emulator_speed=20), client=client, emulated=True)
        async with Client(server, mode="legacy", message_handler=on_message) as mcp:
            assert mcp.server_capabilities is not None and mcp.server_capabilities.resources is not None
            assert mcp.server_capabilities.resources.subscribe
            run_id = structured(await mcp.call_tool("create_task_run", QUESTION))["run_id"]
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # resources/subscribe is deprecated in 2026-07-28, as meant
                await mcp.subscribe_resource(f"parallel://runs/{run_id}")  # pyright: ignore[reportDeprecated]
                await mcp.subscribe_resource(f"parallel://runs/{run_id}")  # pyright: ignore[reportDeprecated]
            await polled(emulator, run_id)
            emulator.state.finish(run_id)
            with anyio.fail_after(5):
                await got.wait()
            await anyio.sleep(0.05)
    assert updates == [f"parallel://runs/{run_id}"]
    assert upstream(emulator, run_id).count("GET result") == 1


async def test_an_end_seen_by_one_replica_reaches_a_listener_of_another_through_postgres(postgres_url: str) -> None:
    event: ResourceUpdated | None = None
    latest = float("inf")
    async with (
        serve_emulator(EmulatorConfig(frozen=True)) as emulator,
        AsyncTaskClient(api_key="key-of-replica-a", base_url=emulator.base_url) as key_a,
        # Replica B reads as another key: its own watcher cannot see the run, so only A's news can reach B.
        AsyncTaskClient(api_key="key-of-replica-b", base_url=emulator.base_url) as key_b,
    ):
        settings = Settings(database_url=SecretStr(postgres_url), emulator_speed=20)
        async with (
            Client(create_server(settings, client=key_a, emulated=True)) as replica_a,
            Client(create_server(settings, client=key_b, emulated=True)) as replica_b,
        ):
            run_id = structured(await replica_a.call_tool("create_task_run", QUESTION))["run_id"]
            async with replica_b.listen(resource_subscriptions=[f"parallel://runs/{run_id}"]) as listen:
                await until(lambda: upstream(emulator, run_id).count("GET result") == 1)  # B's watcher gave up (404)
                async with anyio.create_task_group() as tasks:
                    tasks.start_soon(replica_a.call_tool, "get_task_run", {"run_id": run_id, "wait_seconds": 30})
                    await polled(emulator, run_id)
                    ended_at = time.monotonic()
                    emulator.state.finish(run_id)
                    with anyio.fail_after(5):
                        event = await heard(listen)
                    latest = time.monotonic() - ended_at
    assert event is not None and event.uri == f"parallel://runs/{run_id}" and latest < 1.0


@pytest.mark.virtual_time
async def test_a_webhook_tells_the_listeners_and_their_watcher_holds_no_upstream_stream(tmp_path: Path) -> None:
    async with pushed_server(tmp_path, EmulatorConfig(frozen=True)) as pushed:
        emulator = pushed.emulator
        run_id = structured(await pushed.mcp.call_tool("create_task_run", QUESTION))["run_id"]
        uri = f"parallel://runs/{run_id}"
        start = len(emulator.state.request_log)
        async with pushed.mcp.listen(resource_subscriptions=[uri]) as listen:
            emulator.state.finish(run_id)  # Parallel's webhook to the server says so
            with anyio.fail_after(10):
                event = await heard(listen)
                await emulator.state.wait_for_requests(start + 1)
    assert event.uri == uri and emulator.state.webhook_results == [(run_id, True)]
    assert upstream(emulator, run_id, start) == ["GET result"]  # one read once told: no stream, no long-poll


def test_the_private_sdk_seams_of_legacy_subscriptions_are_still_there() -> None:
    # MCPServer serves no resources/subscribe: the handlers go on its lowlevel server, and a subscription
    # ends with its connection, which the per-request session keeps as `_connection`.
    server = create_server(Settings(emulator_speed=20))
    lowlevel = server._lowlevel_server  # pyright: ignore[reportPrivateUsage]
    assert lowlevel.get_request_handler("resources/subscribe") is not None
    assert lowlevel.get_request_handler("resources/unsubscribe") is not None
    source = inspect.getsource(ServerSession.__init__)
    assert "self._connection = connection" in source
