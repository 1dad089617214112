"""Serving ASGI apps with uvicorn: listening sockets, announced addresses, in-process servers.

The product (HTTP transports, the embedded emulator) and the tests share these helpers. uvicorn is
already imported by the MCP SDK, so this module adds nothing to start-up.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import AsyncGenerator, Callable, Generator
from contextlib import asynccontextmanager, contextmanager

import anyio
import uvicorn
from starlette.types import ASGIApp

SHUTDOWN_GRACE_SECONDS = 1
STOP_POLL_SECONDS = 0.005

logger = logging.getLogger(__name__)


def listening_socket(host: str = "127.0.0.1", port: int = 0) -> socket.socket:
    """A TCP socket bound and listening on `host:port` (0 picks a free port)."""
    # An explicit IPPROTO_TCP makes asyncio set TCP_NODELAY on accepted sockets; with proto 0 it does not,
    # and Nagle plus delayed ACKs add 40 ms to every keep-alive request.
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(128)
    except OSError:
        sock.close()
        raise
    return sock


def base_url(sock: socket.socket) -> str:
    """`http://host:port` of a bound socket (IPv6 hosts in brackets)."""
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


class PromptlyStopping(uvicorn.Server):
    """uvicorn's graceful shutdown without its fixed pauses.

    uvicorn sleeps 0.1 s after asking its connections to close, then polls every 0.1 s until they and
    their tasks are gone: every stop of a replica, the embedded emulator or a test's server paid 0.1-0.2 s
    even with nothing open. This stops as soon as nothing is left, within the same grace period.
    """

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        for server in self.servers:
            server.close()
        for sock in sockets or []:
            sock.close()
        for connection in list(self.server_state.connections):
            connection.shutdown()
        with anyio.move_on_after(self.config.timeout_graceful_shutdown) as grace:
            while (self.server_state.connections or self.server_state.tasks) and not self.force_exit:
                await anyio.sleep(STOP_POLL_SECONDS)
            for server in self.servers:
                await server.wait_closed()
        if grace.cancelled_caught and self.server_state.tasks:
            # With no grace at all (the in-process emulator) cancelling is the plan, not news.
            level = logging.WARNING if self.config.timeout_graceful_shutdown else logging.DEBUG
            logger.log(
                level,
                "Stopping: cancelling %d request(s) still running after the grace period",
                len(self.server_state.tasks),
            )
            for task in self.server_state.tasks:
                task.cancel(msg="Task cancelled, timeout graceful shutdown exceeded")
        if not self.force_exit:
            await self.lifespan.shutdown()


class AnnouncingServer(PromptlyStopping):
    """Logs `template` (with `{url}`) at WARNING level once its socket is bound, so a `--port 0` server can be found."""

    def __init__(self, config: uvicorn.Config, template: str, logger: logging.Logger) -> None:
        super().__init__(config)
        self._template = template
        self._logger = logger

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        if self.started and self.servers and self.servers[0].sockets:
            self._logger.warning(self._template.format(url=base_url(self.servers[0].sockets[0])))


class EmbeddedServer(PromptlyStopping):
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


def uvicorn_config(app: ASGIApp, host: str, port: int, **options: object) -> uvicorn.Config:
    """A quiet uvicorn config: our own logging, no access log, no websockets, a short graceful stop."""
    settings: dict[str, object] = {
        "log_config": None,
        "access_log": False,
        "lifespan": "auto",
        "timeout_graceful_shutdown": SHUTDOWN_GRACE_SECONDS,
        "ws": "none",
        **options,
    }
    return uvicorn.Config(app, host=host, port=port, **settings)  # pyright: ignore[reportArgumentType]


@asynccontextmanager
async def serve_asgi(
    app: ASGIApp,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    on_server: Callable[[uvicorn.Server], None] | None = None,
    sock: socket.socket | None = None,
    grace_seconds: float = SHUTDOWN_GRACE_SECONDS,
) -> AsyncGenerator[str]:
    """Serve any ASGI app with uvicorn in this event loop; yields its base URL.

    The socket listens before uvicorn starts, so clients may connect at once: they queue until it accepts.
    Pass `sock` (from `listening_socket`) to serve on a socket bound earlier; it is closed afterwards.
    Requests still running `grace_seconds` after the block ends are cancelled.
    """
    sock = sock or listening_socket(host, port)
    try:
        bound_host, bound_port = sock.getsockname()[:2]
        server = EmbeddedServer(uvicorn_config(app, bound_host, bound_port, timeout_graceful_shutdown=grace_seconds))
        if on_server is not None:
            on_server(server)
        async with anyio.create_task_group() as tg:
            tg.start_soon(server.serve, [sock])
            try:
                yield base_url(sock)
            finally:
                server.request_exit()
    finally:
        sock.close()
