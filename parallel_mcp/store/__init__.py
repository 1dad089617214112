"""Everything that must outlive a tool call: intents, the journal of runs and groups, results, deliveries.

One interface, two implementations: SQLite (the embedded default, a file or memory) and PostgreSQL
(shared by replicas). Claims are made atomically in the database, with unique constraints, so two
processes that receive the same create at once still make one run.

The life of a create:

    claim()          an intent row exists before anything is sent upstream
      -> created()   the API answered: the intent points at its run or group, which is journaled
      -> unknown()   the request may have reached the API and no answer came: a retry is refused
      -> release()   the API refused: nothing exists, the intent is forgotten

Owners are opaque ids (a keyed hash of an API key, or a signed-in user); the store never sees a key.
"""

from __future__ import annotations

import abc
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from anyio.abc import TaskGroup

from parallel_mcp.errors import ParallelMCPError

logger = logging.getLogger(__name__)

T = TypeVar("T")
IntentKind = Literal["run", "group"]
ClaimOutcome = Literal["new", "created", "sending", "unknown"]
ACTIVE_STATUSES = ("queued", "running", "cancelling")

EPSILON_USD = 1e-9
"""Prices are sums of floats: a total equal to a limit must not read as above it."""

SENDING_STALE_SECONDS = 75.0
"""An intent still `sending` after this long belongs to a process that died mid-request: treat it as unknown.
A live sender cannot take longer: every create runs under its call's deadline (a wait of at most 50 s + 5 s)."""


def run_ended(run_id: str) -> str:
    """The event that says a run ended (published once, by whoever saw it first: a call, a webhook)."""
    return f"run_ended {run_id}"


def group_ended(group_id: str) -> str:
    """The event that says every run of a group has ended."""
    return f"group_ended {group_id}"


RESYNC = "resync all"
"""Events may have been missed (a replica's listener reconnected): re-read whatever you wait on."""


@dataclass(frozen=True)
class Intent:
    """One create: its owner, its kind, and its key or body (which identify it), and what it bills."""

    owner: str
    kind: IntentKind
    fingerprint: str
    """A digest of the body sent upstream."""
    idempotency_key: str | None = None
    force_new: bool = False
    processor: str = ""
    runs: int = 1
    price_usd: float = 0.0
    """The list price of the `runs` the create starts; a claim reserves it against the owner's budget."""


@dataclass(frozen=True)
class Budget:
    """What an owner may spend in list prices since a time (the start of the day, UTC)."""

    limit_usd: float
    since: float
    """Epoch seconds."""

    def allows(self, spent_usd: float, price_usd: float) -> bool:
        """True when spending `price_usd` more after `spent_usd` stays within the limit (a cent's rounding aside)."""
        return spent_usd + price_usd <= self.limit_usd + EPSILON_USD


class OverBudget(Exception):
    """A claim refused: its price would take the owner's spending above the budget. Nothing was claimed."""

    def __init__(self, spent_usd: float) -> None:
        super().__init__(f"already spent ${spent_usd:.4g}")
        self.spent_usd = spent_usd


@dataclass(frozen=True)
class Claim:
    """What a claim found: a fresh intent to send, or an earlier one for the same key or body."""

    intent_id: str
    outcome: ClaimOutcome
    """`new`: send it. `created`: the earlier request made `target_id`. `sending`: another call is sending it
    now. `unknown`: an earlier request may have created something, and nobody knows what."""
    target_id: str | None = None
    created_at: float = 0.0
    idempotency_key: str | None = None


@dataclass(frozen=True)
class JournalEntry:
    """One run as the journal last saw it."""

    run_id: str
    processor: str
    status: str
    input_excerpt: str
    idempotency_key: str | None
    interaction_id: str | None
    created_at: str | None
    updated_at: str


@dataclass(frozen=True, kw_only=True)
class Created:
    """What the journal keeps of anything a create made: what it runs on, for what input, at what price."""

    processor: str
    input_excerpt: str
    created_at: str | None = None
    cost_usd: float = 0.0


@dataclass(frozen=True, kw_only=True)
class RunRecord(Created):
    """What the journal keeps of a run when it is created."""

    run_id: str
    status: str
    interaction_id: str | None = None
    group_id: str | None = None


@dataclass(frozen=True, kw_only=True)
class GroupRecord(Created):
    """What the journal keeps of a task group when it is created."""

    group_id: str
    num_runs: int


