"""The `store` fixture: every store test runs on each backend (PostgreSQL on a throwaway cluster, never skipped)."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from pathlib import Path

import pytest

from parallel_mcp.store import Store
from parallel_mcp.store.sqlite import MEMORY, SQLiteStore
from tests.support import started


@pytest.fixture(params=["sqlite-file", "sqlite-memory", "postgres"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncGenerator[Store]:
    if request.param == "postgres":
        from parallel_mcp.store.postgres import PostgresStore

        # Asked for here, not as an argument: SQLite runs need no cluster.
        opened: Store = PostgresStore(request.getfixturevalue("postgres_url"))
    else:
        opened = SQLiteStore(tmp_path / "state" / "journal.sqlite3" if request.param == "sqlite-file" else MEMORY)
    async with started(opened):
        yield opened
