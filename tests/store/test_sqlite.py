"""The embedded store's own promises: an owner-only file (in folders it leaves alone), a 0.1 journal carried
forward, memory when the file fails."""

from __future__ import annotations

import os
import sqlite3
import stat
from pathlib import Path

import pytest

from parallel_mcp.store import Claim, Intent, RunRecord, StoreError
from parallel_mcp.store.sqlite import MEMORY, SCHEMA_VERSION, SQLiteStore
from parallel_mcp.store.sqlite_schema import MIGRATIONS

pytestmark = pytest.mark.anyio

NOW = 1_800_000_000.0


async def new_claim(store: SQLiteStore) -> Claim:
    return await store.claim(Intent("alice", "run", "f"), window=0, now=NOW)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


async def test_the_file_and_its_folder_are_owner_only_whatever_the_umask(tmp_path: Path) -> None:
    path = tmp_path / "state" / "parallel-mcp" / "journal.sqlite3"
    previous = os.umask(0o000)
    try:
        store = SQLiteStore(path)
        await store.secret()
    finally:
        os.umask(previous)
    await store.close()
    assert mode(path) == 0o600 and mode(path.parent) == 0o700


async def test_an_existing_folder_keeps_its_permissions(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o1777)  # like /tmp: other users and services must keep reaching it
    store = SQLiteStore(shared / "journal.sqlite3")
    await store.secret()
    await store.close()
    assert mode(shared) == 0o1777 and mode(shared / "journal.sqlite3") == 0o600


async def test_an_existing_world_readable_journal_is_made_owner_only(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite3"
    path.touch(mode=0o644)
    os.chmod(path, 0o644)
    store = SQLiteStore(path)
    await store.secret()
    await store.close()
    assert mode(path) == 0o600


async def test_a_journal_of_parallel_mcp_0_1_is_migrated_and_keeps_its_runs(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite3"
    with sqlite3.connect(path) as old:  # the 0.1 schema, created without a version
        old.executescript(
            """
            CREATE TABLE runs (owner TEXT NOT NULL, run_id TEXT NOT NULL, processor TEXT NOT NULL,
                status TEXT NOT NULL, input_excerpt TEXT NOT NULL, idempotency_key TEXT, interaction_id TEXT,
                created_at TEXT, updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
                PRIMARY KEY (owner, run_id));
            CREATE UNIQUE INDEX runs_by_key ON runs (owner, idempotency_key) WHERE idempotency_key IS NOT NULL;
            INSERT INTO runs (owner, run_id, processor, status, input_excerpt, created_at)
                VALUES ('alice', 'trun_old', 'lite', 'completed', 'an old question', '2026-01-01T00:00:00Z');
            """
        )
    store = SQLiteStore(path)
    (entry,) = await store.recent("alice", limit=5, active_only=False)
    claim = await store.claim(Intent("alice", "run", "f"), window=60, now=NOW)
    await store.created(
        claim.intent_id,
        "alice",
        RunRecord(run_id="trun_new", processor="lite", status="queued", input_excerpt="q"),
        idempotency_key=None,
    )
    await store.close()
    assert entry.run_id == "trun_old" and entry.status == "completed"
    with sqlite3.connect(path) as db:
        version = db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0]
    assert int(version) == SCHEMA_VERSION


async def test_a_journal_from_before_reservations_prices_each_intent_by_what_it_made(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite3"
    with sqlite3.connect(path) as old:
        for _version, script in MIGRATIONS[:3]:
            old.executescript(script)
        old.executescript(
            """
            INSERT INTO meta (key, value) VALUES ('schema_version', '3');
            INSERT INTO runs (owner, run_id, processor, status, input_excerpt, created_at, cost_usd)
                VALUES ('alice', 'trun_1', 'core', 'completed', 'q', '2026-12-01T10:00:00Z', 0.025);
            INSERT INTO groups (owner, group_id, processor, input_excerpt, num_runs, cost_usd, created_at)
                VALUES ('alice', 'tgrp_1', 'lite', 'row', 2, 0.01, '2026-12-01T10:00:00Z');
            """
        )
        rows = [("i-run", "run", "trun_1"), ("i-group", "group", "tgrp_1"), ("i-lost", "run", None)]
        old.executemany(
            "INSERT INTO intents (id, owner, kind, fingerprint, state, target_id, created_at, updated_at)"
            " VALUES (?, 'alice', ?, ?, 'created', ?, ?, ?)",
            [(intent_id, kind, intent_id, target, NOW, NOW) for intent_id, kind, target in rows],
        )
    store = SQLiteStore(path)
    assert await store.spent_since("alice", NOW - 10) == pytest.approx(0.035)
    await store.close()


async def test_an_unusable_path_falls_back_to_memory_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    store = SQLiteStore(blocker / "journal.sqlite3")
    claim = await store.claim(Intent("alice", "run", "f"), window=0, now=NOW)
    await store.created(
        claim.intent_id,
        "alice",
        RunRecord(run_id="trun_1", processor="lite", status="queued", input_excerpt="q"),
        idempotency_key=None,
    )
    assert store.location == MEMORY
    assert [e.run_id for e in await store.recent("alice", limit=5, active_only=False)] == ["trun_1"]
    assert "unavailable" in caplog.text and "keeping it in memory" in caplog.text
    await store.close()


async def test_a_sqlite_too_old_for_upserts_is_named_with_what_to_do(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sqlite3, "sqlite_version_info", (3, 22, 0))
    monkeypatch.setattr(sqlite3, "sqlite_version", "3.22.0")
    store = SQLiteStore(MEMORY)
    with pytest.raises(StoreError, match=r"needs SQLite 3\.24 or newer .* has 3\.22\.0: use a newer Python build"):
        await store.secret()
