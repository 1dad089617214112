"""The store's contract, run against every implementation: claims, the journal, results, deliveries.

Each test gets a fresh store from the `store` fixture (`tests/store/conftest.py`), which is
parametrized over the backends: a SQLite file, SQLite in memory, and PostgreSQL when available.
"""

from __future__ import annotations

import time
from dataclasses import replace

import anyio
import pytest

from parallel_mcp.store import (
    SENDING_STALE_SECONDS,
    Budget,
    Claim,
    GroupRecord,
    Intent,
    OverBudget,
    RunRecord,
    Store,
    TaskRecord,
)
from tests.support import until

pytestmark = pytest.mark.anyio

NOW = time.time()
"""Claims take the time as an argument, but the store stamps updates with the real clock: stay near it."""
WINDOW = 600.0


def run(run_id: str, status: str = "queued", created_at: str = "2026-11-28T10:00:00Z") -> RunRecord:
    return RunRecord(
        run_id=run_id,
        processor="lite",
        status=status,
        input_excerpt=f"question of {run_id}",
        interaction_id=f"tint_{run_id}",
        created_at=created_at,
        cost_usd=0.005,
    )


async def claim(
    store: Store,
    owner: str = "alice",
    *,
    fingerprint: str = "fp1",
    key: str | None = None,
    window: float = WINDOW,
    force_new: bool = False,
    now: float = NOW,
    kind: str = "run",
    price: float = 0.005,
    budget: Budget | None = None,
) -> Claim:
    assert kind in ("run", "group")
    intent = Intent(owner, "run" if kind == "run" else "group", fingerprint, key, force_new, price_usd=price)
    return await store.claim(intent, window=window, now=now, budget=budget)


async def test_a_first_claim_is_new_and_a_repeat_while_sending_finds_it(store: Store) -> None:
    first = await claim(store)
    again = await claim(store, now=NOW + 1)
    assert first.outcome == "new"
    assert again.outcome == "sending" and again.intent_id == first.intent_id


async def test_a_repeat_after_the_create_finds_the_run_it_made(store: Store) -> None:
    first = await claim(store)
    await store.created(first.intent_id, "alice", run("trun_1"), idempotency_key=None)
    again = await claim(store, now=NOW + 30)
    assert (again.outcome, again.target_id, again.created_at) == ("created", "trun_1", NOW)


async def test_earlier_finds_what_a_claim_would_and_claims_nothing(store: Store) -> None:
    def intent(owner: str = "alice", *, key: str | None = None, force_new: bool = False) -> Intent:
        return Intent(owner, "run", "fp1", key, force_new)

    assert await store.earlier(intent(), window=WINDOW, now=NOW) is None
    first = await claim(store)
    assert first.outcome == "new"  # looking first claimed nothing
    await store.created(first.intent_id, "alice", run("trun_1"), idempotency_key=None)
    found = await store.earlier(intent(), window=WINDOW, now=NOW + 30)
    assert found is not None and (found.outcome, found.target_id) == ("created", "trun_1")
    assert await store.earlier(intent(), window=WINDOW, now=NOW + WINDOW + 1) is None
    assert await store.earlier(intent(force_new=True), window=WINDOW, now=NOW + 30) is None
    assert await store.earlier(intent("bob"), window=WINDOW, now=NOW + 30) is None
    keyed = await claim(store, key="k1", now=NOW + 40)
    await store.created(keyed.intent_id, "alice", run("trun_2"), idempotency_key="k1")
    by_key = await store.earlier(intent(key="k1"), window=0, now=NOW + 10 * WINDOW)
    assert by_key is not None and by_key.target_id == "trun_2"


async def test_the_same_body_after_the_window_or_from_another_owner_is_a_new_intent(store: Store) -> None:
    first = await claim(store)
    await store.created(first.intent_id, "alice", run("trun_1"), idempotency_key=None)
    later = await claim(store, now=NOW + WINDOW + 1)
    other = await claim(store, "bob", now=NOW + 2)
    other_kind = await claim(store, kind="group", now=NOW + 3)
    assert later.outcome == other.outcome == other_kind.outcome == "new"


