"""stdio answers every request it receives: deep nesting, invalid JSON, odd ids and huge lines get JSON-RPC errors."""

from __future__ import annotations

import io
import json
import random
from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest
from anyio.abc import Process
from anyio.streams.buffered import BufferedByteReceiveStream

from parallel_mcp.stdio_guard import MAX_DEPTH, TooLong, nesting_depth, read_lines, top_level_id
from tests.processes import command, server_env

pytestmark = pytest.mark.anyio

ANSWER_SECONDS = 15.0
"""Every line must be answered within this (a hang fails the test instead of stalling it)."""
INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 0,
    "method": "initialize",
    "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "raw", "version": "1"}},
}


class Deep:
    """JSON text nested `depth` levels (arrays, or objects under key "k") around `leaf`; built as text, since
    the json module itself cannot encode a few thousand levels."""

    def __init__(self, depth: int, leaf: object = 1, *, objects: bool = False) -> None:
        opening, closing = ('{"k": ', "}") if objects else ("[", "]")
        self.text = opening * depth + json.dumps(leaf) + closing * depth


def call(request_id: object, tool: str, arguments: dict[str, Any]) -> bytes:
    """A tools/call line; `Deep` argument values go in as their text."""
    deep = {name: value.text for name, value in arguments.items() if isinstance(value, Deep)}
    plain = {name: (f"@{name}@" if name in deep else value) for name, value in arguments.items()}
    message = {"jsonrpc": "2.0", "id": request_id, "method": "tools/call", "params": {"name": tool, "arguments": plain}}
    line = json.dumps(message)
    for name, text in deep.items():
        line = line.replace(json.dumps(f"@{name}@"), text)
    return line.encode()


class RawStdio:
    """A real `parallel-mcp serve` subprocess spoken to line by line, with nothing in between."""

    def __init__(self, process: Process) -> None:
        assert process.stdin is not None and process.stdout is not None
        self.process = process
        self._stdin = process.stdin
        self._stdout = BufferedByteReceiveStream(process.stdout)

    async def send_line(self, line: bytes) -> None:
        await self._stdin.send(line + b"\n")

    async def receive(self) -> dict[str, Any]:
        with anyio.fail_after(ANSWER_SECONDS):
            return json.loads(await self._stdout.receive_until(b"\n", 16 * 1024 * 1024))

    async def ask(self, line: bytes) -> dict[str, Any]:
        """Send one line and return the one answer it gets."""
        await self.send_line(line)
        return await self.receive()


@asynccontextmanager
async def raw_stdio_server(tmp_path: Path) -> AsyncGenerator[RawStdio]:
    with (tmp_path / "stderr.log").open("wb") as errlog:
        process = await anyio.open_process(command("serve"), env=server_env(), stderr=errlog)
        async with process:
            server = RawStdio(process)
            ready = await server.ask(json.dumps(INITIALIZE).encode())
            assert ready["id"] == 0 and "result" in ready
            await server.send_line(json.dumps({"jsonrpc": "2.0", "method": "notifications/initialized"}).encode())
            try:
                yield server
            finally:
                await process.stdin.aclose()  # pyright: ignore[reportOptionalMemberAccess]
                with anyio.fail_after(10):
                    await process.wait()


def error_of(answer: dict[str, Any]) -> tuple[object, int]:
    assert "error" in answer, answer
    return answer["id"], answer["error"]["code"]


async def test_every_malformed_line_over_stdio_is_answered_and_the_server_goes_on(tmp_path: Path) -> None:
    async with raw_stdio_server(tmp_path) as server:
        deep_limit = await server.ask(call(11, "list_task_runs", {"limit": Deep(198)}))
        deeper = await server.ask(call("deep", "get_task_run", {"run_id": Deep(5000, "trun_x", objects=True)}))
        id_last = call(12, "list_task_runs", {"limit": Deep(300)}).replace(b'"id": 12, ', b"")
        id_after_params = await server.ask(id_last.removesuffix(b"}") + b', "id": 12}')
        truncated = await server.ask(b'{"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {"name": "list')
        object_id = await server.ask(call({"a": 1}, "list_task_runs", {}))
        float_id = await server.ask(call(1.5, "list_task_runs", {}))
        bool_id = await server.ask(call(True, "list_task_runs", {}))
        null_id = await server.ask(call(None, "list_task_runs", {}))
        batch = await server.ask(b"[" + call(4, "list_task_runs", {}) + b"]")
        bad_params = await server.ask(b'{"jsonrpc": "2.0", "id": 5, "method": "tools/call", "params": [1, 2]}')
        huge = await server.ask(call(6, "get_task_run", {"run_id": "x" * (5 * 1024 * 1024)}))
        still_fine = await server.ask(call(99, "list_task_runs", {}))
    assert error_of(deep_limit) == (11, -32600) and str(MAX_DEPTH) in deep_limit["error"]["message"]
    assert error_of(deeper) == ("deep", -32600)
    assert error_of(id_after_params) == (12, -32600)
    assert error_of(truncated) == (None, -32700)
    assert error_of(object_id) == (None, -32600) and "id must be" in object_id["error"]["message"]
    assert error_of(float_id) == (None, -32600)
    assert error_of(bool_id) == (None, -32600)
    assert error_of(null_id) == (None, -32600)
    assert error_of(batch) == (None, -32600)
    assert error_of(bad_params) == (5, -32600)
    assert error_of(huge) == (None, -32600) and "too large" in huge["error"]["message"]
    assert still_fine["id"] == 99 and "result" in still_fine


