"""One billed create per intent: claimed in the store before it is sent, whatever the caller retries.

An intent is what the agent asked for: the same idempotency key, or without one the same body
(everything sent upstream) within the dedupe window. A cut call that is sent again, two identical
calls at once, a retry after a restart, a retry after a lost response: each finds the first
intent instead of making a second billed run. Only `force_new` starts another on purpose.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import anyio

from parallel_mcp.deadline import remaining
from parallel_mcp.errors import RepeatLapsedError, RunMayExistError, SpendRefused
from parallel_mcp.guidance import (
    budget_refusal,
    pending_create_message,
    repeat_lapsed_message,
    repeated_create_warning,
    unconfirmed_create_message,
)
from parallel_mcp.store import Budget, Claim, Intent, IntentKind, OverBudget, Store, quietly

INTENT_TAG = "pmcp_intent"
"""The metadata key (at most 16 characters) that carries a run's intent id, when webhooks can reconcile it."""
FOLLOW_POLL_SECONDS = 0.05
FOLLOW_MAX_SECONDS = 90.0
"""How long a repeat follows an identical create that another call is sending (the create's own bound)."""
R = TypeVar("R")


def fingerprint(kind: IntentKind, payload: Any) -> str:
    """A stable digest of a request body: the same JSON in any key order gives the same digest."""
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(f"{kind}\n{canonical}".encode()).hexdigest()


def day_start(now: float) -> float:
    """Midnight UTC of the day `now` falls on (epoch seconds): when a daily budget starts again."""
    day = dt.datetime.fromtimestamp(now, dt.UTC).date()
    return dt.datetime.combine(day, dt.time(), dt.UTC).timestamp()


@dataclass(frozen=True)
class Order(Generic[R]):
    """One create as the agent asked for it: the request it sends, what it bills, and what makes another
    create the same one. Worked out from the call's arguments (`run_order`, `group_order`) before anyone owns
    it; the tool's spending guards and the service then share it."""

    kind: IntentKind
    request: R
    fingerprint: str
    """A digest of everything sent upstream: a confirm token is bound to it, and a repeat is found by it."""
    processor: str
    runs: int
    price_usd: float
    summary: str
    """The input in one short line, for the user."""
    idempotency_key: str | None = None
    force_new: bool = False

    def intent(self, owner: str) -> Intent:
        """This create as `owner`'s intent, as the store claims it."""
        return Intent(
            owner,
            self.kind,
            self.fingerprint,
            self.idempotency_key,
            self.force_new,
            processor=self.processor,
            runs=self.runs,
            price_usd=self.price_usd,
        )


@dataclass(frozen=True)
class Repeat:
    """The earlier create a create repeats: what it made, and the warning that says so."""

    target_id: str
    warning: str


class Intents:
    """Claims creates in the store, within the owner's daily budget, and follows the ones another call is sending."""

    def __init__(
        self,
        store: Store,
        *,
        window: float,
        clock: Callable[[], float] = time.time,
        daily_budget_usd: float | None = None,
    ) -> None:
        self.store = store
        self.window = window
        self.clock = clock
        self.daily_budget_usd = daily_budget_usd

    def _budget(self) -> Budget | None:
        if self.daily_budget_usd is None:
            return None
        return Budget(self.daily_budget_usd, since=day_start(self.clock()))

    async def check_budget(self, intent: Intent) -> None:
        """Refuse, before anyone is asked, a create that would not fit in its owner's budget today.

        The claim checks again, atomically: this is the early answer, not the guarantee.

        Raises:
            SpendRefused: naming the setting, the price and what was spent today.
        """
        budget = self._budget()
        if budget is not None:
            spent = await self.store.spent_since(intent.owner, budget.since)
            if not budget.allows(spent, intent.price_usd):
                raise _over_budget(intent, spent, budget)

    async def claim(self, intent: Intent, *, budgeted: bool = True) -> Claim:
        """Claim `intent`: a `new` claim must be sent; any other names what an earlier request did.

        A new claim reserves the intent's price within the owner's daily budget (unless not `budgeted`: a
        create let through as a repeat, which `admit` refuses if it is new). A repeat of an intent
        that another call is sending right now waits for that call's answer (within this call's
        deadline), so concurrent identical creates end with the same run; a claim still `sending`
        after that is for the caller to report.

        Raises:
            SpendRefused: a new claim would take the owner's spending today above the budget.
        """
        budget = self._budget() if budgeted else None
        try:
            claim = await self.store.claim(intent, window=self.window, now=self.clock(), budget=budget)
        except OverBudget as over:
            assert budget is not None
            raise _over_budget(intent, over.spent_usd, budget) from None
        if claim.outcome != "sending":
            return claim
        patience = remaining()
        with anyio.move_on_after(FOLLOW_MAX_SECONDS if patience is None else min(FOLLOW_MAX_SECONDS, patience)):
            while claim.outcome == "sending":
                await anyio.sleep(FOLLOW_POLL_SECONDS)
                latest = await self.store.intent(claim.intent_id, now=self.clock())
                if latest is None:
                    # The other call's create was refused and its intent released: this one may try.
                    return await self.claim(intent, budgeted=budgeted)
                claim = latest
        return claim

    async def repeats(self, intent: Intent) -> bool:
        """True when a create of `intent` would return what an earlier identical create made: it bills nothing."""
        found = await self.store.earlier(intent, window=self.window, now=self.clock())
        return found is not None and found.outcome == "created" and found.target_id is not None

    async def admit(self, claim: Claim, kind: IntentKind, *, repeat_only: bool = False) -> Repeat | None:
        """What `claim` lets its create do: None, send it (the claim is new); or a `Repeat`, answer with what
        the earlier create made.

        Raises:
            RunMayExistError: the earlier create is still being sent, or its answer was lost; for a group,
                it names the group (runs may have been added to it).
            RepeatLapsedError: `repeat_only` (the call was let through unasked as a repeat), and the claim is
                new after all: it is released, and nothing is sent.
        """
        group_id = claim.target_id if kind == "group" else None
        if claim.outcome == "created" and claim.target_id is not None:
            return Repeat(claim.target_id, repeated_create_warning(kind, claim.target_id, self.age(claim), claim))
        if claim.outcome == "sending":
            raise RunMayExistError(pending_create_message(kind, claim), group_id=group_id)
        if claim.outcome != "new":
            raise RunMayExistError(unconfirmed_create_message(kind, self.age(claim), claim), group_id=group_id)
        if repeat_only:
            await quietly(self.store.release(claim.intent_id))
            raise RepeatLapsedError(repeat_lapsed_message(kind))
        return None

    def age(self, claim: Claim) -> float:
        """Seconds since the claimed intent was first made."""
        return max(0.0, self.clock() - claim.created_at)


def _over_budget(intent: Intent, spent: float, budget: Budget) -> SpendRefused:
    return SpendRefused(budget_refusal(intent, spent, budget.limit_usd))
