"""Shared test helpers: an emulator on loopback, a Task API client for it, and an MCP client session."""

from __future__ import annotations

import socket
from collections.abc import AsyncGenerator, Generator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from typing import Any, Literal, cast

import anyio
import uvicorn
from mcp import Client
from mcp.types import CallToolResult, TextContent
from starlette.types import ASGIApp

from parallel_mcp.client import AsyncTaskClient
from parallel_mcp.config import Settings
from parallel_mcp.emulator.config import EmulatorConfig
from parallel_mcp.emulator.runner import RunningEmulator, serve_emulator
from parallel_mcp.server import create_server

API_KEY = "test-key-0123456789"


@dataclass
class Session:
    """An MCP client connected in memory to a server backed by a live emulator."""

    mcp: Client
    emulator: RunningEmulator
    client: AsyncTaskClient

    async def call(self, tool: str, arguments: dict[str, Any], **kwargs: Any) -> CallToolResult:
        """Call a tool; the result may be an error (check `is_error`)."""
        return await self.mcp.call_tool(tool, arguments, **kwargs)


@asynccontextmanager
async def emulator_client(
    config: EmulatorConfig | None = None, *, max_retries: int = 2
) -> AsyncGenerator[tuple[RunningEmulator, AsyncTaskClient]]:
    """A live emulator and an `AsyncTaskClient` pointed at it."""
    config = (config or EmulatorConfig()).model_copy(update={"api_key": API_KEY})
    async with (
        serve_emulator(config) as emulator,
        AsyncTaskClient(api_key=API_KEY, base_url=emulator.base_url, max_retries=max_retries) as client,
    ):
        yield emulator, client


@asynccontextmanager
async def mcp_session(
    config: EmulatorConfig | None = None,
    *,
    mode: Literal["auto", "legacy"] = "auto",
    max_retries: int = 2,
    **settings: Any,
) -> AsyncGenerator[Session]:
    """An in-memory MCP session with `create_server`, its client aimed at a live emulator.

    `settings` are `Settings` fields (e.g. `wait_seconds=0`); results are marked emulated.
    """
    settings.setdefault("emulator_speed", (config or EmulatorConfig()).speed)
    async with emulator_client(config, max_retries=max_retries) as (emulator, client):
        server = create_server(Settings(**settings), client=client, emulated=True)
        async with Client(server, mode=mode) as mcp:
            yield Session(mcp=mcp, emulator=emulator, client=client)


def text_of(result: CallToolResult) -> str:
    """The text content of a tool result."""
    return "\n".join(block.text for block in result.content if isinstance(block, TextContent))


def structured(result: CallToolResult) -> dict[str, Any]:
    """The structured content of a successful tool result."""
    assert not result.is_error, text_of(result)
    content: object = result.structured_content
    assert isinstance(content, dict)
    return cast(dict[str, Any], content)


class _Uvicorn(uvicorn.Server):
    """Sets `ready` once listening, and leaves pytest's signal handlers alone."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.ready = anyio.Event()

    @contextmanager
    def capture_signals(self) -> Generator[None]:
        yield

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        try:
            await super().startup(sockets=sockets)
        finally:
            self.ready.set()


@asynccontextmanager
async def serve_asgi(app: ASGIApp) -> AsyncGenerator[str]:
    """Serve an ASGI app with uvicorn on 127.0.0.1 (a free port) for the block; yields its base URL."""
    server = _Uvicorn(uvicorn.Config(app, host="127.0.0.1", port=0, lifespan="on", log_config=None))
    async with anyio.create_task_group() as group:
        group.start_soon(server.serve)
        with anyio.fail_after(10):
            await server.ready.wait()
        assert server.started
        port = int(server.servers[0].sockets[0].getsockname()[1])
        try:
            yield f"http://127.0.0.1:{port}"
        finally:
            server.should_exit = True