def _fuzz_line(rng: random.Random, number: int) -> tuple[bytes, object]:
    """One hostile line and the id its answer must carry (None when the line has no usable id)."""
    kind = rng.choice(["deep", "deep_object", "huge", "truncated", "bad_id", "garbage", "deep_and_huge"])
    tool = rng.choice(["list_task_runs", "get_task_run"])
    if kind == "deep":
        return call(number, tool, {"limit": Deep(rng.randint(1, 400))}), number
    if kind == "deep_object":
        run_id = Deep(rng.randint(1, 400), "x", objects=True)
        return call(f"r{number}", tool, {"run_id": run_id, "wait_seconds": 0}), f"r{number}"
    if kind == "huge":
        size = rng.choice([1_000, 100_000, 1_000_000, 5_000_000])
        body = call(number, tool, {"run_id": "é" * size, "wait_seconds": 0})
        return body, number if len(body) <= 4 * 1024 * 1024 else None
    if kind == "truncated":
        whole = call(number, tool, {"limit": Deep(rng.randint(1, 50))})
        return whole[: rng.randint(1, len(whole) - 1)], None
    if kind == "bad_id":
        bad = rng.choice([{"a": number}, [number], number + 0.5, True, False, None])
        return call(bad, tool, {}), None
    if kind == "garbage":
        data = bytes(rng.choice([*range(10), *range(11, 256)]) for _ in range(rng.randint(1, 2000)))
        return data.replace(b"\n", b" ").strip() or b"x", None
    depth = rng.randint(MAX_DEPTH + 1, 3000)
    return call(number, tool, {"limit": Deep(depth, "y" * 100_000)}), number


async def test_two_hundred_hostile_lines_over_stdio_each_get_exactly_one_answer(tmp_path: Path) -> None:
    rng = random.Random(20261130)
    lines = [_fuzz_line(rng, number) for number in range(1000, 1200)]
    answered: list[object] = []
    async with raw_stdio_server(tmp_path) as server:
        for line, expected_id in lines:
            answer = await server.ask(line)
            assert answer["id"] == expected_id, (line[:200], answer)
            answered.append(answer["id"])
        check = await server.ask(call(1, "list_task_runs", {}))
    assert len(answered) == len(lines)
    assert check["id"] == 1 and "result" in check


def test_nesting_is_measured_without_recursion_and_brackets_in_strings_do_not_count() -> None:
    assert nesting_depth(json.dumps({"a": [1, {"b": "[[[[{{{{"}]})) == 3
    assert nesting_depth("[" * 100_000 + "]" * 100_000) == 100_000
    assert nesting_depth('"no structure"') == 0


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ('{"jsonrpc": "2.0", "id": 7, "method": "x"}', 7),
        ('{"method": "x", "params": {"id": 1}, "id": "a\\"b"}', 'a"b'),
        ('{"id": -3}', -3),
        ('{"id": 1.5}', None),
        ('{"id": {"a": 1}}', None),
        ('{"params": [[[[1]]]], "id": true}', None),
        ('[{"id": 1}]', None),
    ],
)
def test_the_top_level_id_is_found_whatever_comes_before_it(line: str, expected: object) -> None:
    assert top_level_id(line) == expected


async def test_lines_over_the_limit_are_skipped_in_chunks_not_held_whole() -> None:
    data = b"a" * 10 + b"\n" + b"b" * 300_000 + b"\n" + b"c" * 5 + b"\n" + b"d" * 200_000
    lines = [line async for line in read_lines(io.BufferedReader(io.BytesIO(data)), max_line=100_000)]
    seen = [type(line) if isinstance(line, TooLong) else line for line in lines]
    assert seen == ["a" * 10, TooLong, "c" * 5, TooLong]
