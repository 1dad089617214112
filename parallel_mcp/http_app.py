"""The HTTP side of the server: the ASGI app with DNS-rebinding protection and optional bearer auth."""

from __future__ import annotations

import hmac
import json
import logging
from typing import Any

import uvicorn
from mcp.server.mcpserver import MCPServer
from mcp.server.transport_security import TransportSecuritySettings
from starlette.types import ASGIApp, Receive, Scope, Send

from parallel_mcp.config import Settings
from parallel_mcp.serving import AnnouncingServer

logger = logging.getLogger(__name__)


class BearerAuthMiddleware:
    """Require `Authorization: Bearer <token>` on every HTTP request (401 otherwise)."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app = app
        self._expected = f"Bearer {token}".encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers: list[tuple[bytes, bytes]] = scope.get("headers", [])
        supplied = next((value for name, value in headers if name.lower() == b"authorization"), b"")
        if hmac.compare_digest(supplied, self._expected):
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


def transport_security(settings: Settings) -> TransportSecuritySettings:
    """DNS-rebinding protection: loopback names on any port, plus the configured hosts and origins."""
    hosts = [f"{name}:*" for name in ("127.0.0.1", "localhost", "[::1]")]
    hosts.extend(settings.allowed_hosts)
    origins = [f"http://{host}" for host in hosts]
    origins.extend(settings.allowed_origins)
    return TransportSecuritySettings(enable_dns_rebinding_protection=True, allowed_hosts=hosts, allowed_origins=origins)


def build_http_app(server: MCPServer[Any], settings: Settings) -> ASGIApp:
    """The ASGI app for `streamable-http` or `sse`, wrapped in bearer auth when a token is set."""
    security = transport_security(settings)
    if settings.transport == "sse":
        app: ASGIApp = server.sse_app(transport_security=security, host=settings.host)
    else:
        app = server.streamable_http_app(transport_security=security, host=settings.host)
    if settings.auth_token is not None:
        app = BearerAuthMiddleware(app, settings.auth_token.get_secret_value())
    return app


async def serve_http(server: MCPServer[Any], settings: Settings) -> None:
    """Serve MCP over streamable HTTP (`/mcp`) or SSE (`/sse`) until interrupted."""
    app = build_http_app(server, settings)
    config = uvicorn.Config(
        app, host=settings.host, port=settings.port, log_level=settings.log_level.lower(), log_config=None
    )
    path = "/sse" if settings.transport == "sse" else "/mcp"
    await AnnouncingServer(config, f"parallel-mcp listening on {{url}}{path}", logger).serve()
