"""stdio that answers every request: a guard in front of the SDK's line reader.

The SDK's stdio transport (`mcp.server.stdio`) parses each line and, when that fails, hands the
exception to the dispatcher, which logs it and drops it: no JSON-RPC error goes back, and the client
waits forever. That happens to invalid JSON, to JSON nested about 200 levels deep (pydantic-core's
recursion limit), to lines of any size (read whole, unbounded), and to requests whose `id` is not a
string or an integer (read as notifications, their id thrown away). This guard reads stdin itself,
in bounded chunks, and answers each of those lines with a JSON-RPC error, with the request's id
whenever it can be told:

- a line over `max_line` bytes: -32600, id null (it is skipped, never held whole);
- nesting deeper than `max_depth`: -32600 with the request's id, found by a flat scan (no recursion);
- invalid JSON: -32700, id null;
- an `id` that is an object, array, float, boolean or null: -32600, id null;
- any other request the SDK's message model refuses: -32600 with its id.
Everything else goes to the SDK unchanged.
"""

from __future__ import annotations

import json
import operator
import os
import re
import sys
from collections.abc import AsyncIterator
from itertools import accumulate, repeat
from typing import Any, Protocol, cast

import anyio
import mcp_types as types
from mcp.server.mcpserver import MCPServer
from mcp.server.stdio import stdio_server
from mcp.shared.message import SessionMessage
from mcp_types import INVALID_REQUEST, PARSE_ERROR, ErrorData, JSONRPCError
from pydantic import ValidationError

MAX_LINE_BYTES = 4 * 1024 * 1024
"""The same bound as the HTTP transports' request bodies."""
MAX_DEPTH = 64
"""Far deeper than any tool argument needs (the API's schemas nest at most 5 levels), far below the
~200 where the SDK's parser gives up."""
READ_CHUNK = 64 * 1024

_STRUCTURE = re.compile(r'"|[\[{]+|[\]}]+|[:,]')
_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"')
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
_STEP = bytes.maketrans(b"[{]}", b"\x02\x02\x00\x00")
_ID_SCAN_TOKENS = 100_000
_STRING_BODY = re.compile(r'[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_INTEGER = re.compile(r"\s*(-?(?:0|[1-9][0-9]*))\s*[,}]")


class ByteSource(Protocol):
    """What the guard reads: a buffered binary stream (stdin's buffer, a pipe)."""

    def read1(self, size: int = -1, /) -> bytes: ...


class TooLong:
    """A line that went over the size bound; its bytes were skipped, not kept."""


async def read_lines(raw: ByteSource, max_line: int = MAX_LINE_BYTES) -> AsyncIterator[str | TooLong]:
    """Lines of `raw` (without their newline), or `TooLong` for a line over `max_line` bytes.

    Reads in chunks in a worker thread, like the SDK's own reader; memory stays under `max_line` plus a
    chunk whatever arrives.
    """
    buffer = bytearray()
    skipping = False
    while True:
        chunk: bytes = await anyio.to_thread.run_sync(raw.read1, READ_CHUNK)
        if not chunk:
            if buffer and not skipping:
                yield buffer.decode("utf-8", "replace")
            elif skipping:
                yield TooLong()
            return
        start = 0
        while (end := chunk.find(b"\n", start)) != -1:
            if skipping:
                skipping = False
                yield TooLong()
            elif len(buffer) + end - start > max_line:
                buffer.clear()
                yield TooLong()
            else:
                buffer += chunk[start:end]
                yield buffer.decode("utf-8", "replace")
                buffer.clear()
            start = end + 1
        if not skipping:
            buffer += chunk[start:]
            if len(buffer) > max_line:
                buffer.clear()
                skipping = True


def nesting_depth(line: str) -> int:
    """How deeply `line`'s arrays and objects nest, counted without recursion (brackets in strings do not count).

    The brackets are picked out and summed with C-level iterators: 4 MB of brackets take a fraction of
    a second, where a Python loop over them would take seconds.
    """
    brackets = _NOT_BRACKET.sub("", _STRING.sub("", line)).encode("ascii")
    steps = map(operator.sub, brackets.translate(_STEP), repeat(1))
    return max(accumulate(steps), default=0)


def top_level_id(line: str) -> object:
    """The `id` member of the top-level object, when it is a string or an integer and comes early enough.

    A flat walk over the structural tokens that stops at the id, or after `_ID_SCAN_TOKENS` of them so a
    huge line cannot hold the reader up (its error then goes out with id null).
    """
    depth = 0
    expect_key = False
    key: str | None = None
    position = 0
    for _ in range(_ID_SCAN_TOKENS):
        match = _STRUCTURE.search(line, position)
        if match is None:
            return None
        token = match.group()
        position = match.end()
        if token == '"':
            end = _STRING_BODY.match(line, position)
            if end is None:
                return None
            text = line[position : end.end() - 1]
            position = end.end()
            if depth == 1 and expect_key:
                key = text
            elif depth == 1 and key == "id":
                return _unescape(text)
            expect_key = False
        elif token[0] in "[{":
            if depth == 1 and key == "id":
                return None
            expect_key = depth == 0 and token == "{"
            depth += len(token)
        elif token[0] in "]}":
            depth -= len(token)
        elif depth == 1 and token == ",":
            expect_key, key = True, None
        elif depth == 1 and token == ":" and key == "id" and (number := _INTEGER.match(line, position)):
            return int(number.group(1))
    return None


def _unescape(text: str) -> object:
    try:
        return cast(object, json.loads(f'"{text}"'))
    except ValueError:
        return None


def _valid_id(value: object) -> bool:
    return isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool))


