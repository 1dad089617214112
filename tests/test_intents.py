"""Intents: a stable digest of a body, and a repeat that follows the call still sending the first create."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import AsyncGenerator
from dataclasses import replace

import anyio
import pytest

from parallel_mcp.errors import RepeatLapsedError, RunMayExistError, SpendRefused
from parallel_mcp.intents import Intents, day_start, fingerprint
from parallel_mcp.store import Claim, Intent, RunRecord
from parallel_mcp.store.sqlite import MEMORY, SQLiteStore

pytestmark = [pytest.mark.anyio, pytest.mark.virtual_time]

NOW = 1_800_000_000.0


@pytest.fixture
async def store() -> AsyncGenerator[SQLiteStore]:
    journal = SQLiteStore(MEMORY)
    yield journal
    await journal.close()


def test_the_fingerprint_ignores_key_order_and_tells_kinds_and_bodies_apart() -> None:
    assert fingerprint("run", {"a": 1, "b": [1, 2]}) == fingerprint("run", {"b": [1, 2], "a": 1})
    assert fingerprint("run", {"a": 1}) != fingerprint("group", {"a": 1})
    assert fingerprint("run", {"a": 1}) != fingerprint("run", {"a": 2})


async def test_a_repeat_waits_for_the_call_sending_the_first_create_and_gets_its_run(store: SQLiteStore) -> None:
    intents = Intents(store, window=600)
    intent = Intent("alice", "run", fingerprint("run", {"q": 1}))
    first = await intents.claim(intent)
    assert first.outcome == "new"

    async def answer_later() -> None:
        await anyio.lowlevel.checkpoint()
        await store.created(
            first.intent_id,
            "alice",
            RunRecord(run_id="trun_1", processor="lite", status="queued", input_excerpt="q"),
            idempotency_key=None,
        )

    repeat: Claim | None = None
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(answer_later)
            repeat = await intents.claim(intent)
    assert repeat is not None and (repeat.outcome, repeat.target_id) == ("created", "trun_1")


async def test_a_repeat_of_a_refused_create_may_try_again(store: SQLiteStore) -> None:
    intents = Intents(store, window=600)
    intent = Intent("alice", "run", fingerprint("run", {"q": 1}))
    first = await intents.claim(intent)

    async def refuse_later() -> None:
        await anyio.lowlevel.checkpoint()
        await store.release(first.intent_id)

    repeat: Claim | None = None
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(refuse_later)
            repeat = await intents.claim(intent)
    assert repeat is not None and repeat.outcome == "new" and repeat.intent_id != first.intent_id


def test_a_budget_day_starts_at_midnight_utc() -> None:
    midnight = dt.datetime(2026, 12, 1, tzinfo=dt.UTC).timestamp()
    assert day_start(midnight) == midnight
    assert day_start(midnight + 86_399.5) == midnight
    assert day_start(midnight - 0.5) == midnight - 86_400


async def test_the_daily_budget_refuses_by_name_until_the_next_utc_day(store: SQLiteStore) -> None:
    now = [dt.datetime(2026, 12, 1, 23, 59, 58, tzinfo=dt.UTC).timestamp()]
    intents = Intents(store, window=600, clock=lambda: now[0], daily_budget_usd=0.03)
    first = Intent("alice", "run", "first", processor="core", price_usd=0.025)
    assert (await intents.claim(first)).outcome == "new"
    second = replace(first, fingerprint="second")
    await intents.check_budget(Intent("alice", "run", "cheap", price_usd=0.005))  # $0.030 of $0.03 fits
    for refusal in (intents.check_budget, intents.claim):
        with pytest.raises(SpendRefused, match=r"daily_budget_usd.* core run for \$0\.025.*\$0\.025 was already"):
            await refusal(second)
    now[0] += 3
    assert (await intents.claim(second)).outcome == "new"


async def test_a_claim_says_whether_to_send_or_to_answer_with_what_an_earlier_create_made(store: SQLiteStore) -> None:
    intents = Intents(store, window=600, clock=lambda: NOW + 30)
    new = Claim("i1", "new", None, NOW, None)
    assert await intents.admit(new, "run") is None
    repeat = await intents.admit(Claim("i2", "created", "trun_1", NOW, "k"), "run")
    assert repeat is not None and repeat.target_id == "trun_1" and "trun_1" in repeat.warning
    with pytest.raises(RunMayExistError) as sending:
        await intents.admit(Claim("i3", "sending", "tgrp_1", NOW, None), "group")
    assert sending.value.group_id == "tgrp_1"
    with pytest.raises(RunMayExistError) as lost:
        await intents.admit(Claim("i4", "unknown", None, NOW, None), "run")
    assert lost.value.group_id is None


async def test_a_create_let_through_as_a_repeat_that_turns_out_new_is_released_and_sends_nothing(
    store: SQLiteStore,
) -> None:
    intents = Intents(store, window=600)
    intent = Intent("alice", "run", fingerprint("run", {"q": 1}))
    claim = await intents.claim(intent)
    with pytest.raises(RepeatLapsedError):
        await intents.admit(claim, "run", repeat_only=True)
    assert await store.intent(claim.intent_id, now=time.time()) is None
    assert (await intents.claim(intent)).outcome == "new"