@dataclass(frozen=True)
class TaskRecord:
    """An MCP task (the tasks extension): a handle, owned like its run or group, on what a create started."""

    task_id: str
    owner: str
    kind: IntentKind
    target_id: str
    """The run or the group the create made."""
    shaping: str
    """JSON: what shapes the tool's result besides the run itself (warnings of the create; a group's run ids)."""
    created_at: float
    cancelled_at: float | None = None
    """When the client detached (tasks/cancel); the run itself goes on: the Task API has no cancel."""


Redeemed = Literal["ok", "unknown", "other_request", "used", "expired"]
"""What redeeming a confirm token found: spent now, or why not."""


def redeemed(kept: Sequence[Any], fingerprint: str, now: float) -> Redeemed:
    """Whether a kept token (its fingerprint, expiry and use) may be spent on the request with `fingerprint`."""
    kept_fingerprint, expires_at, used_at = kept
    if used_at is not None:
        return "used"
    if now >= float(expires_at):
        return "expired"
    return "ok" if kept_fingerprint == fingerprint else "other_request"


class StoreError(ParallelMCPError):
    """The store is unreachable or failed; the message never holds a password."""


async def quietly(write: Awaitable[T]) -> T | None:
    """A store write that must not replace what the call is about to say (the run's state, or an API error):
    its failure is logged, not raised."""
    try:
        return await write
    except StoreError as exc:
        logger.error("journal write failed: %s", exc)
        return None