async def test_a_zero_window_never_matches_bodies(store: Store) -> None:
    first = await claim(store, window=0)
    await store.created(first.intent_id, "alice", run("trun_1"), idempotency_key=None)
    assert (await claim(store, window=0, now=NOW + 1)).outcome == "new"


async def test_force_new_starts_another_intent_for_the_same_body(store: Store) -> None:
    first = await claim(store)
    await store.created(first.intent_id, "alice", run("trun_1"), idempotency_key=None)
    forced = await claim(store, force_new=True, now=NOW + 5)
    assert forced.outcome == "new" and forced.intent_id != first.intent_id
    await store.created(forced.intent_id, "alice", run("trun_2"), idempotency_key=None)
    latest = await claim(store, now=NOW + 6)
    assert (latest.outcome, latest.target_id) == ("created", "trun_2")


async def test_an_idempotency_key_names_one_intent_whatever_the_body_and_the_time(store: Store) -> None:
    first = await claim(store, key="k1")
    await store.created(first.intent_id, "alice", run("trun_1"), idempotency_key="k1")
    again = await claim(store, key="k1", fingerprint="another body", now=NOW + 10 * WINDOW)
    forced = await claim(store, key="k1", force_new=True, now=NOW + 11 * WINDOW)
    bob = await claim(store, "bob", key="k1")
    assert (again.outcome, again.target_id, again.idempotency_key) == ("created", "trun_1", "k1")
    assert (forced.outcome, forced.target_id) == ("created", "trun_1")  # a key that made a run stays bound to it
    assert bob.outcome == "new"


async def test_an_unknown_outcome_is_reported_to_repeats_until_forced(store: Store) -> None:
    first = await claim(store, key="k1")
    await store.unknown(first.intent_id)
    again = await claim(store, key="k1", now=NOW + 1)
    same_body = await claim(store, now=NOW + 2)
    assert again.outcome == "unknown" and again.intent_id == first.intent_id
    assert same_body.outcome == "unknown"  # the same body without the key is still the same request
    forced = await claim(store, key="k1", force_new=True, now=NOW + 3)
    assert forced.outcome == "new" and forced.intent_id != first.intent_id


async def test_an_unknown_keyless_intent_blocks_the_same_body_within_the_window(store: Store) -> None:
    first = await claim(store)
    await store.unknown(first.intent_id)
    assert (await claim(store, now=NOW + 60)).outcome == "unknown"
    assert (await claim(store, force_new=True, now=NOW + 61)).outcome == "new"


async def test_an_intent_left_sending_by_a_dead_process_reads_as_unknown(store: Store) -> None:
    first = await claim(store, key="k1", now=NOW - 2 * SENDING_STALE_SECONDS)
    fresh = await store.intent(first.intent_id, now=NOW - 2 * SENDING_STALE_SECONDS + 1)
    assert fresh is not None and fresh.outcome == "sending"
    stale = await claim(store, key="k1", now=NOW)
    assert stale.outcome == "unknown" and stale.intent_id == first.intent_id
    assert (await claim(store, key="k1", force_new=True, now=NOW + 1)).outcome == "new"


async def test_a_released_intent_is_forgotten(store: Store) -> None:
    first = await claim(store, key="k1")
    await store.release(first.intent_id)
    assert await store.intent(first.intent_id, now=NOW) is None
    assert (await claim(store, key="k1", now=NOW + 1)).outcome == "new"


async def test_concurrent_identical_claims_make_one_intent(store: Store) -> None:
    claims: list[Claim] = []

    async def one() -> None:
        claims.append(await claim(store))

    async with anyio.create_task_group() as tasks:
        for _ in range(20):
            tasks.start_soon(one)
    assert sorted(c.outcome for c in claims).count("new") == 1
    assert len({c.intent_id for c in claims}) == 1


