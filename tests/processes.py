"""Real subprocesses of `parallel-mcp` for end-to-end tests: spawn, find the address, stop."""

from __future__ import annotations

import contextlib
import json
import os
import re
import socket
import sys
from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import anyio
from anyio.abc import Process
from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client

LISTENING = re.compile(r"listening on (http://\S+)")


def server_env(**extra: str) -> dict[str, str]:
    """The environment for a server subprocess: no real key, a fast emulator, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PARALLEL_", "PARALLEL_MCP_"))}
    env.update({"PARALLEL_MCP_EMULATOR_SPEED": "400", "PYTHONUNBUFFERED": "1"})
    env.update(extra)
    return env


def free_port() -> int:
    """A port that was free a moment ago (nothing listens on it); a server may still lose a race for it."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def proc_status_kb(pid: int, key: str) -> int:
    """A figure of /proc/<pid>/status in kB (VmRSS: resident set now; VmHWM: its peak); 0 when absent."""
    for line in Path(f"/proc/{pid}/status").read_text(encoding="utf-8").splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text(encoding="utf-8").rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def command(*args: str) -> list[str]:
    """`python -m parallel_mcp ARGS` with this interpreter."""
    return [sys.executable, "-m", "parallel_mcp", *args]


@dataclass
class HttpServer:
    """A running HTTP server subprocess and what it wrote to stderr."""

    url: str
    process: Process
    stderr: list[str] = field(default_factory=list[str])


@asynccontextmanager
async def http_server(*args: str, env: dict[str, str] | None = None, port: int = 0) -> AsyncGenerator[HttpServer]:
    """Start `parallel-mcp serve ARGS --port PORT` (0: a free one) and yield once it announces its address."""
    process = await anyio.open_process(command(*args, "--port", str(port)), env=env or server_env())
    assert process.stderr is not None
    stderr = process.stderr
    lines: list[str] = []
    buffer = ""
    url = None
    try:
        with anyio.fail_after(30):
            while url is None:
                try:
                    chunk = await stderr.receive()
                except anyio.EndOfStream:
                    said = "\n".join([*lines, buffer])
                    raise RuntimeError(f"the server exited before it announced its address:\n{said}") from None
                buffer += chunk.decode("utf-8", "replace")
                *complete, buffer = buffer.split("\n")
                lines.extend(complete)
                for line in complete:
                    match = LISTENING.search(line)
                    if match:
                        url = match.group(1)
        server = HttpServer(url=url, process=process, stderr=lines)
        async with anyio.create_task_group() as group:

            async def drain() -> None:
                async for chunk in stderr:
                    lines.extend(chunk.decode("utf-8", "replace").splitlines())

            group.start_soon(drain)
            try:
                yield server
            finally:
                with contextlib.suppress(ProcessLookupError):  # a test may have killed it already
                    process.terminate()
                with anyio.fail_after(10):
                    await process.wait()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


@asynccontextmanager
async def stdio_clients(env: dict[str, str], log: Path, count: int = 2) -> AsyncGenerator[list[Client]]:
    """MCP clients, each with a `parallel-mcp serve` stdio process of its own (one user's agent windows); the
    servers' stderr goes to `log`."""
    cmd = command("serve")
    params = StdioServerParameters(command=cmd[0], args=cmd[1:], env=env)
    with log.open("w") as errlog:
        async with contextlib.AsyncExitStack() as stack:
            yield [await stack.enter_async_context(Client(stdio_client(params, errlog=errlog))) for _ in range(count)]


class StdioServer:
    """A `parallel-mcp serve` subprocess spoken to with raw JSON-RPC lines, so a test can kill it mid-call."""

    def __init__(self, process: Process) -> None:
        self.process = process
        self._buffer = b""
        self._next_id = 0

    @classmethod
    @asynccontextmanager
    async def running(cls, env: dict[str, str]) -> AsyncGenerator[StdioServer]:
        process = await anyio.open_process(command("serve"), env=env, stderr=None)
        server = cls(process)
        try:
            await server.request(
                "initialize",
                {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "test", "version": "0"}},
            )
            await server.notify("notifications/initialized")
            yield server
        finally:
            if process.returncode is None:
                process.kill()
            await process.wait()

    async def notify(self, method: str, params: dict[str, Any] | None = None) -> None:
        await self._send({"jsonrpc": "2.0", "method": method, **({"params": params} if params else {})})

    async def send_request(self, method: str, params: dict[str, Any]) -> int:
        """Send a request without waiting for its answer; returns its id."""
        self._next_id += 1
        await self._send({"jsonrpc": "2.0", "id": self._next_id, "method": method, "params": params})
        return self._next_id

    async def request(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        """Send a request and return its answer (the whole JSON-RPC message)."""
        return await self.answer(await self.send_request(method, params))

    async def answer(self, request_id: int) -> dict[str, Any]:
        assert self.process.stdout is not None
        while True:
            line, _, rest = self._buffer.partition(b"\n")
            if _:
                self._buffer = rest
                message = cast(dict[str, Any], json.loads(line))
                if message.get("id") == request_id:
                    return message
                continue
            self._buffer += await self.process.stdout.receive()

    async def _send(self, message: dict[str, Any]) -> None:
        assert self.process.stdin is not None
        await self.process.stdin.send(json.dumps(message).encode() + b"\n")
