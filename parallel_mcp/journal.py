"""A local journal of the runs this server created: recovery of lost run ids, idempotent creates.

The Task API keeps runs but cannot list them, so the journal is what lets an agent find a run
again after a client timeout or a server restart, and what lets a retried create with the same
`idempotency_key` return the first run instead of starting a second, billed one.

It is a SQLite file holding ids, statuses and a short excerpt of each input; never an API key,
header or secret (owners are stored as a hash of their key). The file is created owner-only.
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from parallel_mcp.models import TaskRun
from parallel_mcp.text import shorten

if TYPE_CHECKING:
    import sqlite3

logger = logging.getLogger(__name__)

EXCERPT_CHARS = 160
MEMORY = ":memory:"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    owner TEXT NOT NULL,
    run_id TEXT NOT NULL,
    processor TEXT NOT NULL,
    status TEXT NOT NULL,
    input_excerpt TEXT NOT NULL,
    idempotency_key TEXT,
    interaction_id TEXT,
    created_at TEXT,
    updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    PRIMARY KEY (owner, run_id)
);
CREATE UNIQUE INDEX IF NOT EXISTS runs_by_key ON runs (owner, idempotency_key) WHERE idempotency_key IS NOT NULL;
CREATE INDEX IF NOT EXISTS runs_by_time ON runs (owner, created_at);
"""


@dataclass(frozen=True)
class JournalEntry:
    """One run as the journal last saw it."""

    run_id: str
    processor: str
    status: str
    input_excerpt: str
    idempotency_key: str | None
    interaction_id: str | None
    created_at: str | None
    updated_at: str


def default_journal_path() -> Path:
    """`$XDG_STATE_HOME/parallel-mcp/journal.sqlite3` (or under `~/.local/state`)."""
    state_home = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state_home) / "parallel-mcp" / "journal.sqlite3"


def excerpt(value: object) -> str:
    """A short one-line excerpt of a run's input."""
    return shorten(value if isinstance(value, str) else str(value), EXCERPT_CHARS, one_line=True)


def _connect(location: str) -> sqlite3.Connection:
    import sqlite3  # imported on first use: keeps it off the server's start-up path

    if location != MEMORY:
        file = Path(location)
        file.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        if not file.exists():
            file.touch(mode=0o600)
    db = sqlite3.connect(location, check_same_thread=False, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.executescript(_SCHEMA)
    return db


class Journal:
    """The run journal; every method is quick and safe to call from any thread.

    The database opens on first use. If the file cannot be opened, the journal says so on
    stderr and lives in memory instead: a journal problem never stops a run.
    """

    def __init__(self, path: Path | str = MEMORY) -> None:
        self.location = str(path)
        self._db: sqlite3.Connection | None = None
        self._lock = threading.Lock()

    @classmethod
    def open(cls, path: Path | str) -> Journal:
        """Open (creating if needed) the journal at `path` now, or an in-memory one for `":memory:"`."""
        journal = cls(path)
        with journal._lock:
            journal._connection()
        return journal

    def _connection(self) -> sqlite3.Connection:
        if self._db is None:
            import sqlite3

            try:
                self._db = _connect(self.location)
            except (OSError, sqlite3.Error) as exc:
                logger.warning("run journal %s unavailable (%s); keeping it in memory", self.location, exc)
                self.location = MEMORY
                self._db = _connect(MEMORY)
        return self._db

    def close(self) -> None:
        """Close the database."""
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None

    def record(self, owner: str, run: TaskRun, *, input_value: object, idempotency_key: str | None = None) -> None:
        """Remember a run this server created."""
        with self._lock:
            self._connection().execute(
                "INSERT OR REPLACE INTO runs (owner, run_id, processor, status, input_excerpt, idempotency_key,"
                " interaction_id, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    owner,
                    run.run_id,
                    run.processor,
                    run.status,
                    excerpt(input_value),
                    idempotency_key,
                    run.interaction_id,
                    run.created_at,
                ),
            )

    def update(self, owner: str, run: TaskRun) -> None:
        """Note a run's latest status (runs this server did not create are ignored)."""
        with self._lock:
            self._connection().execute(
                "UPDATE runs SET status = ?, updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')"
                " WHERE owner = ? AND run_id = ? AND status != ?",
                (run.status, owner, run.run_id, run.status),
            )

    def find_by_key(self, owner: str, idempotency_key: str) -> str | None:
        """The run created earlier with this idempotency key, if any."""
        with self._lock:
            row = (
                self._connection()
                .execute("SELECT run_id FROM runs WHERE owner = ? AND idempotency_key = ?", (owner, idempotency_key))
                .fetchone()
            )
        return str(row[0]) if row else None

    def recent(self, owner: str, *, limit: int = 20, active_only: bool = False) -> list[JournalEntry]:
        """This owner's most recent runs, newest first."""
        query = (
            "SELECT run_id, processor, status, input_excerpt, idempotency_key, interaction_id, created_at, updated_at"
            " FROM runs WHERE owner = ?"
        )
        if active_only:
            query += " AND status IN ('queued', 'running', 'cancelling')"
        query += " ORDER BY created_at DESC, rowid DESC LIMIT ?"
        with self._lock:
            rows = self._connection().execute(query, (owner, limit)).fetchall()
        return [JournalEntry(*row) for row in rows]
