"""The real server's tool definitions, listed once per session over stdio."""

from __future__ import annotations

import anyio
import pytest

from tests.compat.support import ToolDict, list_current_tools


@pytest.fixture(scope="session")
def current_tools() -> list[ToolDict]:
    """tools/list of a real `parallel-mcp serve` subprocess (keyless: its embedded emulator)."""
    return anyio.run(list_current_tools)
