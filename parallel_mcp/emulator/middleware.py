"""The emulator's outer layer: request log, scripted faults, `x-api-key`, and no bare 500s.

A request is read whole before anything else happens: once its body is in, it is handled to the end
even if the client has gone (a create still creates its run, as on the real service, where a lost
answer does not undo the work); a client that leaves mid-body sent nothing worth handling.
"""

from __future__ import annotations

import http
import logging

import anyio
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from parallel_mcp.emulator.errors import api_error
from parallel_mcp.emulator.state import EmulatorState

logger = logging.getLogger(__name__)

ACCOUNT_SCOPE_KEY = "parallel_mcp.account"
"""Where the middleware leaves the request's API key: runs and groups belong to the key that made them."""


class DroppedConnection(Exception):
    """Raised when a `drop` fault fires and no server can close the socket (e.g. an in-memory transport)."""


async def _read_whole(receive: Receive) -> list[Message] | None:
    """The request's body messages, or None if the client left before the last one."""
    messages: list[Message] = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        messages.append(message)
        if not message.get("more_body", False):
            return messages


def _replaying(messages: list[Message], receive: Receive) -> Receive:
    """A `receive` that hands out the buffered body first, then whatever the connection says next."""
    pending = list(messages)

    async def replay() -> Message:
        return pending.pop(0) if pending else await receive()

    return replay


async def _discard(message: Message) -> None:
    del message


class EmulatorMiddleware:
    """Logs every request, applies scripted faults, checks `x-api-key`, and turns bugs into clean 500s."""

    def __init__(self, app: ASGIApp, state: EmulatorState) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        method: str = scope["method"]
        path: str = scope["path"]
        status: list[int | None] = [None]

        async def send_recording(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            body = await _read_whole(receive)
            if body is not None:
                await self._handle(scope, _replaying(body, receive), send_recording, status)
        finally:
            self.state.log_request(method, path, status[0])

    async def _drop(self, scope: Scope) -> None:
        dropper = self.state.drop_connection
        if dropper is not None and dropper(dict(scope)):
            # Let the event loop run the transport's connection_lost before uvicorn looks at it.
            await anyio.sleep(0)
            return
        raise DroppedConnection(f"{scope['method']} {scope['path']}: connection dropped by a fault")

    async def _handle(self, scope: Scope, receive: Receive, send: Send, status: list[int | None]) -> None:
        method: str = scope["method"]
        path: str = scope["path"]
        faults = self.state.faults
        if faults.take_request("drop", method, path) is not None:
            await self._drop(scope)
            return
        if faults.take_request("drop_response", method, path) is not None:
            # Handled to the end, the answer thrown away, then the connection closed: a lost 202.
            await self._answer(scope, receive, _discard, status)
            await self._drop(scope)
            return
        await self._answer(scope, receive, send, status)

    async def _answer(self, scope: Scope, receive: Receive, send: Send, status: list[int | None]) -> None:
        method: str = scope["method"]
        path: str = scope["path"]
        faults = self.state.faults
        latency = faults.take_request("latency", method, path)
        if latency is not None:
            # Network latency, so real time whatever the emulator's clock: clients time out in real time.
            await anyio.sleep(latency.delay)
        injected = faults.take_request("status", method, path)
        if injected is not None and injected.status is not None:
            message = injected.message or f"{http.HTTPStatus(injected.status).phrase} (injected fault)"
            await api_error(injected.status, message, retry_after=injected.retry_after)(scope, receive, send)
            return
        headers = dict(scope["headers"])
        key = headers.get(b"x-api-key", b"").decode("latin-1")
        expected = self.state.config.api_key
        if not key or (expected is not None and key != expected):
            await api_error(401, "Unauthorized: invalid or missing credentials (x-api-key)")(scope, receive, send)
            return
        scope[ACCOUNT_SCOPE_KEY] = key
        try:
            await self.app(scope, receive, send)
        except Exception:  # the "never a bare 500" guard at the top of the stack
            logger.exception("%s %s crashed in the emulator", method, path)
            if status[0] is None:
                await api_error(500, "Internal server error in the emulator")(scope, receive, send)
