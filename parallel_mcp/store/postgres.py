"""The shared store: one PostgreSQL database that replicas use at once (psycopg, imported on first use).

Claims mirror SQLite's, which serialises them with `BEGIN IMMEDIATE`: here a claim's transaction
first locks its key and its body (advisory locks), so claims of one intent queue across replicas
while others run in parallel; the partial unique indexes (`key_slot = 1`, `fp_slot = 1`) back that
up. The pool, the migrations, errors and events live in `postgres_connections`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncGenerator, Sequence
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, Final, LiteralString

from parallel_mcp.store import (
    Budget,
    Claim,
    GroupRecord,
    Intent,
    RunRecord,
    claims,
)
from parallel_mcp.store.postgres_connections import PostgresConnections
from parallel_mcp.store.shared import SET_INTENT, SharedStore, Statements

if TYPE_CHECKING:
    from parallel_mcp.store.postgres_connections import Conn

logger = logging.getLogger(__name__)

# The locks of a claim are taken in one statement, whose select list runs left to right.
_LOCK: Final = "pg_advisory_xact_lock(hashtextextended(%s, 0))"
_LOCKS: Final[tuple[LiteralString, ...]] = (
    "SELECT 1",
    f"SELECT {_LOCK}",
    f"SELECT {_LOCK}, {_LOCK}",
    f"SELECT {_LOCK}, {_LOCK}, {_LOCK}",
)
"""`_LOCKS[n]` takes n advisory locks, in the order given, until the transaction ends."""
_NOW_TEXT: Final = "to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"


class _Statements:
    """PostgreSQL statements as the shared code runs them (its `?` placeholders become psycopg's `%s`)."""

    row_lock: LiteralString = " FOR UPDATE"
    insertion_order: LiteralString = "seq"  # a sequence, renewed when _insert_runs replaces a row
    nulls_last: LiteralString = " NULLS LAST"  # NULLs sort highest here

    def __init__(self, conn: Conn) -> None:
        self.conn = conn

    async def one(self, sql: LiteralString, params: Sequence[Any] = ()) -> Sequence[Any] | None:
        return await (await self.conn.execute(sql.replace("?", "%s"), params)).fetchone()

    async def all(self, sql: LiteralString, params: Sequence[Any] = ()) -> list[Sequence[Any]]:
        return list(await (await self.conn.execute(sql.replace("?", "%s"), params)).fetchall())

    async def run(self, sql: LiteralString, params: Sequence[Any] = ()) -> int:
        return (await self.conn.execute(sql.replace("?", "%s"), params)).rowcount


def _lock_name(owner: str, kind: str, what: str, value: str) -> str:
    # Unit separators keep ("ab", "c") and ("a", "bc") apart.
    return "\x1f".join(("claim", owner, kind, what, value))


class PostgresStore(PostgresConnections, SharedStore):
    """The store in a PostgreSQL database, shared by every replica that has its URL."""

    @asynccontextmanager
    async def _autocommit(self) -> AsyncGenerator[Statements]:
        async with self._connection() as conn:
            yield _Statements(conn)

    @asynccontextmanager
    async def _atomic(self) -> AsyncGenerator[Statements]:
        async with self._transaction() as conn:
            yield _Statements(conn)

    # -- intents ---------------------------------------------------------------------------------------

    async def claim(self, intent: Intent, *, window: float, now: float, budget: Budget | None = None) -> Claim:
        # A keyed claim also locks its body: a keyless claim of the same body, which may match it,
        # then waits for it as it would in SQLite. Under a budget, every claim of the owner queues on
        # one lock first, so racing creates see each other's reservations. Locks are always taken in
        # that order (budget, key, body): no deadlock.
        locks = [_lock_name(intent.owner, intent.kind, "body", intent.fingerprint)]
        if intent.idempotency_key is not None:
            locks.insert(0, _lock_name(intent.owner, intent.kind, "key", intent.idempotency_key))
        if budget is not None:
            locks.insert(0, _lock_name(intent.owner, "", "budget", ""))
        async with self._transaction() as conn:
            await conn.execute(_LOCKS[len(locks)], locks)
            return await claims.claim(_Statements(conn), intent, window=window, now=now, budget=budget)

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

    # -- the journal -----------------------------------------------------------------------------------

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

    # -- results and deliveries ------------------------------------------------------------------------


async def _set_intent(conn: Conn, intent_id: str, state: str, target_id: str | None = None) -> None:
    await _Statements(conn).run(SET_INTENT, (state, target_id, time.time(), intent_id))


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
