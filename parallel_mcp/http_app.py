"""The HTTP side of the server: the ASGI app with DNS-rebinding protection, authentication and bounded sessions.

Authentication is one of: a shared bearer token (`BearerAuthMiddleware`), or OAuth, where the SDK
checks each user's access token (wired in `create_server`) and this module adds the protected
resource metadata at the root path too.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from typing import Any, cast

import uvicorn
from mcp.server.mcpserver import MCPServer
from mcp.server.transport_security import DEFAULT_MAX_REQUEST_BODY_SIZE, TransportSecuritySettings
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from parallel_mcp.config import Settings
from parallel_mcp.serving import AnnouncingServer
from parallel_mcp.sessions import bound_sessions

logger = logging.getLogger(__name__)

PROTECTED_RESOURCE_METADATA = "/.well-known/oauth-protected-resource"
MCP_PATHS = frozenset({"/mcp", "/sse", "/messages", "/messages/"})
"""The transports' own endpoints: never open, whatever routes the server adds."""


class BearerAuthMiddleware:
    """Require `Authorization: Bearer <token>` on every HTTP request (401 otherwise), except on `open_paths`.

    The scheme is case-insensitive (RFC 7235 §2.1); the token is compared through digests in constant
    time, so neither its content nor its length shows in the timing.
    """

    def __init__(self, app: ASGIApp, token: str, *, open_paths: frozenset[str] = frozenset()) -> None:
        self.app = app
        self._expected = hashlib.sha256(token.encode()).digest()
        self._open_paths = open_paths

    def _authorized(self, value: bytes) -> bool:
        scheme, _, credentials = value.strip().partition(b" ")
        supplied = hashlib.sha256(credentials.strip()).digest()
        return hmac.compare_digest(supplied, self._expected) and scheme.lower() == b"bearer"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("path") in self._open_paths:
            await self.app(scope, receive, send)
            return
        headers: list[tuple[bytes, bytes]] = scope.get("headers", [])
        supplied = next((value for name, value in headers if name.lower() == b"authorization"), b"")
        if self._authorized(supplied):
            await self.app(scope, receive, send)
            return
        body = json.dumps({"error": "unauthorized", "error_description": "a valid bearer token is required"}).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 401,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"www-authenticate", b'Bearer realm="parallel-mcp"'),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


class RootResourceMetadata:
    """Serve the protected resource metadata at the root path too (RFC 9728 §3.1 clients try it after the
    path-suffixed one); the SDK serves it only at `/.well-known/oauth-protected-resource/mcp`."""

    def __init__(self, app: ASGIApp, suffixed_path: str) -> None:
        self.app = app
        self._suffixed = suffixed_path

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope.get("path") == PROTECTED_RESOURCE_METADATA:
            scope = {**scope, "path": self._suffixed, "raw_path": self._suffixed.encode()}
        await self.app(scope, receive, send)


class RequestIdCheck:
    """Answer 400 (JSON-RPC -32600) to a request whose `id` is neither a string nor an integer.

    The SDK reads such a message as a notification, drops its id and answers 202 over legacy HTTP, so the
    client waits for an answer that never comes. Only POST bodies that mention an `"id"` are parsed here,
    and only up to the SDK's body limit (the SDK itself refuses larger ones with 413).
    """

    def __init__(self, app: ASGIApp, *, max_body: int = DEFAULT_MAX_REQUEST_BODY_SIZE) -> None:
        self.app = app
        self._max_body = max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # Only the transports' endpoints speak JSON-RPC; other routes (webhooks) have bodies of their own.
        if scope["type"] != "http" or scope.get("method") != "POST" or scope.get("path") not in MCP_PATHS:
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        size = 0
        more = True
        while more and size <= self._max_body:
            message = await receive()
            if message["type"] != "http.request":  # the client left: let the app see it
                await self.app(scope, _replay(chunks, more=False, then=message, receive=receive), send)
                return
            chunk = cast(bytes, message.get("body", b""))
            chunks.append(chunk)
            size += len(chunk)
            more = bool(message.get("more_body", False))
        if not more and _has_bad_request_id(b"".join(chunks)):
            body = json.dumps(
                {
                    "jsonrpc": "2.0",
                    "id": None,
                    "error": {"code": -32600, "message": "Invalid Request: id must be a string or an integer"},
                }
            ).encode()
            await send(
                {
                    "type": "http.response.start",
                    "status": 400,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
                }
            )
            await send({"type": "http.response.body", "body": body})
            return
        await self.app(scope, _replay(chunks, more=more, then=None, receive=receive), send)


