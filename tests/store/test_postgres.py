"""What only the PostgreSQL store has to prove: replicas at once, outages, and a password kept out of sight.

Replicas are separate `PostgresStore` objects on one database (each with its own pool and
listener), as separate processes would be. Outages stop the session's cluster and start it again on
the same port.
"""

from __future__ import annotations

import logging
import time
import traceback
from collections.abc import AsyncGenerator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path

import anyio
import anyio.to_thread
import psycopg
import pytest

import tests.postgres
from parallel_mcp.store import Budget, Claim, Intent, OverBudget, RunRecord, StoreError
from parallel_mcp.store.postgres import PostgresStore
from parallel_mcp.store.postgres_connections import RESYNC_EVENT, redact
from parallel_mcp.store.postgres_schema import MIGRATIONS, SCHEMA_VERSION
from tests.postgres import MISSING_BINARIES, PostgresError, StopMode, TemporaryPostgres
from tests.processes import free_port
from tests.support import started, until

pytestmark = pytest.mark.anyio

NOW = time.time()
WINDOW = 600.0


@asynccontextmanager
async def replica(url: str, *, timeout: float = 3.0) -> AsyncGenerator[PostgresStore]:
    """A started store, as one replica of the server would hold it."""
    async with started(PostgresStore(url, timeout=timeout)) as store:
        yield store


def run(run_id: str) -> RunRecord:
    return RunRecord(
        run_id=run_id, processor="lite", status="queued", input_excerpt="q", created_at="2026-11-28T10:00:00Z"
    )


def rows(url: str, query: str) -> list[tuple[object, ...]]:
    with psycopg.connect(url) as conn:
        return conn.execute(query.encode()).fetchall()


async def test_three_replicas_migrating_one_fresh_database_at_once_make_one_schema_and_one_secret(
    postgres_url: str,
) -> None:
    secrets: list[bytes] = []
    async with AsyncExitStack() as stack:
        stores = [await stack.enter_async_context(replica(postgres_url)) for _ in range(3)]

        async def first_use(store: PostgresStore) -> None:
            secrets.append(await store.secret())

        async with anyio.create_task_group() as tasks:
            for store in stores:
                tasks.start_soon(first_use, store)
    assert len(secrets) == 3 and len(set(secrets)) == 1 and len(secrets[0]) == 32
    assert sorted(rows(postgres_url, "SELECT key, value FROM meta WHERE key != 'secret'")) == [
        ("schema_version", str(SCHEMA_VERSION))
    ]
    assert rows(postgres_url, "SELECT count(*) FROM meta WHERE key = 'secret'") == [(1,)]
    async with replica(postgres_url) as later:  # a replica started later finds the schema and the secret
        assert await later.secret() == secrets[0]


@pytest.mark.parametrize("key", [None, "shared-key"])
async def test_concurrent_identical_claims_on_two_replicas_make_one_intent(postgres_url: str, key: str | None) -> None:
    claims: list[Claim] = []
    async with replica(postgres_url) as first, replica(postgres_url) as second:

        async def one(store: PostgresStore, index: int) -> None:
            # With a key the key decides, whatever the body: give each call its own body.
            body = f"body {index}" if key else "the same body"
            claim = await store.claim(Intent("alice", "run", body, key), window=WINDOW, now=NOW)
            claims.append(claim)

        async with anyio.create_task_group() as tasks:
            for index in range(20):
                tasks.start_soon(one, first if index % 2 else second, index)
    assert [c.outcome for c in claims].count("new") == 1
    assert len({c.intent_id for c in claims}) == 1


