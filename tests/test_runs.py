"""Runs: one billed run per intent whatever the caller retries, the journal, kept results and the view.

Black-box through MCP (an in-memory client, an emulator over loopback) for what an agent sees, and
the run service on its own for what it keeps.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import anyio
import pytest
from mcp import Client
from pydantic import SecretStr

from parallel_mcp.config import Settings
from parallel_mcp.emulator.config import EmulatorConfig
from parallel_mcp.emulator.faults import Fault
from parallel_mcp.errors import RepeatLapsedError
from parallel_mcp.intents import Intents
from parallel_mcp.models import TaskRunInput
from parallel_mcp.processors import ProcessorTable
from parallel_mcp.runs import (
    Caller,
    PageRequest,
    RunService,
    owner_of,
    run_fingerprint,
    run_order,
    tag_intent,
)
from parallel_mcp.server import create_server
from parallel_mcp.store.sqlite import MEMORY, SQLiteStore
from parallel_mcp.waiter import Waiter
from tests.support import emulator_client, mcp_session, structured, text_of

pytestmark = [pytest.mark.anyio, pytest.mark.virtual_time]

RUNS = "/v1/tasks/runs"


# ----- one billed run per intent ----------------------------------------------------------------------


async def test_a_retried_create_with_the_same_idempotency_key_bills_one_run() -> None:
    arguments = {"input": "q", "idempotency_key": "req-42", "wait_seconds": 5}
    async with mcp_session(EmulatorConfig(instant=True)) as session:
        with anyio.fail_after(20):
            first = structured(await session.call("create_task_run", arguments))
            again = await session.call("create_task_run", {**arguments, "input": "reworded"})
            other = structured(await session.call("create_task_run", {**arguments, "idempotency_key": "req-43"}))
        assert session.emulator.state.run_count == 2
    assert structured(again)["run_id"] == first["run_id"] and "nothing new was billed" in text_of(again)
    assert other["run_id"] != first["run_id"]


async def test_the_same_request_again_returns_the_first_run_and_says_how_to_force_a_new_one() -> None:
    arguments = {"input": "Who founded Acme?", "processor": "lite", "wait_seconds": 5}
    async with mcp_session(EmulatorConfig(instant=True)) as session:
        with anyio.fail_after(20):
            first = structured(await session.call("create_task_run", arguments))
            again = await session.call("create_task_run", arguments)
            forced = structured(await session.call("create_task_run", {**arguments, "force_new": True}))
            different = structured(await session.call("create_task_run", {**arguments, "input": "Who runs Acme?"}))
        assert session.emulator.state.run_count == 3
    assert structured(again)["run_id"] == first["run_id"]
    notes = [w for w in structured(again)["warnings"] if "nothing new was billed" in w]
    assert len(notes) == 1 and "force_new=true" in notes[0]
    assert len({first["run_id"], forced["run_id"], different["run_id"]}) == 3


async def test_a_zero_dedupe_window_lets_the_same_request_bill_again() -> None:
    arguments = {"input": "q", "wait_seconds": 0}
    async with mcp_session(EmulatorConfig(frozen=True), dedupe_window_seconds=0) as session:
        first = structured(await session.call("create_task_run", arguments))
        second = structured(await session.call("create_task_run", arguments))
        assert session.emulator.state.run_count == 2
    assert first["run_id"] != second["run_id"]


@pytest.mark.parametrize("key", [None, "same"])
async def test_concurrent_identical_creates_start_one_run(key: str | None) -> None:
    arguments: dict[str, object] = {"input": "q", "wait_seconds": 0}
    if key is not None:
        arguments["idempotency_key"] = key
    async with mcp_session(EmulatorConfig(frozen=True)) as session:
        ids: list[str] = []

        async def create() -> None:
            ids.append(structured(await session.call("create_task_run", arguments))["run_id"])

        with anyio.fail_after(20):
            async with anyio.create_task_group() as group:
                for _ in range(8):
                    group.start_soon(create)
        assert session.emulator.state.run_count == 1
    assert len(set(ids)) == 1 and len(ids) == 8


async def test_a_call_cut_by_the_client_then_sent_again_bills_one_run() -> None:
    # OpenAI Agents cuts every call at 5 s by default, and the model sends the same create again.
    arguments = {"input": "q", "processor": "pro", "wait_seconds": 45}
    async with mcp_session(EmulatorConfig(frozen=True)) as session:
        with anyio.move_on_after(0.5):
            await session.call("create_task_run", arguments)
        with anyio.fail_after(5):  # far less than its wait: a repeat answers at once, with the run's id
            retried = await session.call("create_task_run", arguments)
        assert session.emulator.state.run_count == 1
    (run_id,) = session.emulator.state.runs
    assert structured(retried)["run_id"] == run_id and "nothing new was billed" in text_of(retried)


async def test_a_lost_create_response_is_never_sent_again_blindly_until_forced() -> None:
    # A proxy lets POST /v1/tasks/runs through and drops the 202: the run exists, the answer never comes.
    lost = Fault(kind="drop_response", method="POST", path=RUNS, times=1)
    arguments = {"input": "q", "idempotency_key": "k", "wait_seconds": 0}
    async with mcp_session(EmulatorConfig(frozen=True, faults=[lost])) as session:
        with anyio.fail_after(20):
            first = await session.call("create_task_run", arguments)
            again = await session.call("create_task_run", arguments)
            without_key = await session.call("create_task_run", {"input": "q", "wait_seconds": 0})
            assert session.emulator.state.run_count == 1
            forced = await session.call("create_task_run", {**arguments, "force_new": True})
        assert session.emulator.state.run_count == 2
    assert first.is_error and "may" in text_of(first) and "force_new=true" in text_of(first)
    for repeat in (again, without_key):
        assert (
            repeat.is_error and "cannot be confirmed" in text_of(repeat) and "nothing new was sent" in text_of(repeat)
        )
    assert not forced.is_error


async def test_an_identical_create_after_a_restart_returns_the_run_from_the_journal(tmp_path: Path) -> None:
    settings = Settings(journal=str(tmp_path / "journal.sqlite3"), api_key=SecretStr("k-restart"))
    arguments = {"input": "q", "wait_seconds": 0}
    async with emulator_client(EmulatorConfig(frozen=True)) as (emulator, client):
        with anyio.fail_after(20):
            async with Client(create_server(settings, client=client)) as first_life:
                created = structured(await first_life.call_tool("create_task_run", arguments))
            async with Client(create_server(settings, client=client)) as second_life:
                again = structured(await second_life.call_tool("create_task_run", arguments))
        assert emulator.state.run_count == 1
    assert again["run_id"] == created["run_id"]


async def test_a_run_created_when_the_journal_fails_still_answers_with_its_id(tmp_path: Path) -> None:
    journal = tmp_path / "journal.sqlite3"
    settings = Settings(journal=str(journal), api_key=SecretStr("k-broken"))
    async with emulator_client(EmulatorConfig(frozen=True)) as (emulator, client):
        async with Client(create_server(settings, client=client)) as mcp:
            await mcp.call_tool("list_task_runs", {})  # the journal exists now
            with sqlite3.connect(journal) as db:
                db.execute("DROP TABLE runs")  # a real database failure, between the claim and the record
            result = await mcp.call_tool("create_task_run", {"input": "q", "wait_seconds": 0})
        (run_id,) = emulator.state.runs
    assert not result.is_error and structured(result)["run_id"] == run_id
    assert any("could not record it" in w and run_id in w for w in structured(result)["warnings"])


# ----- the journal --------------------------------------------------------------------------------------


async def test_list_task_runs_recovers_run_ids_newest_first_with_their_last_status() -> None:
    async with mcp_session(EmulatorConfig(instant=True)) as session:
        with anyio.fail_after(20):
            done = structured(await session.call("create_task_run", {"input": "first", "wait_seconds": 5}))
            pending = structured(await session.call("create_task_run", {"input": "second", "wait_seconds": 0}))
            listed = await session.call("list_task_runs", {})
            active = structured(await session.call("list_task_runs", {"active_only": True}))
    runs = structured(listed)["runs"]
    assert [run["run_id"] for run in runs] == [pending["run_id"], done["run_id"]]
    assert runs[1]["status"] == "completed" and runs[1]["input_excerpt"] == "first"
    assert [run["run_id"] for run in active["runs"]] == [pending["run_id"]]
    assert done["run_id"] in text_of(listed) and "get_task_run" in text_of(listed)


async def test_runs_and_results_survive_a_server_restart_through_the_journal_file(tmp_path: Path) -> None:
    settings = Settings(journal=str(tmp_path / "journal.sqlite3"), wait_seconds=5, api_key=SecretStr("k-survive"))
    async with emulator_client(EmulatorConfig(instant=True)) as (emulator, client):
        with anyio.fail_after(20):
            async with Client(create_server(settings, client=client)) as first_life:
                created = structured(await first_life.call_tool("create_task_run", {"input": "q"}))
            requests = len(emulator.state.request_log)
            async with Client(create_server(settings, client=client)) as second_life:
                listed = structured(await second_life.call_tool("list_task_runs", {}))
                result = structured(await second_life.call_tool("get_task_run", {"run_id": created["run_id"]}))
        assert len(emulator.state.request_log) == requests  # the kept result costs no request
    assert [run["run_id"] for run in listed["runs"]] == [created["run_id"]]
    assert created["status"] == result["status"] == "completed" and result["output"] == created["output"]


# ----- the run service on its own ------------------------------------------------------------------------


def service(store: SQLiteStore, *, owned_only: bool = False) -> RunService:
    waiter = Waiter(ProcessorTable(pace=20), interval=0.05)
    intents = Intents(store, window=600)
    return RunService(waiter=waiter, store=store, intents=intents, budget_tokens=8000, owned_only=owned_only)


async def test_owners_are_keyed_hashes_that_differ_per_key_and_per_installation() -> None:
    one, two = b"1" * 32, b"2" * 32
    assert owner_of("key-a", one) == owner_of("key-a", one)
    assert len({owner_of("key-a", one), owner_of("key-b", one), owner_of("key-a", two)}) == 3
    assert "key-a" not in owner_of("key-a", one)


async def test_the_fingerprint_covers_the_whole_body_and_ignores_key_order() -> None:
    body = TaskRunInput.model_validate({"input": {"a": 1, "b": 2}, "processor": "lite", "metadata": {"x": "1"}})
    same = TaskRunInput.model_validate({"metadata": {"x": "1"}, "processor": "lite", "input": {"b": 2, "a": 1}})
    other = body.model_copy(update={"processor": "base"})
    assert run_fingerprint(body) == run_fingerprint(same) != run_fingerprint(other)


async def test_an_intent_tag_takes_a_free_metadata_slot_and_never_a_full_one() -> None:
    body = TaskRunInput(input="q", processor="lite")
    assert tag_intent(body, "abc").metadata == {"pmcp_intent": "abc"}
    full = body.model_copy(update={"metadata": {f"k{i}": i for i in range(16)}})
    assert tag_intent(full, "abc") is full


async def test_owned_only_reads_another_owners_run_as_not_found() -> None:
    store = SQLiteStore(MEMORY)
    runs = service(store, owned_only=True)
    async with emulator_client(EmulatorConfig(instant=True)) as (_emulator, client):
        view = await runs.create(
            Caller(client, "alice"), run_order(TaskRunInput(input="q", processor="lite")), wait=5, sink=None
        )
        mine = await runs.get(Caller(client, "alice"), view.run_id, wait=0, sink=None, page=PageRequest())
        with pytest.raises(Exception, match="not found") as refused:
            await runs.get(Caller(client, "bob"), view.run_id, wait=0, sink=None, page=PageRequest())
    assert mine.status == "completed" and type(refused.value).__name__ == "NotFoundError"
    await store.close()


async def test_a_create_let_through_as_a_repeat_sends_nothing_when_it_no_longer_repeats_one() -> None:
    # It passed the spending guards unasked because its earlier twin had made a run; if that twin has just left
    # the dedupe window, the create must not bill a run nobody confirmed.
    store = SQLiteStore(MEMORY)
    runs = service(store)
    order = run_order(TaskRunInput(input="q", processor="lite"))
    async with emulator_client(EmulatorConfig(instant=True)) as (emulator, client):
        with pytest.raises(RepeatLapsedError, match="Nothing was created"):
            await runs.create(Caller(client, "alice"), order, wait=0, sink=None, repeat_only=True)
        sent = emulator.state.run_count
        view = await runs.create(Caller(client, "alice"), order, wait=0, sink=None)  # its claim was released
    assert sent == 0 and view.run_id and emulator.state.run_count == 1
    await store.close()