async def test_concurrent_claims_of_one_key_make_one_intent(store: Store) -> None:
    claims: list[Claim] = []

    async def one(index: int) -> None:
        claims.append(await claim(store, key="shared", fingerprint=f"body {index}"))

    async with anyio.create_task_group() as tasks:
        for index in range(20):
            tasks.start_soon(one, index)
    assert [c.outcome for c in claims].count("new") == 1


async def test_the_journal_lists_an_owners_runs_newest_first_with_their_latest_status(store: Store) -> None:
    for index, created_at in enumerate(["2026-11-28T10:00:01Z", "2026-11-28T10:00:02Z"], start=1):
        intent = await claim(store, fingerprint=f"fp{index}")
        await store.created(
            intent.intent_id, "alice", run(f"trun_{index}", created_at=created_at), idempotency_key=None
        )
    bob = await claim(store, "bob")
    await store.created(bob.intent_id, "bob", run("trun_b"), idempotency_key="kb")
    await store.update_status("alice", "trun_1", "completed")
    await store.update_status("alice", "trun_b", "failed")  # not alice's: ignored
    alice = await store.recent("alice", limit=10, active_only=False)
    assert [e.run_id for e in alice] == ["trun_2", "trun_1"]
    assert alice[1].status == "completed" and alice[1].input_excerpt == "question of trun_1"
    assert [e.run_id for e in await store.recent("alice", limit=10, active_only=True)] == ["trun_2"]
    assert [e.run_id for e in await store.recent("alice", limit=1, active_only=False)] == ["trun_2"]
    (entry,) = await store.recent("bob", limit=10, active_only=False)
    assert (entry.status, entry.idempotency_key) == ("queued", "kb")


async def test_the_journal_puts_runs_of_unknown_time_last_and_ties_in_the_order_written(store: Store) -> None:
    for index, created_at in enumerate([None, "2026-11-28T10:00:01Z", "2026-11-28T10:00:01Z"], start=1):
        intent = await claim(store, fingerprint=f"fp{index}")
        record = replace(run(f"trun_{index}"), created_at=created_at)
        await store.created(intent.intent_id, "alice", record, idempotency_key=None)
    listed = await store.recent("alice", limit=10, active_only=False)
    assert [e.run_id for e in listed] == ["trun_3", "trun_2", "trun_1"]


async def test_ownership_covers_runs_and_groups_and_never_crosses_owners(store: Store) -> None:
    intent = await claim(store)
    await store.created(intent.intent_id, "alice", run("trun_1"), idempotency_key=None)
    group_intent = await claim(store, kind="group", fingerprint="g")
    group = GroupRecord(group_id="tgrp_1", processor="lite", input_excerpt="row", num_runs=2)
    await store.group_created(group_intent.intent_id, "alice", group)
    after_group = await store.intent(group_intent.intent_id, now=NOW)
    assert after_group is not None and (after_group.outcome, after_group.target_id) == ("sending", "tgrp_1")
    rows = [run("trun_g1"), run("trun_g2")]
    await store.group_filled(group_intent.intent_id, "alice", rows)
    filled = await store.intent(group_intent.intent_id, now=NOW)
    assert filled is not None and (filled.outcome, filled.target_id) == ("created", "tgrp_1")
    for target in ("trun_1", "tgrp_1", "trun_g1"):
        assert await store.owns("alice", target)
        assert not await store.owns("bob", target)
    assert not await store.owns("alice", "trun_unknown")


async def test_results_are_kept_per_owner(store: Store) -> None:
    await store.put_result("alice", "trun_1", '{"run": 1}')
    await store.put_result("alice", "trun_1", '{"run": 1}')
    assert await store.get_result("alice", "trun_1") == '{"run": 1}'
    assert await store.get_result("bob", "trun_1") is None


