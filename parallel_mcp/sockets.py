"""Listening sockets for the servers this package embeds (stdlib only, so cheap to import)."""

from __future__ import annotations

import socket


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
