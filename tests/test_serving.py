"""Serving helpers: a socket that listens before the server starts, its URL, and an in-process server."""

from __future__ import annotations

import httpx2
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from parallel_mcp.serving import base_url, listening_socket, serve_asgi

pytestmark = pytest.mark.anyio


def test_a_listening_socket_gets_a_free_port_and_says_its_url() -> None:
    with listening_socket() as sock:
        url = base_url(sock)
    assert url.startswith("http://127.0.0.1:") and int(url.rsplit(":", 1)[1]) > 0


async def test_serve_asgi_serves_an_app_on_a_socket_bound_beforehand() -> None:
    async def hello(request: Request) -> PlainTextResponse:
        return PlainTextResponse("hello")

    sock = listening_socket()
    expected = base_url(sock)
    async with serve_asgi(Starlette(routes=[Route("/", hello)]), sock=sock) as url, httpx2.AsyncClient() as http:
        assert url == expected
        assert (await http.get(url + "/")).text == "hello"
