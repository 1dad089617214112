"""What both stores do the same way, written once.

Each store opens `Statements` on its own connection: `_autocommit` runs statements one at a time, each
committed as it runs; `_atomic` runs them in one transaction. The operations here send their SQL
through them in SQLite's `?` style, which the PostgreSQL seam rewrites. What differs by dialect
(upserts, advisory locks, ordering, the journal's inserts) stays in each store.
"""

from __future__ import annotations

import abc
import datetime as dt
import time
from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any, Final, LiteralString, Protocol

from parallel_mcp.store import (
    ACTIVE_STATUSES,
    Claim,
    Intent,
    JournalEntry,
    Redeemed,
    Store,
    StoreError,
    TaskRecord,
    claims,
    redeemed,
)

SET_INTENT: Final = "UPDATE intents SET state = ?, target_id = COALESCE(?, target_id), updated_at = ? WHERE id = ?"
_TASK_COLUMNS: Final = "task_id, owner, kind, target_id, shaping, created_at"


class Statements(Protocol):
    """One store's connection or transaction, as the shared code runs statements on it."""

    row_lock: LiteralString
    """What a SELECT appends to lock the rows it reads until the transaction ends ("" where the whole
    transaction is exclusive, as SQLite's `BEGIN IMMEDIATE`)."""
    insertion_order: LiteralString
    """A column of `runs` that grows as rows are written, a replaced row taking a new value."""
    nulls_last: LiteralString
    """What a descending ORDER BY term needs to put NULLs last ("" where they already go last)."""

    async def one(self, sql: LiteralString, params: Sequence[Any] = ()) -> Sequence[Any] | None:
        """The first row of a query, or None."""
        ...

    async def all(self, sql: LiteralString, params: Sequence[Any] = ()) -> list[Sequence[Any]]:
        """Every row of a query."""
        ...

    async def run(self, sql: LiteralString, params: Sequence[Any] = ()) -> int:
        """Run a statement; how many rows it changed."""
        ...


