"""The embedded store: one SQLite file (owner-only), or memory.

Every statement is short, so methods run on the event loop under a lock rather than in a thread;
claims run in `BEGIN IMMEDIATE` transactions, which serialise them across processes sharing the
file (two local clients of the same journal still make one run per intent). The database opens on
first use, keeping `sqlite3` off the start-up path; a file that cannot be opened is said on stderr
and replaced by memory, so a journal problem never stops a run.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import stat
import threading
import time
from collections.abc import AsyncGenerator, Callable, Generator, Sequence
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, LiteralString, TypeVar

from parallel_mcp.store import (
    Budget,
    Claim,
    GroupRecord,
    Intent,
    RunRecord,
    StoreError,
    claims,
)
from parallel_mcp.store.shared import SET_INTENT, SharedStore, Statements
from parallel_mcp.store.sqlite_schema import MIGRATIONS, SCHEMA_VERSION

if TYPE_CHECKING:
    import sqlite3

logger = logging.getLogger(__name__)

MEMORY = ":memory:"
MIN_SQLITE = (3, 24)
"""`INSERT ... ON CONFLICT`, which the shared operations use (2018; Python's own builds bundle newer)."""
T = TypeVar("T")


def default_path() -> Path:
    """`$XDG_STATE_HOME/parallel-mcp/journal.sqlite3` (or under `~/.local/state`)."""
    state_home = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state_home) / "parallel-mcp" / "journal.sqlite3"


def _private_file(file: Path) -> None:
    """Make the file owner-only, whatever the umask, and tighten an existing file too; the folders it makes for
    the file are owner-only as well. A folder that exists is left as it is: the journal may live in /tmp or a
    shared folder, whose permissions are not ours to change."""
    missing = [folder for folder in (file.parent, *file.parent.parents) if not folder.exists()]
    for folder in reversed(missing):
        with contextlib.suppress(FileExistsError):  # another process may make it at the same moment
            folder.mkdir(mode=0o700)
            os.chmod(folder, 0o700)
    parent = file.parent.stat()
    if parent.st_mode & 0o022 and not parent.st_mode & stat.S_ISVTX and parent.st_uid != os.getuid():
        # Not ours to change, but worth saying: whoever can write there can swap the journal for another file.
        logger.warning("the run journal's folder %s is writable by others: they could replace the journal", file.parent)
    descriptor = os.open(file, os.O_RDWR | os.O_CREAT, 0o600)
    os.close(descriptor)
    _private_sidecars(file)


def _private_sidecars(file: Path) -> None:
    """Make the journal and its WAL sidecars (once they exist) owner-only, whatever the umask."""
    os.chmod(file, 0o600)
    for suffix in ("-wal", "-shm"):
        sidecar = file.with_name(file.name + suffix)
        if sidecar.exists():
            os.chmod(sidecar, 0o600)


def _schema_version(db: sqlite3.Connection) -> int:
    tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    if "meta" in tables:
        row = db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        return int(row[0]) if row else 0
    return 1 if "runs" in tables else 0


def _migrate(db: sqlite3.Connection) -> None:
    db.execute("BEGIN IMMEDIATE")  # several processes may open a new file at once
    try:
        version = _schema_version(db)
        for number, script in MIGRATIONS:
            if number > version:
                for statement in filter(str.strip, script.split(";")):
                    db.execute(statement)
        if version < SCHEMA_VERSION:
            db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
        db.execute("INSERT OR IGNORE INTO meta (key, value) VALUES ('secret', ?)", (secrets.token_hex(32),))
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise


LOCK_WAIT_SECONDS = 10.0
"""How long a statement waits for another process's lock on the journal before it fails."""


def _write_ahead(db: sqlite3.Connection) -> None:
    """Put the journal in WAL mode, which lets readers run beside a writer.

    Two processes opening a new journal at once (two agent windows starting) may both switch it: SQLite
    then refuses one of them at once, without waiting (to avoid a deadlock), and that one tries again.
    Falling back to memory instead would lose what makes one billed run per intent across processes.
    """
    import sqlite3

    deadline = time.monotonic() + LOCK_WAIT_SECONDS
    while True:
        try:
            db.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


def _connect(location: str) -> sqlite3.Connection:
    import sqlite3  # imported on first use: keeps it off the server's start-up path

    if location != MEMORY:
        _private_file(Path(location))
    db = sqlite3.connect(location, check_same_thread=False, isolation_level=None, timeout=LOCK_WAIT_SECONDS)
    try:
        _write_ahead(db)
        db.execute("PRAGMA synchronous=NORMAL")
        _migrate(db)
    except BaseException:
        db.close()
        raise
    if location != MEMORY:
        _private_sidecars(Path(location))  # they exist now
    return db


