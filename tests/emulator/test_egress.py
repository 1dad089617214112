"""The emulator never calls `mcp_servers` on private addresses unless told to: no request reaches a local listener."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import anyio
import anyio.abc
import httpx2
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from parallel_mcp.emulator.egress import EgressRefused, PinnedTransport, refusal
from parallel_mcp.emulator.mcp_calls import call_mcp_servers
from parallel_mcp.models.requests import McpServer
from parallel_mcp.serving import serve_asgi
from tests.emulator.conftest import beta_headers, body, running

pytestmark = [pytest.mark.anyio, pytest.mark.virtual_time]

SECRET = "Bearer caller-secret-token"


@dataclass
class Listener:
    """A TCP listener that records every connection (and what arrived on it) and answers nothing useful."""

    port: int
    hits: list[bytes] = field(default_factory=list[bytes])


@asynccontextmanager
async def listener(host: str = "127.0.0.1") -> AsyncGenerator[Listener]:
    tcp = await anyio.create_tcp_listener(local_host=host, local_port=0)
    port = int(tcp.extra(anyio.abc.SocketAttribute.local_port))
    recorded = Listener(port)

    async def handle(stream: anyio.abc.SocketStream) -> None:
        async with stream:
            with anyio.move_on_after(1):
                recorded.hits.append(await stream.receive())

    async with tcp, anyio.create_task_group() as tg:
        tg.start_soon(tcp.serve, handle)
        try:
            yield recorded
        finally:
            tg.cancel_scope.cancel()


def ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as sock:
            sock.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("127.0.0.1", "loopback"),
        ("10.1.2.3", "private"),
        ("192.168.0.10", "private"),
        ("172.16.5.4", "private"),
        ("169.254.169.254", "metadata"),
        ("169.254.1.1", "link-local"),
        ("0.0.0.0", "unspecified"),
        ("224.0.0.1", "multicast"),
        ("100.64.0.1", "reserved"),
        ("::1", "loopback"),
        ("fe80::1", "link-local"),
        ("fc00::5", "private"),
        ("fd00:ec2::254", "metadata"),
        ("::ffff:127.0.0.1", "loopback"),
        ("::ffff:10.0.0.1", "private"),
        ("2002:7f00:1::", "loopback"),
        ("64:ff9b::a9fe:a9fe", "metadata"),
        ("ff02::1", "multicast"),
    ],
)
def test_non_public_addresses_are_refused_with_their_reason(address: str, reason: str) -> None:
    found = refusal(ipaddress.ip_address(address))
    assert found is not None and reason in found


@pytest.mark.parametrize("address", ["8.8.8.8", "1.1.1.1", "2606:4700::1111", "64:ff9b::808:808"])
def test_public_addresses_pass(address: str) -> None:
    assert refusal(ipaddress.ip_address(address)) is None


async def test_loopback_private_and_metadata_servers_are_refused_by_default_and_nothing_reaches_a_listener() -> None:
    async with listener() as local:
        hosts = [f"127.0.0.1:{local.port}", f"localhost:{local.port}", f"[::ffff:127.0.0.1]:{local.port}"]
        servers = [
            McpServer(name=f"local{i}", url=f"http://{host}/admin/delete?all=1", headers={"Authorization": SECRET})
            for i, host in enumerate(hosts)
        ]
        servers += [
            McpServer(name="intranet", url="http://10.20.30.40/mcp"),
            McpServer(name="imds", url="http://169.254.169.254/latest/meta-data/"),
            McpServer(name="gcp", url="http://metadata.google.internal/computeMetadata/v1/"),
            McpServer(name="v6", url="http://[::1]:9/mcp"),
        ]
        with anyio.fail_after(5):
            calls, warnings = await call_mcp_servers(servers, query="q", max_calls=3)
    assert calls is None and local.hits == []
    messages = {warning.message.split(" ")[2]: warning.message for warning in warnings}
    assert set(messages) == {server.name for server in servers}
    assert "resolves to a loopback address" in messages["local1"]
    assert "is a private address" in messages["intranet"]
    assert "metadata" in messages["imds"] and "metadata" in messages["gcp"]
    assert all("Parallel's network" in message for message in messages.values())
    assert all(SECRET not in message and "all=1" not in message for message in messages.values())


@pytest.mark.skipif(not ipv6_loopback(), reason="no IPv6 loopback on this machine")
async def test_an_ipv6_loopback_server_is_refused_and_its_listener_sees_nothing() -> None:
    async with listener("::1") as local:
        with anyio.fail_after(5):
            calls, warnings = await call_mcp_servers(
                [McpServer(name="v6", url=f"http://[::1]:{local.port}/mcp")], query="q", max_calls=1
            )
    assert calls is None and local.hits == [] and "loopback" in warnings[0].message


async def test_allowing_private_servers_lets_the_request_through() -> None:
    async with listener() as local:
        with anyio.fail_after(5):
            _, warnings = await call_mcp_servers(
                [McpServer(name="local", url=f"http://127.0.0.1:{local.port}/mcp")],
                query="q",
                max_calls=1,
                timeout=0.5,
                allow_private=True,
            )
    assert local.hits and local.hits[0].startswith(b"POST /mcp")
    assert "Error listing tools" in warnings[0].message


async def test_a_run_with_a_loopback_mcp_server_gets_a_warning_and_the_server_no_request() -> None:
    async with listener() as local, running(instant=True) as (_, client):
        server = {"name": "admin", "url": f"http://127.0.0.1:{local.port}/admin", "headers": {"Authorization": SECRET}}
        payload = {"input": "q", "processor": "lite", "mcp_servers": [server]}
        run = body(await client.post("/v1/tasks/runs", json=payload, headers=beta_headers(payload)))
        with anyio.fail_after(5):
            result = body(await client.get(f"/v1/tasks/runs/{run['run_id']}/result", params={"timeout": 5}))
    assert local.hits == []
    (warning,) = result["run"]["warnings"]
    assert warning["message"].startswith("MCP server admin was not called: 127.0.0.1 is a loopback address")


async def test_the_pinned_transport_keeps_the_host_header_and_refuses_a_redirect_to_a_private_address() -> None:
    seen_hosts: list[str] = []

    async def redirect(request: Request) -> Response:
        seen_hosts.append(request.headers["host"])
        return RedirectResponse(str(request.query_params["to"]), status_code=307)

    app = Starlette(routes=[Route("/mcp", redirect, methods=["POST"])])
    async with listener() as target, serve_asgi(app) as base:
        port = httpx2.URL(base).port
        # "mcp.example" stands for a public name whose checked address happens to be this test's server.
        transport = PinnedTransport({"mcp.example": "127.0.0.1"})
        async with httpx2.AsyncClient(transport=transport, follow_redirects=True) as http:
            with anyio.fail_after(5), pytest.raises(EgressRefused, match="loopback"):
                await http.post(
                    f"http://mcp.example:{port}/mcp", params={"to": f"http://127.0.0.1:{target.port}/x"}, content=b"{}"
                )
    assert seen_hosts == [f"mcp.example:{port}"]
    assert target.hits == []
