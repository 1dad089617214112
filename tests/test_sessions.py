"""Legacy HTTP sessions stay bounded under a flood: a cap per client and in total, the oldest idle evicted first."""

from __future__ import annotations

import inspect
from typing import Any

import anyio
import pytest
from mcp.server.auth.middleware.bearer_auth import AuthorizationContext
from mcp.server.streamable_http import StreamableHTTPServerTransport
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager

from parallel_mcp.config import Settings
from parallel_mcp.http_app import build_http_app
from parallel_mcp.server import create_server
from parallel_mcp.sessions import BoundedSessionManager, client_key
from tests import flood
from tests.flood import held_sessions
from tests.processes import http_server, proc_status_kb, server_env

pytestmark = pytest.mark.anyio


async def open_sessions(url: str, count: int, *, address: str = "127.0.0.1") -> list[str]:
    """The ids of `count` bare sessions, every one of which the server accepted."""
    opened = await flood.open_sessions(url, count, address=address)
    assert set(opened.statuses) == {200}, opened.statuses
    return opened.ids


async def test_a_flood_of_two_thousand_initializes_keeps_one_clients_sessions_at_its_cap() -> None:
    with anyio.fail_after(120):
        async with http_server("serve", "--transport", "streamable-http") as server:
            await open_sessions(server.url, 20)  # warm up: the first sessions load what every session needs
            before = proc_status_kb(server.process.pid, "VmRSS") / 1024
            flood = await open_sessions(server.url, 2000)
            after = proc_status_kb(server.process.pid, "VmRSS") / 1024
            held = await held_sessions(server.url, flood)
            newcomer = await open_sessions(server.url, 1)
            stranger = await open_sessions(server.url, 1, address="127.0.0.2")
            still = await held_sessions(server.url, [*newcomer, *stranger])
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
            held = {address: await held_sessions(server.url, ids, address=address) for address, ids in opened.items()}
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
