"""Serve the emulator with uvicorn on a real loopback port: in-process for tests, forever for the CLI."""

from __future__ import annotations

import logging
import socket
from collections.abc import AsyncGenerator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import anyio
import uvicorn

from parallel_mcp.emulator.app import create_emulator_app
from parallel_mcp.emulator.clock import EmulatorClock
from parallel_mcp.emulator.config import EmulatorConfig
from parallel_mcp.emulator.state import EmulatorState
from parallel_mcp.serving import AnnouncingServer, serve_asgi, uvicorn_config

logger = logging.getLogger(__name__)

STARTUP_TIMEOUT_SECONDS = 10
STOP_GRACE_SECONDS = 0.0
"""What the emulator still serves when its block ends belongs to clients that are leaving (a long poll, a
request a fault holds): cancelled at once, not waited on."""


@dataclass(frozen=True)
class RunningEmulator:
    """A live emulator: where it listens, its state (to drive and inspect), and its config."""

    base_url: str
    state: EmulatorState
    config: EmulatorConfig


def _dropper(server: uvicorn.Server) -> Callable[[dict[str, Any]], bool]:
    """Close, without a response, the connection a request (ASGI scope) arrived on."""

    def drop(scope: dict[str, Any]) -> bool:
        client = scope.get("client")
        if client is None:
            return False
        wanted = (str(client[0]), int(client[1]))
        for connection in list(server.server_state.connections):
            if getattr(connection, "client", None) == wanted:
                transport = getattr(connection, "transport", None)
                if transport is not None:
                    transport.abort()
                    return True
        return False

    return drop


@asynccontextmanager
async def serve_emulator(
    config: EmulatorConfig | None = None,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    sock: socket.socket | None = None,
    clock: EmulatorClock | None = None,
) -> AsyncGenerator[RunningEmulator]:
    """Run the emulator in this event loop on `host:port` (0 picks a free port) for the block's duration.

    `clock` is the emulated service's time (real by default); a `ManualClock` lets a test move it.

    Example::

        async with serve_emulator(EmulatorConfig(), clock=ManualClock()) as emu:
            client = parallel.AsyncParallel(api_key="k", base_url=emu.base_url)
            ...
            emu.state.clock.advance(5)
    """
    config = config or EmulatorConfig()
    state = EmulatorState(config, clock=clock)

    def attach(server: uvicorn.Server) -> None:
        state.drop_connection = _dropper(server)

    app = create_emulator_app(state)
    served = serve_asgi(app, host=host, port=port, on_server=attach, sock=sock, grace_seconds=STOP_GRACE_SECONDS)
    async with served as base_url:
        with anyio.fail_after(STARTUP_TIMEOUT_SECONDS):
            await state.started.wait()
        logger.info("emulator listening on %s", base_url)
        yield RunningEmulator(base_url=base_url, state=state, config=config)


def run_emulator_forever(config: EmulatorConfig, host: str = "127.0.0.1", port: int = 8787) -> None:
    """Serve the emulator until interrupted (the `parallel-mcp emulator` command); logs go to stderr."""
    state = EmulatorState(config)
    summary = (
        f"speed {config.speed:g}x{', instant' if config.instant else ''}{', frozen' if config.frozen else ''}, "
        f"{len(config.faults)} fault(s), "
        f"{'one api key' if config.api_key else 'any api key'}"
        f"{', MCP servers on private addresses allowed' if config.allow_private_mcp_servers else ''}"
    )
    served = uvicorn_config(create_emulator_app(state), host, port)
    server = AnnouncingServer(served, f"Task API emulator listening on {{url}} ({summary})", logger)
    state.drop_connection = _dropper(server)
    server.run()
