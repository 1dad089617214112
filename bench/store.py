"""Store work of one tool call: the embedded SQLite file vs PostgreSQL (a throwaway local cluster).

Two pieces of work, each timed as a whole: a read of a finished run (`owns` + `get_result`, what
`get_task_run` asks of the store for a kept result) and a create (`claim` + `created` +
`update_status`). The backends alternate call by call (their order rotates) after a warm-up, so
both see the same machine load. PostgreSQL runs on this machine over TCP loopback, started by the
benchmark with the tests' helper (tests/postgres.py).
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from bench.common import Mode, Outcome, percentile
from bench.report import Table
from parallel_mcp.store import RunRecord, Store

NAME = "store"
WARMUP = 50
OWNER = "bench-owner"
RESULT_BODY = '{"output": {"type": "text", "content": "' + "A finished answer with citations. " * 60 + '"}}'
"""About 2 kB: a short completed result as the run service keeps it."""

Work = Callable[[int], Awaitable[None]]


def read_work(store: Store, run_id: str) -> Work:
    async def work(_index: int) -> None:
        if not await store.owns(OWNER, run_id) or await store.get_result(OWNER, run_id) is None:
            raise RuntimeError(f"{store.location} lost the finished run {run_id}")

    return work


def create_work(store: Store, label: str) -> Work:
    async def work(index: int) -> None:
        # Every create is a new body, as a fresh create_task_run would be.
        claim = await store.claim(
            OWNER,
            kind="run",
            fingerprint=f"{label}-{index}",
            idempotency_key=None,
            window=600.0,
            force_new=False,
            now=time.time(),
        )
        if claim.outcome != "new":
            raise RuntimeError(f"{store.location}: create {index} found an earlier intent ({claim.outcome})")
        run_id = f"trun_{label}_{index}"
        record = RunRecord(run_id, processor="lite", status="queued", input_excerpt=f"question {index}")
        await store.created(claim.intent_id, OWNER, record, idempotency_key=None)
        await store.update_status(OWNER, run_id, "running")

    return work


async def finished_run(store: Store) -> str:
    claim = await store.claim(
        OWNER, kind="run", fingerprint="finished", idempotency_key=None, window=600.0, force_new=False, now=time.time()
    )
    run_id = "trun_finished"
    record = RunRecord(run_id, processor="lite", status="queued", input_excerpt="a finished question")
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


async def run(mode: Mode) -> Outcome:
    # Imported here: other benchmarks (start-up above all) must not pay for the stores or the cluster.
    from parallel_mcp.store.postgres import PostgresStore
    from parallel_mcp.store.sqlite import SQLiteStore
    from tests.postgres import TemporaryPostgres

    iterations = mode.pick(300, 3000)
    with tempfile.TemporaryDirectory(prefix="bench-store-") as directory, TemporaryPostgres() as cluster:
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
    return Outcome(tables=[table], targets=[])
