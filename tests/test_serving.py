"""Serving helpers: a socket that listens before the server starts, its URL, and an in-process server."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import cast

import anyio
import httpx2
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, StreamingResponse
from starlette.routing import Route

from parallel_mcp.serving import base_url, listening_socket, serve_asgi

pytestmark = [pytest.mark.anyio, pytest.mark.virtual_time]


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


async def test_a_server_with_an_idle_keep_alive_connection_stops_without_uvicorns_fixed_pauses() -> None:
    async def hello(request: Request) -> PlainTextResponse:
        return PlainTextResponse("hello")

    async with httpx2.AsyncClient() as http:
        async with serve_asgi(Starlette(routes=[Route("/", hello)])) as url:
            assert (await http.get(url + "/")).text == "hello"  # leaves a keep-alive connection open
            stopping = anyio.current_time()
        # uvicorn alone pauses 0.1 s after closing connections, then polls every 0.1 s
        assert anyio.current_time() - stopping < 0.09


async def test_a_response_still_streaming_is_cancelled_after_the_grace_period_and_the_server_stops() -> None:
    cancelled = anyio.Event()

    async def endless() -> AsyncIterator[bytes]:
        try:
            while True:
                yield b"tick\n"
                await anyio.sleep(0.01)
        except anyio.get_cancelled_exc_class():
            cancelled.set()
            raise

    async def stream(request: Request) -> StreamingResponse:
        return StreamingResponse(endless())

    def short_grace(server: uvicorn.Server) -> None:
        server.config.timeout_graceful_shutdown = cast(int, 0.2)  # typed int by uvicorn; any number works

    with anyio.fail_after(5):
        async with httpx2.AsyncClient() as http:
            async with serve_asgi(Starlette(routes=[Route("/", stream)]), on_server=short_grace) as url:
                response = await http.send(http.build_request("GET", url + "/"), stream=True)
                chunks = response.aiter_bytes()  # kept: a dropped iterator would close the response
                await anext(chunks)
                stopping = anyio.current_time()  # the server stops with this response still streaming
            await chunks.aclose()
            await response.aclose()
    assert cancelled.is_set()
    assert anyio.current_time() - stopping >= 0.2
