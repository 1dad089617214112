"""The tasks extension through a real MCP client (in memory here; stdio and HTTP in test_long_runs_e2e)."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any, Literal

import anyio
import httpx2
import pytest
from mcp import Client, MCPError
from mcp.client.streamable_http import streamable_http_client
from mcp.types import CallToolResult
from pydantic import SecretStr

from parallel_mcp.config import Settings
from parallel_mcp.emulator.config import EmulatorConfig
from parallel_mcp.emulator.runner import RunningEmulator
from parallel_mcp.server import create_server
from tests.support import emulator_client, structured, text_of
from tests.tasks_client import TASKS, TasksClient, cancel_task, create_task, get_task, until_done
from tests.test_multi_user import KEY_A, KEY_B, multi_user_server

pytestmark = pytest.mark.anyio

QUESTION = {"input": "Who founded Acme?", "processor": "core", "wait_seconds": 30}


@asynccontextmanager
async def tasks_session(
    config: EmulatorConfig, *, mode: Literal["auto", "legacy"] = "auto", declare: bool = True, **settings: Any
) -> AsyncGenerator[tuple[Client, Client, RunningEmulator]]:
    """Two clients of one server: one declaring the tasks extension, one plain."""
    async with emulator_client(config) as (emulator, client):
        server = create_server(Settings(emulator_speed=config.speed, **settings), client=client, emulated=True)
        extensions = [TasksClient()] if declare else []
        async with Client(server, mode=mode, extensions=extensions) as tasks, Client(server, mode=mode) as plain:
            yield tasks, plain, emulator


async def test_the_extension_is_advertised_in_discovery() -> None:
    async with tasks_session(EmulatorConfig(frozen=True)) as (client, _plain, _emulator):
        assert client.server_capabilities is not None
        assert client.server_capabilities.extensions == {TASKS: {}}


@pytest.mark.virtual_time
async def test_a_create_answers_at_once_with_a_task_whose_result_is_the_tools_once_the_run_ends() -> None:
    async with tasks_session(EmulatorConfig(frozen=True)) as (client, plain, emulator):
        with anyio.fail_after(5):  # a wait of 30 s is not waited: the task answers at once
            created = await create_task(client, "create_task_run", QUESTION)
        (run_id,) = emulator.state.runs
        working = await get_task(client, created.task_id)
        emulator.state.finish(run_id)
        done = await until_done(client, created.task_id)
        direct = await plain.call_tool("get_task_run", {"run_id": run_id})
    assert created.status == "working" and created.task_id.startswith("task_")
    assert created.poll_interval_ms is not None and created.poll_interval_ms >= 1000
    assert created.ttl_ms == 3_600_000  # a store in memory: the task ends with the process
    assert run_id in (created.status_message or "") and "core runs usually take" in (created.status_message or "")
    assert working["status"] == "working" and working["resultType"] == "complete"
    assert done["status"] == "completed" and run_id in done["statusMessage"]
    result = CallToolResult.model_validate(done["result"])
    assert not result.is_error and [block.type for block in result.content] == ["text", "resource_link"]
    inlined, read = structured(result), structured(direct)
    assert inlined.pop("elapsed_seconds") is not None and read.pop("elapsed_seconds") is not None
    assert inlined == read  # exactly what the tool says of the run


@pytest.mark.virtual_time
async def test_the_sdk_client_resolves_the_task_to_the_tools_result() -> None:
    async with tasks_session(EmulatorConfig(instant=True)) as (client, _plain, _emulator):
        result = await client.call_tool("create_task_run", {"input": "Who founded Acme?", "processor": "lite"})
    view = structured(result)
    assert view["status"] == "completed" and view["output"] is not None


@pytest.mark.virtual_time
async def test_a_failed_run_is_inlined_as_a_tool_error() -> None:
    async with tasks_session(EmulatorConfig(frozen=True)) as (client, _plain, emulator):
        created = await create_task(client, "create_task_run", QUESTION)
        (run_id,) = emulator.state.runs
        emulator.state.fail(run_id, "upstream exploded")
        done = await until_done(client, created.task_id)
    result = CallToolResult.model_validate(done["result"])
    assert done["status"] == "completed" and result.is_error and "upstream exploded" in text_of(result)


@pytest.mark.virtual_time
async def test_a_group_task_inlines_the_groups_rows() -> None:
    async with tasks_session(EmulatorConfig(instant=True)) as (client, _plain, _emulator):
        created = await create_task(client, "create_task_group", {"inputs": ["a", "b"], "processor": "lite"})
        done = await until_done(client, created.task_id)
    view = structured(CallToolResult.model_validate(done["result"]))
    assert done["status"] == "completed" and len(view["rows"]) == 2 and len(view["run_ids"]) == 2
    assert view["estimated_cost_usd"] == 0.01


@pytest.mark.virtual_time
async def test_cancel_detaches_and_says_the_run_goes_on() -> None:
    async with tasks_session(EmulatorConfig(frozen=True)) as (client, _plain, emulator):
        created = await create_task(client, "create_task_run", QUESTION)
        acknowledged = await cancel_task(client, created.task_id)
        again = await cancel_task(client, created.task_id)
        after = await get_task(client, created.task_id)
        (run,) = emulator.state.runs.values()
    assert acknowledged["resultType"] == again["resultType"] == "complete"
    assert after["status"] == "cancelled" and "Task API has no cancel" in after["statusMessage"]
    assert run.run_id in after["statusMessage"] and "goes on" in after["statusMessage"] and run.is_active


@pytest.mark.virtual_time
async def test_an_unknown_task_is_an_error() -> None:
    async with tasks_session(EmulatorConfig(frozen=True)) as (client, _plain, _emulator):
        for ask in (get_task, cancel_task):
            with pytest.raises(MCPError) as caught:
                await ask(client, "task_nope")
            assert caught.value.error.code == -32602


@pytest.mark.virtual_time
async def test_a_request_without_the_extension_gets_the_tools_own_result() -> None:
    async with tasks_session(EmulatorConfig(instant=True)) as (_client, plain, emulator):
        result = await plain.call_tool("create_task_run", {**QUESTION, "processor": "lite"})
    assert isinstance(result, CallToolResult) and structured(result)["status"] == "completed"
    assert len(emulator.state.runs) == 1


@pytest.mark.virtual_time
async def test_a_legacy_connection_never_gets_a_task_even_when_it_declares_the_extension() -> None:
    async with tasks_session(EmulatorConfig(instant=True), mode="legacy") as (client, _plain, _emulator):
        result = await client.session.call_tool("create_task_run", {**QUESTION, "processor": "lite"})
        with pytest.raises(MCPError) as caught:
            await get_task(client, "task_any")
    assert isinstance(result, CallToolResult) and structured(result)["status"] == "completed"
    assert caught.value.error.code == -32601  # tasks/* belong to 2026-07-28


@pytest.mark.virtual_time
async def test_a_create_waiting_for_confirmation_answers_without_a_task() -> None:
    async with tasks_session(EmulatorConfig(frozen=True), confirm_above_usd=0.001) as (client, _plain, emulator):
        pending = await client.session.call_tool("create_task_run", QUESTION, allow_claimed=True)
        token = structured(pending)["confirmation"]["confirm_token"]  # type: ignore[arg-type]
        created = await create_task(client, "create_task_run", {**QUESTION, "confirm_token": token})
    assert isinstance(pending, CallToolResult) and len(emulator.state.runs) == 1
    assert created.status == "working"


@pytest.mark.virtual_time
async def test_a_refused_create_answers_without_a_task() -> None:
    async with tasks_session(EmulatorConfig(frozen=True), max_cost_usd=0.001) as (client, _plain, emulator):
        refused = await client.session.call_tool("create_task_run", QUESTION, allow_claimed=True)
    assert isinstance(refused, CallToolResult) and refused.is_error and not emulator.state.runs


@pytest.mark.virtual_time
async def test_another_users_task_reads_like_an_unknown_one() -> None:
    with anyio.fail_after(30):
        async with multi_user_server() as url, AsyncExitStack() as stack:
            alice, bob = [
                await stack.enter_async_context(
                    Client(streamable_http_client(url, http_client=http), extensions=[TasksClient()])
                )
                for http in [
                    await stack.enter_async_context(httpx2.AsyncClient(headers={"x-api-key": key}))
                    for key in (KEY_A, KEY_B)
                ]
            ]
            created = await create_task(alice, "create_task_run", {"input": "q", "processor": "lite"})
            own = await until_done(alice, created.task_id)
            with pytest.raises(MCPError) as caught:
                await get_task(bob, created.task_id)
            with pytest.raises(MCPError):
                await cancel_task(bob, created.task_id)
            still = await get_task(alice, created.task_id)
    assert own["status"] == still["status"] == "completed" and caught.value.error.code == -32602


async def test_a_task_created_on_one_replica_is_read_on_another_sharing_the_database(postgres_url: str) -> None:
    async with emulator_client(EmulatorConfig(frozen=True)) as (emulator, client):
        settings = Settings(database_url=SecretStr(postgres_url), emulator_speed=20)
        async with (
            Client(create_server(settings, client=client, emulated=True), extensions=[TasksClient()]) as replica_a,
            Client(create_server(settings, client=client, emulated=True), extensions=[TasksClient()]) as replica_b,
        ):
            created = await create_task(replica_a, "create_task_run", QUESTION)
            working = await get_task(replica_b, created.task_id)
            (run_id,) = emulator.state.runs
            emulator.state.finish(run_id)
            done = await until_done(replica_b, created.task_id)
    assert created.ttl_ms is None and working["status"] == "working"  # a database keeps tasks: no expiry
    assert (
        done["status"] == "completed" and structured(CallToolResult.model_validate(done["result"]))["run_id"] == run_id
    )
