"""Store work of one tool call: the embedded SQLite file vs PostgreSQL (a throwaway local cluster).

Store level: two pieces of work, each timed as a whole: a read of a finished run (`owns` +
`get_result`, what `get_task_run` asks of the store for a kept result when users share a key) and a
create (`claim` + `created` + `update_status`). Tool-call level: two servers
(`create_server(Settings(journal=FILE))` and `create_server(Settings(database_url=...))`, in memory,
their client aimed at an in-process emulator) answer `get_task_run` on a finished run (from the run
service's result cache, and, cycling over more finished runs than that cache holds, from the store)
and `list_task_runs` (a journal query), beside a hello-world tool call. The variants alternate call
by call (their order rotates) after a warm-up, so all see the same machine load. PostgreSQL runs on
this machine over TCP loopback, started by the benchmark with the tests' helper (tests/postgres.py).
"""

from __future__ import annotations

import inspect
import itertools
import json
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Generator
from contextlib import AsyncExitStack, contextmanager
from pathlib import Path
from typing import Any

import anyio
from mcp import Client

from bench.common import Mode, Outcome, percentile
from bench.overhead import Call, check, completed_run, tool_call
from bench.overhead import measure as measure_calls
from bench.report import Table
from parallel_mcp.store import Intent, RunRecord, Store

NAME = "store"
WARMUP = 50
OWNER = "bench-owner"
RESULT_BODY = '{"output": {"type": "text", "content": "' + "A finished answer with citations. " * 60 + '"}}'
"""About 2 kB: a short completed result as the run service keeps it."""

EMULATOR_KEY = "bench-emulator-key"
UNCACHED_RUNS = 300
"""Finished runs read in turn: more than the run service's result cache holds (256), so no read finds its run there."""
BACKENDS = ("SQLite", "PostgreSQL")
HELLO = "hello-world tool call"
CACHED = "get_task_run, finished run in the result cache"
STORED = "get_task_run, finished run not in the cache: read from the store"
LISTED = "list_task_runs (a journal query, 20 newest runs)"

Work = Callable[[int], Awaitable[None]]


def read_work(store: Store, run_id: str) -> Work:
    async def work(_index: int) -> None:
        if not await store.owns(OWNER, run_id) or await store.get_result(OWNER, run_id) is None:
            raise RuntimeError(f"{store.location} lost the finished run {run_id}")

    return work


def create_work(store: Store, label: str) -> Work:
    async def work(index: int) -> None:
        # Every create is a new body, as a fresh create_task_run would be.
        claim = await store.claim(Intent(OWNER, "run", f"{label}-{index}"), window=600.0, now=time.time())
        if claim.outcome != "new":
            raise RuntimeError(f"{store.location}: create {index} found an earlier intent ({claim.outcome})")
        run_id = f"trun_{label}_{index}"
        record = RunRecord(run_id=run_id, processor="lite", status="queued", input_excerpt=f"question {index}")
        await store.created(claim.intent_id, OWNER, record, idempotency_key=None)
        await store.update_status(OWNER, run_id, "running")

    return work


async def finished_run(store: Store) -> str:
    claim = await store.claim(Intent(OWNER, "run", "finished"), window=600.0, now=time.time())
    run_id = "trun_finished"
    record = RunRecord(run_id=run_id, processor="lite", status="queued", input_excerpt="a finished question")
    await store.created(claim.intent_id, OWNER, record, idempotency_key=None)
    await store.update_status(OWNER, run_id, "completed")
    await store.put_result(OWNER, run_id, RESULT_BODY)
    return run_id


async def measure(variants: dict[str, Work], iterations: int) -> dict[str, list[float]]:
    """Seconds per piece of work of each variant; variants alternate (rotating order) after a warm-up."""
    names = list(variants)
    for name in names:
        for index in range(WARMUP):
            await variants[name](-1 - index)
    samples: dict[str, list[float]] = {name: [] for name in names}
    for index in range(iterations):
        shift = index % len(names)
        for name in names[shift:] + names[:shift]:
            started = time.perf_counter()
            await variants[name](index)
            samples[name].append(time.perf_counter() - started)
    return samples


async def seed_finished_runs(store: Store, owner: str, result: str, count: int) -> list[str]:
    """`count` finished runs of `owner` journaled with a kept result (a real one, under each run's id)."""
    body = json.loads(result)
    run_ids = [f"trun_benchseed{index:04d}" for index in range(count)]
    limiter = anyio.Semaphore(8)

    async def seed(index: int, run_id: str) -> None:
        async with limiter:
            claim = await store.claim(Intent(owner, "run", f"seed-{index}"), window=600.0, now=time.time())
            record = RunRecord(
                run_id=run_id, processor="lite", status="queued", input_excerpt=f"seeded question {index}"
            )
            await store.created(claim.intent_id, owner, record, idempotency_key=None)
            await store.update_status(owner, run_id, "completed")
            await store.put_result(owner, run_id, json.dumps({**body, "run": {**body["run"], "run_id": run_id}}))

    async with anyio.create_task_group() as group:
        for index, run_id in enumerate(run_ids):
            group.start_soon(seed, index, run_id)
    return run_ids


