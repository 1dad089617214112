"""The shared store: one PostgreSQL database that replicas use at once (psycopg, imported on first use).

Claims mirror SQLite's, which serialises them with `BEGIN IMMEDIATE`: here a claim's transaction
first locks its key and its body (advisory locks), so claims of one intent queue across replicas
while others run in parallel; the partial unique indexes (`key_slot = 1`, `fp_slot = 1`) back that
up. The pool, the migrations, errors and events live in `postgres_connections`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Final, LiteralString

from parallel_mcp.store import (
    ACTIVE_STATUSES,
    Claim,
    GroupRecord,
    Intent,
    JournalEntry,
    Redeemed,
    RunRecord,
    StoreError,
    TaskRecord,
    claims,
    redeemed,
)
from parallel_mcp.store.postgres_connections import PostgresConnections

if TYPE_CHECKING:
    from parallel_mcp.store.postgres_connections import Conn

logger = logging.getLogger(__name__)

# Keys are locked before bodies, in one statement (its select list runs left to right).
_LOCK_ONE: Final = "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))"
_LOCK_TWO: Final = (
    "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0)), pg_advisory_xact_lock(hashtextextended(%s, 0))"
)
_NOW_TEXT: Final = "to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"


class _Statements:
    """A PostgreSQL transaction as `claims` runs it (its `?` placeholders become psycopg's `%s`)."""

    def __init__(self, conn: Conn) -> None:
        self.conn = conn

    async def one(self, sql: LiteralString, params: Sequence[Any]) -> Sequence[Any] | None:
        return await (await self.conn.execute(sql.replace("?", "%s"), params)).fetchone()

    async def run(self, sql: LiteralString, params: Sequence[Any]) -> None:
        await self.conn.execute(sql.replace("?", "%s"), params)


def _lock_name(owner: str, kind: str, what: str, value: str) -> str:
    # Unit separators keep ("ab", "c") and ("a", "bc") apart.
    return "\x1f".join(("claim", owner, kind, what, value))


class PostgresStore(PostgresConnections):
    """The store in a PostgreSQL database, shared by every replica that has its URL."""

    async def secret(self) -> bytes:
        async with self._connection() as conn:
            row = await (await conn.execute("SELECT value FROM meta WHERE key = 'secret'")).fetchone()
        if row is None:
            raise StoreError(f"the PostgreSQL store at {self.location} has no installation secret")
        return bytes.fromhex(str(row[0]))

    # -- intents ---------------------------------------------------------------------------------------

    async def claim(self, intent: Intent, *, window: float, now: float) -> Claim:
        # A keyed claim also locks its body: a keyless claim of the same body, which may match it,
        # then waits for it as it would in SQLite. Keys are always locked before bodies: no deadlock.
        locks = [_lock_name(intent.owner, intent.kind, "body", intent.fingerprint)]
        if intent.idempotency_key is not None:
            locks.insert(0, _lock_name(intent.owner, intent.kind, "key", intent.idempotency_key))
        async with self._transaction() as conn:
            await conn.execute(_LOCK_ONE if len(locks) == 1 else _LOCK_TWO, locks)
            return await claims.claim(_Statements(conn), intent, window=window, now=now)

    async def earlier(self, intent: Intent, *, window: float, now: float) -> Claim | None:
        async with self._connection() as conn:
            return await claims.earlier(_Statements(conn), intent, window=window, now=now)

    async def intent(self, intent_id: str, *, now: float) -> Claim | None:
        async with self._connection() as conn:
            return await claims.find(_Statements(conn), intent_id, now=now)

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