async def test_a_webhook_delivery_is_first_once(store: Store) -> None:
    assert await store.first_delivery("msg_1", NOW)
    assert not await store.first_delivery("msg_1", NOW + 1)
    assert await store.first_delivery("msg_2", NOW + 2)


async def test_the_installation_secret_is_made_once_and_kept(store: Store) -> None:
    secret = await store.secret()
    assert len(secret) == 32 and await store.secret() == secret


async def test_a_published_event_reaches_every_subscriber_until_it_unsubscribes(store: Store) -> None:
    first: list[str] = []
    second: list[str] = []
    unsubscribe = store.subscribe(first.append)
    store.subscribe(second.append)
    await store.publish("run_ended trun_1")
    # PostgreSQL's NOTIFY arrives on another connection: wait for it.
    await until(lambda: len(first) == 1 and len(second) == 1, seconds=5)
    unsubscribe()
    await store.publish("run_ended trun_2")
    await until(lambda: len(second) == 2, seconds=5)
    assert first == ["run_ended trun_1"] and second == ["run_ended trun_1", "run_ended trun_2"]


async def test_a_status_from_a_webhook_updates_whoever_created_the_run_and_says_if_it_changed(store: Store) -> None:
    intent = await claim(store)
    await store.created(intent.intent_id, "alice", run("trun_1"), idempotency_key=None)
    assert await store.update_status(None, "trun_1", "completed")
    assert not await store.update_status(None, "trun_1", "completed")
    assert not await store.update_status(None, "trun_unknown", "completed")
    (entry,) = await store.recent("alice", limit=5, active_only=False)
    assert entry.status == "completed"
    assert await store.run_status("alice", "trun_1") == "completed"
    assert await store.run_status("bob", "trun_1") is None and await store.run_status("alice", "trun_2") is None


async def test_a_run_named_by_a_lost_intents_tag_is_adopted_once_for_its_owner(store: Store) -> None:
    lost = await claim(store, key="k1")
    await store.unknown(lost.intent_id)
    assert await store.adopt(lost.intent_id, run("trun_found"))
    assert not await store.adopt(lost.intent_id, run("trun_other"))
    assert not await store.adopt("no-such-intent", run("trun_x"))
    again = await claim(store, key="k1", now=NOW + 1)
    assert (again.outcome, again.target_id) == ("created", "trun_found")
    assert await store.owns("alice", "trun_found") and not await store.owns("alice", "trun_other")


def task(task_id: str, owner: str = "alice", target: str = "trun_1") -> TaskRecord:
    return TaskRecord(task_id, owner, "run", target, '{"warnings": []}', NOW)


async def test_a_task_is_readable_by_its_owner_only_and_detaches_once(store: Store) -> None:
    await store.create_task(task("task_1"))
    assert await store.task("alice", "task_1") == task("task_1")
    assert await store.task("bob", "task_1") is None and await store.task("alice", "task_2") is None
    assert not await store.cancel_task("bob", "task_1", NOW + 1)
    assert await store.cancel_task("alice", "task_1", NOW + 2)
    assert await store.cancel_task("alice", "task_1", NOW + 3)  # a repeat finds it, and keeps the first time
    kept = await store.task("alice", "task_1")
    assert kept is not None and kept.cancelled_at == NOW + 2


async def test_spending_since_a_time_is_what_the_owners_claims_reserved_less_those_released(store: Store) -> None:
    made = await claim(store)
    await store.created(made.intent_id, "alice", run("trun_1"), idempotency_key=None)
    await claim(store, fingerprint="fp-sending")  # no answer yet: it may bill
    await claim(store, fingerprint="fp-group", kind="group", price=0.01)
    await claim(store, fingerprint="fp-yesterday", now=NOW - 86_400)
    refused = await claim(store, fingerprint="fp-refused")
    await store.release(refused.intent_id)
    await claim(store, owner="bob", fingerprint="fp-bob")
    assert await store.spent_since("alice", NOW - 10) == pytest.approx(0.02)
    assert await store.spent_since("alice", NOW - 100_000) == pytest.approx(0.025)
    assert await store.spent_since("carol", NOW - 100_000) == 0


