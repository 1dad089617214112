"""The run journal: recovering run ids, idempotent creates, and surviving a restart (real SQLite files)."""

from __future__ import annotations

import stat
from pathlib import Path

import anyio
import pytest
from mcp import Client

from parallel_mcp.config import Settings
from parallel_mcp.emulator.config import EmulatorConfig
from parallel_mcp.journal import Journal, excerpt
from parallel_mcp.models import TaskRun
from parallel_mcp.server import create_server
from tests.support import emulator_client, mcp_session, structured, text_of

pytestmark = pytest.mark.anyio


def _run(run_id: str, status: str = "queued") -> TaskRun:
    return TaskRun.model_validate(
        {
            "run_id": run_id,
            "interaction_id": f"tint_{run_id}",
            "status": status,
            "is_active": status in {"queued", "running"},
            "processor": "lite",
            "created_at": f"2026-11-28T10:00:0{run_id[-1]}Z",
        }
    )


def test_the_journal_file_is_created_owner_only_and_keeps_runs_per_owner(tmp_path: Path) -> None:
    path = tmp_path / "state" / "journal.sqlite3"
    journal = Journal.open(path)
    journal.record("alice", _run("trun_1"), input_value="first question", idempotency_key="k1")
    journal.record("alice", _run("trun_2"), input_value={"company": "Acme"})
    journal.record("bob", _run("trun_3"), input_value="bob's")
    journal.update("alice", _run("trun_1", "completed"))
    journal.close()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    reopened = Journal.open(path)
    alice = reopened.recent("alice")
    assert [entry.run_id for entry in alice] == ["trun_2", "trun_1"]
    assert alice[1].status == "completed" and alice[1].idempotency_key == "k1"
    assert reopened.find_by_key("alice", "k1") == "trun_1" and reopened.find_by_key("bob", "k1") is None
    assert [entry.run_id for entry in reopened.recent("alice", active_only=True)] == ["trun_2"]
    reopened.close()


def test_an_excerpt_is_one_short_line() -> None:
    assert excerpt("a\n  b\tc") == "a b c"
    assert len(excerpt("x" * 1000)) == 160


async def test_a_retried_create_with_the_same_idempotency_key_bills_one_run() -> None:
    arguments = {"input": "q", "idempotency_key": "req-42", "wait_seconds": 5}
    async with mcp_session(EmulatorConfig(instant=True)) as session:
        with anyio.fail_after(20):
            first = structured(await session.call("create_task_run", arguments))
            again = await session.call("create_task_run", arguments)
            other = structured(await session.call("create_task_run", {**arguments, "idempotency_key": "req-43"}))
        assert session.emulator.state.run_count == 2
    assert structured(again)["run_id"] == first["run_id"] and "nothing new was billed" in text_of(again)
    assert other["run_id"] != first["run_id"]


async def test_concurrent_creates_with_one_key_start_one_run() -> None:
    arguments = {"input": "q", "idempotency_key": "same", "wait_seconds": 0}
    async with mcp_session(EmulatorConfig(frozen=True)) as session:
        ids: list[str] = []

        async def create() -> None:
            ids.append(structured(await session.call("create_task_run", arguments))["run_id"])

        with anyio.fail_after(20):
            async with anyio.create_task_group() as group:
                for _ in range(5):
                    group.start_soon(create)
        assert session.emulator.state.run_count == 1
    assert len(set(ids)) == 1 and len(ids) == 5


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


async def test_runs_survive_a_server_restart_through_the_journal_file(tmp_path: Path) -> None:
    journal = tmp_path / "journal.sqlite3"
    settings = Settings(journal=str(journal), wait_seconds=5)
    async with emulator_client(EmulatorConfig(instant=True)) as (_emulator, client):
        with anyio.fail_after(20):
            async with Client(create_server(settings, client=client, emulated=False)) as first_life:
                created = structured(await first_life.call_tool("create_task_run", {"input": "q", "wait_seconds": 0}))
            async with Client(create_server(settings, client=client, emulated=False)) as second_life:
                listed = structured(await second_life.call_tool("list_task_runs", {}))
                result = structured(await second_life.call_tool("get_task_run", {"run_id": created["run_id"]}))
    assert [run["run_id"] for run in listed["runs"]] == [created["run_id"]]
    assert result["status"] == "completed"


def test_an_unusable_journal_path_falls_back_to_memory_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    journal = Journal(blocker / "journal.sqlite3")
    journal.record("alice", _run("trun_1"), input_value="q")
    assert journal.location == ":memory:" and [e.run_id for e in journal.recent("alice")] == ["trun_1"]
    assert "unavailable" in caplog.text and "keeping it in memory" in caplog.text
    journal.close()
