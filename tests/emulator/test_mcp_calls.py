"""MCP tool calls made for a run, against a real MCP server served over streamable HTTP on the loopback interface.

The servers here listen on loopback, which the emulator refuses by default (`test_egress.py`), so these calls allow it.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager
from typing import Literal

import anyio
import pytest
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from pydantic import BaseModel
from starlette.types import ASGIApp, Receive, Scope, Send

from parallel_mcp.emulator.mcp_calls import call_mcp_servers
from parallel_mcp.models.common import McpToolCall, Warning
from parallel_mcp.models.requests import McpServer
from parallel_mcp.serving import serve_asgi
from tests.support import closed_port

pytestmark = [pytest.mark.anyio, pytest.mark.virtual_time]

TOKEN = "s3cret-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
WARNING_MESSAGE = re.compile(r"Error listing tools from MCP server (?P<name>\S+)\. Reference ID: \S+")


class Filters(BaseModel):
    region: str
    limit: int
    kind: Literal["news", "papers"]
    strict: bool | None = None


def hello_server() -> MCPServer:
    mcp = MCPServer("hello")

    @mcp.tool()
    async def lookup(query: str) -> str:
        """Look something up."""
        return f"found: {query}"

    @mcp.tool()
    async def shout(text: str, times: int, loud: bool, tags: list[str], note: str | None = None) -> str:
        """Repeat text, louder."""
        return " ".join([text.upper() if loud else text] * times) + f" {tags}"

    @mcp.tool()
    async def explode(query: str) -> str:
        """Always fails."""
        # ToolError, not a plain exception: the SDK hides a crash's text from the caller but passes this one on.
        raise ToolError(f"kaboom on {query}")

    @mcp.tool()
    async def search(filters: Filters, maybe: str | None) -> str:
        """Search with nested filters."""
        return f"{filters.region}/{filters.limit}/{filters.kind}/{maybe}"

    @mcp.tool()
    async def stall(query: str) -> str:
        """Never finishes (until the session ends)."""
        await anyio.Event().wait()
        return query

    return mcp


def require_bearer(app: ASGIApp, token: str) -> ASGIApp:
    """Answer 401 to any HTTP request without `Authorization: Bearer <token>`; pass lifespan events through."""

    async def guarded(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and (b"authorization", f"Bearer {token}".encode()) not in scope["headers"]:
            await send({"type": "http.response.start", "status": 401, "headers": [(b"content-type", b"text/plain")]})
            await send({"type": "http.response.body", "body": b"missing or wrong bearer token"})
            return
        await app(scope, receive, send)

    return guarded


async def never_answers(scope: Scope, receive: Receive, send: Send) -> None:
    """An HTTP app that reads requests but never responds; it returns once the client hangs up."""
    if scope["type"] != "http":
        return  # no lifespan support: uvicorn then serves without one
    while (await receive())["type"] != "http.disconnect":
        pass


@asynccontextmanager
async def hello_url() -> AsyncGenerator[str]:
    """The /mcp URL of a fresh hello server behind bearer-token auth."""
    async with serve_asgi(require_bearer(hello_server().streamable_http_app(), TOKEN)) as base:
        yield f"{base}/mcp"


async def call_hello(
    query: str, tool: str | None = None, *, timeout: float | None = None
) -> tuple[list[McpToolCall] | None, list[Warning]]:
    """What one emulated run's MCP calls to a fresh hello server give: at most one call, of `tool` only if named."""
    allowed = [tool] if tool else None
    extra = {} if timeout is None else {"timeout": timeout}
    with anyio.fail_after(10):
        async with hello_url() as url:
            server = McpServer(name="hello", url=url, headers=AUTH, allowed_tools=allowed)
            return await call_mcp_servers([server], query=query, max_calls=1, allow_private=True, **extra)


def only_call(calls: list[McpToolCall] | None) -> McpToolCall:
    assert calls is not None
    assert len(calls) == 1
    return calls[0]


def assert_listing_warning(warning: Warning, name: str) -> None:
    assert warning.type == "warning"
    match = WARNING_MESSAGE.fullmatch(warning.message)
    assert match is not None, warning.message
    assert match["name"] == name


