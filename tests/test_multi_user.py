"""Multi-user HTTP mode: each request brings its own Parallel key, and keys never cross requests."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from parallel_mcp.client import AsyncTaskClient
from parallel_mcp.config import Settings
from parallel_mcp.emulator.config import EmulatorConfig
from parallel_mcp.emulator.runner import serve_emulator
from parallel_mcp.http_app import build_http_app
from parallel_mcp.server import create_server
from parallel_mcp.serving import serve_asgi
from tests.support import structured, text_of

pytestmark = pytest.mark.anyio

KEY_A = "key-alice-1111"
KEY_B = "key-bob-2222"


@asynccontextmanager
async def multi_user_server(**settings: Any) -> AsyncGenerator[str]:
    async with (
        serve_emulator(EmulatorConfig(instant=True)) as emulator,
        AsyncTaskClient(api_key="unused-default", base_url=emulator.base_url) as client,
    ):
        config = Settings(multi_user=True, transport="streamable-http", **settings)
        app = build_http_app(create_server(config, client=client, emulated=True), config)
        async with serve_asgi(app) as base:
            yield f"{base}/mcp"


@asynccontextmanager
async def user(url: str, headers: dict[str, str]) -> AsyncGenerator[Client]:
    http = httpx2.AsyncClient(headers=headers)
    async with http, Client(streamable_http_client(url, http_client=http)) as client:
        yield client


async def test_two_users_cannot_see_each_others_runs() -> None:
    with anyio.fail_after(30):
        async with (
            multi_user_server() as url,
            user(url, {"x-api-key": KEY_A}) as alice,
            user(url, {"authorization": f"Bearer {KEY_B}"}) as bob,
        ):
            run = structured(await alice.call_tool("create_task_run", {"input": "q", "wait_seconds": 5}))
            # Alice's read fills the server's result cache; Bob must not get it from there either.
            assert structured(await alice.call_tool("get_task_run", {"run_id": run["run_id"]}))["output"]
            stolen = await bob.call_tool("get_task_run", {"run_id": run["run_id"], "wait_seconds": 0})
            own = structured(await bob.call_tool("create_task_run", {"input": "q2", "wait_seconds": 5}))
            theirs = await alice.call_tool("get_task_run", {"run_id": own["run_id"], "wait_seconds": 0})
            group = structured(await alice.call_tool("create_task_group", {"inputs": ["a"], "wait_seconds": 5}))
            peek = await bob.call_tool("get_task_group", {"task_group_id": group["task_group_id"], "wait_seconds": 0})
            listed = structured(await bob.call_tool("list_task_runs", {}))
    assert stolen.is_error and "No run" in text_of(stolen)
    assert peek.is_error and "No task group" in text_of(peek)
    assert [run["run_id"] for run in listed["runs"]] == [own["run_id"]]
    assert theirs.is_error
    assert KEY_A not in text_of(stolen) and KEY_B not in text_of(theirs)


async def test_a_request_without_a_key_is_a_tool_error_saying_how_to_send_one() -> None:
    with anyio.fail_after(30):
        async with multi_user_server() as url, user(url, {}) as anonymous:
            result = await anonymous.call_tool("create_task_run", {"input": "q"})
    assert result.is_error and "x-api-key" in text_of(result)


async def test_with_a_server_token_the_parallel_key_must_come_as_x_api_key() -> None:
    token = "server-token-xyz"
    with anyio.fail_after(30):
        async with (
            multi_user_server(auth_token=token) as url,
            user(url, {"authorization": f"Bearer {token}", "x-api-key": KEY_A}) as alice,
            user(url, {"authorization": f"Bearer {token}"}) as keyless,
        ):
            ok = structured(await alice.call_tool("create_task_run", {"input": "q", "wait_seconds": 5}))
            refused = await keyless.call_tool("create_task_run", {"input": "q"})
    assert ok["status"] == "completed"
    assert refused.is_error and "x-api-key" in text_of(refused) and token not in text_of(refused)
