"""Shared fixtures: every async test runs on asyncio through the anyio plugin; a throwaway PostgreSQL.

A test marked `virtual_time` runs on a loop (looptime's) whose clock jumps to its next timer whenever
nothing else can happen: deadlines, timeouts, heartbeats, latency faults and the emulator's runs (its
clock is the loop's) then take no real time, and what they measure in loop time is exact. Only for a
test whose every part runs on this loop: a subprocess, a database server or a worker thread would be
timed out while it works.
"""

from collections.abc import Iterator
from typing import Any

import looptime
import pytest

from tests.postgres import TemporaryPostgres


@pytest.fixture
def anyio_backend(request: pytest.FixtureRequest) -> Any:
    if request.node.get_closest_marker("virtual_time") is not None:
        return ("asyncio", {"loop_factory": looptime.new_event_loop})
    return "asyncio"


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[TemporaryPostgres]:
    """One PostgreSQL cluster for the session, started on first use; fails (never skips) without the binaries."""
    with TemporaryPostgres() as server:
        yield server


@pytest.fixture
def postgres_url(postgres_server: TemporaryPostgres) -> Iterator[str]:
    """A fresh, empty database of the session's cluster (its URL holds the password); dropped afterwards."""
    if not postgres_server.is_running():  # an outage test that failed half-way must not fail every later test
        postgres_server.start()
    url = postgres_server.new_database()
    yield url
    postgres_server.drop_database(url)