class GuardedLines:
    """The lines for the SDK's reader, with every line it would drop answered here instead."""

    def __init__(self, raw: ByteSource, *, max_line: int = MAX_LINE_BYTES, max_depth: int = MAX_DEPTH) -> None:
        self._raw = raw
        self._max_line = max_line
        self._max_depth = max_depth
        self._write: Any = None
        self._ready = anyio.Event()

    def answer_on(self, write_stream: Any) -> None:
        """Where errors go: the transport's own write stream, so they interleave with its other answers."""
        self._write = write_stream
        self._ready.set()

    async def _reject(self, request_id: object, code: int, message: str) -> None:
        await self._ready.wait()
        rid = request_id if _valid_id(request_id) else None
        error = JSONRPCError(jsonrpc="2.0", id=cast(Any, rid), error=ErrorData(code=code, message=message))
        await self._write.send(SessionMessage(error))

    async def __aiter__(self) -> AsyncIterator[str]:
        async for line in read_lines(self._raw, self._max_line):
            if isinstance(line, TooLong):
                await self._reject(None, INVALID_REQUEST, f"Request too large: lines over {self._max_line} bytes")
                continue
            if not line.strip():
                continue
            problem = self._problem(line)
            if problem is not None:
                await self._reject(*problem)
                continue
            yield line

    def _problem(self, line: str) -> tuple[object, int, str] | None:
        # Counting brackets is cheap and bounds the depth from above: only suspicious lines are scanned.
        if line.count("[") + line.count("{") > self._max_depth and nesting_depth(line) > self._max_depth:
            return top_level_id(line), INVALID_REQUEST, f"Invalid Request: JSON nested deeper than {self._max_depth}"
        try:
            message: object = json.loads(line)
        except (ValueError, RecursionError):  # unbalanced brackets can still be deep
            return None, PARSE_ERROR, "Parse error"
        if not isinstance(message, dict):
            return None, INVALID_REQUEST, "Invalid Request: a message is a JSON object"
        fields = cast(dict[str, Any], message)
        if "method" not in fields:
            return None  # a response to one of our requests: the SDK matches it or logs it
        if "id" in fields and not _valid_id(fields["id"]):
            return None, INVALID_REQUEST, "Invalid Request: id must be a string or an integer"
        try:
            types.jsonrpc_message_adapter.validate_json(line, by_name=False)
        except ValidationError as exc:
            if "id" not in fields:
                return None  # a malformed notification: JSON-RPC answers notifications never
            return fields["id"], INVALID_REQUEST, f"Invalid Request: {exc.errors()[0]['msg']}"
        return None


def _claim_stdin() -> ByteSource:
    """A private copy of fd 0 for the guard, with fd 0 itself pointed at /dev/null.

    What the SDK does when it reads stdin itself: a tool or a child process that reads fd 0 can then
    never steal bytes from the protocol stream.
    """
    try:
        private = os.dup(sys.stdin.fileno())
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.close(null)
    except (OSError, ValueError, AttributeError):  # no real fd (embedded, tests): read the stream in place
        return cast(ByteSource, sys.stdin.buffer)
    return os.fdopen(private, "rb", closefd=False)


async def run_stdio(server: MCPServer[Any]) -> None:
    """Serve `server` over stdio behind the guard (instead of `MCPServer.run_stdio_async`)."""
    guard = GuardedLines(_claim_stdin())
    async with stdio_server(stdin=cast(Any, guard)) as (read_stream, write_stream):
        guard.answer_on(write_stream)
        # The lowlevel server is private on MCPServer; `run_stdio_async` (server.py) does exactly this
        # with the SDK's own unguarded stdin.
        lowlevel = server._lowlevel_server  # pyright: ignore[reportPrivateUsage]
        await lowlevel.run(read_stream, write_stream, lowlevel.create_initialization_options())