class _Statements:
    """SQLite statements as the shared code runs them. Nothing here suspends: a block of them runs to its
    end inside the store's lock."""

    row_lock: LiteralString = ""  # a write transaction (BEGIN IMMEDIATE) already excludes every other
    insertion_order: LiteralString = "rowid"  # INSERT OR REPLACE gives a replaced row a new one
    nulls_last: LiteralString = ""  # NULLs sort lowest: a descending order ends with them (and keeps the index)

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    async def one(self, sql: LiteralString, params: Sequence[Any] = ()) -> Sequence[Any] | None:
        return self.db.execute(sql, params).fetchone()

    async def all(self, sql: LiteralString, params: Sequence[Any] = ()) -> list[Sequence[Any]]:
        return self.db.execute(sql, params).fetchall()

    async def run(self, sql: LiteralString, params: Sequence[Any] = ()) -> int:
        return self.db.execute(sql, params).rowcount


class SQLiteStore(SharedStore):
    """The store in one SQLite file, or in memory (`":memory:"`)."""

    def __init__(self, path: Path | str = MEMORY) -> None:
        super().__init__()
        self.location = str(path)
        self._db: sqlite3.Connection | None = None
        self._lock = threading.Lock()

    def _connection(self) -> sqlite3.Connection:
        if self._db is None:
            import sqlite3

            if sqlite3.sqlite_version_info < MIN_SQLITE:
                raise StoreError(
                    f"the run journal needs SQLite {'.'.join(map(str, MIN_SQLITE))} or newer (for upserts), and this "
                    f"Python has {sqlite3.sqlite_version}: use a newer Python build (uv's include one)"
                )

            try:
                self._db = _connect(self.location)
            except (OSError, sqlite3.Error) as exc:
                logger.warning("run journal %s unavailable (%s); keeping it in memory", self.location, exc)
                self.location = MEMORY
                self._db = _connect(MEMORY)
        return self._db

    @contextmanager
    def _locked(self) -> Generator[sqlite3.Connection]:
        """The connection, held under the store's lock; SQLite's errors become `StoreError`."""
        import sqlite3

        with self._lock:
            try:
                yield self._connection()
            except sqlite3.Error as exc:
                raise StoreError(f"the run journal {self.location} failed: {exc}") from exc

    def _run(self, work: Callable[[sqlite3.Connection], T]) -> T:
        with self._locked() as db:
            return work(db)

    @contextmanager
    def _transaction(self) -> Generator[sqlite3.Connection]:
        with self._locked() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

    @asynccontextmanager
    async def _autocommit(self) -> AsyncGenerator[Statements]:
        with self._locked() as db:
            yield _Statements(db)

    @asynccontextmanager
    async def _atomic(self) -> AsyncGenerator[Statements]:
        with self._transaction() as db:
            yield _Statements(db)

    async def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None

    # -- intents ---------------------------------------------------------------------------------

    async def claim(self, intent: Intent, *, window: float, now: float, budget: Budget | None = None) -> Claim:
        with self._transaction() as db:
            # Nothing in _Statements suspends: the claim runs to its end inside the lock, and BEGIN IMMEDIATE
            # serializes it with every other process's claims on this file.
            return await claims.claim(_Statements(db), intent, window=window, now=now, budget=budget)

    def _set_intent(self, db: sqlite3.Connection, intent_id: str, state: str, target_id: str | None = None) -> None:
        db.execute(SET_INTENT, (state, target_id, time.time(), intent_id))

    async def created(self, intent_id: str, owner: str, run: RunRecord, *, idempotency_key: str | None) -> None:
        with self._transaction() as db:
            self._insert_runs(db, owner, [run], idempotency_key)
            self._set_intent(db, intent_id, "created", run.run_id)

    def _insert_runs(self, db: sqlite3.Connection, owner: str, runs: list[RunRecord], key: str | None) -> None:
        db.executemany(
            "INSERT OR REPLACE INTO runs (owner, run_id, processor, status, input_excerpt, idempotency_key,"
            " interaction_id, created_at, group_id, cost_usd) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    owner,
                    run.run_id,
                    run.processor,
                    run.status,
                    run.input_excerpt,
                    key,
                    run.interaction_id,
                    run.created_at,
                    run.group_id,
                    run.cost_usd,
                )
                for run in runs
            ],
        )

    async def group_created(self, intent_id: str, owner: str, group: GroupRecord) -> None:
        with self._transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO groups (owner, group_id, processor, input_excerpt, num_runs, cost_usd,"
                " created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    owner,
                    group.group_id,
                    group.processor,
                    group.input_excerpt,
                    group.num_runs,
                    group.cost_usd,
                    group.created_at,
                ),
            )
            self._set_intent(db, intent_id, "sending", group.group_id)

    async def group_filled(self, intent_id: str, owner: str, runs: list[RunRecord]) -> None:
        with self._transaction() as db:
            self._insert_runs(db, owner, runs, None)
            self._set_intent(db, intent_id, "created")

    # -- the journal ---------------------------------------------------------------------------------

    async def adopt(self, intent_id: str, run: RunRecord) -> bool:
        with self._transaction() as db:
            row = db.execute(
                "SELECT owner, idempotency_key FROM intents WHERE id = ? AND state IN ('sending', 'unknown')",
                (intent_id,),
            ).fetchone()
            if row is None:
                return False
            owner, key = row
            self._insert_runs(db, str(owner), [run], key)
            self._set_intent(db, intent_id, "created", run.run_id)
            return True

    # -- results and deliveries ----------------------------------------------------------------------
