"""Long runs the protocol's way, end to end: a real `mcp` client and a real `parallel-mcp serve` subprocess,
over stdio and over streamable HTTP, against an emulator in this process (its request log counts what the
server asks upstream; a test finishes runs when it wants).
"""

from __future__ import annotations

import time
import warnings
from collections.abc import AsyncGenerator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any, Literal

import anyio
import pytest
from mcp import Client, MCPError, StdioServerParameters, types
from mcp.client.session import ClientRequestContext
from mcp.server.subscriptions import ResourceUpdated
from mcp.types import CallToolResult, ResourceLink, TextResourceContents

from parallel_mcp.emulator.config import EmulatorConfig
from parallel_mcp.emulator.runner import RunningEmulator
from tests.processes import command, http_server, server_env
from tests.support import API_KEY, emulator_client, structured, text_of
from tests.tasks_client import TasksClient, create_task, get_task, until_done
from tests.test_notifications import polled, upstream

pytestmark = pytest.mark.anyio

Transport = Literal["stdio", "http"]
TRANSPORTS: list[Transport] = ["stdio", "http"]
QUESTION = {"input": "Who founded Acme?", "processor": "core"}


def environment(emulator: RunningEmulator, journal: Path, **extra: str) -> dict[str, str]:
    return server_env(
        PARALLEL_API_KEY=API_KEY, PARALLEL_BASE_URL=emulator.base_url, PARALLEL_MCP_JOURNAL=str(journal), **extra
    )


@asynccontextmanager
async def serving(transport: Transport, env: dict[str, str]) -> AsyncGenerator[Any]:
    """What a client connects to: stdio parameters (each client its own server process), or an HTTP URL."""
    if transport == "stdio":
        cmd = command("serve")
        yield StdioServerParameters(command=cmd[0], args=cmd[1:], env=env)
        return
    async with http_server("serve", "--transport", "streamable-http", env=env) as server:
        yield server.url


@asynccontextmanager
async def world(config: EmulatorConfig) -> AsyncGenerator[RunningEmulator]:
    async with emulator_client(config) as (emulator, _client):
        yield emulator


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_a_task_survives_a_restart_and_inlines_the_tools_result(transport: Transport, tmp_path: Path) -> None:
    journal = tmp_path / "journal.sqlite3"
    with anyio.fail_after(90):
        async with world(EmulatorConfig(frozen=True)) as emulator:
            env = environment(emulator, journal)
            async with serving(transport, env) as target, Client(target, extensions=[TasksClient()]) as client:
                created = await create_task(client, "create_task_run", QUESTION)
                working = await get_task(client, created.task_id)
            (run_id,) = emulator.state.runs
            emulator.state.finish(run_id)
            async with serving(transport, env) as target, Client(target, extensions=[TasksClient()]) as client:
                done = await until_done(client, created.task_id)
                again = await get_task(client, created.task_id)
                direct = await client.call_tool("get_task_run", {"run_id": run_id})
    assert created.status == "working" and created.ttl_ms is None  # a journal file keeps tasks: no expiry
    assert working["status"] == "working" and run_id in working["statusMessage"]
    assert done["status"] == again["status"] == "completed"
    result = CallToolResult.model_validate(done["result"])
    inlined, read = structured(result), structured(direct)
    del inlined["elapsed_seconds"], read["elapsed_seconds"]
    assert inlined == read and any(isinstance(block, ResourceLink) for block in result.content)


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_listeners_hear_a_run_end_within_100_ms_and_one_upstream_stream_serves_them(
    transport: Transport, tmp_path: Path
) -> None:
    # stdio: one server process per client, so both listens share one connection; HTTP: two clients.
    with anyio.fail_after(90):
        async with (
            world(EmulatorConfig(frozen=True)) as emulator,
            serving(transport, environment(emulator, tmp_path / "journal.sqlite3")) as target,
            AsyncExitStack() as stack,
        ):
            first = await stack.enter_async_context(Client(target))
            second = first if transport == "stdio" else await stack.enter_async_context(Client(target))
            run_id = structured(await first.call_tool("create_task_run", {**QUESTION, "wait_seconds": 0}))["run_id"]
            uri = f"parallel://runs/{run_id}"
            start = len(emulator.state.request_log)
            listens = [
                await stack.enter_async_context(client.listen(resource_subscriptions=[uri]))
                for client in (first, second)
            ]
            await polled(emulator, run_id)
            ended_at = time.monotonic()
            emulator.state.finish(run_id)
            events = [await anext(aiter(listen)) for listen in listens]
            latest = time.monotonic() - ended_at
            await emulator.state.wait_for_requests(start + 2)
            made = upstream(emulator, run_id, start)
    assert all(isinstance(e, ResourceUpdated) and e.uri == uri for e in events)
    assert latest < 0.1, latest
    assert made.count("GET events") == 1 and made.count("GET result") == 1, made


