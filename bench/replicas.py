"""Replicas: N runs created and awaited at once, spread round-robin over three `parallel-mcp serve` processes.

Three real `parallel-mcp serve --transport streamable-http` replicas share one throwaway PostgreSQL
(tests/postgres.py, started here) and one upstream: an emulator served in this process, so its
`request_log` counts every upstream request. Two passes side by side, each on fresh replicas and a
fresh database: without webhooks (every waiting call long-polls upstream), and with
`PARALLEL_MCP_PUBLIC_URL` (the first replica's address) and `PARALLEL_WEBHOOK_SECRET`, so the emulator
pushes each run's end to that replica and PostgreSQL's NOTIFY wakes the call on whichever replica
waits. Reports completions, errors, wall time, call latency, peak RSS per replica (`VmHWM`), replica
CPU and upstream requests per run.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from collections.abc import AsyncGenerator
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, cast

import anyio
import httpx2
from anyio.abc import TaskStatus
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from bench.common import Mode, Outcome, median
from bench.concurrency import LoadFailure
from bench.overhead import check
from bench.report import Table, Target
from tests.processes import HttpServer, cpu_seconds, http_server, proc_status_kb, server_env

if TYPE_CHECKING:
    from tests.postgres import TemporaryPostgres

NAME = "replicas"
REPLICAS = 3
EMULATOR_SPEED = 200.0
WAIT_SECONDS = 45
KEY = "bench-replicas-key"
SECRET = "bench-replicas-webhook-secret"
SETTLE_SECONDS = 0.5
"""The emulator logs a request when its handler ends; streams cancelled at the end of a call end a moment later."""


def kind(method: str, path: str) -> str:
    """What an upstream request was, for the breakdown."""
    if method == "POST":
        return "create"
    if path.endswith("/result"):
        return "result"
    if path.endswith("/events"):
        return "events"
    return "status"


@dataclass
class Pass:
    label: str
    runs: int
    completed: int = 0
    errors: list[str] = field(default_factory=list[str])
    latencies: list[float] = field(default_factory=list[float])
    wall: float = 0.0
    rss_before_kb: list[int] = field(default_factory=list[int])
    peak_rss_kb: list[int] = field(default_factory=list[int])
    cpu: list[float] = field(default_factory=list[float])
    upstream: Counter[str] = field(default_factory=Counter[str])
    created_upstream: int = 0
    unjournaled: int = 0
    """Calls that completed but said their run could not be recorded in the store."""
    webhooks: Counter[bool] = field(default_factory=Counter[bool])
    database_connections: int = 0
    """The most client connections PostgreSQL had open at once during the load (sampled)."""
    exits: list[int | None] = field(default_factory=list[int | None])
    log_tail: str = ""


def cause(error: str) -> str:
    """A call's error, in a few words."""
    if "no free connection" in error:
        return "database unavailable: no free pool connection within 3 s"
    if "too many clients" in error:
        return "database unavailable: PostgreSQL refused a connection (too many clients)"
    if "is unreachable: " in error:
        reason = error.split("is unreachable: ", 1)[1].split(")", 1)[0]
        return f"database unavailable: 'unreachable: {reason[:60]}'"
    if "database is unavailable" in error:
        return "database unavailable: " + error.split("database is unavailable", 1)[1][:80]
    if "lost the connection" in error:
        return "upstream create lost its connection: a run may exist"
    return error[:120]


def leaves(exc: BaseException) -> list[BaseException]:
    """The exceptions an exception group holds, however nested."""
    if isinstance(exc, BaseExceptionGroup):
        group = cast(BaseExceptionGroup[BaseException], exc)
        return [leaf for child in group.exceptions for leaf in leaves(child)]
    return [exc]


@asynccontextmanager
async def tolerant(context: AbstractAsyncContextManager[Client], errors: list[str]) -> AsyncGenerator[Client]:
    """An MCP client whose transport's failure at exit (a connection a replica dropped) is recorded, not raised."""
    body_failed = False
    try:
        async with context as client:
            try:
                yield client
            except BaseException:
                body_failed = True
                raise
    except Exception as exc:
        if body_failed:
            raise
        errors.extend(f"MCP client transport: {type(leaf).__name__}: {leaf}" for leaf in leaves(exc))


async def watch_connections(admin_url: str, found: Pass, *, interval: float = 0.1) -> None:
    """Sample how many client connections PostgreSQL has open (this one excluded), keeping the most."""
    import psycopg

    async with await psycopg.AsyncConnection.connect(admin_url, autocommit=True) as conn:
        while True:
            cursor = await conn.execute("SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'")
            row = await cursor.fetchone()
            found.database_connections = max(found.database_connections, int(row[0]) - 1 if row else 0)
            await anyio.sleep(interval)