@contextmanager
def counting_store_calls() -> Generator[Counter[str]]:
    """While the block runs, count the calls of the stores' own public async methods (by method name)."""
    from parallel_mcp.store.postgres import PostgresStore
    from parallel_mcp.store.sqlite import SQLiteStore

    counts: Counter[str] = Counter()
    saved: list[tuple[type[Store], str, Any]] = []

    def counted(name: str, method: Any) -> Any:
        async def call(*args: Any, **kwargs: Any) -> Any:
            counts[name] += 1
            return await method(*args, **kwargs)

        return call

    for cls in (SQLiteStore, PostgresStore):
        for name, method in list(vars(cls).items()):
            if not name.startswith("_") and name not in ("start", "close") and inspect.iscoroutinefunction(method):
                saved.append((cls, name, method))
                setattr(cls, name, counted(name, method))
    try:
        yield counts
    finally:
        for cls, name, method in saved:
            setattr(cls, name, method)


async def store_calls(variants: dict[str, Call], calls: int = 10) -> dict[str, str]:
    """Store calls per tool call of each variant, and which (counted over `calls` calls, untimed)."""
    found: dict[str, str] = {}
    for label, variant in variants.items():
        with counting_store_calls() as counts:
            for _ in range(calls):
                await variant()
        per_call = sum(counts.values()) / calls
        names = ", ".join(
            f"{name}" if count == calls else f"{name} ×{count / calls:g}" for name, count in counts.items()
        )
        found[label] = f"{per_call:g}" + (f" ({names})" if names else "")
    return found


def cycling(client: Client, run_ids: list[str]) -> Call:
    """get_task_run on each of `run_ids` in turn."""
    turn = itertools.cycle(run_ids)

    async def call() -> object:
        return check(await client.call_tool("get_task_run", {"run_id": next(turn)}))

    return call


async def tool_samples(directory: Path, database_url: str, calls: int) -> tuple[dict[str, list[float]], dict[str, str]]:
    """Seconds per tool call of each variant on the SQLite-backed and the PostgreSQL-backed server, and the store
    calls each variant makes per tool call."""
    import httpx2
    from pydantic import SecretStr

    from bench.hello_server import server as hello_server
    from parallel_mcp.client import AsyncTaskClient
    from parallel_mcp.config import Settings
    from parallel_mcp.emulator.config import EmulatorConfig
    from parallel_mcp.emulator.runner import serve_emulator
    from parallel_mcp.runs import owner_of
    from parallel_mcp.runtime import EMULATOR_OWNER_KEY
    from parallel_mcp.server import create_server
    from parallel_mcp.store.postgres import PostgresStore
    from parallel_mcp.store.sqlite import SQLiteStore

    journal = directory / "tools.sqlite3"
    settings = {"SQLite": Settings(journal=str(journal)), "PostgreSQL": Settings(database_url=SecretStr(database_url))}
    async with AsyncExitStack() as stack:
        emulator = await stack.enter_async_context(serve_emulator(EmulatorConfig(api_key=EMULATOR_KEY, instant=True)))
        task_client = await stack.enter_async_context(AsyncTaskClient(api_key=EMULATOR_KEY, base_url=emulator.base_url))
        http = await stack.enter_async_context(httpx2.AsyncClient(headers={"x-api-key": EMULATOR_KEY}))
        variants: dict[str, Call] = {
            HELLO: tool_call(
                await stack.enter_async_context(Client(hello_server, cache=None)), "hello", {"name": "bench"}
            )
        }
        for backend in BACKENDS:
            server = create_server(settings[backend], client=task_client, emulated=True)
            client = await stack.enter_async_context(Client(server, cache=None))
            finished = await completed_run(
                client, {"input": f"Who wrote Middlemarch? ({backend})", "processor": "lite"}
            )
            response = await http.get(f"{emulator.base_url}/v1/tasks/runs/{finished}/result")
            response.raise_for_status()
            # The seeds are written by a second store on the same database, as another replica would.
            seeder: Store = SQLiteStore(journal) if backend == "SQLite" else PostgresStore(database_url)
            try:
                owner = owner_of(EMULATOR_OWNER_KEY, await seeder.secret())
                seeded = await seed_finished_runs(seeder, owner, response.text, UNCACHED_RUNS)
            finally:
                await seeder.close()
            variants[f"{CACHED} ({backend})"] = tool_call(client, "get_task_run", {"run_id": finished})
            variants[f"{STORED} ({backend})"] = cycling(client, seeded)
            variants[f"{LISTED} ({backend})"] = tool_call(client, "list_task_runs", {})
        samples = await measure_calls(variants, calls)
        return samples, await store_calls(variants)


