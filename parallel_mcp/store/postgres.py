"""The shared store: one PostgreSQL database that replicas use at once (psycopg, imported on first use).

The pool opens and the schema migrates at the first call, under an advisory lock: replicas that
start together migrate once and share one installation secret. Claims mirror SQLite's, which
serialises them with `BEGIN IMMEDIATE`: here a claim's transaction first locks its key and its body
(advisory locks), so claims of one intent queue across replicas while others run in parallel; the
partial unique indexes (`key_slot = 1`, `fp_slot = 1`) back that up.

Events travel as `NOTIFY parallel_mcp_events` (payload: the event). The listener that `start` runs
delivers them, this replica's own included, and reconnects with backoff after an outage; what was
sent meanwhile is lost, so after a reconnect it delivers `RESYNC_EVENT`: re-read what you wait on.
Failures raise `StoreError` naming the database without its password, within about `timeout`
seconds when it is unreachable; the store recovers by itself once the database is back.
"""

from __future__ import annotations

import logging
import re
import secrets
import time
import uuid
from collections.abc import AsyncGenerator, Sequence
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import anyio
from anyio.abc import TaskGroup, TaskStatus

from parallel_mcp.store import (
    ACTIVE_STATUSES,
    RESYNC,
    SENDING_STALE_SECONDS,
    Claim,
    ClaimOutcome,
    GroupRecord,
    IntentKind,
    JournalEntry,
    Redeemed,
    RunRecord,
    Store,
    StoreError,
    TaskRecord,
    redeemed,
)

if TYPE_CHECKING:
    from psycopg import AsyncConnection
    from psycopg_pool import AsyncConnectionPool

    Conn = AsyncConnection[Any]
    Pool = AsyncConnectionPool[Conn]

logger = logging.getLogger(__name__)

CHANNEL: Final = "parallel_mcp_events"
MAX_EVENT_BYTES = 7999
"""NOTIFY's payload limit (8000 bytes, terminator included)."""
RESYNC_EVENT = RESYNC
"""Delivered locally after the listener reconnects: events may have been missed, re-read the state."""
LISTEN_BACKOFF = (0.1, 2.0)
"""The listener's first and longest wait between reconnection attempts, in seconds."""
LISTEN_PROBE_SECONDS = 30.0
"""A listener idle this long checks its connection (a silently dead peer sends no error)."""

