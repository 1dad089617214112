"""Intents: a stable digest of a body, and a repeat that follows the call still sending the first create."""

from __future__ import annotations

import anyio
import pytest

from parallel_mcp.intents import Intents, fingerprint
from parallel_mcp.store import Claim, Intent, RunRecord
from parallel_mcp.store.sqlite import MEMORY, SQLiteStore

pytestmark = pytest.mark.anyio


def test_the_fingerprint_ignores_key_order_and_tells_kinds_and_bodies_apart() -> None:
    assert fingerprint("run", {"a": 1, "b": [1, 2]}) == fingerprint("run", {"b": [1, 2], "a": 1})
    assert fingerprint("run", {"a": 1}) != fingerprint("group", {"a": 1})
    assert fingerprint("run", {"a": 1}) != fingerprint("run", {"a": 2})


async def test_a_repeat_waits_for_the_call_sending_the_first_create_and_gets_its_run() -> None:
    store = SQLiteStore(MEMORY)
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
    await store.close()


async def test_a_repeat_of_a_refused_create_may_try_again() -> None:
    store = SQLiteStore(MEMORY)
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
    await store.close()
