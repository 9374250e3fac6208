"""The schema of the run store: its tables, its version, and the migrations between versions.

Opening a writer (fembed_jax.store.db) creates these tables in a new store and runs
``MIGRATIONS`` on an older one, inside one write transaction.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

__all__ = ["MIGRATIONS", "READABLE_SINCE", "SCHEMA_VERSION", "STATES", "TABLES_V1", "read_as_current"]

SCHEMA_VERSION = 4
# The oldest schema a reader reads as it is where it cannot have it migrated (a read-only store):
# v3 added machine_samples (such a reader sees none), v4 renamed a column (read_as_current's
# views); v1 lacks result_history.
READABLE_SINCE = 2
# The states of experiments.state (the CHECK below spells the same five); the state machine
# between them is fembed_jax.store.queue's.
STATES = ("pending", "running", "done", "failed", "skipped")

# The run hash (train.plan.run_hash: config + data) keys every table's rows. Versions 1-3 named
# its column config_hash (the DDL below, frozen as it shipped); v4 renamed it run_hash.
RENAMED_IN_V4 = ("experiments", "epochs", "results", "result_history")
TABLES_V1 = (
    """
    CREATE TABLE schema_version (
        id          INTEGER PRIMARY KEY CHECK (id = 1),
        version     INTEGER NOT NULL,
        updated_at  REAL NOT NULL
    )
    """,
    """
    CREATE TABLE experiments (
        exp_id        TEXT PRIMARY KEY,
        queue_order   INTEGER NOT NULL DEFAULT 0,
        priority      TEXT,
        tier          TEXT,
        config_hash   TEXT NOT NULL,
        config_json   TEXT NOT NULL,
        state         TEXT NOT NULL DEFAULT 'pending'
                      CHECK (state IN ('pending', 'running', 'done', 'failed', 'skipped')),
        attempts      INTEGER NOT NULL DEFAULT 0,
        error         TEXT,
        claimed_by    TEXT,
        heartbeat_at  REAL,
        started_at    REAL,
        finished_at   REAL,
        epochs_run    INTEGER NOT NULL DEFAULT 0,
        updated_at    REAL NOT NULL
    )
    """,
    "CREATE INDEX experiments_by_state ON experiments (state, queue_order)",
    """
    CREATE TABLE epochs (
        exp_id       TEXT NOT NULL,
        config_hash  TEXT NOT NULL,
        epoch        INTEGER NOT NULL,
        seed         INTEGER NOT NULL,
        attempt      INTEGER NOT NULL DEFAULT 0,
        train_loss   REAL,
        val_loss     REAL,
        val_auc      REAL,
        active       INTEGER NOT NULL DEFAULT 1 CHECK (active IN (0, 1)),
        is_best      INTEGER NOT NULL DEFAULT 0 CHECK (is_best IN (0, 1)),
        recorded_at  REAL NOT NULL,
        PRIMARY KEY (exp_id, config_hash, epoch, seed)
    ) WITHOUT ROWID
    """,
    """
    CREATE TABLE results (
        exp_id          TEXT PRIMARY KEY,
        config_hash     TEXT,
        results_json    TEXT NOT NULL,
        precision_mean  REAL,
        precision_std   REAL,
        recall_mean     REAL,
        auc_mean        REAL,
        auc_std         REAL,
        tp_total        INTEGER,
        pred_pos_total  INTEGER,
        collapsed       INTEGER CHECK (collapsed IN (0, 1)),
        epochs          INTEGER,
        seconds         REAL,
        finished_at     REAL,
        legacy          INTEGER NOT NULL DEFAULT 0 CHECK (legacy IN (0, 1)),
        recorded_at     REAL NOT NULL
    )
    """,
)


def _add_result_history(db: sqlite3.Connection) -> None:
    """v2: every fembed result that another run replaced (a new config, other data, --force) is
    kept in result_history with the time it was replaced."""
    db.execute(
        """
        CREATE TABLE result_history (
            exp_id          TEXT NOT NULL,
            config_hash     TEXT,
            results_json    TEXT NOT NULL,
            precision_mean  REAL,
            precision_std   REAL,
            recall_mean     REAL,
            auc_mean        REAL,
            auc_std         REAL,
            tp_total        INTEGER,
            pred_pos_total  INTEGER,
            collapsed       INTEGER,
            epochs          INTEGER,
            seconds         REAL,
            finished_at     REAL,
            recorded_at     REAL NOT NULL,
            replaced_at     REAL NOT NULL,
            PRIMARY KEY (exp_id, recorded_at)
        )
        """
    )


def _add_machine_samples(db: sqlite3.Connection) -> None:
    """v3: what the runner process cost the machine after each epoch (fembed_jax.resources.sample:
    one REAL column per key, NULL where it was unknown), so a TUI on another host can show it."""
    db.execute(
        """
        CREATE TABLE machine_samples (
            exp_id            TEXT NOT NULL,
            epoch             INTEGER,
            recorded_at       REAL NOT NULL,
            host              TEXT,
            pid               INTEGER,
            cpu_percent       REAL,
            rss_mb            REAL,
            gpu_util_percent  REAL,
            gpu_mem_mb        REAL
        )
        """
    )
    db.execute("CREATE INDEX machine_samples_by_time ON machine_samples (exp_id, recorded_at)")


def _rename_to_run_hash(db: sqlite3.Connection) -> None:
    """v4: the column that always held the run hash is named for it (config_hash -> run_hash)."""
    for table in RENAMED_IN_V4:
        db.execute(f"ALTER TABLE {table} RENAME COLUMN config_hash TO run_hash")


def read_as_current(db: sqlite3.Connection, version: int) -> None:
    """Let a reader that cannot migrate an older store (read-only) query it as this schema: temp
    views, which SQLite resolves before the main tables, give the v4 column names."""
    if version < 4:
        for table in RENAMED_IN_V4:
            if db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (table,)).fetchone():
                db.execute(f"CREATE TEMP VIEW {table} AS SELECT *, config_hash AS run_hash FROM main.{table}")


# Migration hook: MIGRATIONS[v] upgrades a store at version v to v + 1, inside the open write
# transaction (so a crash in the middle leaves the store at v, unchanged). Append a function and
# bump SCHEMA_VERSION when the schema changes; tests/data/store_v1.db is a store of release 0.1.
MIGRATIONS: dict[int, Callable[[sqlite3.Connection], None]] = {
    1: _add_result_history,
    2: _add_machine_samples,
    3: _rename_to_run_hash,
}
