"""Real MCP tool calls for emulated runs that carry `mcp_servers`.

The Task API first lists the tools on every server a run names, then lets the processor call some of them (`lite`
and `core` at most one). A server that cannot be reached, rejects the credentials or fails to list its tools does
not fail the run: it adds a run warning, and `mcp_tool_calls` stays null when nothing was called. This module does
the same against real servers over streamable HTTP, with a deterministic stand-in for the processor's choice: the
first allowed tool of each server, in request order, while the call budget lasts, with arguments made up from the
tool's input schema.

Header values (typically bearer tokens) are sent to their server only: they never appear in a warning, a recorded
error or a log line. Servers on loopback, private or metadata addresses are not called unless allowed (`egress.py`):
each becomes a warning that says why.
"""

from __future__ import annotations

import json
import logging
import math
import uuid
from collections.abc import AsyncGenerator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Literal, cast
from urllib.parse import urlsplit

import anyio
import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.types import CallToolResult, EmbeddedResource, TextContent, TextResourceContents, Tool

from parallel_mcp.emulator.egress import EgressRefused, PinnedTransport, pin_destination
from parallel_mcp.models.common import McpToolCall, Warning
from parallel_mcp.models.requests import McpServer
from parallel_mcp.processors import FAST_SUFFIX
from parallel_mcp.schema_rules import as_schema

__all__ = ["call_mcp_servers", "max_tool_calls"]

logger = logging.getLogger(__name__)

# A hostile or buggy server could page forever; real servers list their tools in a page or two.
_MAX_TOOL_PAGES = 20
# Self-referencing schemas (a tree node whose children are nodes) must not recurse forever.
_MAX_SCHEMA_DEPTH = 8
# Header pieces shorter than this ("Bearer", "Basic") are not secrets, and redacting them would garble messages.
_MIN_SECRET_PIECE = 8

_Phase = Literal["list", "wait", "call", "done"]

SINGLE_CALL_TIERS = frozenset({"lite", "base", "core"})
"""Tiers that make at most one MCP tool call (the docs name lite and core; base sits between them)."""
MULTI_CALL_LIMIT = 3


def max_tool_calls(processor: str) -> int:
    """How many MCP tool calls a run on `processor` makes at most, `-fast` variants like their tier."""
    return 1 if processor.removesuffix(FAST_SUFFIX) in SINGLE_CALL_TIERS else MULTI_CALL_LIMIT


async def call_mcp_servers(
    servers: Sequence[McpServer],
    *,
    query: str,
    max_calls: int,
    timeout: float = 10.0,
    allow_private: bool = False,
) -> tuple[list[McpToolCall] | None, list[Warning]]:
    """Connect to each server, list its tools, and call up to `max_calls` of them in total (one per server).

    All servers are contacted concurrently, each with its own `headers`. Only tools named in `allowed_tools` are
    considered (None means all). Once every server has listed its tools (or failed to), the budget goes to the
    servers in request order; each chosen server's first eligible tool is called with arguments built from its input
    schema: required strings get `query`, numbers 1, booleans true, and so on.

    Listing on each server (connect included) is bounded by `timeout`, and so is each call, so the whole function
    returns within about twice `timeout`.

    Unless `allow_private`, a server whose host resolves to a non-public address is not contacted at all; it gets a
    warning naming it and the reason, and the connection to an allowed one goes to the address that was checked.

    Returns `(mcp_tool_calls, warnings)`: the calls in server order, or None when no call was made (as the API
    returns null), and one `warning` per server whose tools could not be listed. A tool that answers with an error,
    raises or times out is still a recorded call, with `error` set. This never raises for a server's failure.
    """
    visits = [_Visit(server) for server in servers]
    decided = anyio.Event()
    async with anyio.create_task_group() as tg:
        for visit in visits:
            tg.start_soon(_visit_server, visit, decided, query, timeout, allow_private)
        for visit in visits:
            await visit.listed.wait()
        budget = max_calls
        for visit in visits:
            if budget > 0 and visit.tool is not None:
                visit.permitted = True
                budget -= 1
        decided.set()

    calls = [visit.call for visit in visits if visit.call is not None]
    warnings = [visit.warning for visit in visits if visit.warning is not None]
    return (calls or None), warnings


@dataclass
class _Visit:
    """One server's progress, shared between its task and the coordinator."""

    server: McpServer
    listed: anyio.Event = field(default_factory=anyio.Event)
    """Set once the listing is over, whether it succeeded or not."""
    tool: Tool | None = None
    permitted: bool = False
    call: McpToolCall | None = None
    warning: Warning | None = None


