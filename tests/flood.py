"""A flood of bare legacy HTTP sessions: the attack `tests/test_sessions.py` keeps and `bench/reliability.py` measures.

Each session is one `initialize` with nothing after it; a `ping` in a session then tells whether the
server still holds it (200) or has evicted it (404).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import anyio
import httpx2

WORKERS = 16
"""Parallel streams of requests."""
INITIALIZE: dict[str, Any] = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "flood", "version": "1"}},
}
PING: dict[str, Any] = {"jsonrpc": "2.0", "id": 2, "method": "ping"}
HEADERS = {"accept": "application/json, text/event-stream", "content-type": "application/json"}


@dataclass
class Opened:
    """What a flood got: the session ids given, and every answer's status."""

    ids: list[str] = field(default_factory=list[str])
    statuses: Counter[int] = field(default_factory=Counter[int])


def from_address(address: str) -> httpx2.AsyncClient:
    """An HTTP client whose connections come from `address` (any 127.x.y.z is this machine)."""
    limits = httpx2.Limits(max_connections=32, max_keepalive_connections=32)
    transport = httpx2.AsyncHTTPTransport(local_address=address, limits=limits)
    return httpx2.AsyncClient(transport=transport, timeout=30)


async def open_sessions(url: str, count: int, *, address: str = "127.0.0.1") -> Opened:
    """`count` bare `initialize` requests from `address`, in WORKERS parallel streams."""
    opened = Opened()

    async def worker(share: int) -> None:
        for _ in range(share):
            response = await http.post(url, json=INITIALIZE, headers=HEADERS)
            opened.statuses[response.status_code] += 1
            if response.status_code == 200 and "mcp-session-id" in response.headers:
                opened.ids.append(response.headers["mcp-session-id"])

    async with from_address(address) as http, anyio.create_task_group() as group:
        for index in range(WORKERS):
            group.start_soon(worker, count // WORKERS + (index < count % WORKERS))
    return opened


async def held_sessions(url: str, session_ids: list[str], *, address: str = "127.0.0.1") -> list[str]:
    """The sessions among `session_ids` the server still holds.

    Raises:
        RuntimeError: a ping got neither 200 (held) nor 404 (forgotten).
    """
    held: list[str] = []
    limiter = anyio.Semaphore(WORKERS)

    async def probe(session_id: str) -> None:
        async with limiter:
            headers = {**HEADERS, "mcp-session-id": session_id, "mcp-protocol-version": "2025-11-25"}
            response = await http.post(url, json=PING, headers=headers)
        if response.status_code not in (200, 404):
            raise RuntimeError(f"a ping in a flooded session answered {response.status_code}")
        if response.status_code == 200:
            held.append(session_id)

    async with from_address(address) as http, anyio.create_task_group() as group:
        for session_id in session_ids:
            group.start_soon(probe, session_id)
    return held