async def test_creates_racing_on_two_replicas_reserve_no_more_than_the_owners_daily_budget(postgres_url: str) -> None:
    budget = Budget(0.05, since=NOW - 10)
    outcomes: list[str] = []
    async with replica(postgres_url) as first, replica(postgres_url) as second:

        async def one(store: PostgresStore, index: int) -> None:
            key = f"key {index}" if index % 3 == 0 else None
            intent = Intent("alice", "run", f"body {index}", key, price_usd=0.005)
            try:
                await store.claim(intent, window=WINDOW, now=NOW, budget=budget)
                outcomes.append("new")
            except OverBudget:
                outcomes.append("refused")

        async with anyio.create_task_group() as tasks:
            for index in range(30):
                tasks.start_soon(one, first if index % 2 else second, index)
        spent = await first.spent_since("alice", NOW - 10)
    assert outcomes.count("new") == 10 and outcomes.count("refused") == 20
    assert spent == pytest.approx(0.05)


async def test_a_database_from_before_reservations_prices_each_intent_by_what_it_made(postgres_url: str) -> None:
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        for _version, script in MIGRATIONS[:2]:
            conn.execute(script.encode())
        conn.execute(b"INSERT INTO meta (key, value) VALUES ('schema_version', '2')")
        conn.execute(
            b"INSERT INTO runs (owner, run_id, processor, status, input_excerpt, cost_usd)"
            b" VALUES ('alice', 'trun_1', 'core', 'completed', 'q', 0.025)"
        )
        conn.execute(
            b"INSERT INTO groups (owner, group_id, processor, input_excerpt, num_runs, cost_usd)"
            b" VALUES ('alice', 'tgrp_1', 'lite', 'row', 2, 0.01)"
        )
        for intent_id, kind, target in (
            ("i-run", "run", "trun_1"),
            ("i-group", "group", "tgrp_1"),
            ("i-lost", "run", None),
        ):
            conn.execute(
                b"INSERT INTO intents (id, owner, kind, fingerprint, state, target_id, created_at, updated_at)"
                b" VALUES (%s, 'alice', %s, %s, 'created', %s, %s, %s)",
                (intent_id, kind, intent_id, target, NOW, NOW),
            )
    async with replica(postgres_url) as store:
        assert await store.spent_since("alice", NOW - 10) == pytest.approx(0.035)
    assert rows(postgres_url, "SELECT value FROM meta WHERE key = 'schema_version'") == [(str(SCHEMA_VERSION),)]


async def test_an_event_published_by_one_replica_reaches_the_subscribers_of_every_replica(postgres_url: str) -> None:
    seen: dict[str, list[str]] = {"first": [], "second": []}
    async with replica(postgres_url) as first, replica(postgres_url) as second:
        first.subscribe(seen["first"].append)
        second.subscribe(seen["second"].append)
        await second.publish("run_ended trun_1")
        await until(lambda: seen == {"first": ["run_ended trun_1"], "second": ["run_ended trun_1"]})
        with pytest.raises(ValueError, match="at most 7999 bytes"):
            await first.publish("x" * 8000)  # NOTIFY's payload limit


