"""Legacy HTTP sessions stay bounded under a flood: a cap per client and in total, the oldest idle evicted first."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from mcp.server.auth.middleware.bearer_auth import AuthorizationContext
from mcp.server.streamable_http import StreamableHTTPServerTransport
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager

from parallel_mcp.config import Settings
from parallel_mcp.http_app import build_http_app
from parallel_mcp.server import create_server
from parallel_mcp.sessions import BoundedSessionManager, client_key
from tests.processes import http_server, server_env

pytestmark = pytest.mark.anyio

INITIALIZE: dict[str, Any] = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "flood", "version": "1"}},
}
PING: dict[str, Any] = {"jsonrpc": "2.0", "id": 2, "method": "ping"}
HEADERS = {"accept": "application/json, text/event-stream", "content-type": "application/json"}


def rss_mib(pid: int) -> float:
    """The resident memory of a process, from /proc."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def from_address(address: str) -> httpx2.AsyncClient:
    """A client whose connections come from `address` (any 127.x.y.z is this machine)."""
    limits = httpx2.Limits(max_connections=32, max_keepalive_connections=32)
    transport = httpx2.AsyncHTTPTransport(local_address=address, limits=limits)
    return httpx2.AsyncClient(transport=transport, timeout=30)


async def open_sessions(url: str, count: int, *, address: str = "127.0.0.1", workers: int = 16) -> list[str]:
    """`count` bare `initialize` requests (nothing after them), in `workers` parallel streams; their session ids."""
    opened: list[str] = []
    statuses: list[int] = []

    async def worker(share: int) -> None:
        for _ in range(share):
            response = await http.post(url, json=INITIALIZE, headers=HEADERS)
            statuses.append(response.status_code)
            if response.status_code == 200:
                opened.append(response.headers["mcp-session-id"])

    async with from_address(address) as http, anyio.create_task_group() as group:
        for index in range(workers):
            group.start_soon(worker, count // workers + (index < count % workers))
    assert set(statuses) == {200}, {status: statuses.count(status) for status in set(statuses)}
    return opened


async def alive(url: str, session_ids: list[str], *, address: str = "127.0.0.1") -> list[str]:
    """The sessions among `session_ids` the server still holds (a ping answers 200; a forgotten one 404)."""
    held: list[str] = []
    limiter = anyio.Semaphore(16)

    async def probe(session_id: str) -> None:
        async with limiter:
            headers = {**HEADERS, "mcp-session-id": session_id, "mcp-protocol-version": "2025-11-25"}
            response = await http.post(url, json=PING, headers=headers)
        assert response.status_code in (200, 404), response.status_code
        if response.status_code == 200:
            held.append(session_id)

    async with from_address(address) as http, anyio.create_task_group() as group:
        for session_id in session_ids:
            group.start_soon(probe, session_id)
    return held


async def test_a_flood_of_two_thousand_initializes_keeps_one_clients_sessions_at_its_cap() -> None:
    with anyio.fail_after(120):
        async with http_server("serve", "--transport", "streamable-http") as server:
            await open_sessions(server.url, 20)  # warm up: the first sessions load what every session needs
            before = rss_mib(server.process.pid)
            flood = await open_sessions(server.url, 2000)
            after = rss_mib(server.process.pid)
            held = await alive(server.url, flood)
            newcomer = await open_sessions(server.url, 1)
            stranger = await open_sessions(server.url, 1, address="127.0.0.2")
            still = await alive(server.url, [*newcomer, *stranger])
    print(f"session flood: RSS {before:.1f} -> {after:.1f} MiB, {len(held)} of 2000 sessions held")  # noqa: T201
    assert len(held) == 50  # max_sessions_per_client's default
    assert set(held) <= set(flood[-80:])  # the newest ones: the oldest idle went first
    assert after - before < 25, f"RSS grew from {before:.1f} to {after:.1f} MiB"
    assert len(still) == 2


async def test_when_all_sessions_are_taken_a_new_client_evicts_the_oldest_idle_one_instead_of_getting_503() -> None:
    env = server_env(PARALLEL_MCP_MAX_SESSIONS="100", PARALLEL_MCP_MAX_SESSIONS_PER_CLIENT="40")
    addresses = [f"127.0.0.{last}" for last in range(1, 6)]
    with anyio.fail_after(120):
        async with http_server("serve", "--transport", "streamable-http", env=env) as server:
            opened: dict[str, list[str]] = {}
            for address in addresses:  # 5 clients x 60: each is over its cap of 40, all together over 100
                opened[address] = await open_sessions(server.url, 60, address=address)
            held = {address: await alive(server.url, ids, address=address) for address, ids in opened.items()}
            newcomer = await open_sessions(server.url, 1, address="127.0.0.9")
    # Each client first gave up its own oldest sessions (cap 40), then the oldest of all went: the first clients'.
    assert [len(held[address]) for address in addresses] == [0, 0, 20, 40, 40]
    assert set(held[addresses[-1]]) <= set(opened[addresses[-1]][-48:])
    assert len(newcomer) == 1


def test_a_signed_in_user_is_one_client_from_any_address_and_anonymous_clients_are_told_apart_by_address() -> None:
    alice = AuthorizationContext(client_id="app", issuer="https://idp.example", subject="alice")
    bob = AuthorizationContext(client_id="app", issuer="https://idp.example", subject="bob")
    assert client_key(alice, "10.0.0.1") == client_key(alice, "10.0.0.2")
    assert client_key(None, "10.0.0.1") != client_key(None, "10.0.0.2")
    assert client_key(bob, "10.0.0.1") != client_key(alice, "10.0.0.1")


def test_the_private_sdk_seams_the_session_bounds_rely_on_are_still_there() -> None:
    # parallel_mcp.sessions overrides these private methods and reads these attributes of mcp 2.3's manager;
    # an SDK release that renames or reshapes them must fail here, not silently unbound the sessions.
    def parameters(function: Any) -> list[str]:
        return list(inspect.signature(function).parameters)

    assert parameters(StreamableHTTPSessionManager._admit_session) == ["self", "requestor"]  # pyright: ignore[reportPrivateUsage]
    assert parameters(StreamableHTTPSessionManager._discard_session) == ["self", "session_id", "transport"]  # pyright: ignore[reportPrivateUsage]
    assert parameters(StreamableHTTPSessionManager._handle_stateful_request) == ["self", "scope", "receive", "send"]  # pyright: ignore[reportPrivateUsage]
    manager = StreamableHTTPSessionManager(app=Any)  # pyright: ignore[reportArgumentType]
    assert manager._server_instances == {} and manager._session_owners == {}  # pyright: ignore[reportPrivateUsage]
    transport = StreamableHTTPServerTransport(mcp_session_id="s", idle_timeout=1.0)
    assert transport.idle_scope is None  # created by connect(); cancelling it ends the session like an idle timeout


def test_the_session_settings_reach_the_sdks_session_manager() -> None:
    settings = Settings(
        transport="streamable-http", session_idle_timeout=42.0, max_sessions=7, max_sessions_per_client=3
    )
    server = create_server(settings)
    build_http_app(server, settings)
    manager = server.session_manager
    assert isinstance(manager, BoundedSessionManager)
    assert (manager.session_idle_timeout, manager.max_sessions, manager.max_per_client) == (42.0, 7, 3)
