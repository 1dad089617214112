"""Where the emulator may call `mcp_servers` from: public addresses only, unless the config says otherwise.

The real service calls a run's MCP servers from Parallel's network. The emulator calls them from
the user's machine (with no API key the MCP server embeds it), where a URL a model made up, such as
`http://127.0.0.1:PORT/admin`, would reach services that trust local callers, with the run's
headers attached. So a server's host is resolved first and refused when any of its addresses is
loopback, private, link-local, unspecified, multicast, reserved or a cloud metadata endpoint (IPv6
forms that embed an IPv4 address are judged by that address).

Against DNS rebinding, the check and the connection use the same answer: `PinnedTransport` sends
every request to the address checked for its host (kept for the client's life), with the URL's
host name still in the `Host` header and as the TLS server name, so certificates are verified as
usual. Re-checking the peer after connecting would come too late: the request and its headers
would already be on their way. A host the session meets later (a redirect) is checked the same way
before anything is sent to it.
"""

from __future__ import annotations

import ipaddress
import socket
from ipaddress import IPv4Address, IPv6Address

import anyio
import httpx2

__all__ = ["EgressRefused", "PinnedTransport", "pin_destination", "refusal", "resolve_public"]

IPAddress = IPv4Address | IPv6Address

# Names that reach a cloud provider's instance metadata service from inside the instance.
_METADATA_HOSTS = frozenset(
    {"metadata.google.internal", "metadata.goog", "metadata", "instance-data", "instance-data.ec2.internal"}
)
# Metadata services at addresses the general rules below would not catch by themselves
# (169.254.169.254 and fd00:ec2::254 are link-local and private anyway, but deserve their own reason).
_METADATA_ADDRESSES: frozenset[IPAddress] = frozenset(
    ipaddress.ip_address(a) for a in ("169.254.169.254", "169.254.170.2", "fd00:ec2::254", "100.100.100.200")
)
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_REAL_SERVICE = "the real service calls MCP servers from Parallel's network"


class EgressRefused(httpx2.ConnectError):
    """A destination the emulator will not call; the message says which host and why."""


def _embedded_ipv4(address: IPv6Address) -> IPv4Address | None:
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address in _NAT64:
        return IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def refusal(address: IPAddress) -> str | None:
    """Why the emulator must not call `address` (e.g. "a loopback address"), or None for a public one."""
    if address in _METADATA_ADDRESSES:
        return "a cloud metadata address"
    if isinstance(address, IPv6Address):
        embedded = _embedded_ipv4(address)
        if embedded is not None:
            return refusal(embedded)
    checks = (
        (address.is_loopback, "a loopback address"),
        (address.is_link_local, "a link-local address"),
        (address.is_unspecified, "an unspecified address"),
        (address.is_multicast, "a multicast address"),
        (address.is_private, "a private address"),
        (not address.is_global, "a reserved address"),
    )
    return next((reason for refused, reason in checks if refused), None)


async def resolve_public(host: str, port: int) -> str:
    """The address to connect to for `host`, after checking every address it resolves to.

    Raises `EgressRefused` when one of them is not public (a mixed answer could be rebound to the bad
    one at will), and `OSError` when the name does not resolve.
    """
    if host.rstrip(".").lower() in _METADATA_HOSTS:
        raise EgressRefused(f"{host} is a cloud metadata host; {_REAL_SERVICE}")
    infos = await anyio.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    # A scoped IPv6 answer ("fe80::1%eth0") carries its zone after the address.
    addresses = list(dict.fromkeys(ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]) for info in infos))
    if not addresses:
        raise OSError(f"{host} resolves to no address")
    for address in addresses:
        reason = refusal(address)
        if reason is not None:
            what = f"is {reason}" if str(address) == host else f"resolves to {reason} ({address})"
            raise EgressRefused(f"{host} {what}; {_REAL_SERVICE}")
    return str(addresses[0])


def _default_port(url: httpx2.URL) -> int:
    return url.port or (443 if url.scheme == "https" else 80)


class PinnedTransport(httpx2.AsyncBaseTransport):
    """Sends each request to the checked address of its host, keeping the host name for `Host` and TLS."""

    def __init__(self, pins: dict[str, str] | None = None) -> None:
        self._pins = dict(pins or {})
        self._inner = httpx2.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        host = request.url.host
        address = self._pins.get(host)
        if address is None:
            address = await resolve_public(host, _default_port(request.url))
            self._pins[host] = address
        extensions = dict(request.extensions)
        if request.url.scheme == "https":
            extensions["sni_hostname"] = host
        # A new request, so the caller's (redirect handling, error messages) keeps the URL it asked for;
        # the headers, `Host` included, were already built from that URL.
        pinned = httpx2.Request(
            request.method,
            request.url.copy_with(host=address),
            headers=request.headers,
            stream=request.stream,
            extensions=extensions,
        )
        return await self._inner.handle_async_request(pinned)

    async def aclose(self) -> None:
        await self._inner.aclose()


async def pin_destination(url: str) -> dict[str, str]:
    """`{host: address}` for a server URL whose host passed `resolve_public` (raises otherwise)."""
    parsed = httpx2.URL(url)
    return {parsed.host: await resolve_public(parsed.host, _default_port(parsed))}
