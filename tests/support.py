"""Shared test helpers: an emulator on loopback, a Task API client for it, and an MCP client session."""

from __future__ import annotations

import socket
from collections.abc import AsyncGenerator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Literal, TypeVar, cast

import anyio
import anyio.lowlevel
from mcp import Client
from mcp.types import CallToolResult, TextContent

from parallel_mcp.client import AsyncTaskClient
from parallel_mcp.config import Settings
from parallel_mcp.emulator.clock import EmulatorClock
from parallel_mcp.emulator.config import EmulatorConfig
from parallel_mcp.emulator.runner import RunningEmulator, serve_emulator
from parallel_mcp.server import create_server
from parallel_mcp.store import Store

API_KEY = "test-key-0123456789"
S = TypeVar("S", bound=Store)


class Sleeps(list[float]):
    """A backoff seam for clients: records each delay and returns at once, so retries cost no time."""

    async def __call__(self, seconds: float) -> None:
        self.append(seconds)
        await anyio.lowlevel.checkpoint()


async def until(predicate: Callable[[], bool], *, seconds: float = 10) -> None:
    """Wait, bounded, for what another task, connection or process does (checked every 10 ms)."""
    with anyio.fail_after(seconds):
        while not predicate():
            await anyio.sleep(0.01)


@asynccontextmanager
async def started(store: S) -> AsyncGenerator[S]:
    """`store`, started (its background tasks running) as a server's lifespan would, and closed after."""
    async with anyio.create_task_group() as tasks:
        await store.start(tasks)
        try:
            yield store
        finally:
            await store.close()
            tasks.cancel_scope.cancel()


@dataclass
class Session:
    """An MCP client connected in memory to a server backed by a live emulator."""

    mcp: Client
    emulator: RunningEmulator
    client: AsyncTaskClient
    sleeps: Sleeps
    """Backoff delays the client chose (none of them slept out)."""

    async def call(self, tool: str, arguments: dict[str, Any], **kwargs: Any) -> CallToolResult:
        """Call a tool; the result may be an error (check `is_error`)."""
        return await self.mcp.call_tool(tool, arguments, **kwargs)


@asynccontextmanager
async def emulator_client(
    config: EmulatorConfig | None = None,
    *,
    max_retries: int = 2,
    sleeps: Sleeps | None = None,
    clock: EmulatorClock | None = None,
) -> AsyncGenerator[tuple[RunningEmulator, AsyncTaskClient]]:
    """A live emulator (on `clock`: a `ManualClock` lets a test move emulated time) and an `AsyncTaskClient`
    pointed at it; backoff goes to `sleeps` (never slept)."""
    config = (config or EmulatorConfig()).model_copy(update={"api_key": API_KEY})
    async with (
        serve_emulator(config, clock=clock) as emulator,
        AsyncTaskClient(
            api_key=API_KEY,
            base_url=emulator.base_url,
            max_retries=max_retries,
            sleep=Sleeps() if sleeps is None else sleeps,
        ) as client,
    ):
        yield emulator, client


@asynccontextmanager
async def mcp_session(
    config: EmulatorConfig | None = None,
    *,
    mode: Literal["auto", "legacy"] = "auto",
    max_retries: int = 2,
    clock: EmulatorClock | None = None,
    **settings: Any,
) -> AsyncGenerator[Session]:
    """An in-memory MCP session with `create_server`, its client aimed at a live emulator.

    `settings` are `Settings` fields (e.g. `wait_seconds=0`); results are marked emulated.
    """
    settings.setdefault("emulator_speed", (config or EmulatorConfig()).speed)
    sleeps = Sleeps()
    async with emulator_client(config, max_retries=max_retries, sleeps=sleeps, clock=clock) as (emulator, client):
        server = create_server(Settings(**settings), client=client, emulated=True)
        async with Client(server, mode=mode) as mcp:
            yield Session(mcp=mcp, emulator=emulator, client=client, sleeps=sleeps)


def text_of(result: CallToolResult) -> str:
    """The text content of a tool result."""
    return "\n".join(block.text for block in result.content if isinstance(block, TextContent))


def structured(result: CallToolResult) -> dict[str, Any]:
    """The structured content of a successful tool result."""
    assert not result.is_error, text_of(result)
    content: object = result.structured_content
    assert isinstance(content, dict)
    return cast(dict[str, Any], content)


def closed_port() -> int:
    """A loopback port nobody listens on: bind an ephemeral one, then let it go."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