async def _visit_server(visit: _Visit, decided: anyio.Event, query: str, timeout: float, allow_private: bool) -> None:
    """List one server's tools, wait for the budget decision, then maybe call one. Never raises (but for cancel)."""
    server = visit.server
    phase: _Phase = "list"
    tool_call_id = f"call_{uuid.uuid4().hex}"
    arguments = "{}"
    try:
        # One cancel scope whose deadline moves with the phase: the connection is a stack of task groups that
        # must be entered and left inside the same scope, so per-phase `fail_after` blocks cannot wrap it.
        with anyio.CancelScope(deadline=anyio.current_time() + timeout) as scope:
            pins = None if allow_private else await pin_destination(server.url)
            async with _connect(server, timeout, pins) as client:
                tools = await _list_tools(client, server.allowed_tools)
                visit.tool = tools[0] if tools else None
                phase = "wait"
                visit.listed.set()
                # Waiting for slower servers to finish listing is not this server's fault.
                scope.deadline = math.inf
                await decided.wait()
                # From here on (the call, or just closing the session) the clock runs again.
                scope.deadline = anyio.current_time() + timeout
                if not visit.permitted or visit.tool is None:
                    phase = "done"
                    return
                phase = "call"
                args = _arguments_for(visit.tool.input_schema, query)
                arguments = json.dumps(args, separators=(",", ":"), ensure_ascii=False)
                result = await client.call_tool(visit.tool.name, args)
                visit.call = _record(server, visit.tool.name, tool_call_id, arguments, result)
                phase = "done"
        if scope.cancelled_caught:
            _on_failure(visit, phase, tool_call_id, arguments, f"timed out after {timeout:g}s")
    except EgressRefused as refused:
        visit.warning = Warning(type="warning", message=f"MCP server {server.name} was not called: {refused}")
        logger.warning("MCP server %r not called: %s", server.name, refused)
    except Exception as exc:  # any failure of a user-supplied server becomes a warning or an error record
        _on_failure(visit, phase, tool_call_id, arguments, _describe(exc, server))
    finally:
        visit.listed.set()


def _on_failure(visit: _Visit, phase: _Phase, tool_call_id: str, arguments: str, reason: str) -> None:
    server = visit.server
    if phase == "list":
        reference = uuid.uuid4().hex
        visit.tool = None
        visit.warning = Warning(
            type="warning",
            message=f"Error listing tools from MCP server {server.name}. Reference ID: {reference}",
        )
        logger.warning("MCP server %r: listing tools failed (reference %s): %s", server.name, reference, reason)
    elif phase == "call" and visit.tool is not None:
        visit.call = McpToolCall(
            tool_call_id=tool_call_id,
            server_name=server.name,
            tool_name=visit.tool.name,
            arguments=arguments,
            error=reason,
        )
        logger.warning("MCP server %r: tool %r failed: %s", server.name, visit.tool.name, reason)
    else:
        # After a recorded call (or while waiting), only closing the session can fail; the outcome stands.
        logger.debug("MCP server %r: error while closing the session: %s", server.name, reason)


@asynccontextmanager
async def _connect(server: McpServer, timeout: float, pins: dict[str, str] | None) -> AsyncGenerator[Client]:
    """An MCP client session over streamable HTTP that sends the server's own headers on every request.

    With `pins` (host -> checked address), every request goes through the `PinnedTransport`.
    """
    transport = PinnedTransport(pins) if pins is not None else None
    # The SDK's documented way to add headers is a preconfigured httpx2 client handed to the transport.
    async with (
        httpx2.AsyncClient(headers=server.headers or {}, timeout=httpx2.Timeout(timeout), transport=transport) as http,
        Client(
            streamable_http_client(server.url, http_client=http),
            read_timeout_seconds=timeout,
            # One short-lived session per run: a response cache would only hold tool lists nobody asks for twice.
            cache=None,
        ) as client,
    ):
        yield client


async def _list_tools(client: Client, allowed_tools: Sequence[str] | None) -> list[Tool]:
    """All tools of the server, in listing order, restricted to `allowed_tools` unless it is None."""
    tools: list[Tool] = []
    cursor: str | None = None
    for _ in range(_MAX_TOOL_PAGES):
        page = await client.list_tools(cursor=cursor)
        tools.extend(page.tools)
        cursor = page.next_cursor
        if cursor is None:
            break
    if allowed_tools is None:
        return tools
    allowed = set(allowed_tools)
    return [tool for tool in tools if tool.name in allowed]