@pytest.mark.parametrize("mode", ["fast", "immediate"])
async def test_a_stopped_database_fails_calls_quickly_with_a_clear_error_and_everything_resumes_once_it_is_back(
    postgres_server: TemporaryPostgres, postgres_url: str, mode: StopMode, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    events: list[str] = []
    timeout = 1.0
    async with replica(postgres_url, timeout=timeout) as store, replica(postgres_url) as other:
        store.subscribe(events.append)
        claim = await store.claim(Intent("alice", "run", "fp", None), window=WINDOW, now=NOW)
        await store.created(claim.intent_id, "alice", run("trun_1"), idempotency_key=None)
        await anyio.to_thread.run_sync(postgres_server.stop, mode)
        failures: list[StoreError] = []

        async def fails(call: Callable[[], Awaitable[object]]) -> None:
            with pytest.raises(StoreError) as failure:
                await call()
            failures.append(failure.value)

        try:
            started = time.monotonic()
            with anyio.fail_after(15):
                async with anyio.create_task_group() as tasks:
                    tasks.start_soon(fails, lambda: store.owns("alice", "trun_1"))
                    tasks.start_soon(fails, lambda: store.publish("run_ended trun_1"))
            waited = time.monotonic() - started
        finally:
            await anyio.to_thread.run_sync(postgres_server.start)
        with anyio.fail_after(10):  # the first call after the restart succeeds: no process restart needed
            assert await store.owns("alice", "trun_1")
        await until(lambda: RESYNC_EVENT in events)  # the listener is back, and says events may have been missed
        await other.publish("run_ended trun_2")
        await until(lambda: "run_ended trun_2" in events)

    for failure in failures:
        assert str(failure) == f"the PostgreSQL store at {store.location} is unreachable: Connection refused"
        written = "".join(traceback.format_exception(failure))  # the chained psycopg errors too
        assert postgres_server.password not in written
    assert waited < timeout + 2.0  # the pool's timeout, then one direct probe; not the pool's default 30 s
    assert any("event listener disconnected" in record.getMessage() for record in caplog.records)
    assert postgres_server.password not in caplog.text


async def test_an_unreachable_database_fails_concurrent_calls_within_seconds_and_start_does_not_wait_for_it() -> None:
    url = f"postgresql://someone:s3cret-pw@127.0.0.1:{free_port()}/nowhere"
    failures: list[StoreError] = []
    started = time.monotonic()
    with anyio.fail_after(10):
        async with replica(url, timeout=1.0) as store:

            async def one() -> None:
                with pytest.raises(StoreError) as failure:
                    await store.recent("alice", limit=5, active_only=False)
                failures.append(failure.value)

            async with anyio.create_task_group() as tasks:
                for _ in range(5):
                    tasks.start_soon(one)
    # The calls share the first attempt to open the store instead of queueing one timeout each.
    assert len(failures) == 5 and time.monotonic() - started < 1.0 + 2.0
    for failure in failures:
        assert str(failure) == f"the PostgreSQL store at {store.location} is unreachable: Connection refused"
        assert store.location.startswith("postgresql://someone@127.0.0.1:")
        assert "s3cret-pw" not in "".join(traceback.format_exception(failure))


async def test_a_failed_statement_is_a_store_error_but_not_an_outage(postgres_url: str) -> None:
    async with replica(postgres_url) as store:
        await store.secret()
        with psycopg.connect(postgres_url, autocommit=True) as admin:
            admin.execute("DROP TABLE results")
        with pytest.raises(StoreError, match='failed: relation "results" does not exist'):
            await store.get_result("alice", "trun_1")


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://app:pw-1@db.internal:5432/parallel", "postgresql://app@db.internal:5432/parallel"),
        ("postgres://app:pw-1@[::1]/p?sslmode=require&password=pw-1", "postgres://app@[::1]/p?sslmode=require"),
        ("postgresql://db.internal/p", "postgresql://db.internal/p"),
        ("host=db user=app password=pw-1 dbname=p", "host=db user=app password=*** dbname=p"),
        ("host=db password = 'pw-1 \\' x' dbname=p", "host=db password=*** dbname=p"),
    ],
)
def test_the_location_and_repr_never_show_the_password(url: str, shown: str) -> None:
    assert redact(url) == shown
    store = PostgresStore(url)
    assert store.location == shown and "pw-1" not in repr(store)


def test_without_postgresql_binaries_the_test_cluster_fails_loudly_rather_than_skipping(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(tests.postgres, "DEBIAN_BINARIES", tmp_path)
    with pytest.raises(PostgresError, match="apt-get install -y postgresql") as failure:
        TemporaryPostgres()
    assert str(failure.value) == MISSING_BINARIES


async def test_a_wrong_password_is_a_clear_store_error_showing_no_password(
    postgres_server: TemporaryPostgres, postgres_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = postgres_url.replace(postgres_server.password, "not-the-pw-42")
    with anyio.fail_after(10):
        async with replica(wrong, timeout=1.0) as store:
            with pytest.raises(StoreError) as failure:
                await store.secret()
    reason = 'FATAL:  password authentication failed for user "test"'
    assert str(failure.value) == f"the PostgreSQL store at {store.location} is unreachable: {reason}"
    shown = "".join(traceback.format_exception(failure.value)) + caplog.text + store.location + repr(store)
    assert "not-the-pw-42" not in shown and postgres_server.password not in shown
