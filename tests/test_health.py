"""/healthz: 503 until the store is open, then 200 with the store's state (an outage is said, not failed on)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from starlette.requests import Request

from parallel_mcp.health import Health
from parallel_mcp.store.sqlite import MEMORY, SQLiteStore

pytestmark = pytest.mark.anyio


def request() -> Request:
    return Request({"type": "http", "method": "GET", "path": "/healthz", "headers": []})


async def test_health_is_503_until_the_store_is_open_then_200() -> None:
    health = Health()
    assert (await health.handle(request())).status_code == 503
    health.store = SQLiteStore(MEMORY)
    ready = await health.handle(request())
    assert ready.status_code == 200 and b'"store":"ok"' in ready.body
    await health.store.close()


async def test_a_failing_store_is_reported_but_the_replica_stays_in_rotation(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite3"
    store = SQLiteStore(path)
    await store.secret()
    with sqlite3.connect(path) as db:
        db.execute("DROP TABLE runs")  # a real failure of the real database
    health = Health()
    health.store = store
    answer = await health.handle(request())
    assert answer.status_code == 200 and b'"store":"unavailable"' in answer.body
    await store.close()
