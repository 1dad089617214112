"""What the server holds: the store its settings choose, and who each call speaks for."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr

from parallel_mcp.config import Settings
from parallel_mcp.errors import AccessError
from parallel_mcp.runtime import caller, make_lifespan, open_store
from parallel_mcp.store.sqlite import MEMORY, SQLiteStore
from tests.support import emulator_client

pytestmark = pytest.mark.anyio


def test_the_journal_setting_chooses_a_file_memory_or_off(tmp_path: Path) -> None:
    chosen = open_store(Settings(journal=str(tmp_path / "j.sqlite3")), emulated=False)
    auto_emulated = open_store(Settings(), emulated=True)
    off = open_store(Settings(journal="off"), emulated=False)
    assert isinstance(chosen, SQLiteStore) and chosen.location == str(tmp_path / "j.sqlite3")
    assert auto_emulated.location == off.location == MEMORY


def test_a_database_url_chooses_postgresql_and_hides_its_password() -> None:
    store = open_store(Settings(database_url=SecretStr("postgresql://mcp:s3cret@db:5432/p")), emulated=False)
    assert type(store).__name__ == "PostgresStore" and "s3cret" not in store.location + repr(store)


async def test_multi_user_calls_speak_for_the_key_they_bring_and_refuse_without_one() -> None:
    settings = Settings(multi_user=True, transport="streamable-http", journal="off")
    async with emulator_client() as (_emulator, client), make_lifespan(settings, client=client)(None) as app:
        alice = await caller(app, {"x-api-key": "key-alice"})
        bob = await caller(app, {"authorization": "bearer key-bob"})
        again = await caller(app, {"X-Api-Key": "key-alice"})
        with pytest.raises(AccessError, match="x-api-key"):
            await caller(app, {})
    assert alice.owner == again.owner != bob.owner and alice.client is not bob.client
    assert "key-alice" not in alice.owner


async def test_a_single_user_server_speaks_for_its_own_key_whatever_the_request_says() -> None:
    settings = Settings(api_key=SecretStr("key-own"), journal="off")
    async with emulator_client() as (_emulator, client), make_lifespan(settings, client=client)(None) as app:
        own = await caller(app, None)
        other = await caller(app, {"x-api-key": "key-intruder"})
    assert own.owner == other.owner and own.client is app.client