async def start_replicas(stack: AsyncExitStack, env: dict[str, str], ports: list[int]) -> list[HttpServer]:
    """Start one `serve --transport streamable-http` replica per port (0: any) at once; `stack` stops them."""
    group = await stack.enter_async_context(anyio.create_task_group())
    stop = anyio.Event()
    stack.callback(stop.set)  # runs first on exit: every replica stops at once, then the group ends
    started: dict[int, HttpServer] = {}

    async def keep(index: int, port: int, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        async with http_server("serve", "--transport", "streamable-http", env=env, port=port) as server:
            started[index] = server
            task_status.started()
            await stop.wait()

    async with anyio.create_task_group() as starting:
        for index, port in enumerate(ports):
            starting.start_soon(partial(group.start, keep, index, port))
    return [started[index] for index in range(len(ports))]


async def load(label: str, runs: int, cluster: TemporaryPostgres, *, pushed: bool) -> Pass:
    """Fresh replicas over a fresh database; `runs` create_task_run calls at once, round-robin, each awaiting it."""
    from parallel_mcp.emulator.config import EmulatorConfig
    from parallel_mcp.emulator.runner import serve_emulator
    from tests.processes import free_port

    found = Pass(label=label, runs=runs)
    database_url = await anyio.to_thread.run_sync(cluster.new_database)
    config = EmulatorConfig(api_key=KEY, speed=EMULATOR_SPEED, webhook_secret=SECRET if pushed else None)
    async with serve_emulator(config) as emulator, AsyncExitStack() as stack:
        receiver = free_port()
        settings = {
            "PARALLEL_API_KEY": KEY,
            "PARALLEL_BASE_URL": emulator.base_url,
            "PARALLEL_MCP_DATABASE_URL": database_url,
        }
        if pushed:
            settings |= {"PARALLEL_MCP_PUBLIC_URL": f"http://127.0.0.1:{receiver}", "PARALLEL_WEBHOOK_SECRET": SECRET}
        ports = [receiver if pushed and index == 0 else 0 for index in range(REPLICAS)]
        replicas = await start_replicas(stack, server_env(**settings), ports)
        # No keep-alive: a pooled connection reused as uvicorn closes it (after 5 s idle) fails its POST with
        # ReadError, and the mcp client then ends the session, cancelling every call in flight.
        limits = httpx2.Limits(max_connections=runs + 50, max_keepalive_connections=0)
        timeout = httpx2.Timeout(300.0, connect=60.0, pool=120.0)
        http = await stack.enter_async_context(httpx2.AsyncClient(limits=limits, timeout=timeout))
        clients: list[Client] = []
        for replica in replicas:
            transport = streamable_http_client(replica.url, http_client=http)
            client = await stack.enter_async_context(tolerant(Client(transport, cache=None), found.errors))
            clients.append(client)
            await client.list_tools()
            check(await client.call_tool("list_task_runs", {}))  # the replica's first store call opens its pool
        pids = [replica.process.pid for replica in replicas]
        found.rss_before_kb = [proc_status_kb(pid, "VmRSS") for pid in pids]
        cpu_before = [cpu_seconds(pid) for pid in pids]
        log_start = len(emulator.state.request_log)
        runs_before = emulator.state.run_count

        async def one(index: int) -> None:
            started = time.perf_counter()
            try:
                arguments = {"input": f"Question {index}: who wrote Middlemarch?", "processor": "lite"}
                result = await clients[index % REPLICAS].call_tool(
                    "create_task_run", {**arguments, "wait_seconds": WAIT_SECONDS}
                )
                view = check(result)
                if view["status"] == "completed":
                    found.completed += 1
                else:
                    found.errors.append(f"run {view['run_id']} returned {view['status']}")
                warnings: list[str] = view.get("warnings") or []
                found.unjournaled += any("could not record it" in warning for warning in warnings)
            except Exception as exc:
                found.errors.append(f"{type(exc).__name__}: {exc}")
            found.latencies.append(time.perf_counter() - started)

        async with anyio.create_task_group() as watching:
            watching.start_soon(watch_connections, cluster.url, found)
            started = time.perf_counter()
            with anyio.fail_after(WAIT_SECONDS + 240):
                async with anyio.create_task_group() as group:
                    for index in range(runs):
                        group.start_soon(one, index)
            found.wall = time.perf_counter() - started
            await anyio.sleep(SETTLE_SECONDS)
            watching.cancel_scope.cancel()
        found.cpu = [cpu_seconds(pid) - before for pid, before in zip(pids, cpu_before, strict=True)]
        found.peak_rss_kb = [proc_status_kb(pid, "VmHWM") for pid in pids]
        found.upstream = Counter(kind(r.method, r.path) for r in emulator.state.request_log[log_start:])
        found.created_upstream = emulator.state.run_count - runs_before
        found.webhooks = Counter(delivered for _, delivered in emulator.state.webhook_results)
        found.exits = [replica.process.returncode for replica in replicas]
        if found.errors or any(code is not None for code in found.exits):
            found.log_tail = "\n".join(
                f"replica {index} (exit {replica.process.returncode}): {line}"
                for index, replica in enumerate(replicas)
                for line in replica.stderr[-5:]
            )
    return found


async def run(mode: Mode) -> Outcome:
    from tests.postgres import TemporaryPostgres

    sizes = [30] if mode.quick else [100, 1000]
    cluster = TemporaryPostgres()
    await anyio.to_thread.run_sync(cluster.setup)
    try:
        passes: list[Pass] = []
        for runs in sizes:
            for label, pushed in (("without webhooks", False), ("with webhooks", True)):
                passes.append(await load(label, runs, cluster, pushed=pushed))
    finally:
        await anyio.to_thread.run_sync(cluster.cleanup)

    table = Table(
        f"Replicas: runs created and awaited at once, round-robin over {REPLICAS} `serve --transport "
        "streamable-http` processes over one PostgreSQL",
        [
            "pass",
            "runs at once",
            "completed",
            "errors",
            "wall s",
            "call p50 s",
            "call max s",
            f"calls ≥ the whole {WAIT_SECONDS} s wait",
            "RSS before per replica (MiB)",
            "peak RSS per replica (MiB)",
            "replica CPU ms per run",
            "upstream requests per run",
            "per run: create / status / result / events",
            "webhooks delivered",
            "PostgreSQL connections (peak)",
            "completed but not journaled",
        ],
    )
    causes = Table(
        "Replicas: errors by cause",
        ["pass", "runs at once", "calls", "cause"],
    )
    targets: list[Target] = []
    failures: list[str] = []
    for found in passes:
        errors = len(found.errors)
        per_run = {name: found.upstream[name] / found.runs for name in ("create", "status", "result", "events")}
        table.add(
            found.label,
            found.runs,
            found.completed,
            errors,
            found.wall,
            median(found.latencies),
            max(found.latencies),
            sum(seconds >= WAIT_SECONDS for seconds in found.latencies),
            " / ".join(f"{kb / 1024:.0f}" for kb in found.rss_before_kb),
            " / ".join(f"{kb / 1024:.0f}" for kb in found.peak_rss_kb),
            sum(found.cpu) / found.runs * 1000,
            sum(found.upstream.values()) / found.runs,
            " / ".join(f"{value:.2f}" for value in per_run.values()),
            f"{found.webhooks[True]:,}" + (f" ({found.webhooks[False]:,} failed)" if found.webhooks[False] else ""),
            found.database_connections,
            found.unjournaled,
        )
        tally = Counter(cause(error) for error in found.errors)
        for said, count in tally.most_common():
            causes.add(found.label, found.runs, count, said)
        targets.append(
            Target(
                f"replicas, {found.runs:,} runs, {found.label}",
                "every run completes, no errors, one upstream run per call",
                f"{found.completed:,}/{found.runs:,} completed, {errors:,} errors, "
                f"{found.created_upstream:,} runs upstream",
                found.completed == found.runs and found.created_upstream == found.runs and not errors,
            )
        )
        failures.extend(f"replicas, {found.runs} runs {found.label}: {count} × {said}" for said, count in tally.items())
        if found.log_tail:
            failures.append(
                f"replicas, {found.runs} runs {found.label}: the replicas' last log lines:\n{found.log_tail}"
            )
    table.notes += [
        f"Each pass: {REPLICAS} fresh replicas (PARALLEL_MCP_DATABASE_URL to a fresh database of one local cluster, "
        f"PARALLEL_API_KEY, PARALLEL_BASE_URL) on one machine with {os.cpu_count()} cores, shared with PostgreSQL, "
        "the emulator and the MCP clients (this process). Call i goes to replica i mod 3 (its own MCP client; "
        "one HTTP pool allows every call its own connection, and keeps none alive: a kept-alive connection that "
        "uvicorn closes after 5 s idle just as a late call reuses it fails that POST with ReadError, and the mcp "
        "client then ends its session with every call in flight). Before the load each replica answers tools/list and "
        "list_task_runs (its first store call opens its connection pool).",
        f"Emulator speed {EMULATOR_SPEED:g}x (a lite run lasts 0.05–0.3 s); each call waits up to {WAIT_SECONDS} s. "
        f"A call that took its whole wait although its run had long ended missed the news of its end (with "
        "webhooks: the run_ended event came before the call listened for it), then read the run once.",
        "With webhooks: PARALLEL_MCP_PUBLIC_URL names the first replica and PARALLEL_WEBHOOK_SECRET is set; every "
        "run carries a webhook there, and the other replicas' waiting calls wake on PostgreSQL's NOTIFY.",
        "Upstream requests: counted in the emulator (in this process), during the load and 0.5 s after it; "
        "webhook deliveries are the emulator's own requests to the replica, not counted as upstream requests.",
        "PostgreSQL connections: client backends in pg_stat_activity, sampled every 0.1 s (the sampler's own "
        "excluded); the cluster allows 200 (tests/postgres.py); each replica's pool holds at most 10.",
        "Completed but not journaled: the call answered with its run and the warning that the store did not take "
        "it (list_task_runs will not show it).",
    ]
    tables = [table, causes] if causes.rows else [table]
    if failures:
        raise LoadFailure(failures, Outcome(tables=tables, targets=targets))
    return Outcome(tables=tables, targets=targets)