# Each entry migrates the previous version to its number; `meta` records the version reached. The
# tables are SQLite's (REAL as DOUBLE PRECISION), plus `runs.seq` for what SQLite's rowid gives.
_MIGRATIONS: list[tuple[int, str]] = [
    (
        1,
        """
        CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        CREATE TABLE runs (
            owner TEXT NOT NULL, run_id TEXT NOT NULL, processor TEXT NOT NULL, status TEXT NOT NULL,
            input_excerpt TEXT NOT NULL, idempotency_key TEXT, interaction_id TEXT,
            created_at TEXT COLLATE "C",  -- ISO 8601 text, sorted bytewise as SQLite does whatever the locale
            updated_at TEXT NOT NULL DEFAULT to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
            group_id TEXT, cost_usd DOUBLE PRECISION NOT NULL DEFAULT 0,
            seq BIGSERIAL NOT NULL,  -- the order of insertion, which breaks ties of created_at
            PRIMARY KEY (owner, run_id)
        );
        CREATE INDEX runs_by_time ON runs (owner, created_at);
        CREATE TABLE intents (
            id TEXT PRIMARY KEY, owner TEXT NOT NULL, kind TEXT NOT NULL, idempotency_key TEXT,
            fingerprint TEXT NOT NULL, state TEXT NOT NULL, target_id TEXT,
            key_slot INTEGER NOT NULL DEFAULT 0, fp_slot INTEGER NOT NULL DEFAULT 0,
            created_at DOUBLE PRECISION NOT NULL, updated_at DOUBLE PRECISION NOT NULL
        );
        CREATE UNIQUE INDEX intents_by_key ON intents (owner, kind, idempotency_key) WHERE key_slot = 1;
        CREATE UNIQUE INDEX intents_by_fingerprint ON intents (owner, kind, fingerprint) WHERE fp_slot = 1;
        CREATE INDEX intents_recent ON intents (owner, kind, fingerprint, created_at);
        CREATE TABLE groups (
            owner TEXT NOT NULL, group_id TEXT NOT NULL, processor TEXT NOT NULL, input_excerpt TEXT NOT NULL,
            num_runs INTEGER NOT NULL, cost_usd DOUBLE PRECISION NOT NULL DEFAULT 0, created_at TEXT,
            PRIMARY KEY (owner, group_id)
        );
        CREATE TABLE results (
            owner TEXT NOT NULL, run_id TEXT NOT NULL, body TEXT NOT NULL, stored_at DOUBLE PRECISION NOT NULL,
            PRIMARY KEY (owner, run_id)
        );
        CREATE TABLE deliveries (id TEXT PRIMARY KEY, received_at DOUBLE PRECISION NOT NULL);
        """,
    ),
    (
        2,
        """
        CREATE TABLE tasks (
            task_id TEXT PRIMARY KEY, owner TEXT NOT NULL, kind TEXT NOT NULL, target_id TEXT NOT NULL,
            shaping TEXT NOT NULL, created_at DOUBLE PRECISION NOT NULL, cancelled_at DOUBLE PRECISION
        );
        CREATE TABLE confirmations (
            token_hash TEXT PRIMARY KEY, owner TEXT NOT NULL, fingerprint TEXT NOT NULL,
            expires_at DOUBLE PRECISION NOT NULL, used_at DOUBLE PRECISION
        );
        ALTER TABLE groups ALTER COLUMN created_at TYPE TEXT COLLATE "C";
        CREATE INDEX groups_by_time ON groups (owner, created_at);
        """,
    ),
]
SCHEMA_VERSION = _MIGRATIONS[-1][0]
_MIGRATION_LOCK = "parallel_mcp schema"
# Keys are locked before bodies, in one statement (its select list runs left to right).
_LOCK_ONE: Final = "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))"
_LOCK_TWO: Final = (
    "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0)), pg_advisory_xact_lock(hashtextextended(%s, 0))"
)
_INTENT_COLUMNS: Final = "id, state, target_id, created_at, updated_at, idempotency_key"
_NOW_TEXT: Final = "to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"


