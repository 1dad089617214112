"""The `store` fixture: every store test runs on each backend (PostgreSQL on a throwaway cluster, never skipped)."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from pathlib import Path

import anyio
import pytest

from parallel_mcp.store import Store
from parallel_mcp.store.sqlite import MEMORY, SQLiteStore


@pytest.fixture(params=["sqlite-file", "sqlite-memory", "postgres"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncGenerator[Store]:
    if request.param == "postgres":
        from parallel_mcp.store.postgres import PostgresStore

        # Asked for here, not as an argument: SQLite runs need no cluster.
        opened: Store = PostgresStore(request.getfixturevalue("postgres_url"))
    else:
        opened = SQLiteStore(tmp_path / "state" / "journal.sqlite3" if request.param == "sqlite-file" else MEMORY)
    async with anyio.create_task_group() as tasks:
        await opened.start(tasks)
        try:
            yield opened
        finally:
            await opened.close()
            tasks.cancel_scope.cancel()
