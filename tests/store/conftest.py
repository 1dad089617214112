"""The `store` fixture: every store test runs on each backend."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from pathlib import Path

import anyio
import pytest

from parallel_mcp.store import Store
from parallel_mcp.store.sqlite import MEMORY, SQLiteStore


@pytest.fixture(params=["sqlite-file", "sqlite-memory"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncGenerator[Store]:
    location = tmp_path / "state" / "journal.sqlite3" if request.param == "sqlite-file" else MEMORY
    opened = SQLiteStore(location)
    async with anyio.create_task_group() as tasks:
        await opened.start(tasks)
        try:
            yield opened
        finally:
            await opened.close()
            tasks.cancel_scope.cancel()
