"""Who may reach an HTTP server, checked before it starts: the rules that keep it from serving strangers.

Kept apart from `http_app` (and free of heavy imports) so the CLI can refuse a bad configuration
before it loads the transport, and stdio start-up never pays for it.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from parallel_mcp.config import ConfigError, Settings

LOOPBACK_NAMES = frozenset({"localhost", "ip6-localhost"})

UNAUTHENTICATED_WARNING = """\
==============================================================================
WARNING: parallel-mcp serves {transport} on {host} WITHOUT AUTHENTICATION
(--allow-unauthenticated). Anyone who can reach this address can start billed
runs on this server's Parallel account and read every run it made. Put it
behind authentication: PARALLEL_MCP_AUTH_TOKEN (one shared token) or
PARALLEL_MCP_OAUTH_ISSUER (each user signs in).
=============================================================================="""


def is_loopback(host: str) -> bool:
    """True when `host` only accepts connections from this machine (127.0.0.0/8, ::1, localhost)."""
    import ipaddress  # only an HTTP server asks; stdio start-up does not pay for it

    name = host.strip().strip("[]").lower()
    if name in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False  # a host name other than localhost may resolve to anything


def oauth_resource(settings: Settings) -> str:
    """The resource identifier of this server (RFC 8707/9728): its endpoint under `public_url` (/mcp, or /sse
    for the SSE transport, since clients check that it names the URL they connect to), else the audience."""
    if settings.public_url is not None:
        return settings.public_url.rstrip("/") + ("/sse" if settings.transport == "sse" else "/mcp")
    assert settings.oauth_audience is not None, "check_serving refuses OAuth without either"
    return settings.oauth_audience


def oauth_audience(settings: Settings) -> str:
    """The audience every access token must name: the configured one, else this server's resource URL."""
    return settings.oauth_audience or oauth_resource(settings)


def check_serving(settings: Settings) -> str | None:
    """Refuse a configuration that would serve HTTP unsafely; return a warning to print loudly, if any.

    Raises:
        ConfigError: the message names the settings to change.
    """
    if settings.transport == "stdio":
        return None
    if settings.oauth_issuer is not None:
        _check_oauth(settings)
        return None
    if settings.auth_token is not None or is_loopback(settings.host):
        return None
    if settings.allow_unauthenticated:
        return UNAUTHENTICATED_WARNING.format(transport=settings.transport, host=settings.host)
    raise ConfigError(
        f"refusing to serve {settings.transport} on {settings.host} without authentication: anyone who can reach "
        "it could start billed runs on this server's Parallel account. Set PARALLEL_MCP_AUTH_TOKEN (a shared "
        "bearer token) or PARALLEL_MCP_OAUTH_ISSUER (users sign in with your identity provider), bind to "
        "127.0.0.1 (--host), or pass --allow-unauthenticated (PARALLEL_MCP_ALLOW_UNAUTHENTICATED=true) if "
        "something in front of it already authenticates every request."
    )


def _check_oauth(settings: Settings) -> None:
    if (settings.oauth_introspection_client_id is None) != (settings.oauth_introspection_client_secret is None):
        raise ConfigError(
            "PARALLEL_MCP_OAUTH_INTROSPECTION_CLIENT_ID and PARALLEL_MCP_OAUTH_INTROSPECTION_CLIENT_SECRET go "
            "together: opaque access tokens are introspected as that client, with that secret. Set both, or neither "
            "(then only JWT access tokens are accepted)."
        )
    if settings.auth_token is not None:
        raise ConfigError(
            "PARALLEL_MCP_OAUTH_ISSUER and PARALLEL_MCP_AUTH_TOKEN are exclusive: with OAuth each user signs in "
            "and brings an access token, so there is no shared token to check; unset one of them."
        )
    if settings.multi_user:
        raise ConfigError(
            "PARALLEL_MCP_OAUTH_ISSUER and --multi-user (PARALLEL_MCP_MULTI_USER) do not go together: with OAuth, "
            "users sign in and every run goes on this server's PARALLEL_API_KEY, while multi-user mode makes each "
            "request bring its own Parallel key. Choose one."
        )
    if settings.public_url is None and not _is_http_url(settings.oauth_audience):
        raise ConfigError(
            "PARALLEL_MCP_OAUTH_ISSUER needs PARALLEL_MCP_PUBLIC_URL (the URL clients reach this server at, e.g. "
            "https://research.example.com): it names this server in its protected resource metadata and is the "
            "audience its access tokens must carry (or set PARALLEL_MCP_OAUTH_AUDIENCE to this server's URL)."
        )


def _is_http_url(value: str | None) -> bool:
    if not value:
        return False
    parts = urlsplit(value)
    return parts.scheme in ("http", "https") and bool(parts.netloc)
