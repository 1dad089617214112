"""Concurrency: N runs created and awaited at once over streamable HTTP against a server subprocess.

The server is `parallel-mcp serve --transport streamable-http --port 0` in emulator mode (no key) with a
fast emulator, so runs end well inside the call's wait. Every caller shares one MCP client whose HTTP
pool allows every call its own connection. Reports completions, errors, wall time, call latency, peak
RSS of the server process (`VmHWM`) and upstream requests per run.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import anyio
import httpx2
from anyio.abc import Process
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from bench.common import BENCH_DIR, Mode, Outcome, log_file, median, python, tail
from bench.overhead import check
from bench.report import Table, Target
from tests.processes import cpu_seconds, proc_status_kb, server_env

NAME = "concurrency"
EMULATOR_SPEED = "200"
LISTENING = re.compile(r"listening on (http://\S+)")
UPSTREAM_MARK = "bench-upstream "
START_TIMEOUT = 60.0


@dataclass
class Server:
    url: str
    process: Process
    log: Path
    upstream: list[int] = field(default_factory=lambda: [0])


@asynccontextmanager
async def http_server(log: Path) -> AsyncGenerator[Server]:
    """Start the server subprocess; yield once it announces its address; count upstream requests."""
    command = [python(), str(BENCH_DIR / "serve_counting.py"), "--transport", "streamable-http", "--port", "0"]
    env = server_env(PARALLEL_MCP_EMULATOR_SPEED=EMULATOR_SPEED)
    process = await anyio.open_process(command, env=env)
    try:
        assert process.stderr is not None
        stderr = process.stderr
        url: list[str] = []
        upstream = [0]
        ready = anyio.Event()

        async def drain() -> None:
            buffer = ""
            with log.open("a", encoding="utf-8") as out:
                async for chunk in stderr:
                    buffer += chunk.decode("utf-8", "replace")
                    *lines, buffer = buffer.split("\n")
                    for line in lines:
                        if line.startswith(UPSTREAM_MARK):
                            upstream[0] += 1
                            continue
                        out.write(line + "\n")
                        match = LISTENING.search(line)
                        if match and not url:
                            url.append(match.group(1))
                            ready.set()

        async with anyio.create_task_group() as group:
            group.start_soon(drain)
            with anyio.fail_after(START_TIMEOUT):
                await ready.wait()
            try:
                yield Server(url=url[0], process=process, log=log, upstream=upstream)
            finally:
                process.terminate()
                with anyio.move_on_after(15):
                    await process.wait()
                group.cancel_scope.cancel()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


@dataclass
class Load:
    runs: int
    completed: int = 0
    errors: list[str] = field(default_factory=list[str])
    latencies: list[float] = field(default_factory=list[float])
    wall: float = 0.0
    rss_before_kb: int = 0
    peak_rss_kb: int = 0
    upstream: int = 0
    server_cpu: float = 0.0
    client_cpu: float = 0.0


async def load(runs: int) -> Load:
    """One fresh server; `runs` create_task_run calls at once, each waiting for its run."""
    result = Load(runs=runs)
    async with http_server(log_file(f"{NAME}-{runs}")) as server:
        limits = httpx2.Limits(max_connections=runs + 50, max_keepalive_connections=100)
        timeout = httpx2.Timeout(300.0, connect=60.0, pool=120.0)
        async with (
            httpx2.AsyncClient(limits=limits, timeout=timeout) as http,
            Client(streamable_http_client(server.url, http_client=http), cache=None) as client,
        ):
            await client.list_tools()
            result.rss_before_kb = proc_status_kb(server.process.pid, "VmRSS")
            upstream_before = server.upstream[0]

            async def one(index: int) -> None:
                started = time.perf_counter()
                try:
                    arguments = {"input": f"Question {index}: who wrote Middlemarch?", "processor": "lite"}
                    view = check(await client.call_tool("create_task_run", {**arguments, "wait_seconds": 45}))
                    if view["status"] == "completed":
                        result.completed += 1
                    else:
                        result.errors.append(f"run {view['run_id']} returned {view['status']}")
                except Exception as exc:
                    result.errors.append(f"{type(exc).__name__}: {exc}")
                result.latencies.append(time.perf_counter() - started)

            server_cpu, client_cpu = cpu_seconds(server.process.pid), time.process_time()
            started = time.perf_counter()
            with anyio.fail_after(240):
                async with anyio.create_task_group() as group:
                    for index in range(runs):
                        group.start_soon(one, index)
            result.wall = time.perf_counter() - started
            result.server_cpu = cpu_seconds(server.process.pid) - server_cpu
            result.client_cpu = time.process_time() - client_cpu
            await anyio.sleep(0.5)  # streams cancelled at the end of each call log their request late
            result.upstream = server.upstream[0] - upstream_before
            result.peak_rss_kb = proc_status_kb(server.process.pid, "VmHWM")
        if result.errors:
            result.errors.append(f"server log tail:\n{tail(server.log)}")
    return result


async def run(mode: Mode) -> Outcome:
    sizes = [20] if mode.quick else [100, 1000]
    table = Table(
        "Concurrency: runs created and awaited at once over streamable HTTP (server subprocess, emulator mode)",
        [
            "runs at once",
            "completed",
            "errors",
            "wall s",
            "call p50 s",
            "call max s",
            "server RSS before (MiB)",
            "server peak RSS (MiB)",
            "upstream requests per run",
            "server CPU s",
            "client CPU s",
        ],
    )
    targets: list[Target] = []
    failures: list[str] = []
    for runs in sizes:
        found = await load(runs)
        table.add(
            runs,
            found.completed,
            len(found.errors) - (1 if found.errors else 0),
            found.wall,
            median(found.latencies),
            max(found.latencies),
            found.rss_before_kb / 1024,
            found.peak_rss_kb / 1024,
            found.upstream / runs,
            found.server_cpu,
            found.client_cpu,
        )
        targets.append(
            Target(
                f"concurrency, {runs} runs",
                "every run completes, no errors",
                f"{found.completed}/{runs} completed, {len(found.errors) - (1 if found.errors else 0)} errors",
                found.completed == runs,
            )
        )
        failures.extend(found.errors[:5])
    table.notes.append(
        f"Emulator speed {EMULATOR_SPEED}x (a lite run lasts 0.05–0.3 s); each call waits up to 45 s for its run."
    )
    table.notes.append(
        "CPU: the server process's user+system time during the load, and this benchmark process's (the MCP "
        "client of every caller); the machine has "
        f"{os.cpu_count()} cores, so a wall time near (server + client CPU) / cores means the load is CPU-bound."
    )
    table.notes.append(
        "Upstream requests are counted in the server process (bench/serve_counting.py wraps the CLI and "
        "logs each httpx2 request it sends): create, the /result long-poll, the event stream."
    )
    if failures:
        raise LoadFailure(failures, Outcome(tables=[table], targets=targets))
    return Outcome(tables=[table], targets=targets)


class LoadFailure(Exception):
    """Runs were lost or calls failed: a malfunction, reported with the figures."""

    def __init__(self, failures: list[str], outcome: Outcome) -> None:
        super().__init__("; ".join(failures))
        self.outcome = outcome
