"""Serve the emulator with uvicorn on a real loopback port: in-process for tests, forever for the CLI."""

from __future__ import annotations

import logging
import socket
from collections.abc import AsyncGenerator, Callable, Generator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from typing import Any

import anyio
import uvicorn
from starlette.types import ASGIApp

from parallel_mcp.announce import AnnouncingServer
from parallel_mcp.emulator.app import create_emulator_app
from parallel_mcp.emulator.config import EmulatorConfig
from parallel_mcp.emulator.state import EmulatorState
from parallel_mcp.sockets import listening_socket

logger = logging.getLogger(__name__)

SHUTDOWN_GRACE_SECONDS = 1
STARTUP_TIMEOUT_SECONDS = 10


class _EmbeddedServer(uvicorn.Server):
    """A uvicorn server for embedding: leaves the host's signal handlers alone and stops without a tick delay."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self._exit_requested = anyio.Event()

    @contextmanager
    def capture_signals(self) -> Generator[None]:
        yield

    async def main_loop(self) -> None:
        # uvicorn's own loop checks `should_exit` every 0.1 s; waiting on an event makes shutdown immediate.
        await self.on_tick(0)
        await self._exit_requested.wait()

    def request_exit(self) -> None:
        """Begin a graceful shutdown now."""
        self.should_exit = True
        self._exit_requested.set()


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


def _uvicorn_config(app: ASGIApp, host: str, port: int) -> uvicorn.Config:
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        log_config=None,
        access_log=False,
        lifespan="auto",
        timeout_graceful_shutdown=SHUTDOWN_GRACE_SECONDS,
        ws="none",
    )


@asynccontextmanager
async def serve_asgi(
    app: ASGIApp,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    on_server: Callable[[uvicorn.Server], None] | None = None,
    sock: socket.socket | None = None,
) -> AsyncGenerator[str]:
    """Serve any ASGI app with uvicorn in this event loop; yields its base URL (e.g. for a webhook receiver).

    The socket listens before uvicorn starts, so clients may connect at once: they queue until it accepts.
    Pass `sock` (from `listening_socket`) to serve on a socket bound earlier; it is closed afterwards.
    """
    sock = sock or listening_socket(host, port)
    try:
        host, bound_port = sock.getsockname()[:2]
        server = _EmbeddedServer(_uvicorn_config(app, host, bound_port))
        if on_server is not None:
            on_server(server)
        netloc = f"[{host}]:{bound_port}" if ":" in host else f"{host}:{bound_port}"
        async with anyio.create_task_group() as tg:
            tg.start_soon(server.serve, [sock])
            try:
                yield f"http://{netloc}"
            finally:
                server.request_exit()
    finally:
        sock.close()


@asynccontextmanager
async def serve_emulator(
    config: EmulatorConfig | None = None, *, host: str = "127.0.0.1", port: int = 0, sock: socket.socket | None = None
) -> AsyncGenerator[RunningEmulator]:
    """Run the emulator in this event loop on `host:port` (0 picks a free port) for the block's duration.

    Example::

        async with serve_emulator(EmulatorConfig(frozen=True)) as emu:
            client = parallel.AsyncParallel(api_key="k", base_url=emu.base_url)
    """
    config = config or EmulatorConfig()
    state = EmulatorState(config)

    def attach(server: uvicorn.Server) -> None:
        state.drop_connection = _dropper(server)

    app = create_emulator_app(state)
    async with serve_asgi(app, host=host, port=port, on_server=attach, sock=sock) as base_url:
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
    )
    uvicorn_config = _uvicorn_config(create_emulator_app(state), host, port)
    server = AnnouncingServer(uvicorn_config, f"Task API emulator listening on {{url}} ({summary})", logger)
    state.drop_connection = _dropper(server)
    server.run()
