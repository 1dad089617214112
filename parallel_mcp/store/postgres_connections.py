"""The PostgreSQL store's connections: a pool opened (and the schema migrated) on first use, errors
that never show the password, and the listener that carries events between replicas.

Events travel as `NOTIFY parallel_mcp_events` (payload: the event). The listener that `start` runs
delivers them, this replica's own included, and reconnects with backoff after an outage; what was
sent meanwhile is lost, so after a reconnect it delivers `RESYNC_EVENT`: re-read what you wait on.
Failures raise `StoreError` naming the database without its password, within about `timeout`
seconds when it is unreachable; the store recovers by itself once the database is back.
"""

from __future__ import annotations

import logging
import math
import re
import secrets
from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import anyio
from anyio.abc import TaskGroup, TaskStatus

from parallel_mcp.store import (
    RESYNC,
    Store,
    StoreError,
)
from parallel_mcp.store.postgres_schema import MIGRATIONS, SCHEMA_VERSION

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

_MIGRATION_LOCK = "parallel_mcp schema"
PROBE_INTERVAL_SECONDS = 5.0
"""How often a busy pool's timeout may open a connection of its own to learn the cause."""


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


def _lost(exc: Exception) -> bool:
    """True when the database is out of reach, not when a statement failed (a timeout, a deadlock)."""
    import psycopg

    state = getattr(exc, "sqlstate", None)
    if not isinstance(exc, psycopg.OperationalError):
        return False
    # No SQLSTATE: libpq's own errors (refused, closed, broken) and the pool's timeout; class 08 and
    # 57P01-03: the server closed the connection or is starting or stopping.
    return state is None or state.startswith(("08", "57P0"))


class PostgresConnections(Store):
    """The pool, the migrations and the event listener beneath `PostgresStore` (its queries)."""

    def __init__(self, url: str, *, timeout: float = 3.0, max_size: int = 20) -> None:
        """`timeout`: how long a call waits for a connection before it fails with `StoreError`."""
        super().__init__()
        self._url = url
        self._password = urlsplit(url).password if "://" in url else None
        self.location = redact(url)
        self._timeout = timeout
        self._max_size = max_size
        self._probing = False
        self._probed_at = -math.inf
        self._probe_verdict: StoreError | None = None
        self._pool: Pool | None = None
        self._migrated = False
        self._opening: tuple[anyio.Event, list[StoreError]] | None = None
        self._listening = False
        self._listener: anyio.CancelScope | None = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.location!r})"

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
            # The pool's timeout says nothing of the cause: ask the database directly, but once at a time and
            # at most every few seconds: under load every waiting call times out together, and a probe each
            # would exhaust the database's connections.
            now = anyio.current_time()
            if self._probing or now - self._probed_at < PROBE_INTERVAL_SECONDS:
                return self._probe_verdict or StoreError(
                    f"the PostgreSQL store at {self.location} had no free connection within {self._timeout:g} s"
                )
            self._probing, self._probed_at = True, now
            try:
                probe = await psycopg.AsyncConnection.connect(self._url, connect_timeout=2)
            except psycopg.Error as refused:
                reason = self._reason(refused)
            else:
                await probe.close()
                self._probe_verdict = StoreError(
                    f"the PostgreSQL store at {self.location} had no free connection within {self._timeout:g} s"
                    " (the database answers; the pool is busy or reconnecting)"
                )
                return self._probe_verdict
            finally:
                self._probing = False
        self._probe_verdict = StoreError(f"the PostgreSQL store at {self.location} is unreachable: {reason}")
        return self._probe_verdict

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
        for number, script in MIGRATIONS:
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