async def test_a_claim_that_would_pass_the_budget_is_refused_and_claims_nothing(store: Store) -> None:
    budget = Budget(0.01, since=NOW - 10)
    first = await claim(store, fingerprint="fp-1", budget=budget)
    await claim(store, fingerprint="fp-2", budget=budget)  # $0.010 of $0.01: at the budget, not above
    with pytest.raises(OverBudget) as refused:
        await claim(store, fingerprint="fp-3", budget=budget)
    assert refused.value.spent_usd == pytest.approx(0.01)
    assert await store.earlier(Intent("alice", "run", "fp-3"), window=WINDOW, now=NOW) is None
    again = await claim(store, fingerprint="fp-1", budget=budget, now=NOW + 1)
    assert again.intent_id == first.intent_id  # a repeat reserves nothing, so the budget never refuses it
    assert (await claim(store, owner="bob", fingerprint="fp-3", budget=budget)).outcome == "new"


async def test_claims_racing_under_a_budget_reserve_no_more_than_it(store: Store) -> None:
    budget = Budget(0.02, since=NOW - 10)
    outcomes: list[str] = []

    async def one(index: int) -> None:
        try:
            await claim(store, fingerprint=f"fp-{index}", key=f"k-{index}" if index % 2 else None, budget=budget)
            outcomes.append("new")
        except OverBudget:
            outcomes.append("refused")

    async with anyio.create_task_group() as tasks:
        for index in range(10):
            tasks.start_soon(one, index)
    assert sorted(outcomes) == ["new"] * 4 + ["refused"] * 6
    assert await store.spent_since("alice", NOW - 10) == pytest.approx(0.02)


async def test_a_confirmation_is_spent_once_on_its_own_request_before_it_expires(store: Store) -> None:
    await store.issue_confirmation("alice", "h1", "fp1", NOW + 300)
    assert await store.redeem_confirmation("bob", "h1", "fp1", NOW) == "unknown"
    assert await store.redeem_confirmation("alice", "h1", "fp2", NOW) == "other_request"
    assert await store.redeem_confirmation("alice", "h1", "fp1", NOW + 300) == "expired"
    assert await store.redeem_confirmation("alice", "nope", "fp1", NOW) == "unknown"
    assert await store.redeem_confirmation("alice", "h1", "fp1", NOW + 299) == "ok"
    assert await store.redeem_confirmation("alice", "h1", "fp1", NOW + 299) == "used"


async def test_a_restored_confirmation_is_good_again_for_its_owner_only_until_it_expires(store: Store) -> None:
    await store.issue_confirmation("alice", "h1", "fp1", NOW + 300)
    assert await store.redeem_confirmation("alice", "h1", "fp1", NOW) == "ok"
    await store.restore_confirmation("bob", "h1")
    assert await store.redeem_confirmation("alice", "h1", "fp1", NOW) == "used"
    await store.restore_confirmation("alice", "h1")
    assert await store.redeem_confirmation("alice", "h1", "fp1", NOW + 300) == "expired"
    assert await store.redeem_confirmation("alice", "h1", "fp1", NOW + 1) == "ok"


async def test_concurrent_redeems_of_one_confirmation_spend_it_once(store: Store) -> None:
    await store.issue_confirmation("alice", "h1", "fp1", NOW + 300)
    outcomes: list[str] = []

    async def redeem() -> None:
        outcomes.append(await store.redeem_confirmation("alice", "h1", "fp1", NOW))

    async with anyio.create_task_group() as tasks:
        for _ in range(5):
            tasks.start_soon(redeem)
    assert sorted(outcomes) == ["ok", "used", "used", "used", "used"]
