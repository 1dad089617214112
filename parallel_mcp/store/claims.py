"""How a claim decides, written once for both stores.

Each store runs these statements in its own transaction (and PostgreSQL under its advisory locks)
through `Statements`; the SQL is in SQLite's `?` style, which the PostgreSQL seam rewrites.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Final

from parallel_mcp.store import SENDING_STALE_SECONDS, Budget, Claim, ClaimOutcome, Intent, OverBudget

if TYPE_CHECKING:
    from parallel_mcp.store.shared import Statements

_COLUMNS: Final = "id, state, target_id, created_at, updated_at, idempotency_key"
_BY_ID: Final = f"SELECT {_COLUMNS} FROM intents WHERE id = ?"
_BY_KEY: Final = f"SELECT {_COLUMNS} FROM intents WHERE owner = ? AND kind = ? AND idempotency_key = ? AND key_slot = 1"
_BY_BODY: Final = (
    f"SELECT {_COLUMNS} FROM intents WHERE owner = ? AND kind = ? AND fingerprint = ?"
    " AND created_at >= ? AND (key_slot = 1 OR fp_slot = 1) ORDER BY created_at DESC LIMIT 1"
)
_RELEASE_KEY: Final = (
    "UPDATE intents SET key_slot = 0 WHERE owner = ? AND kind = ? AND idempotency_key = ? AND key_slot = 1"
)
# A body past the window (or passed over by force_new) no longer stands for its intent.
_RELEASE_BODY: Final = (
    "UPDATE intents SET fp_slot = 0 WHERE owner = ? AND kind = ? AND fingerprint = ? AND fp_slot = 1"
    " AND (created_at < ? OR ?)"
)
_INSERT: Final = (
    "INSERT INTO intents (id, owner, kind, idempotency_key, fingerprint, state, key_slot, fp_slot,"
    " created_at, updated_at, cost_usd) VALUES (?, ?, ?, ?, ?, 'sending', ?, ?, ?, ?, ?)"
)
SPENT: Final = "SELECT COALESCE(SUM(cost_usd), 0) FROM intents WHERE owner = ? AND created_at >= ?"
"""What an owner's claims since a time reserved: a released claim (the API refused it) is gone."""


def _claim_from(row: Sequence[Any] | None, now: float) -> Claim | None:
    if row is None:
        return None
    intent_id, state, target_id, created_at, updated_at, key = row
    outcome: ClaimOutcome = state
    if state == "sending" and now - float(updated_at) > SENDING_STALE_SECONDS:
        outcome = "unknown"
    return Claim(intent_id, outcome, target_id, float(created_at), key)


async def find(db: Statements, intent_id: str, *, now: float) -> Claim | None:
    """An intent as it stands now."""
    return _claim_from(await db.one(_BY_ID, (intent_id,)), now)


async def earlier(db: Statements, intent: Intent, *, window: float, now: float) -> Claim | None:
    """See `Store.earlier`: what `claim` would find, without claiming or releasing anything."""
    who = (intent.owner, intent.kind)
    if intent.idempotency_key is not None:
        found = _claim_from(await db.one(_BY_KEY, (*who, intent.idempotency_key)), now)
        return None if found is None or (found.outcome == "unknown" and intent.force_new) else found
    if window > 0 and not intent.force_new:
        return _claim_from(await db.one(_BY_BODY, (*who, intent.fingerprint, now - window)), now)
    return None


async def claim(db: Statements, intent: Intent, *, window: float, now: float, budget: Budget | None) -> Claim:
    """See `Store.claim`; the caller holds whatever serializes this owner's claims when `budget` is given."""
    found = await earlier(db, intent, window=window, now=now)
    if found is not None:
        return found
    if budget is not None:
        row = await db.one(SPENT, (intent.owner, budget.since))
        spent = float(row[0]) if row else 0.0
        if not budget.allows(spent, intent.price_usd):
            raise OverBudget(spent)
    who = (intent.owner, intent.kind)
    if intent.idempotency_key is not None:
        # A key whose outcome is unknown, passed over by force_new, names the new intent from now on.
        await db.run(_RELEASE_KEY, (*who, intent.idempotency_key))
        return await _insert(db, intent, now, key_slot=1, fp_slot=0)
    await db.run(_RELEASE_BODY, (*who, intent.fingerprint, now - window, intent.force_new))
    return await _insert(db, intent, now, key_slot=0, fp_slot=int(window > 0))


async def _insert(db: Statements, intent: Intent, now: float, *, key_slot: int, fp_slot: int) -> Claim:
    intent_id = uuid.uuid4().hex
    key = intent.idempotency_key
    values = (
        intent_id,
        intent.owner,
        intent.kind,
        key,
        intent.fingerprint,
        key_slot,
        fp_slot,
        now,
        now,
        intent.price_usd,
    )
    await db.run(_INSERT, values)
    return Claim(intent_id, "new", None, now, key)