async def test_a_legacy_http_subscriber_hears_a_run_end(tmp_path: Path) -> None:
    heard = anyio.Event()
    updates: list[str] = []

    async def on_message(message: Any) -> None:
        if isinstance(message, types.ResourceUpdatedNotification):
            updates.append(str(message.params.uri))
            heard.set()

    with anyio.fail_after(60):
        async with (
            world(EmulatorConfig(frozen=True)) as emulator,
            serving("http", environment(emulator, tmp_path / "journal.sqlite3")) as url,
            Client(url, mode="legacy", message_handler=on_message) as client,
        ):
            run_id = structured(await client.call_tool("create_task_run", {**QUESTION, "wait_seconds": 0}))["run_id"]
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # resources/subscribe is deprecated in 2026-07-28, as meant
                await client.subscribe_resource(f"parallel://runs/{run_id}")  # pyright: ignore[reportDeprecated]
            await polled(emulator, run_id)
            emulator.state.finish(run_id)
            await heard.wait()
    assert updates == [f"parallel://runs/{run_id}"]


def answering(action: Literal["accept", "decline"]) -> Any:
    async def answer(context: ClientRequestContext, params: types.ElicitRequestParams) -> types.ElicitResult:
        assert isinstance(params, types.ElicitRequestFormParams) and "$0.025" in params.message
        return types.ElicitResult(action=action, content={"confirm": True} if action == "accept" else None)

    return answer


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_the_user_is_asked_before_a_run_above_the_limit(
    transport: Transport, mode: Literal["auto", "legacy"], tmp_path: Path
) -> None:
    with anyio.fail_after(90):
        async with world(EmulatorConfig(instant=True)) as emulator:
            env = environment(emulator, tmp_path / "journal.sqlite3", PARALLEL_MCP_CONFIRM_ABOVE_USD="0.01")
            async with serving(transport, env) as target:
                async with Client(target, mode=mode, elicitation_callback=answering("accept")) as client:
                    accepted = await client.call_tool("create_task_run", {**QUESTION, "input": "one"})
                async with Client(target, mode=mode, elicitation_callback=answering("decline")) as client:
                    declined = await client.call_tool("create_task_run", {**QUESTION, "input": "two"})
                async with Client(target, mode=mode) as client:  # cannot ask: a token
                    pending = await client.call_tool("create_task_run", {**QUESTION, "input": "three"})
                    token = structured(pending)["confirmation"]["confirm_token"]
                    other = await client.call_tool(
                        "create_task_run", {**QUESTION, "input": "four", "confirm_token": token}
                    )
                    confirmed = await client.call_tool(
                        "create_task_run", {**QUESTION, "input": "three", "confirm_token": token}
                    )
                    reused = await client.call_tool(
                        "create_task_run", {**QUESTION, "input": "three", "confirm_token": token, "force_new": True}
                    )
            created = sorted(run.input.input for run in emulator.state.runs.values())  # type: ignore[misc]
    assert structured(accepted)["status"] == "completed"
    assert declined.is_error and "declined" in text_of(declined) and "confirm_above_usd" in text_of(declined)
    assert not pending.is_error and "Confirmation needed" in text_of(pending)
    assert other.is_error and "different request" in text_of(other)
    assert structured(confirmed)["run_id"] and reused.is_error and "already used" in text_of(reused)
    assert created == ["one", "three"]


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_the_daily_budget_refuses_at_the_boundary(transport: Transport, tmp_path: Path) -> None:
    with anyio.fail_after(60):
        async with world(EmulatorConfig(instant=True)) as emulator:
            env = environment(emulator, tmp_path / "journal.sqlite3", PARALLEL_MCP_DAILY_BUDGET_USD="0.05")
            async with serving(transport, env) as target, Client(target) as client:
                made = [await client.call_tool("create_task_run", {**QUESTION, "input": f"q{n}"}) for n in range(3)]
    assert [result.is_error for result in made] == [False, False, True]  # $0.025 + $0.025 = $0.05: at it, not over
    assert "daily_budget_usd" in text_of(made[2]) and emulator.state.run_count == 2


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_resources_and_prompts_are_served(transport: Transport, tmp_path: Path) -> None:
    with anyio.fail_after(60):
        async with (
            world(EmulatorConfig(instant=True)) as emulator,
            serving(transport, environment(emulator, tmp_path / "journal.sqlite3")) as target,
            Client(target) as client,
        ):
            run_id = structured(await client.call_tool("create_task_run", QUESTION))["run_id"]
            report = (await client.read_resource(f"parallel://runs/{run_id}/report")).contents[0]
            prompt = await client.get_prompt("deep_research", {"topic": "tidal power"})
            with pytest.raises(MCPError):
                await client.read_resource("parallel://runs/trun_unknown")
    assert isinstance(report, TextResourceContents) and report.text.startswith(f"# Task run {run_id}")
    assert "create_task_run" in str(prompt.messages[0].content)
