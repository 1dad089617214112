"""Real subprocesses of `parallel-mcp` for end-to-end tests: spawn, find the address, stop."""

from __future__ import annotations

import os
import re
import sys
from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import anyio
from anyio.abc import Process

LISTENING = re.compile(r"listening on (http://\S+)")


def server_env(**extra: str) -> dict[str, str]:
    """The environment for a server subprocess: no real key, a fast emulator, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PARALLEL_", "PARALLEL_MCP_"))}
    env.update({"PARALLEL_MCP_EMULATOR_SPEED": "400", "PYTHONUNBUFFERED": "1"})
    env.update(extra)
    return env


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
async def http_server(*args: str, env: dict[str, str] | None = None) -> AsyncGenerator[HttpServer]:
    """Start `parallel-mcp serve ARGS --port 0` and yield once it announces its address."""
    process = await anyio.open_process(command(*args, "--port", "0"), env=env or server_env())
    assert process.stderr is not None
    stderr = process.stderr
    lines: list[str] = []
    buffer = ""
    url = None
    try:
        with anyio.fail_after(30):
            while url is None:
                chunk = await stderr.receive()
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
                process.terminate()
                with anyio.fail_after(10):
                    await process.wait()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