def tool_table(samples: dict[str, list[float]], made: dict[str, str], calls: int) -> Table:
    table = Table(
        f"Store at the tool-call level: in-memory MCP calls to a server on each store ({calls:,} calls each, "
        "all variants alternating)",
        [
            "call",
            "SQLite p50 ms",
            "SQLite p99 ms",
            "PostgreSQL p50 ms",
            "PostgreSQL p99 ms",
            "p50 difference ms",
            "p99 difference ms",
            "store calls per tool call (SQLite / PostgreSQL)",
        ],
    )
    hello = samples[HELLO]
    table.add(
        f"{HELLO} (no store; the same for both)", *[percentile(hello, q) * 1000 for q in (50, 99)] * 2, 0.0, 0.0, "–"
    )
    for label in (CACHED, STORED, LISTED):
        sqlite, postgres = samples[f"{label} (SQLite)"], samples[f"{label} (PostgreSQL)"]
        table.add(
            label,
            percentile(sqlite, 50) * 1000,
            percentile(sqlite, 99) * 1000,
            percentile(postgres, 50) * 1000,
            percentile(postgres, 99) * 1000,
            (percentile(postgres, 50) - percentile(sqlite, 50)) * 1000,
            (percentile(postgres, 99) - percentile(sqlite, 99)) * 1000,
            f"{made[f'{label} (SQLite)']} / {made[f'{label} (PostgreSQL)']}",
        )
    table.notes += [
        "Differences are PostgreSQL − SQLite. Store calls: the stores' methods a tool call invoked, counted over 10 "
        "more calls of each variant (untimed); a difference where there are none is not the store's.",
        "SQLite: the journal in a file (Settings(journal=PATH)); PostgreSQL: "
        "Settings(database_url=...) to the local cluster above; the same in-process emulator upstream.",
        "What a call asks of the store: get_task_run on a run in the run service's in-memory result cache asks "
        "nothing (a finished run's result is cached by the process that read or wrote it); on a finished run the "
        "cache does not hold (another replica's run, or one evicted) it reads the kept result once (get_result), "
        f"then caches it; {UNCACHED_RUNS} seeded finished runs read in turn keep every such read a miss. "
        "list_task_runs queries the journal every call. With OAuth (users sharing the server's key) get_task_run "
        "also checks ownership (owns) first: the store-level read above times owns + get_result.",
    ]
    return table


async def run(mode: Mode) -> Outcome:
    # Imported here: other benchmarks (start-up above all) must not pay for the stores or the cluster.
    from parallel_mcp.store.postgres import PostgresStore
    from parallel_mcp.store.sqlite import SQLiteStore
    from tests.postgres import TemporaryPostgres

    iterations = mode.pick(300, 3000)
    calls = mode.pick(100, 2000)
    with tempfile.TemporaryDirectory(prefix="bench-store-") as directory, TemporaryPostgres() as cluster:
        tools, made = await tool_samples(Path(directory), cluster.new_database(), calls)
        stores: dict[str, Store] = {
            "SQLite": SQLiteStore(Path(directory) / "journal.sqlite3"),
            "PostgreSQL": PostgresStore(cluster.new_database()),
        }
        try:
            finished = {name: await finished_run(store) for name, store in stores.items()}
            reads = {name: read_work(store, finished[name]) for name, store in stores.items()}
            creates = {name: create_work(store, name) for name, store in stores.items()}
            samples = {"read": await measure(reads, iterations), "create": await measure(creates, iterations)}
        finally:
            for store in stores.values():
                await store.close()
    table = Table(
        f"Store work of one tool call ({iterations:,} each, backends alternating)",
        [
            "store work",
            "SQLite p50 µs",
            "SQLite p99 µs",
            "PostgreSQL p50 µs",
            "PostgreSQL p99 µs",
            "p50 ratio",
            "p99 ratio",
        ],
    )
    for label, work in (
        ("read of a finished run: owns + get_result", "read"),
        ("create: claim + created + update_status", "create"),
    ):
        sqlite, postgres = samples[work]["SQLite"], samples[work]["PostgreSQL"]
        table.add(
            label,
            percentile(sqlite, 50) * 1e6,
            percentile(sqlite, 99) * 1e6,
            percentile(postgres, 50) * 1e6,
            percentile(postgres, 99) * 1e6,
            percentile(postgres, 50) / percentile(sqlite, 50),
            percentile(postgres, 99) / percentile(sqlite, 99),
        )
    table.notes += [
        "Ratios are PostgreSQL / SQLite. SQLite: a WAL file in a temp dir (synchronous=NORMAL), on the event loop.",
        "PostgreSQL: a local cluster over TCP loopback (fsync off, as the tests' cluster), psycopg's async pool; "
        "every call checks its pooled connection first (one more round trip), so a restarted server is never "
        "seen as an error. A remote database adds its network round trips to each statement.",
        f"A result body of {len(RESULT_BODY):,} characters; the create's run is journaled with its intent.",
    ]
    return Outcome(tables=[table, tool_table(tools, made, calls)], targets=[])