class Store(abc.ABC):
    """The persistent state of the server. Every method is safe to call concurrently."""

    location: str
    """Where the state lives, for people (a file path, ":memory:", or a database URL without password)."""

    def __init__(self) -> None:
        self._listeners: list[Callable[[str], None]] = []

    async def start(self, tasks: TaskGroup) -> None:  # noqa: B027 - a hook: most stores need no background work
        """Start background work in `tasks` (PostgreSQL listens for other replicas' events); called once."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Release connections."""

    # -- events between replicas ---------------------------------------------------------------------

    async def publish(self, event: str) -> None:
        """Tell every subscriber of every process that shares this store (this one's included) about `event`.

        Events are short strings (e.g. `run_ended trun_...`); the embedded store has one process.
        """
        self._deliver(event)

    def subscribe(self, listener: Callable[[str], None]) -> Callable[[], None]:
        """Call `listener(event)` for every event published from now on; returns the unsubscribe."""
        self._listeners.append(listener)

        def unsubscribe() -> None:
            if listener in self._listeners:
                self._listeners.remove(listener)

        return unsubscribe

    def _deliver(self, event: str) -> None:
        for listener in list(self._listeners):
            try:
                listener(event)
            except Exception:  # a listener's bug must not stop the others
                logger.exception("store event listener failed on %r", event)

    @abc.abstractmethod
    async def secret(self) -> bytes:
        """A random secret of this installation (made once, shared by every replica): keys owner hashes."""

    # -- intents -------------------------------------------------------------------------------------

    @abc.abstractmethod
    async def claim(self, intent: Intent, *, window: float, now: float, budget: Budget | None = None) -> Claim:
        """Claim the right to send one create, or find the earlier intent it repeats.

        With an idempotency key, the key decides: it names one intent forever (for this owner and
        kind). Without one, an intent with the same fingerprint younger than `window` seconds is
        the same intent (`window` 0: never). `force_new` starts a new intent even so, except over
        a key that already created something. An intent `sending` for longer than
        `SENDING_STALE_SECONDS` is reported `unknown`.

        A new claim reserves the intent's price: with a `budget`, the owner's claims since
        `budget.since` (this one included) must fit in it, checked atomically with every other claim
        of the owner, so creates racing each other cannot pass it together. A repeat spends nothing.

        Raises:
            OverBudget: a new claim would not fit in `budget`; nothing was claimed.
        """

    @abc.abstractmethod
    async def earlier(self, intent: Intent, *, window: float, now: float) -> Claim | None:
        """The earlier intent a claim of `intent` would find now (see `claim`), or None; claims nothing."""

    @abc.abstractmethod
    async def intent(self, intent_id: str, *, now: float) -> Claim | None:
        """The current state of an intent (to follow one that another call is sending); None once released."""

    @abc.abstractmethod
    async def created(self, intent_id: str, owner: str, run: RunRecord, *, idempotency_key: str | None) -> None:
        """The create succeeded: journal the run and point the intent at it."""

    @abc.abstractmethod
    async def group_created(self, intent_id: str, owner: str, group: GroupRecord) -> None:
        """A group exists for this intent (its billed runs are not added yet): journal it, point the intent at it."""

    @abc.abstractmethod
    async def group_filled(self, intent_id: str, owner: str, runs: list[RunRecord]) -> None:
        """The group's runs were added: journal them and mark the intent created."""

    @abc.abstractmethod
    async def unknown(self, intent_id: str) -> None:
        """The request may have reached the API without an answer: a repeat must not send blindly."""

    @abc.abstractmethod
    async def release(self, intent_id: str) -> None:
        """The API refused the request: nothing was created, so the intent is forgotten."""

    # -- the journal ---------------------------------------------------------------------------------

    @abc.abstractmethod
    async def update_status(self, owner: str | None, run_id: str, status: str) -> bool:
        """Note a run's latest status, for this owner's run (None: whoever created it here, as a webhook
        reports it); True when the journal held another status before. Unknown runs are ignored."""

    @abc.abstractmethod
    async def adopt(self, intent_id: str, run: RunRecord) -> bool:
        """A run turned out to belong to an intent whose answer was lost (its webhook carried the intent's
        tag): journal it for the intent's owner and mark the intent created. False when there is nothing to
        adopt (no such intent, or it already has its run)."""

    @abc.abstractmethod
    async def recent(self, owner: str, *, limit: int, active_only: bool) -> list[JournalEntry]:
        """This owner's most recent runs, newest first."""

    @abc.abstractmethod
    async def run_status(self, owner: str, run_id: str) -> str | None:
        """A run's last known status (a webhook may have brought it); None when this owner has no such run here."""

    @abc.abstractmethod
    async def owns(self, owner: str, target_id: str) -> bool:
        """True when this owner created that run or group through this server."""

    # -- results and deliveries ----------------------------------------------------------------------

    @abc.abstractmethod
    async def put_result(self, owner: str, run_id: str, body: str) -> None:
        """Keep a completed run's result (JSON); results never change."""

    @abc.abstractmethod
    async def get_result(self, owner: str, run_id: str) -> str | None:
        """A kept result, if any."""

    @abc.abstractmethod
    async def first_delivery(self, delivery_id: str, now: float) -> bool:
        """Record a webhook delivery id; False when it was seen before (a replay or a retry)."""

    # -- tasks, spending and confirmations -------------------------------------------------------------

    @abc.abstractmethod
    async def create_task(self, task: TaskRecord) -> None:
        """Record a task; it is readable (by its owner only) once this returns."""

    @abc.abstractmethod
    async def task(self, owner: str, task_id: str) -> TaskRecord | None:
        """This owner's task; None for an unknown id or another owner's task."""

    @abc.abstractmethod
    async def cancel_task(self, owner: str, task_id: str, now: float) -> bool:
        """Mark this owner's task detached (the first time only); False when there is no such task."""

    @abc.abstractmethod
    async def spent_since(self, owner: str, since: float) -> float:
        """The list price of this owner's creates claimed at or after `since` (epoch seconds), less those the
        API refused (released): what they billed, or may have."""

    @abc.abstractmethod
    async def issue_confirmation(self, owner: str, token_hash: str, fingerprint: str, expires_at: float) -> None:
        """Keep a confirm token (only its hash) bound to this owner and request, until `expires_at`."""

    @abc.abstractmethod
    async def redeem_confirmation(self, owner: str, token_hash: str, fingerprint: str, now: float) -> Redeemed:
        """Spend a confirm token once, for the request it was issued for; concurrent redeems spend it once."""

    @abc.abstractmethod
    async def restore_confirmation(self, owner: str, token_hash: str) -> None:
        """Make a spent confirm token good again (until it expires): its create was refused after all."""


__all__ = [
    "ACTIVE_STATUSES",
    "EPSILON_USD",
    "RESYNC",
    "SENDING_STALE_SECONDS",
    "Budget",
    "Claim",
    "ClaimOutcome",
    "GroupRecord",
    "IntentKind",
    "JournalEntry",
    "OverBudget",
    "Redeemed",
    "RunRecord",
    "Store",
    "StoreError",
    "TaskRecord",
    "group_ended",
    "quietly",
    "redeemed",
    "run_ended",
]
