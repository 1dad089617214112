"""The HTTP transport's guards: DNS-rebinding protection, bearer auth, body limits, loopback binding."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from parallel_mcp.config import Settings
from parallel_mcp.emulator.config import EmulatorConfig
from parallel_mcp.http_app import build_http_app
from parallel_mcp.server import create_server
from parallel_mcp.serving import serve_asgi
from tests.support import emulator_client, structured

pytestmark = pytest.mark.anyio

TOKEN = "server-token-abcdef123456"
INITIALIZE: dict[str, Any] = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
}
MCP_HEADERS = {"accept": "application/json, text/event-stream", "content-type": "application/json"}


@asynccontextmanager
async def served(**settings: Any) -> AsyncGenerator[str]:
    async with emulator_client(EmulatorConfig(instant=True)) as (_emulator, client):
        config = Settings(**settings)
        app = build_http_app(create_server(config, client=client, emulated=True), config)
        async with serve_asgi(app) as base_url:
            yield base_url


def test_http_binds_to_loopback_by_default() -> None:
    assert Settings().host == "127.0.0.1"


async def test_a_foreign_host_header_is_refused_with_421() -> None:
    async with served(transport="streamable-http") as base, httpx2.AsyncClient() as http:
        response = await http.post(f"{base}/mcp", json=INITIALIZE, headers={**MCP_HEADERS, "host": "evil.example:80"})
    assert response.status_code == 421


async def test_a_foreign_origin_is_refused_with_403() -> None:
    async with served(transport="streamable-http") as base, httpx2.AsyncClient() as http:
        response = await http.post(
            f"{base}/mcp", json=INITIALIZE, headers={**MCP_HEADERS, "origin": "http://evil.example"}
        )
    assert response.status_code == 403


@pytest.mark.parametrize("path", ["/mcp", "/", "/sse", "/anything"])
@pytest.mark.parametrize("authorization", [None, "Bearer wrong", f"Basic {TOKEN}", TOKEN])
async def test_without_the_right_bearer_token_every_route_answers_401(path: str, authorization: str | None) -> None:
    headers = dict(MCP_HEADERS)
    if authorization is not None:
        headers["authorization"] = authorization
    async with served(transport="streamable-http", auth_token=TOKEN) as base, httpx2.AsyncClient() as http:
        response = await http.post(f"{base}{path}", json=INITIALIZE, headers=headers)
    assert response.status_code == 401
    assert TOKEN not in response.text


async def test_with_the_right_bearer_token_the_tools_work() -> None:
    async with served(transport="streamable-http", auth_token=TOKEN) as base:
        http = httpx2.AsyncClient(headers={"authorization": f"Bearer {TOKEN}"})
        async with http, Client(streamable_http_client(f"{base}/mcp", http_client=http)) as client:
            with anyio.fail_after(20):
                view = structured(await client.call_tool("create_task_run", {"input": "q", "wait_seconds": 5}))
    assert view["status"] == "completed"


async def test_a_request_body_over_the_limit_is_refused() -> None:
    params: dict[str, Any] = {**INITIALIZE["params"], "padding": "x" * (5 * 1024 * 1024)}
    huge = {**INITIALIZE, "params": params}
    async with served(transport="streamable-http") as base, httpx2.AsyncClient() as http:
        response = await http.post(f"{base}/mcp", json=huge, headers=MCP_HEADERS)
    assert response.status_code == 413


@pytest.mark.parametrize("scheme", ["bearer", "BEARER", "Bearer", "bEaReR"])
async def test_the_bearer_scheme_is_case_insensitive(scheme: str) -> None:
    headers = {**MCP_HEADERS, "authorization": f"{scheme} {TOKEN}"}
    async with served(transport="streamable-http", auth_token=TOKEN) as base, httpx2.AsyncClient() as http:
        response = await http.post(f"{base}/mcp", json=INITIALIZE, headers=headers)
    assert response.status_code == 200


@pytest.mark.parametrize("authorization", [f"Bearer {TOKEN}x", f"Bearer {TOKEN[:-1]}", f"Token {TOKEN}", "Bearer"])
async def test_a_near_miss_of_the_token_or_scheme_is_refused(authorization: str) -> None:
    headers = {**MCP_HEADERS, "authorization": authorization}
    async with served(transport="streamable-http", auth_token=TOKEN) as base, httpx2.AsyncClient() as http:
        response = await http.post(f"{base}/mcp", json=INITIALIZE, headers=headers)
    assert response.status_code == 401


@pytest.mark.parametrize("request_id", [{"a": 1}, [1], 1.5, True, None])
@pytest.mark.parametrize("transport", ["streamable-http", "sse"])
async def test_a_request_whose_id_is_not_a_string_or_integer_gets_a_json_rpc_error_not_202(
    request_id: object, transport: str
) -> None:
    request = {"jsonrpc": "2.0", "id": request_id, "method": "tools/list"}
    async with served(transport=transport) as base, httpx2.AsyncClient() as http:
        path = "/mcp" if transport == "streamable-http" else "/messages/?session_id=0123456789abcdef0123456789abcdef"
        response = await http.post(f"{base}{path}", json=request, headers=MCP_HEADERS)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == -32600 and response.json()["id"] is None


async def test_with_a_token_the_servers_own_routes_authenticate_themselves_but_mcp_still_needs_it() -> None:
    async with emulator_client(EmulatorConfig(instant=True)) as (_emulator, client):
        config = Settings.model_validate({"transport": "streamable-http", "auth_token": TOKEN})
        server = create_server(config, client=client, emulated=True)

        @server.custom_route("/hooks/signed", methods=["POST"])
        async def hook(request: Request) -> Response:  # pyright: ignore[reportUnusedFunction]
            return PlainTextResponse("checked its own signature", status_code=202)

        async with serve_asgi(build_http_app(server, config)) as base, httpx2.AsyncClient() as http:
            delivered = await http.post(f"{base}/hooks/signed", content=b"{}")
            refused = await http.post(f"{base}/mcp", json=INITIALIZE, headers=MCP_HEADERS)
    assert delivered.status_code == 202
    assert refused.status_code == 401
