"""The SQLite store's schema: versioned migrations, applied in order at first use (data, not code)."""

from __future__ import annotations

# Version 1 is the journal of parallel-mcp 0.1 (created without a version): its `runs` table is kept.
MIGRATIONS: list[tuple[int, str]] = [
    (
        1,
        """
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
        CREATE INDEX IF NOT EXISTS runs_by_time ON runs (owner, created_at);
        """,
    ),
    (
        2,
        """
        DROP INDEX IF EXISTS runs_by_key;
        ALTER TABLE runs ADD COLUMN group_id TEXT;
        ALTER TABLE runs ADD COLUMN cost_usd REAL NOT NULL DEFAULT 0;
        CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        CREATE TABLE intents (
            id TEXT PRIMARY KEY,
            owner TEXT NOT NULL,
            kind TEXT NOT NULL,
            idempotency_key TEXT,
            fingerprint TEXT NOT NULL,
            state TEXT NOT NULL,
            target_id TEXT,
            key_slot INTEGER NOT NULL DEFAULT 0,
            fp_slot INTEGER NOT NULL DEFAULT 0,
            created_at REAL NOT NULL,
            updated_at REAL NOT NULL
        );
        CREATE UNIQUE INDEX intents_by_key ON intents (owner, kind, idempotency_key) WHERE key_slot = 1;
        CREATE UNIQUE INDEX intents_by_fingerprint ON intents (owner, kind, fingerprint) WHERE fp_slot = 1;
        CREATE INDEX intents_recent ON intents (owner, kind, fingerprint, created_at);
        CREATE TABLE groups (
            owner TEXT NOT NULL,
            group_id TEXT NOT NULL,
            processor TEXT NOT NULL,
            input_excerpt TEXT NOT NULL,
            num_runs INTEGER NOT NULL,
            cost_usd REAL NOT NULL DEFAULT 0,
            created_at TEXT,
            PRIMARY KEY (owner, group_id)
        );
        CREATE TABLE results (
            owner TEXT NOT NULL,
            run_id TEXT NOT NULL,
            body TEXT NOT NULL,
            stored_at REAL NOT NULL,
            PRIMARY KEY (owner, run_id)
        );
        CREATE TABLE deliveries (id TEXT PRIMARY KEY, received_at REAL NOT NULL);
        """,
    ),
    (
        3,
        """
        CREATE TABLE tasks (
            task_id TEXT PRIMARY KEY,
            owner TEXT NOT NULL,
            kind TEXT NOT NULL,
            target_id TEXT NOT NULL,
            shaping TEXT NOT NULL,
            created_at REAL NOT NULL,
            cancelled_at REAL
        );
        CREATE TABLE confirmations (
            token_hash TEXT PRIMARY KEY,
            owner TEXT NOT NULL,
            fingerprint TEXT NOT NULL,
            expires_at REAL NOT NULL,
            used_at REAL
        );
        CREATE INDEX groups_by_time ON groups (owner, created_at);
        """,
    ),
    (
        4,
        # Each intent reserves its price when claimed; those of the last two days (all a daily budget can still
        # count) are priced by what they made.
        """
        ALTER TABLE intents ADD COLUMN cost_usd REAL NOT NULL DEFAULT 0;
        UPDATE intents SET cost_usd = COALESCE(
            (SELECT cost_usd FROM runs WHERE runs.owner = intents.owner AND runs.run_id = intents.target_id),
            (SELECT cost_usd FROM groups WHERE groups.owner = intents.owner AND groups.group_id = intents.target_id),
            0
        )
        WHERE created_at >= CAST(strftime('%s', 'now') AS REAL) - 172800;
        CREATE INDEX intents_by_owner ON intents (owner, created_at);
        """,
    ),
]
SCHEMA_VERSION = MIGRATIONS[-1][0]
