"""Shared fixtures: every async test runs on asyncio through the anyio plugin."""

import pytest


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
