"""Shared fixtures: every async test runs on asyncio through the anyio plugin; a throwaway PostgreSQL."""

from collections.abc import Iterator

import pytest

from tests.postgres import TemporaryPostgres


@pytest.fixture
def anyio_backend() -> str:
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