def _has_bad_request_id(body: bytes) -> bool:
    if b'"id"' not in body:
        return False
    try:
        message: object = json.loads(body)
    except (ValueError, RecursionError):
        return False  # the SDK answers what it cannot parse itself
    if not isinstance(message, dict):
        return False
    fields = cast(dict[str, Any], message)
    if "method" not in fields or "id" not in fields:
        return False
    request_id = fields["id"]
    return not (isinstance(request_id, str) or (isinstance(request_id, int) and not isinstance(request_id, bool)))


def _replay(chunks: list[bytes], *, more: bool, then: Message | None, receive: Receive) -> Receive:
    """A `receive` that gives back the body already read, then continues with the client's own."""
    pending: list[Message] = [{"type": "http.request", "body": b"".join(chunks), "more_body": more}]
    if then is not None:
        pending.append(then)

    async def replayed() -> Message:
        if pending:
            return pending.pop(0)
        return await receive()

    return replayed


def transport_security(settings: Settings) -> TransportSecuritySettings:
    """DNS-rebinding protection: loopback names on any port, plus the configured hosts and origins."""
    hosts = [f"{name}:*" for name in ("127.0.0.1", "localhost", "[::1]")]
    hosts.extend(settings.allowed_hosts)
    origins = [f"http://{host}" for host in hosts]
    origins.extend(settings.allowed_origins)
    return TransportSecuritySettings(enable_dns_rebinding_protection=True, allowed_hosts=hosts, allowed_origins=origins)


def build_http_app(server: MCPServer[Any], settings: Settings) -> ASGIApp:
    """The ASGI app for `streamable-http` or `sse`: bearer auth when a token is set, OAuth when an issuer is."""
    security = transport_security(settings)
    if settings.transport == "sse":
        starlette = server.sse_app(transport_security=security, host=settings.host)
    else:
        # Replicas over one database keep nothing per session, so legacy clients need no sticky sessions.
        replicated = settings.database_url is not None
        starlette = server.streamable_http_app(
            transport_security=security,
            host=settings.host,
            stateless_http=replicated,
            session_idle_timeout=settings.session_idle_timeout,
            max_sessions=settings.max_sessions,
        )
        if not replicated:
            bound_sessions(server.session_manager, max_per_client=settings.max_sessions_per_client)
    app: ASGIApp = RequestIdCheck(starlette)
    if settings.uses_oauth:
        from parallel_mcp.exposure import oauth_resource

        resource_path = _path_of(oauth_resource(settings))
        app = RootResourceMetadata(app, PROTECTED_RESOURCE_METADATA + resource_path)
    if settings.auth_token is not None:
        # The server's own custom routes (Parallel's signed webhooks) authenticate their callers themselves,
        # as the SDK leaves them public under OAuth: the shared token guards the MCP endpoints and the rest.
        custom = frozenset(route.path for route in starlette.routes if isinstance(route, Route)) - MCP_PATHS
        app = BearerAuthMiddleware(app, settings.auth_token.get_secret_value(), open_paths=custom)
    return app


def _path_of(url: str) -> str:
    from urllib.parse import urlsplit

    path = urlsplit(url).path
    return "" if path == "/" else path


async def serve_http(server: MCPServer[Any], settings: Settings) -> None:
    """Serve MCP over streamable HTTP (`/mcp`) or SSE (`/sse`) until interrupted."""
    app = build_http_app(server, settings)
    config = uvicorn.Config(
        app, host=settings.host, port=settings.port, log_level=settings.log_level.lower(), log_config=None
    )
    path = "/sse" if settings.transport == "sse" else "/mcp"
    await AnnouncingServer(config, f"parallel-mcp listening on {{url}}{path}", logger).serve()