async def test_a_tool_call_is_recorded_with_server_tool_arguments_and_content(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    calls, warnings = await call_hello("tallest building")
    call = only_call(calls)
    assert warnings == []
    assert re.fullmatch(r"call_[0-9a-f]+", call.tool_call_id)
    assert call.server_name == "hello"
    assert call.tool_name == "lookup"
    assert json.loads(call.arguments) == {"query": "tallest building"}
    assert call.content == "found: tallest building"
    assert call.error is None
    assert TOKEN not in caplog.text


async def test_allowed_tools_restricts_the_tool_called_and_arguments_follow_its_schema() -> None:
    calls, warnings = await call_hello("hi", "shout")
    call = only_call(calls)
    assert warnings == []
    assert call.tool_name == "shout"
    # Required string -> the query, integer -> 1, boolean -> true, list of strings -> [query]; optional left out.
    assert json.loads(call.arguments) == {"text": "hi", "times": 1, "loud": True, "tags": ["hi"]}
    assert call.content == "HI ['hi']"


async def test_arguments_follow_nested_models_enums_and_nullable_types() -> None:
    calls, _ = await call_hello("q", "search")
    call = only_call(calls)
    # The model's schema sits behind a $ref; a Literal is an enum (first value); `str | None` gets the string.
    assert json.loads(call.arguments) == {"filters": {"region": "q", "limit": 1, "kind": "news"}, "maybe": "q"}
    assert call.content == "q/1/news/q"


async def test_allowed_tools_naming_no_listed_tool_makes_no_call() -> None:
    calls, warnings = await call_hello("hi", "missing")
    assert calls is None
    assert warnings == []


async def test_a_failing_tool_is_recorded_with_an_error_and_no_content() -> None:
    calls, warnings = await call_hello("q", "explode")
    call = only_call(calls)
    assert warnings == []
    assert call.tool_name == "explode"
    assert call.content is None
    assert call.error is not None
    assert "kaboom on q" in call.error


async def test_max_calls_bounds_the_calls_across_servers_in_request_order() -> None:
    with anyio.fail_after(10):
        async with hello_url() as url:
            servers = [McpServer(name=f"hello{i}", url=url, headers=AUTH) for i in range(3)]
            calls, warnings = await call_mcp_servers(servers, query="q", max_calls=2, allow_private=True)
            none_calls, none_warnings = await call_mcp_servers(servers, query="q", max_calls=0, allow_private=True)
    assert calls is not None
    assert [call.server_name for call in calls] == ["hello0", "hello1"]
    assert len({call.tool_call_id for call in calls}) == 2
    assert warnings == []
    assert none_calls is None
    assert none_warnings == []


async def test_an_unreachable_server_gives_a_warning_while_the_others_are_still_called() -> None:
    with anyio.fail_after(10):
        async with hello_url() as url:
            calls, warnings = await call_mcp_servers(
                [
                    McpServer(name="gone", url=f"http://127.0.0.1:{closed_port()}/mcp", headers=AUTH),
                    McpServer(name="hello", url=url, headers=AUTH),
                ],
                query="q",
                max_calls=1,
                allow_private=True,
            )
    # The budget skips the server that listed nothing.
    assert only_call(calls).server_name == "hello"
    assert len(warnings) == 1
    assert_listing_warning(warnings[0], "gone")


async def test_only_unreachable_servers_give_null_calls_and_one_warning_each() -> None:
    with anyio.fail_after(10):
        calls, warnings = await call_mcp_servers(
            [McpServer(name=f"gone{i}", url=f"http://127.0.0.1:{closed_port()}/mcp") for i in range(2)],
            query="q",
            max_calls=1,
            allow_private=True,
        )
    assert calls is None
    assert len(warnings) == 2
    assert_listing_warning(warnings[0], "gone0")
    assert_listing_warning(warnings[1], "gone1")


async def test_a_wrong_token_gives_a_warning_and_never_leaks_the_header(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = "wrong-but-secret-token-value"
    with anyio.fail_after(10):
        async with hello_url() as url:
            calls, warnings = await call_mcp_servers(
                [
                    McpServer(name="hello", url=url, headers={"Authorization": f"Bearer {wrong}"}),
                    McpServer(name="anonymous", url=url),
                ],
                query="q",
                max_calls=1,
                allow_private=True,
            )
    assert calls is None
    assert len(warnings) == 2
    assert_listing_warning(warnings[0], "hello")
    assert_listing_warning(warnings[1], "anonymous")
    # A fresh reference per failure, so support can tell them apart.
    assert warnings[0].message.rsplit(" ", 1)[1] != warnings[1].message.rsplit(" ", 1)[1]
    for text in [caplog.text, *(warning.model_dump_json() for warning in warnings)]:
        assert wrong not in text
        assert TOKEN not in text
    assert "hello" in caplog.text


async def test_a_server_that_never_answers_times_out_into_a_warning() -> None:
    with anyio.fail_after(10):
        async with serve_asgi(never_answers) as base:
            calls, warnings = await call_mcp_servers(
                [McpServer(name="silent", url=f"{base}/mcp")], query="q", max_calls=1, allow_private=True, timeout=0.5
            )
    assert calls is None
    assert len(warnings) == 1
    assert_listing_warning(warnings[0], "silent")


async def test_a_tool_that_never_finishes_is_recorded_as_a_timed_out_call() -> None:
    calls, warnings = await call_hello("q", "stall", timeout=0.5)
    call = only_call(calls)
    assert warnings == []
    assert call.tool_name == "stall"
    assert json.loads(call.arguments) == {"query": "q"}
    assert call.content is None
    assert call.error == "timed out after 0.5s"


async def test_no_servers_means_no_calls_and_no_warnings() -> None:
    assert await call_mcp_servers([], query="q", max_calls=1) == (None, [])