def redact(url: str) -> str:
    """The URL (or `key=value` conninfo) without its password, for messages and `location`."""
    if "://" not in url:
        return re.sub(r"password\s*=\s*('(?:[^'\\]|\\.)*'|\S+)", "password=***", url)
    parts = urlsplit(url)
    netloc = parts.netloc.rpartition("@")[2]
    if parts.username:
        netloc = f"{parts.username}@{netloc}"
    query = urlencode([(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "password"])
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def _claim_from(row: Sequence[Any] | None, now: float) -> Claim | None:
    if row is None:
        return None
    intent_id, state, target_id, created_at, updated_at, key = row
    outcome: ClaimOutcome = state
    if state == "sending" and now - float(updated_at) > SENDING_STALE_SECONDS:
        outcome = "unknown"
    return Claim(intent_id, outcome, target_id, float(created_at), key)


def _lost(exc: Exception) -> bool:
    """True when the database is out of reach, not when a statement failed (a timeout, a deadlock)."""
    import psycopg

    state = getattr(exc, "sqlstate", None)
    if not isinstance(exc, psycopg.OperationalError):
        return False
    # No SQLSTATE: libpq's own errors (refused, closed, broken) and the pool's timeout; class 08 and
    # 57P01-03: the server closed the connection or is starting or stopping.
    return state is None or state.startswith(("08", "57P0"))


def _lock_name(owner: str, kind: str, what: str, value: str) -> str:
    # Unit separators keep ("ab", "c") and ("a", "bc") apart.
    return "\x1f".join(("claim", owner, kind, what, value))


class PostgresStore(Store):
    """The store in a PostgreSQL database, shared by every replica that has its URL."""

    def __init__(self, url: str, *, timeout: float = 3.0, max_size: int = 10) -> None:
        """`timeout`: how long a call waits for a connection before it fails with `StoreError`."""
        super().__init__()
        self._url = url
        self._password = urlsplit(url).password if "://" in url else None
        self.location = redact(url)
        self._timeout = timeout
        self._max_size = max_size
        self._pool: Pool | None = None
        self._migrated = False
        self._opening: tuple[anyio.Event, list[StoreError]] | None = None
        self._listening = False
        self._listener: anyio.CancelScope | None = None

    def __repr__(self) -> str:
        return f"PostgresStore({self.location!r})"

    # -- connections -------------------------------------------------------------------------------

    async def _ready(self) -> Pool:
        """The pool, opened and the schema migrated; concurrent first calls share one attempt and its outcome."""
        while self._pool is None or not self._migrated:
            attempt = self._opening
            if attempt is not None:  # another call is opening: its failure is this call's too (bounded wait)
                await attempt[0].wait()
                if attempt[1]:
                    raise StoreError(str(attempt[1][0]))
                continue
            attempt = self._opening = (anyio.Event(), list[StoreError]())
            try:
                await self._open()
            except StoreError as exc:
                attempt[1].append(exc)
                raise
            finally:
                self._opening = None
                attempt[0].set()
        return self._pool

    async def _open(self) -> None:
        from psycopg_pool import AsyncConnectionPool

        if self._pool is None:
            pool: Pool = AsyncConnectionPool(
                self._url,
                open=False,  # opening in the constructor is deprecated (a RuntimeWarning)
                min_size=1,
                max_size=self._max_size,
                kwargs={"autocommit": True, "connect_timeout": max(2, round(self._timeout))},
                configure=_configure,
                # A connection that died with a restarted server is replaced before anyone gets it.
                check=AsyncConnectionPool.check_connection,
                timeout=self._timeout,
                # Giving up soon lets the next call retry at once instead of after a long backoff.
                reconnect_timeout=2.0,
                name="parallel-mcp-store",
            )
            await pool.open(wait=False)
            self._pool = pool
        async with self._connection(ready=self._pool) as conn:
            await _migrate(conn)
        self._migrated = True

    @asynccontextmanager
    async def _connection(self, ready: Pool | None = None) -> AsyncGenerator[Conn]:
        """A pooled connection (autocommit); any database failure becomes a `StoreError`."""
        import psycopg

        pool = ready if ready is not None else await self._ready()
        try:
            async with pool.connection() as conn:
                yield conn
        except psycopg.Error as exc:
            if _lost(exc):
                raise await self._unreachable(exc) from exc
            raise StoreError(f"the PostgreSQL store at {self.location} failed: {self._reason(exc)}") from exc

    @asynccontextmanager
    async def _transaction(self) -> AsyncGenerator[Conn]:
        async with self._connection() as conn, conn.transaction():
            yield conn

    async def _unreachable(self, exc: Exception) -> StoreError:
        import psycopg
        from psycopg_pool import PoolTimeout

        reason = self._reason(exc)
        if isinstance(exc, PoolTimeout):
            # The pool's timeout says nothing of the cause: ask the database directly.
            try:
                probe = await psycopg.AsyncConnection.connect(self._url, connect_timeout=2)
            except psycopg.Error as refused:
                reason = self._reason(refused)
            else:
                await probe.close()
                return StoreError(
                    f"the PostgreSQL store at {self.location} had no free connection within {self._timeout:g} s"
                    " (the database answers; the pool is busy or reconnecting)"
                )
        return StoreError(f"the PostgreSQL store at {self.location} is unreachable: {reason}")

    def _reason(self, exc: BaseException) -> str:
        """The gist of a psycopg error: its first line, the libpq preamble cut, any password masked."""
        text = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        text = text.rpartition(" failed: ")[2] if "connection to server" in text else text
        if self._password:
            text = text.replace(self._password, "***")
        return text.removeprefix("connection failed: ") or type(exc).__name__

    async def close(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
        if self._pool is not None:
            pool, self._pool, self._migrated = self._pool, None, False
            await pool.close()

    # -- events between replicas ---------------------------------------------------------------------

    async def start(self, tasks: TaskGroup) -> None:
        """Listen for every replica's events; returns once listening, or after the first failed attempt."""
        await tasks.start(self._listen)

    async def _listen(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        import psycopg

        delay, lost, started = LISTEN_BACKOFF[0], False, False
        with anyio.CancelScope() as self._listener:
            while True:
                try:
                    connect = psycopg.AsyncConnection.connect(self._url, autocommit=True, connect_timeout=2)
                    async with await connect as conn:
                        await conn.execute(f"LISTEN {CHANNEL}")
                        self._listening, delay = True, LISTEN_BACKOFF[0]
                        if lost:
                            lost = False
                            logger.info("PostgreSQL store at %s: event listener reconnected", self.location)
                            self._deliver(RESYNC_EVENT)
                        if not started:
                            started = True
                            task_status.started()
                        while True:
                            async for notification in conn.notifies(timeout=LISTEN_PROBE_SECONDS):
                                self._deliver(notification.payload)
                            await conn.execute("SELECT 1")
                except Exception as exc:  # the listener outlives outages; anything unforeseen shows its traceback
                    # Said once per outage; the attempts that follow are debug noise.
                    logger.log(
                        logging.DEBUG if lost else logging.WARNING,
                        "PostgreSQL store at %s: event listener disconnected (%s); reconnecting in %.1f s",
                        self.location,
                        self._reason(exc),
                        delay,
                        exc_info=not isinstance(exc, psycopg.Error),
                    )
                    lost = True
                finally:
                    self._listening = False
                if not started:  # the server starts anyway; events flow once the database is back
                    started = True
                    task_status.started()
                await anyio.sleep(delay)
                delay = min(delay * 2, LISTEN_BACKOFF[1])

    async def publish(self, event: str) -> None:
        if len(event.encode()) > MAX_EVENT_BYTES:
            raise ValueError(f"an event is at most {MAX_EVENT_BYTES} bytes (NOTIFY's limit)")
        async with self._connection() as conn:
            await conn.execute("SELECT pg_notify(%s, %s)", (CHANNEL, event))
        if not self._listening:
            # Without a listener (not started, or reconnecting) the loopback would not come back:
            # deliver here; a rare duplicate is harmless, a lost wake-up is not.
            self._deliver(event)

    async def secret(self) -> bytes:
        async with self._connection() as conn:
            row = await (await conn.execute("SELECT value FROM meta WHERE key = 'secret'")).fetchone()
        if row is None:
            raise StoreError(f"the PostgreSQL store at {self.location} has no installation secret")
        return bytes.fromhex(str(row[0]))

    # -- intents ---------------------------------------------------------------------------------------

    async def claim(
        self,
        owner: str,
        *,
        kind: IntentKind,
        fingerprint: str,
        idempotency_key: str | None,
        window: float,
        force_new: bool,
        now: float,
    ) -> Claim:
        # A keyed claim also locks its body: a keyless claim of the same body, which may match it,
        # then waits for it as it would in SQLite. Keys are always locked before bodies: no deadlock.
        locks = [_lock_name(owner, kind, "body", fingerprint)]
        if idempotency_key is not None:
            locks.insert(0, _lock_name(owner, kind, "key", idempotency_key))
        async with self._transaction() as conn:
            await conn.execute(_LOCK_ONE if len(locks) == 1 else _LOCK_TWO, locks)
            if idempotency_key is not None:
                cursor = await conn.execute(
                    f"SELECT {_INTENT_COLUMNS} FROM intents"
                    " WHERE owner = %s AND kind = %s AND idempotency_key = %s AND key_slot = 1",
                    (owner, kind, idempotency_key),
                )
                earlier = _claim_from(await cursor.fetchone(), now)
                if earlier is not None:
                    if earlier.outcome != "unknown" or not force_new:
                        return earlier
                    await conn.execute("UPDATE intents SET key_slot = 0 WHERE id = %s", (earlier.intent_id,))
                return await _insert(conn, owner, kind, fingerprint, idempotency_key, now, 1, 0)
            if window > 0 and not force_new:
                cursor = await conn.execute(
                    f"SELECT {_INTENT_COLUMNS} FROM intents WHERE owner = %s AND kind = %s AND fingerprint = %s"
                    " AND created_at >= %s AND (key_slot = 1 OR fp_slot = 1) ORDER BY created_at DESC LIMIT 1",
                    (owner, kind, fingerprint, now - window),
                )
                earlier = _claim_from(await cursor.fetchone(), now)
                if earlier is not None:
                    return earlier
            await conn.execute(
                "UPDATE intents SET fp_slot = 0 WHERE owner = %s AND kind = %s AND fingerprint = %s AND fp_slot = 1"
                " AND (created_at < %s OR %s)",
                (owner, kind, fingerprint, now - window, force_new),
            )
            return await _insert(conn, owner, kind, fingerprint, None, now, 0, int(window > 0))

    async def intent(self, intent_id: str, *, now: float) -> Claim | None:
        async with self._connection() as conn:
            cursor = await conn.execute(f"SELECT {_INTENT_COLUMNS} FROM intents WHERE id = %s", (intent_id,))
            return _claim_from(await cursor.fetchone(), now)

    async def created(self, intent_id: str, owner: str, run: RunRecord, *, idempotency_key: str | None) -> None:
        async with self._transaction() as conn:
            await _insert_runs(conn, owner, [run], idempotency_key)
            await _set_intent(conn, intent_id, "created", run.run_id)

    async def group_created(self, intent_id: str, owner: str, group: GroupRecord) -> None:
        async with self._transaction() as conn:
            await conn.execute(
                "INSERT INTO groups (owner, group_id, processor, input_excerpt, num_runs, cost_usd, created_at)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT (owner, group_id) DO UPDATE SET"
                " processor = EXCLUDED.processor, input_excerpt = EXCLUDED.input_excerpt,"
                " num_runs = EXCLUDED.num_runs, cost_usd = EXCLUDED.cost_usd, created_at = EXCLUDED.created_at",
                (owner, group.group_id, group.processor, group.input_excerpt, group.num_runs, group.cost_usd,
                 group.created_at),
            )  # fmt: skip
            await _set_intent(conn, intent_id, "sending", group.group_id)

    async def group_filled(self, intent_id: str, owner: str, runs: list[RunRecord]) -> None:
        async with self._transaction() as conn:
            await _insert_runs(conn, owner, runs, None)
            await _set_intent(conn, intent_id, "created")

    async def unknown(self, intent_id: str) -> None:
        async with self._connection() as conn:
            await _set_intent(conn, intent_id, "unknown")

    async def release(self, intent_id: str) -> None:
        async with self._connection() as conn:
            await conn.execute("DELETE FROM intents WHERE id = %s", (intent_id,))

    # -- the journal -----------------------------------------------------------------------------------

    async def update_status(self, owner: str | None, run_id: str, status: str) -> bool:
        async with self._connection() as conn:
            cursor = await conn.execute(
                f"UPDATE runs SET status = %s, updated_at = {_NOW_TEXT}"
                " WHERE (owner = %s OR %s::text IS NULL) AND run_id = %s AND status != %s",
                (status, owner, owner, run_id, status),
            )
            return cursor.rowcount > 0

    async def adopt(self, intent_id: str, run: RunRecord) -> bool:
        async with self._transaction() as conn:
            cursor = await conn.execute(
                "SELECT owner, idempotency_key FROM intents WHERE id = %s AND state IN ('sending', 'unknown')"
                " FOR UPDATE",
                (intent_id,),
            )
            row = await cursor.fetchone()
            if row is None:
                return False
            await _insert_runs(conn, str(row[0]), [run], row[1])
            await _set_intent(conn, intent_id, "created", run.run_id)
            return True

    async def recent(self, owner: str, *, limit: int, active_only: bool) -> list[JournalEntry]:
        query = (
            "SELECT run_id, processor, status, input_excerpt, idempotency_key, interaction_id, created_at, updated_at"
            " FROM runs WHERE owner = %s"
        )
        if active_only:
            query += " AND status = ANY(%s)"
        # SQLite sorts NULLs lowest and its rowid is the order of insertion (a replaced row is new).
        query += " ORDER BY created_at DESC NULLS LAST, seq DESC LIMIT %s"
        params: tuple[Any, ...] = (owner, list(ACTIVE_STATUSES), limit) if active_only else (owner, limit)
        async with self._connection() as conn:
            rows = await (await conn.execute(query, params)).fetchall()
        return [JournalEntry(*row) for row in rows]

    async def run_status(self, owner: str, run_id: str) -> str | None:
        async with self._connection() as conn:
            cursor = await conn.execute("SELECT status FROM runs WHERE owner = %s AND run_id = %s", (owner, run_id))
            row = await cursor.fetchone()
        return None if row is None else str(row[0])

    async def owns(self, owner: str, target_id: str) -> bool:
        async with self._connection() as conn:
            cursor = await conn.execute(
                "SELECT EXISTS (SELECT 1 FROM runs WHERE owner = %s AND run_id = %s)"
                " OR EXISTS (SELECT 1 FROM groups WHERE owner = %s AND group_id = %s)",
                (owner, target_id, owner, target_id),
            )
            row = await cursor.fetchone()
        return bool(row and row[0])

    # -- results and deliveries ------------------------------------------------------------------------

    async def put_result(self, owner: str, run_id: str, body: str) -> None:
        async with self._connection() as conn:
            await conn.execute(
                "INSERT INTO results (owner, run_id, body, stored_at) VALUES (%s, %s, %s, %s)"
                " ON CONFLICT (owner, run_id) DO UPDATE SET body = EXCLUDED.body, stored_at = EXCLUDED.stored_at",
                (owner, run_id, body, time.time()),
            )

    async def get_result(self, owner: str, run_id: str) -> str | None:
        async with self._connection() as conn:
            cursor = await conn.execute("SELECT body FROM results WHERE owner = %s AND run_id = %s", (owner, run_id))
            row = await cursor.fetchone()
        return None if row is None else str(row[0])

    async def first_delivery(self, delivery_id: str, now: float) -> bool:
        async with self._connection() as conn:
            cursor = await conn.execute(
                "INSERT INTO deliveries (id, received_at) VALUES (%s, %s) ON CONFLICT DO NOTHING", (delivery_id, now)
            )
            return cursor.rowcount == 1

    # -- tasks, spending and confirmations -------------------------------------------------------------

    async def create_task(self, task: TaskRecord) -> None:
        async with self._connection() as conn:
            await conn.execute(
                "INSERT INTO tasks (task_id, owner, kind, target_id, shaping, created_at)"
                " VALUES (%s, %s, %s, %s, %s, %s)",
                (task.task_id, task.owner, task.kind, task.target_id, task.shaping, task.created_at),
            )

    async def task(self, owner: str, task_id: str) -> TaskRecord | None:
        async with self._connection() as conn:
            cursor = await conn.execute(
                "SELECT task_id, owner, kind, target_id, shaping, created_at, cancelled_at FROM tasks"
                " WHERE owner = %s AND task_id = %s",
                (owner, task_id),
            )
            row = await cursor.fetchone()
        return None if row is None else TaskRecord(*row)

    async def cancel_task(self, owner: str, task_id: str, now: float) -> bool:
        async with self._connection() as conn:
            cursor = await conn.execute(
                "UPDATE tasks SET cancelled_at = COALESCE(cancelled_at, %s) WHERE owner = %s AND task_id = %s",
                (now, owner, task_id),
            )
            return cursor.rowcount > 0

    async def spent_since(self, owner: str, since: str) -> float:
        async with self._connection() as conn:
            cursor = await conn.execute(  # a group's runs are journaled with their price too: count the group once
                "SELECT (SELECT COALESCE(SUM(cost_usd), 0) FROM runs"
                " WHERE owner = %s AND group_id IS NULL AND created_at >= %s)"
                " + (SELECT COALESCE(SUM(cost_usd), 0) FROM groups WHERE owner = %s AND created_at >= %s)",
                (owner, since, owner, since),
            )
            row = await cursor.fetchone()
        return float(row[0]) if row else 0.0

    async def issue_confirmation(self, owner: str, token_hash: str, fingerprint: str, expires_at: float) -> None:
        async with self._transaction() as conn:
            await conn.execute("DELETE FROM confirmations WHERE expires_at < %s", (expires_at - 86_400.0,))
            await conn.execute(
                "INSERT INTO confirmations (token_hash, owner, fingerprint, expires_at) VALUES (%s, %s, %s, %s)",
                (token_hash, owner, fingerprint, expires_at),
            )

    async def redeem_confirmation(self, owner: str, token_hash: str, fingerprint: str, now: float) -> Redeemed:
        async with self._transaction() as conn:
            cursor = await conn.execute(  # the row lock makes concurrent redeems of one token queue
                "SELECT fingerprint, expires_at, used_at FROM confirmations WHERE token_hash = %s AND owner = %s"
                " FOR UPDATE",
                (token_hash, owner),
            )
            row = await cursor.fetchone()
            if row is None:
                return "unknown"
            outcome = redeemed(row, fingerprint, now)
            if outcome == "ok":
                await conn.execute("UPDATE confirmations SET used_at = %s WHERE token_hash = %s", (now, token_hash))
            return outcome


async def _configure(conn: Conn) -> None:
    # A lock or a query that hangs must end as an error, not hold a tool call and a connection.
    await conn.execute("SET statement_timeout = '15s'")


async def _migrate(conn: Conn) -> None:
    """Bring the schema to `SCHEMA_VERSION` and make the installation secret, once across replicas."""
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (_MIGRATION_LOCK,))
        version = 0
        exists = await (await conn.execute("SELECT to_regclass('meta') IS NOT NULL")).fetchone()
        if exists and exists[0]:
            row = await (await conn.execute("SELECT value FROM meta WHERE key = 'schema_version'")).fetchone()
            version = int(row[0]) if row else 0
        for number, script in _MIGRATIONS:
            if number > version:
                await conn.execute(script.encode())  # no parameters: several statements may run at once
        if version < SCHEMA_VERSION:
            await conn.execute(
                "INSERT INTO meta (key, value) VALUES ('schema_version', %s)"
                " ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
                (str(SCHEMA_VERSION),),
            )
        elif version > SCHEMA_VERSION:
            # A newer replica migrated first (a rolling upgrade): migrations only add, so carry on.
            logger.warning("PostgreSQL store schema is version %d; this parallel-mcp knows %d", version, SCHEMA_VERSION)
        await conn.execute(
            "INSERT INTO meta (key, value) VALUES ('secret', %s) ON CONFLICT (key) DO NOTHING", (secrets.token_hex(32),)
        )


async def _insert(
    conn: Conn, owner: str, kind: IntentKind, fingerprint: str, key: str | None, now: float, key_slot: int, fp_slot: int
) -> Claim:
    intent_id = uuid.uuid4().hex
    await conn.execute(
        "INSERT INTO intents (id, owner, kind, idempotency_key, fingerprint, state, key_slot, fp_slot,"
        " created_at, updated_at) VALUES (%s, %s, %s, %s, %s, 'sending', %s, %s, %s, %s)",
        (intent_id, owner, kind, key, fingerprint, key_slot, fp_slot, now, now),
    )
    return Claim(intent_id, "new", None, now, key)


async def _set_intent(conn: Conn, intent_id: str, state: str, target_id: str | None = None) -> None:
    await conn.execute(
        "UPDATE intents SET state = %s, target_id = COALESCE(%s, target_id), updated_at = %s WHERE id = %s",
        (state, target_id, time.time(), intent_id),
    )


async def _insert_runs(conn: Conn, owner: str, runs: list[RunRecord], key: str | None) -> None:
    # Like SQLite's INSERT OR REPLACE: every column anew, a fresh updated_at and a new place in the order.
    async with conn.cursor() as cursor:
        await cursor.executemany(
            "INSERT INTO runs (owner, run_id, processor, status, input_excerpt, idempotency_key, interaction_id,"
            " created_at, group_id, cost_usd) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
            " ON CONFLICT (owner, run_id) DO UPDATE SET processor = EXCLUDED.processor, status = EXCLUDED.status,"
            " input_excerpt = EXCLUDED.input_excerpt, idempotency_key = EXCLUDED.idempotency_key,"
            " interaction_id = EXCLUDED.interaction_id, created_at = EXCLUDED.created_at,"
            " group_id = EXCLUDED.group_id, cost_usd = EXCLUDED.cost_usd, updated_at = EXCLUDED.updated_at,"
            " seq = EXCLUDED.seq",
            [
                (owner, run.run_id, run.processor, run.status, run.input_excerpt, key, run.interaction_id,
                 run.created_at, run.group_id, run.cost_usd)
                for run in runs
            ],
        )  # fmt: skip