def _record(
    server: McpServer, tool_name: str, tool_call_id: str, arguments: str, result: CallToolResult
) -> McpToolCall:
    text = _result_text(result)
    if result.is_error:
        return McpToolCall(
            tool_call_id=tool_call_id,
            server_name=server.name,
            tool_name=tool_name,
            arguments=arguments,
            error=_redact(text, server) or "the tool reported an error",
        )
    return McpToolCall(
        tool_call_id=tool_call_id,
        server_name=server.name,
        tool_name=tool_name,
        arguments=arguments,
        content=text,
    )


def _result_text(result: CallToolResult) -> str:
    """The text a model would read: text blocks (and embedded text resources), else the structured content."""
    texts: list[str] = []
    for block in result.content:
        if isinstance(block, TextContent):
            texts.append(block.text)
        elif isinstance(block, EmbeddedResource) and isinstance(block.resource, TextResourceContents):
            texts.append(block.resource.text)
    if texts:
        return "\n".join(texts)
    if result.structured_content is not None:
        return json.dumps(result.structured_content, ensure_ascii=False)
    return ""


def _arguments_for(schema: Mapping[str, Any], query: str) -> dict[str, Any]:
    """Arguments for a tool: its required properties filled with plausible values (the query for strings)."""
    defs = as_schema(schema.get("$defs")) or as_schema(schema.get("definitions")) or {}
    return _object_value(schema, query, defs, 0)


def _value_for(schema: Mapping[str, Any], query: str, defs: Mapping[str, Any], depth: int) -> Any:
    if depth > _MAX_SCHEMA_DEPTH:
        return None
    ref = schema.get("$ref")
    if isinstance(ref, str):
        target = as_schema(defs.get(ref.rsplit("/", 1)[-1]))
        return _value_for(target or {}, query, defs, depth + 1)
    if "const" in schema:
        return schema["const"]
    enum = _as_list(schema.get("enum"))
    if enum:
        return enum[0]
    for key in ("anyOf", "oneOf", "allOf"):
        options = [option for option in map(as_schema, _as_list(schema.get(key)) or []) if option is not None]
        # Optional[X] is anyOf [X, null]: pick the first non-null branch so the tool gets a real value.
        for option in options:
            if option.get("type") != "null":
                return _value_for(option, query, defs, depth + 1)
        if options:
            return None
    kind = schema.get("type")
    if isinstance(kind, list):
        kinds = [str(k) for k in cast(list[Any], kind)]
        kind = next((k for k in kinds if k != "null"), "null")
    if kind == "string":
        return query
    if kind in ("integer", "number"):
        return 1
    if kind == "boolean":
        return True
    if kind == "null":
        return None
    if kind == "array":
        items = as_schema(schema.get("items"))
        return [_value_for(items, query, defs, depth + 1)] if items else []
    if kind == "object" or "properties" in schema:
        return _object_value(schema, query, defs, depth + 1)
    # An untyped property (`Any`): a model would most likely pass the text it was given.
    return query


def _object_value(schema: Mapping[str, Any], query: str, defs: Mapping[str, Any], depth: int) -> dict[str, Any]:
    properties = as_schema(schema.get("properties")) or {}
    required = [name for name in _as_list(schema.get("required")) or [] if isinstance(name, str)]
    value: dict[str, Any] = {}
    for name in required:
        value[name] = _value_for(as_schema(properties.get(name)) or {}, query, defs, depth)
    return value


def _as_list(value: object) -> list[Any] | None:
    return cast(list[Any], value) if isinstance(value, list) else None


def _describe(exc: BaseException, server: McpServer) -> str:
    """A one-line, redacted summary of what went wrong, unwrapping task-group exception groups."""
    leaves: list[BaseException] = []
    pending: list[BaseException] = [exc]
    while pending:
        current = pending.pop(0)
        if isinstance(current, BaseExceptionGroup):
            pending.extend(cast(BaseExceptionGroup[BaseException], current).exceptions)
        else:
            leaves.append(current)
    summary = "; ".join(f"{type(leaf).__name__}: {leaf}" if str(leaf) else type(leaf).__name__ for leaf in leaves)
    return _redact(summary, server)


def _redact(text: str, server: McpServer) -> str:
    """Blank out header values (whole, and their long pieces such as a bare token) and the URL's query."""
    secrets: set[str] = set()
    for value in (server.headers or {}).values():
        if value:
            secrets.add(value)
            secrets.update(piece for piece in value.split() if len(piece) >= _MIN_SECRET_PIECE)
    try:
        query = urlsplit(server.url).query
    except ValueError:  # a malformed URL has no query worth hiding, and redaction must not fail
        query = ""
    if query:
        secrets.add(query)
    # Longest first, so a whole header value goes before its own pieces.
    for secret in sorted(secrets, key=len, reverse=True):
        text = text.replace(secret, "[redacted]")
    return text