def utc_now_text() -> str:
    """Now as the journal writes times: UTC, to the millisecond (`2026-11-30T22:45:01.123Z`)."""
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class SharedStore(Store):
    """The operations whose SQL both dialects share, over the store's own `Statements`."""

    @abc.abstractmethod
    def _autocommit(self) -> AbstractAsyncContextManager[Statements]:
        """Statements that each commit as they run."""

    @abc.abstractmethod
    def _atomic(self) -> AbstractAsyncContextManager[Statements]:
        """Statements in one transaction, committed at the end of the block."""

    async def secret(self) -> bytes:
        async with self._autocommit() as db:
            row = await db.one("SELECT value FROM meta WHERE key = 'secret'")
        if row is None:
            raise StoreError(f"the store at {self.location} has no installation secret")
        return bytes.fromhex(str(row[0]))

    async def intent(self, intent_id: str, *, now: float) -> Claim | None:
        async with self._autocommit() as db:
            return await claims.find(db, intent_id, now=now)

    async def earlier(self, intent: Intent, *, window: float, now: float) -> Claim | None:
        async with self._autocommit() as db:
            return await claims.earlier(db, intent, window=window, now=now)

    async def unknown(self, intent_id: str) -> None:
        async with self._autocommit() as db:
            await db.run(SET_INTENT, ("unknown", None, time.time(), intent_id))

    async def release(self, intent_id: str) -> None:
        async with self._autocommit() as db:
            await db.run("DELETE FROM intents WHERE id = ?", (intent_id,))

    async def update_status(self, owner: str | None, run_id: str, status: str) -> bool:
        async with self._autocommit() as db:
            changed = await db.run(
                "UPDATE runs SET status = ?, updated_at = ?"
                " WHERE (owner = ? OR CAST(? AS TEXT) IS NULL) AND run_id = ? AND status != ?",
                (status, utc_now_text(), owner, owner, run_id, status),
            )
        return changed > 0

    async def recent(self, owner: str, *, limit: int, active_only: bool) -> list[JournalEntry]:
        query = (
            "SELECT run_id, processor, status, input_excerpt, idempotency_key, interaction_id, created_at, updated_at"
            " FROM runs WHERE owner = ?"
        )
        params: list[Any] = [owner]
        if active_only:
            query += f" AND status IN ({', '.join('?' for _ in ACTIVE_STATUSES)})"
            params += ACTIVE_STATUSES
        async with self._autocommit() as db:
            # Newest first, runs of no known time last, runs of one instant in the order they were written.
            query += f" ORDER BY created_at DESC{db.nulls_last}, {db.insertion_order} DESC LIMIT ?"
            rows = await db.all(query, [*params, limit])
        return [JournalEntry(*row) for row in rows]

    async def run_status(self, owner: str, run_id: str) -> str | None:
        async with self._autocommit() as db:
            row = await db.one("SELECT status FROM runs WHERE owner = ? AND run_id = ?", (owner, run_id))
        return None if row is None else str(row[0])

    async def owns(self, owner: str, target_id: str) -> bool:
        async with self._autocommit() as db:
            row = await db.one(
                "SELECT EXISTS (SELECT 1 FROM runs WHERE owner = ? AND run_id = ?)"
                " OR EXISTS (SELECT 1 FROM groups WHERE owner = ? AND group_id = ?)",
                (owner, target_id, owner, target_id),
            )
        return bool(row and row[0])

    async def put_result(self, owner: str, run_id: str, body: str) -> None:
        async with self._autocommit() as db:
            await db.run(
                "INSERT INTO results (owner, run_id, body, stored_at) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (owner, run_id) DO UPDATE SET body = excluded.body, stored_at = excluded.stored_at",
                (owner, run_id, body, time.time()),
            )

    async def first_delivery(self, delivery_id: str, now: float) -> bool:
        async with self._autocommit() as db:
            added = await db.run(
                "INSERT INTO deliveries (id, received_at) VALUES (?, ?) ON CONFLICT DO NOTHING", (delivery_id, now)
            )
        return added == 1

    async def get_result(self, owner: str, run_id: str) -> str | None:
        async with self._autocommit() as db:
            row = await db.one("SELECT body FROM results WHERE owner = ? AND run_id = ?", (owner, run_id))
        return None if row is None else str(row[0])

    async def create_task(self, task: TaskRecord) -> None:
        async with self._autocommit() as db:
            await db.run(
                f"INSERT INTO tasks ({_TASK_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)",
                (task.task_id, task.owner, task.kind, task.target_id, task.shaping, task.created_at),
            )

    async def task(self, owner: str, task_id: str) -> TaskRecord | None:
        async with self._autocommit() as db:
            row = await db.one(
                f"SELECT {_TASK_COLUMNS}, cancelled_at FROM tasks WHERE owner = ? AND task_id = ?", (owner, task_id)
            )
        return None if row is None else TaskRecord(*row)

    async def cancel_task(self, owner: str, task_id: str, now: float) -> bool:
        async with self._autocommit() as db:
            changed = await db.run(
                "UPDATE tasks SET cancelled_at = COALESCE(cancelled_at, ?) WHERE owner = ? AND task_id = ?",
                (now, owner, task_id),
            )
        return changed > 0

    async def spent_since(self, owner: str, since: float) -> float:
        async with self._autocommit() as db:
            row = await db.one(claims.SPENT, (owner, since))
        return float(row[0]) if row else 0.0

    async def issue_confirmation(self, owner: str, token_hash: str, fingerprint: str, expires_at: float) -> None:
        async with self._atomic() as db:
            # Long-expired tokens are of no use to anyone, even to explain a refusal.
            await db.run("DELETE FROM confirmations WHERE expires_at < ?", (expires_at - 86_400.0,))
            await db.run(
                "INSERT INTO confirmations (token_hash, owner, fingerprint, expires_at) VALUES (?, ?, ?, ?)",
                (token_hash, owner, fingerprint, expires_at),
            )

    async def redeem_confirmation(self, owner: str, token_hash: str, fingerprint: str, now: float) -> Redeemed:
        async with self._atomic() as db:
            # Concurrent redeems of one token queue on the row (or on SQLite's exclusive transaction).
            row = await db.one(
                "SELECT fingerprint, expires_at, used_at FROM confirmations WHERE token_hash = ? AND owner = ?"
                + db.row_lock,
                (token_hash, owner),
            )
            if row is None:
                return "unknown"
            outcome = redeemed(row, fingerprint, now)
            if outcome == "ok":
                await db.run("UPDATE confirmations SET used_at = ? WHERE token_hash = ?", (now, token_hash))
            return outcome

    async def restore_confirmation(self, owner: str, token_hash: str) -> None:
        async with self._autocommit() as db:
            await db.run(
                "UPDATE confirmations SET used_at = NULL WHERE token_hash = ? AND owner = ?", (token_hash, owner)
            )
