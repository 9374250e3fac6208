"""The run store: one SQLite file (outputs/fembed.db) shared by runners, the TUI and the CLI.

It holds the queue (one row per experiment, with a claim and a heartbeat so two runners never
train the same experiment), per-epoch metrics per seed, and the result of every experiment.

Concurrency model
-----------------
* WAL journal: readers never block the writer and the writer never blocks readers.
* Every write is one short ``BEGIN IMMEDIATE`` transaction: it takes the single write lock up
  front, so the read-then-update inside ``claim`` is atomic across processes, and a waiting
  writer queues on ``busy_timeout`` instead of failing with "database is locked".
* Readers run in autocommit mode (each SELECT is its own snapshot, or a short ``BEGIN`` when
  several SELECTs must agree), so they never hold a snapshot open between polls. Reader
  stores (``readonly=True``) set ``PRAGMA query_only`` and cannot write by accident.

Times are Unix seconds (``time.time()``, REAL columns). Epochs are 0-based.

State machine of ``experiments.state``::

    pending --claim--> running --record_result--> done
                          |--release(pending)--> pending      (interrupted, will resume)
                          |--mark_failed-------> failed  --claim--> running
                          |--release(skipped)--> skipped
    running with a stale heartbeat (or a dead owner process on this host) --claim--> running
    any --reset--> pending;  done --sync_queue with a new config hash--> pending
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import json
import logging
import math
import os
import pathlib
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

from fembed_jax import faults
from fembed_jax.liveness import STALE_AFTER_S, judge, make_owner
from fembed_jax.results_io import dumps, to_jsonable

__all__ = [
    "RunStore",
    "StoreError",
    "SyncReport",
    "SCHEMA_VERSION",
    "STATES",
    "DB_FILENAME",
    "default_store_path",
    "make_owner",
    "summarize_result",
]

log = logging.getLogger(__name__)

DB_FILENAME = "fembed.db"
SCHEMA_VERSION = 2
STATES = ("pending", "running", "done", "failed", "skipped")
# A runner heartbeats far more often than this (every few seconds from a background thread);
# an epoch at a500 on a slow CPU can take minutes, so the heartbeat must not be per epoch only.
DEFAULT_BUSY_TIMEOUT_S = 30.0  # FEMBED_STORE_BUSY_TIMEOUT_S overrides it (seconds)

# The original's analysis flagged a collapsed model when max(p) - min(p) < 0.1 on validation.
_LEGACY_COLLAPSE_RANGE = 0.1

_SCHEMA_V1 = (
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


# Migration hook: MIGRATIONS[v] upgrades a store at version v to v + 1, inside the open write
# transaction (so a crash in the middle leaves the store at v, unchanged). Append a function and
# bump SCHEMA_VERSION when the schema changes; tests/data/store_v1.db is a store of release 0.1.
MIGRATIONS: dict[int, Callable[[sqlite3.Connection], None]] = {1: _add_result_history}
_HISTORY_COLUMNS = ("exp_id", "config_hash", "results_json", "precision_mean", "precision_std",
                    "recall_mean", "auc_mean", "auc_std", "tp_total", "pred_pos_total", "collapsed",
                    "epochs", "seconds", "finished_at", "recorded_at")

SUMMARY_COLUMNS = (
    "precision_mean",
    "precision_std",
    "recall_mean",
    "auc_mean",
    "auc_std",
    "tp_total",
    "pred_pos_total",
    "collapsed",
    "epochs",
    "seconds",
    "finished_at",
)
_BOOL_COLUMNS = ("active", "is_best", "collapsed", "legacy")


class StoreError(RuntimeError):
    """The run store cannot be used (newer schema, unknown experiment, invalid state)."""


@dataclasses.dataclass(frozen=True)
class SyncReport:
    """What ``sync_queue`` did: ids added, ids reset because their config changed, ids kept."""

    added: tuple[str, ...]
    reset: tuple[str, ...]
    unchanged: tuple[str, ...]


def default_store_path(outputs_dir: str | os.PathLike[str] = "outputs") -> pathlib.Path:
    return pathlib.Path(outputs_dir) / DB_FILENAME


_SQLITE_MAGIC = b"SQLite format 3\x00"


def _refuse_foreign_file(path: pathlib.Path) -> None:
    """Refuse a store file that is not SQLite or is empty while results exist beside it.

    SQLite would treat a truncated (0-byte) file as a new database and silently start an empty
    queue, losing every queue state, epoch row and legacy record.
    """
    try:
        with open(path, "rb") as handle:
            head = handle.read(len(_SQLITE_MAGIC))
    except FileNotFoundError:
        return
    except OSError as err:
        raise StoreError(f"run store {path} cannot be read: {err.strerror or err}") from err
    if head and head != _SQLITE_MAGIC:
        raise StoreError(f"{path} is not an SQLite run store (damaged or another file); move it "
                         "aside to start a new store")
    if not head and any(path.parent.glob("*/results.json")):
        raise StoreError(f"run store {path} is empty (0 bytes) although results exist in "
                         f"{path.parent}: it was truncated or replaced; move it aside to start a "
                         "new store (results.json files are kept)")


def _finite_or_none(value: Any) -> float | None:
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _int_or_none(value: Any) -> int | None:
    return None if value is None else int(round(float(value)))


def _iso_to_unix(value: Any) -> float | None:
    if not isinstance(value, str):
        return _finite_or_none(value)
    try:
        return dt.datetime.fromisoformat(value).timestamp()
    except ValueError:
        return None


def summarize_result(
    record: Mapping[str, Any], summary: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The sortable summary columns of a result record.

    Sources, first match wins per column: the explicit ``summary`` argument, the record's own
    top-level ``"summary"`` object (fembed records should carry one with exactly the
    ``SUMMARY_COLUMNS`` keys), then fields of the original's record format (spec §6.2):
    precision/recall/auc from ``val_metrics``, predicted positives ``n_positive_preds``,
    TP = round(precision * n_positive_preds), collapsed = pred_range < 0.1,
    seconds = training_time_min * 60, finished_at from ``timestamp``. Stds stay None for a
    single-seed legacy record.
    """
    unknown = set(summary or ()) - set(SUMMARY_COLUMNS)
    if unknown:
        raise ValueError(f"unknown summary column(s) {sorted(unknown)}; known: {SUMMARY_COLUMNS}")
    given: dict[str, Any] = {}
    embedded = record.get("summary")
    if isinstance(embedded, Mapping):  # extra keys in the record's own summary are ignored
        given.update(embedded)
    given.update(summary or {})

    val = record.get("val_metrics") if isinstance(record.get("val_metrics"), Mapping) else {}
    training = record.get("training") if isinstance(record.get("training"), Mapping) else {}
    fallback: dict[str, Any] = {
        # 0 predicted positives: precision is undefined, not 0
        "precision_mean": None if val.get("n_positive_preds") == 0 else val.get("precision"),
        "recall_mean": val.get("recall"),
        "auc_mean": val.get("auc"),
        "pred_pos_total": val.get("n_positive_preds"),
        "finished_at": record.get("timestamp"),
    }
    if val.get("precision") is not None and val.get("n_positive_preds") is not None:
        fallback["tp_total"] = float(val["precision"]) * float(val["n_positive_preds"])
    if val.get("pred_range") is not None:
        fallback["collapsed"] = float(val["pred_range"]) < _LEGACY_COLLAPSE_RANGE
    if training.get("training_time_min") is not None:
        fallback["seconds"] = float(training["training_time_min"]) * 60.0

    def pick(column: str) -> Any:
        if column in ("precision_mean", "precision_std") and column in given:
            return given[column]  # an explicit None (undefined precision) is not a missing value
        value = given.get(column)
        return fallback.get(column) if value is None else value

    out: dict[str, Any] = {}
    for column in ("precision_mean", "precision_std", "recall_mean", "auc_mean", "auc_std", "seconds"):
        out[column] = _finite_or_none(pick(column))
    for column in ("tp_total", "pred_pos_total", "epochs"):
        out[column] = _int_or_none(pick(column))
    collapsed = pick("collapsed")
    out["collapsed"] = None if collapsed is None else int(bool(collapsed))
    out["finished_at"] = _iso_to_unix(pick("finished_at"))
    return out


def _config_fields(config: Any) -> tuple[str, str | None, str | None, str, str]:
    """(exp_id, priority, tier, config_hash, config_json) of an ExperimentConfig or a mapping."""
    if isinstance(config, Mapping):
        data = dict(config)
        config_hash = data.pop("config_hash", None)
    else:
        config_hash = getattr(config, "config_hash", None)
        if hasattr(config, "to_dict"):
            data = dict(config.to_dict())
        elif dataclasses.is_dataclass(config):
            # Not dataclasses.asdict: it deep-copies and read-only mappings cannot be copied.
            data = {f.name: getattr(config, f.name) for f in dataclasses.fields(config)}
        else:
            raise TypeError(f"cannot queue {type(config).__name__}: expected ExperimentConfig or mapping")
    exp_id = data.get("exp_id")
    if not isinstance(exp_id, str) or not exp_id:
        raise ValueError(f"queued config without an exp_id: {data!r:.120}")
    if not isinstance(config_hash, str) or not config_hash:
        raise ValueError(f"experiment {exp_id}: config has no config_hash")
    config_json = json.dumps(to_jsonable(data), sort_keys=True, allow_nan=False)
    priority = data.get("priority")
    tier = data.get("tier")
    return exp_id, (None if priority is None else str(priority)), (None if tier is None else str(tier)), config_hash, config_json


def _row_dict(row: sqlite3.Row) -> dict[str, Any]:
    out = dict(row)
    for column in _BOOL_COLUMNS:
        if column in out and out[column] is not None:
            out[column] = bool(out[column])
    return out


class RunStore:
    """The run store at ``path`` (created with its schema on first open).

    Use as a context manager, or call ``close()``; one connection per store object, shared by
    the object's methods under a lock (so a Textual worker thread may use it too).
    ``readonly=True`` opens a reader (TUI, ``fembed status``): it needs an existing store of
    this schema version, opens it read-only at the SQLite level and refuses every write.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        readonly: bool = False,
        busy_timeout_s: float | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if busy_timeout_s is None:
            busy_timeout_s = float(os.environ.get("FEMBED_STORE_BUSY_TIMEOUT_S") or DEFAULT_BUSY_TIMEOUT_S)
        self.path = pathlib.Path(path)
        self.readonly = readonly
        self._clock = clock
        self._busy_timeout_s = busy_timeout_s
        self._lock = threading.RLock()
        self._conn: sqlite3.Connection | None = None
        if readonly:
            self._conn = self._open_reader()
            return
        _refuse_foreign_file(self.path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise StoreError(f"run store {self.path} cannot be created: {err.strerror or err}") from err
        try:
            self._conn = sqlite3.connect(
                self.path,
                timeout=busy_timeout_s,
                isolation_level=None,  # autocommit; transactions are explicit BEGIN ... COMMIT
                check_same_thread=False,
            )
            self._conn.row_factory = sqlite3.Row
            self._conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_s * 1000)}")
            self._enable_wal()
            self._ensure_schema()
        except sqlite3.Error as err:  # full disk, read-only folder, not an SQLite file
            self.close()
            raise StoreError(f"run store {self.path} cannot be opened for writing: {err}") from err
        except BaseException:
            self.close()
            raise

    def _open_reader(self) -> sqlite3.Connection:
        """A connection that never writes, not even the schema or the journal mode, so a store
        on read-only media, or one another user owns, can still be read. A folder we cannot
        write holds no live writer either (it could not create its journal), so the file is
        opened as immutable there: SQLite then needs no -shm file beside it."""
        if not self.path.exists():
            raise StoreError(f"no run store at {self.path}")
        _refuse_foreign_file(self.path)
        if not os.access(self.path, os.R_OK):
            raise StoreError(f"run store {self.path} cannot be read: permission denied")
        # Where the store can be written, the reader takes part in WAL's shared-memory index like
        # any connection (mode=rw never creates the file; query_only refuses every write): a
        # mode=ro connection to a live WAL store fails with "disk I/O error" while a writer
        # resets the index. Elsewhere mode=ro, and immutable where the folder is read-only.
        writable = os.access(self.path, os.W_OK) and os.access(self.path.parent, os.W_OK)
        immutable = not os.access(self.path.parent, os.W_OK)
        mode = "rw" if writable else "ro&immutable=1" if immutable else "ro"
        uri = f"{self.path.resolve().as_uri()}?mode={mode}"
        conn = None
        try:
            conn = sqlite3.connect(uri, uri=True, timeout=self._busy_timeout_s, isolation_level=None,
                                   check_same_thread=False)
            conn.row_factory = sqlite3.Row
            conn.execute(f"PRAGMA busy_timeout = {int(self._busy_timeout_s * 1000)}")
            conn.execute("PRAGMA query_only = 1")
            row = conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' "
                               "AND name = 'schema_version'").fetchone()
            version = conn.execute("SELECT version FROM schema_version WHERE id = 1").fetchone() if row else None
        except sqlite3.Error as err:
            if conn is not None:
                conn.close()
            raise StoreError(f"run store {self.path} cannot be read: {err}") from err
        if version is not None and version[0] < SCHEMA_VERSION and not immutable:
            conn.close()  # an older store: a writer migrates it (one transaction), then we read
            RunStore(self.path, busy_timeout_s=self._busy_timeout_s).close()
            return self._open_reader()
        if version is None or version[0] != SCHEMA_VERSION:
            conn.close()
            if version is None:
                raise StoreError(f"{self.path} is not a fembed run store (it has no schema)")
            raise StoreError(f"run store {self.path} has schema version {version[0]}; this fembed reads "
                             f"{SCHEMA_VERSION} (a writer such as `fembed run` migrates an older one)")
        return conn

    # -- lifecycle ---------------------------------------------------------------------------

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    @property
    def closed(self) -> bool:
        return self._conn is None

    def __enter__(self) -> RunStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        mode = "readonly" if self.readonly else "read-write"
        return f"RunStore({str(self.path)!r}, {mode}{', closed' if self.closed else ''})"

    # -- connection plumbing -----------------------------------------------------------------

    @property
    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            raise StoreError(f"run store {self.path} is closed")
        return self._conn

    def _retry_locked(self, action: Callable[[], Any]) -> Any:
        """Run ``action``, retrying "database is locked" until busy_timeout has passed.

        busy_timeout covers ordinary lock waits; this covers the few places SQLite returns
        SQLITE_BUSY without calling the busy handler (switching to WAL, WAL recovery).
        """
        deadline = time.monotonic() + self._busy_timeout_s
        delay = 0.005
        while True:
            try:
                return action()
            except sqlite3.OperationalError as err:
                if "locked" not in str(err) and "busy" not in str(err):
                    raise
                if time.monotonic() >= deadline:
                    raise StoreError(f"run store {self.path} is locked by another process or connection "
                                     f"(waited {self._busy_timeout_s:g}s)") from err
                time.sleep(delay)
                delay = min(delay * 2, 0.2)

    def _enable_wal(self) -> None:
        mode = self._db.execute("PRAGMA journal_mode").fetchone()[0]
        if mode.lower() != "wal":
            mode = self._retry_locked(lambda: self._db.execute("PRAGMA journal_mode = WAL").fetchone()[0])
            if mode.lower() != "wal":
                raise StoreError(f"run store {self.path}: cannot switch to WAL journal (got {mode!r})")

    @contextlib.contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One short write transaction holding SQLite's write lock from its first statement."""
        if self.readonly:
            raise StoreError(f"run store {self.path} was opened read-only")
        with self._lock:
            db = self._db
            self._retry_locked(lambda: db.execute("BEGIN IMMEDIATE"))
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

    @contextlib.contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        """A consistent snapshot for several SELECTs; in WAL it never blocks a writer."""
        with self._lock:
            db = self._db
            db.execute("BEGIN")
            try:
                yield db
            finally:
                db.execute("COMMIT")

    def _ensure_schema(self) -> None:
        db = self._db
        has_table = db.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'"
        ).fetchone()
        if has_table:
            row = db.execute("SELECT version FROM schema_version WHERE id = 1").fetchone()
            if row is not None and row[0] == SCHEMA_VERSION:
                return
        # Create or migrate under the write lock; re-check inside: another process may have won.
        with self._lock:
            self._retry_locked(lambda: db.execute("BEGIN IMMEDIATE"))
            try:
                self._create_or_migrate(db)
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

    def _create_or_migrate(self, db: sqlite3.Connection) -> None:
        now = self._clock()
        has_table = db.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'"
        ).fetchone()
        if not has_table:
            for statement in _SCHEMA_V1:  # not executescript: it would COMMIT our transaction
                db.execute(statement)
            db.execute("INSERT INTO schema_version (id, version, updated_at) VALUES (1, 1, ?)", (now,))
            version = 1
        else:
            version = db.execute("SELECT version FROM schema_version WHERE id = 1").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"run store {self.path} has schema version {version}, newer than this fembed "
                f"understands ({SCHEMA_VERSION}); upgrade fembed"
            )
        while version < SCHEMA_VERSION:
            migrate = MIGRATIONS.get(version)
            if migrate is None:
                raise StoreError(f"run store {self.path}: no migration from schema version {version}")
            migrate(db)
            faults.hit("store.migrate")  # a crash here rolls the whole migration back
            version += 1
            db.execute("UPDATE schema_version SET version = ?, updated_at = ? WHERE id = 1", (version, now))

    def schema_version(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT version FROM schema_version WHERE id = 1").fetchone()[0])

    # -- queue -------------------------------------------------------------------------------

    def sync_queue(self, configs: Iterable[Any]) -> SyncReport:
        """Make the queue match ``configs`` (ExperimentConfig objects or mappings with
        ``exp_id`` and ``config_hash``), in the given order.

        New experiments become pending. A known experiment whose config hash changed is reset
        to pending whatever its state (its old result no longer describes this config; a
        runner still training the old config loses its claim and sees ``heartbeat`` return
        False). Same hash: state untouched, registry order/priority/tier refreshed.
        Experiments absent from ``configs`` are left as they are.
        """
        rows = [_config_fields(config) for config in configs]
        seen: set[str] = set()
        for exp_id, *_ in rows:
            if exp_id in seen:
                raise ValueError(f"experiment {exp_id} appears twice in the queue")
            seen.add(exp_id)
        added, reset, unchanged = [], [], []
        now = self._clock()
        with self._write() as db:
            known = {
                row["exp_id"]: row["config_hash"]
                for row in db.execute("SELECT exp_id, config_hash FROM experiments")
            }
            for order, (exp_id, priority, tier, config_hash, config_json) in enumerate(rows):
                old_hash = known.get(exp_id)
                if old_hash is None:
                    db.execute(
                        "INSERT INTO experiments (exp_id, queue_order, priority, tier, config_hash,"
                        " config_json, state, updated_at) VALUES (?, ?, ?, ?, ?, ?, 'pending', ?)",
                        (exp_id, order, priority, tier, config_hash, config_json, now),
                    )
                    added.append(exp_id)
                elif old_hash != config_hash:
                    db.execute(
                        "UPDATE experiments SET queue_order = ?, priority = ?, tier = ?,"
                        " config_hash = ?, config_json = ?, state = 'pending', attempts = 0,"
                        " error = NULL, claimed_by = NULL, heartbeat_at = NULL, started_at = NULL,"
                        " finished_at = NULL, epochs_run = 0, updated_at = ? WHERE exp_id = ?",
                        (order, priority, tier, config_hash, config_json, now, exp_id),
                    )
                    reset.append(exp_id)
                else:
                    db.execute(
                        "UPDATE experiments SET queue_order = ?, priority = ?, tier = ?, config_json = ?"
                        " WHERE exp_id = ?",
                        (order, priority, tier, config_json, exp_id),
                    )
                    unchanged.append(exp_id)
        if reset:
            log.info("run store %s: config changed, reset to pending: %s", self.path, ", ".join(reset))
        return SyncReport(tuple(added), tuple(reset), tuple(unchanged))

    def _claim_verdict(
        self,
        row: sqlite3.Row,
        owner: str,
        now: float,
        stale_after_s: float,
        max_attempts: int | None,
        retry_failed: bool,
    ) -> bool:
        state = row["state"]
        if max_attempts is not None and row["attempts"] >= max_attempts and state != "running":
            return False
        if state == "pending" or (state == "failed" and retry_failed):
            return True
        if state != "running":
            return False
        if row["claimed_by"] == owner:
            return True
        verdict = judge(row["claimed_by"], row["heartbeat_at"], row["started_at"], now, stale_after_s)
        if verdict.dead:
            log.warning("run store %s: %s takes over %s from %s (%s)",
                        self.path, owner, row["exp_id"], row["claimed_by"], verdict.reason)
            return True
        return False

    def _take(self, db: sqlite3.Connection, row: sqlite3.Row, owner: str, now: float) -> None:
        if row["state"] == "running" and row["claimed_by"] == owner:
            db.execute("UPDATE experiments SET heartbeat_at = ?, updated_at = ? WHERE exp_id = ?", (now, now, row["exp_id"]))
            return
        db.execute(
            "UPDATE experiments SET state = 'running', claimed_by = ?, heartbeat_at = ?,"
            " started_at = ?, finished_at = NULL, error = NULL, attempts = attempts + 1,"
            " updated_at = ? WHERE exp_id = ?",
            (owner, now, now, now, row["exp_id"]),
        )

    def claim(
        self,
        exp_id: str,
        owner: str,
        stale_after_s: float = STALE_AFTER_S,
        *,
        max_attempts: int | None = None,
    ) -> bool:
        """Atomically claim ``exp_id`` for ``owner``; True if ``owner`` now holds it.

        Succeeds for pending or failed experiments, for running ones whose heartbeat is older
        than ``stale_after_s`` (or whose owner process on this host is gone), and
        idempotently for the current owner. Counts an attempt. Done/skipped: False.
        """
        now = self._clock()
        with self._write() as db:
            row = db.execute("SELECT * FROM experiments WHERE exp_id = ?", (exp_id,)).fetchone()
            if row is None:
                raise StoreError(f"run store {self.path}: unknown experiment {exp_id} (sync the queue first)")
            if not self._claim_verdict(row, owner, now, stale_after_s, max_attempts, retry_failed=True):
                return False
            self._take(db, row, owner, now)
            faults.hit("store.claim")
            return True

    def claim_next(
        self,
        owner: str,
        *,
        exp_ids: Sequence[str] | None = None,
        stale_after_s: float = STALE_AFTER_S,
        retry_failed: bool = False,
        max_attempts: int | None = None,
    ) -> str | None:
        """Claim the first claimable experiment in queue order (optionally among ``exp_ids``).

        Failed experiments are retried only with ``retry_failed`` (so a deterministic failure
        cannot loop a runner forever). Returns the claimed id or None.
        """
        now = self._clock()
        wanted = None if exp_ids is None else set(exp_ids)
        with self._write() as db:
            rows = db.execute(
                "SELECT * FROM experiments WHERE state IN ('pending', 'failed', 'running')"
                " ORDER BY queue_order, exp_id"
            ).fetchall()
            for row in rows:
                if wanted is not None and row["exp_id"] not in wanted:
                    continue
                if row["state"] == "running" and row["claimed_by"] == owner:
                    continue  # already ours: not "next"
                if self._claim_verdict(row, owner, now, stale_after_s, max_attempts, retry_failed):
                    self._take(db, row, owner, now)
                    return str(row["exp_id"])
        return None

    def heartbeat(self, exp_id: str, owner: str) -> bool:
        """Refresh ``owner``'s claim; False means the claim was lost (taken over or reset)."""
        now = self._clock()
        with self._write() as db:
            cursor = db.execute(
                "UPDATE experiments SET heartbeat_at = ?, updated_at = ?"
                " WHERE exp_id = ? AND claimed_by = ? AND state = 'running'",
                (now, now, exp_id, owner),
            )
            return cursor.rowcount == 1

    def release(self, exp_id: str, owner: str, state: str = "pending", error: str | None = None) -> bool:
        """Give up ``owner``'s claim, leaving the experiment in ``state``.

        ``pending``: interrupted, resume later; ``failed`` (with ``error``); ``skipped``.
        (``done`` only through ``record_result``.) False if ``owner`` did not hold the claim.
        """
        if state not in ("pending", "failed", "skipped"):
            raise ValueError(f"release of {exp_id}: state must be pending, failed or skipped, not {state!r}")
        now = self._clock()
        finished = None if state == "pending" else now
        with self._write() as db:
            cursor = db.execute(
                "UPDATE experiments SET state = ?, error = ?, claimed_by = NULL, heartbeat_at = NULL,"
                " finished_at = ?, updated_at = ? WHERE exp_id = ? AND claimed_by = ? AND state = 'running'",
                (state, error, finished, now, exp_id, owner),
            )
            return cursor.rowcount == 1

    def mark_failed(self, exp_id: str, owner: str, error: str) -> bool:
        """``release(exp_id, owner, "failed", error)``."""
        return self.release(exp_id, owner, "failed", error)

    def reset(self, exp_id: str) -> bool:
        """Forget every run of ``exp_id`` (for ``--force``): pending, 0 attempts, no claim,
        epochs and its (non-legacy) result deleted. False if the experiment is unknown."""
        now = self._clock()
        with self._write() as db:
            cursor = db.execute(
                "UPDATE experiments SET state = 'pending', attempts = 0, error = NULL, claimed_by = NULL,"
                " heartbeat_at = NULL, started_at = NULL, finished_at = NULL, epochs_run = 0,"
                " updated_at = ? WHERE exp_id = ?",
                (now, exp_id),
            )
            db.execute("DELETE FROM epochs WHERE exp_id = ?", (exp_id,))
            self._archive(db, exp_id, now)
            db.execute("DELETE FROM results WHERE exp_id = ? AND legacy = 0", (exp_id,))
            return cursor.rowcount == 1

    @staticmethod
    def _archive(db: sqlite3.Connection, exp_id: str, now: float, keep_hash: str | None = None) -> None:
        """Copy the fembed result of ``exp_id`` to result_history before it is replaced (not
        when the replacement is of the same run hash: that is the same result again)."""
        columns = ", ".join(_HISTORY_COLUMNS)
        db.execute(
            f"INSERT OR IGNORE INTO result_history ({columns}, replaced_at) SELECT {columns}, ?"
            " FROM results WHERE exp_id = ? AND legacy = 0 AND config_hash IS NOT ?",
            (now, exp_id, keep_hash),
        )
        faults.hit("store.archive")

    def requeue(self, exp_id: str) -> str:
        """Put a failed, skipped or interrupted (owner dead, fembed_jax.liveness) experiment back
        to pending, keeping its epochs and checkpoints so the next run resumes it. Returns the
        state it had; raises StoreError for one that is done or held by a live runner."""
        with self._write() as db:
            row = db.execute("SELECT * FROM experiments WHERE exp_id = ?", (exp_id,)).fetchone()
            if row is None:
                raise StoreError(f"{exp_id}: not in the run store {self.path}")
            state = row["state"]
            if state == "running":
                verdict = judge(row["claimed_by"], row["heartbeat_at"], row["started_at"], self._clock())
                if not verdict.dead:
                    raise StoreError(f"{exp_id}: held by the live runner {row['claimed_by']} "
                                     f"({verdict.reason}); stop it first")
                state = "interrupted"
            elif state in ("done", "pending"):
                raise StoreError(f"{exp_id}: {state}; nothing to re-queue"
                                 + (" (fembed run --force trains it again)" if state == "done" else ""))
            db.execute("UPDATE experiments SET state = 'pending', error = NULL, claimed_by = NULL,"
                       " heartbeat_at = NULL, updated_at = ? WHERE exp_id = ?", (self._clock(), exp_id))
            return state

    # -- metrics and results -----------------------------------------------------------------

    def record_epoch(
        self,
        exp_id: str,
        config_hash: str,
        epoch: int,
        rows: Iterable[Mapping[str, Any]],
        *,
        attempt: int | None = None,
    ) -> None:
        """Upsert one epoch's metrics, one row per seed.

        Each row: ``seed`` (required), ``train_loss``, ``val_loss``, ``val_auc`` (None or NaN
        stored as NULL), ``active`` (seed still training), ``is_best`` (this epoch is the
        seed's best so far). A resumed run re-recording an epoch overwrites it. ``attempt``
        defaults to the experiment's current attempt count.
        """
        if epoch < 0:
            raise ValueError(f"experiment {exp_id}: epoch must be >= 0, got {epoch}")
        now = self._clock()
        values = []
        for row in rows:
            if "seed" not in row:
                raise ValueError(f"experiment {exp_id} epoch {epoch}: metrics row without 'seed': {dict(row)!r:.120}")
            values.append(
                (
                    int(row["seed"]),
                    _finite_or_none(row.get("train_loss")),
                    _finite_or_none(row.get("val_loss")),
                    _finite_or_none(row.get("val_auc")),
                    int(bool(row.get("active", True))),
                    int(bool(row.get("is_best", False))),
                )
            )
        with self._write() as db:
            if attempt is None:
                found = db.execute("SELECT attempts FROM experiments WHERE exp_id = ?", (exp_id,)).fetchone()
                attempt = int(found[0]) if found else 0
            db.executemany(
                "INSERT INTO epochs (exp_id, config_hash, epoch, seed, attempt, train_loss, val_loss,"
                " val_auc, active, is_best, recorded_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (exp_id, config_hash, epoch, seed) DO UPDATE SET"
                " attempt = excluded.attempt, train_loss = excluded.train_loss,"
                " val_loss = excluded.val_loss, val_auc = excluded.val_auc, active = excluded.active,"
                " is_best = excluded.is_best, recorded_at = excluded.recorded_at",
                [(exp_id, config_hash, epoch, seed, attempt, *rest, now) for seed, *rest in values],
            )
            db.execute(
                "UPDATE experiments SET updated_at = ?, epochs_run = (SELECT COUNT(DISTINCT epoch)"
                " FROM epochs WHERE exp_id = ? AND config_hash = ?) WHERE exp_id = ? AND config_hash = ?",
                (now, exp_id, config_hash, exp_id, config_hash),
            )
            faults.hit("store.record_epoch")

    def truncate_epochs(self, exp_id: str, config_hash: str, after_epoch: int) -> int:
        """Delete epochs later than ``after_epoch`` (call when resuming from that checkpoint:
        epochs a crashed attempt recorded past its last checkpoint are re-run). Returns rows deleted."""
        now = self._clock()
        with self._write() as db:
            cursor = db.execute(
                "DELETE FROM epochs WHERE exp_id = ? AND config_hash = ? AND epoch > ?",
                (exp_id, config_hash, after_epoch),
            )
            db.execute(
                "UPDATE experiments SET updated_at = ?, epochs_run = (SELECT COUNT(DISTINCT epoch)"
                " FROM epochs WHERE exp_id = ? AND config_hash = ?) WHERE exp_id = ? AND config_hash = ?",
                (now, exp_id, config_hash, exp_id, config_hash),
            )
            return cursor.rowcount

    def record_result(
        self,
        exp_id: str,
        config_hash: str | None,
        result: Mapping[str, Any],
        *,
        summary: Mapping[str, Any] | None = None,
        legacy: bool = False,
    ) -> bool:
        """Store a result record (the dict written to results.json) and its summary columns.

        A fembed result replaces any earlier result of ``exp_id`` and marks the experiment done
        (claim released) if the queue still holds the same ``config_hash``; returns whether it
        did. ``legacy=True`` (an imported result of the original system) never touches the
        queue and never replaces a fembed result; returns whether it was stored.
        """
        columns = summarize_result(result, summary)
        results_json = dumps(result, indent=None)
        now = self._clock()
        names = ", ".join(SUMMARY_COLUMNS)
        placeholders = ", ".join("?" for _ in SUMMARY_COLUMNS)
        updates = ", ".join(f"{c} = excluded.{c}" for c in SUMMARY_COLUMNS)
        params = (exp_id, config_hash, results_json, *(columns[c] for c in SUMMARY_COLUMNS), int(legacy), now)
        sql = (
            f"INSERT INTO results (exp_id, config_hash, results_json, {names}, legacy, recorded_at)"
            f" VALUES (?, ?, ?, {placeholders}, ?, ?) ON CONFLICT (exp_id) DO UPDATE SET"
            f" config_hash = excluded.config_hash, results_json = excluded.results_json, {updates},"
            f" legacy = excluded.legacy, recorded_at = excluded.recorded_at"
        )
        with self._write() as db:
            if legacy:
                cursor = db.execute(sql + " WHERE results.legacy = 1", params)
                return cursor.rowcount == 1
            self._archive(db, exp_id, now, keep_hash=config_hash)
            db.execute(sql, params)
            cursor = db.execute(
                "UPDATE experiments SET state = 'done', error = NULL, claimed_by = NULL,"
                " heartbeat_at = NULL, finished_at = ?, updated_at = ? WHERE exp_id = ? AND config_hash = ?",
                (now, now, exp_id, config_hash),
            )
            faults.hit("store.record_result")
            return cursor.rowcount == 1

    # -- readers -----------------------------------------------------------------------------

    def experiments(
        self,
        *,
        state: str | Iterable[str] | None = None,
        tier: str | None = None,
        exp_ids: Iterable[str] | None = None,
    ) -> list[dict[str, Any]]:
        """Queue rows in registry order, optionally filtered by state(s), tier and ids."""
        where, params = [], []
        if state is not None:
            states = [state] if isinstance(state, str) else list(state)
            bad = set(states) - set(STATES)
            if bad:
                raise ValueError(f"unknown state(s) {sorted(bad)}; known: {STATES}")
            where.append(f"state IN ({', '.join('?' for _ in states)})")
            params += states
        if tier is not None:
            where.append("tier = ?")
            params.append(tier)
        if exp_ids is not None:
            ids = list(exp_ids)
            where.append(f"exp_id IN ({', '.join('?' for _ in ids)})")
            params += ids
        sql = "SELECT * FROM experiments"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY queue_order, exp_id"
        with self._lock:
            return [_row_dict(row) for row in self._db.execute(sql, params).fetchall()]

    def experiment(self, exp_id: str) -> dict[str, Any] | None:
        with self._lock:
            row = self._db.execute("SELECT * FROM experiments WHERE exp_id = ?", (exp_id,)).fetchone()
        return None if row is None else _row_dict(row)

    def counts(self) -> dict[str, int]:
        """Number of experiments per state (every state present, zeros included)."""
        with self._lock:
            rows = self._db.execute("SELECT state, COUNT(*) FROM experiments GROUP BY state").fetchall()
        counts = dict.fromkeys(STATES, 0)
        counts.update({state: n for state, n in rows})
        return counts

    def epochs(self, exp_id: str, config_hash: str | None = None) -> list[dict[str, Any]]:
        """Per-seed epoch rows of ``exp_id`` ordered by (epoch, seed), for ``config_hash``
        (default: the queue's current hash; every hash if the experiment is not queued)."""
        with self._read() as db:
            if config_hash is None:
                found = db.execute("SELECT config_hash FROM experiments WHERE exp_id = ?", (exp_id,)).fetchone()
                config_hash = None if found is None else found[0]
            if config_hash is None:
                rows = db.execute("SELECT * FROM epochs WHERE exp_id = ? ORDER BY epoch, seed", (exp_id,)).fetchall()
            else:
                rows = db.execute(
                    "SELECT * FROM epochs WHERE exp_id = ? AND config_hash = ? ORDER BY epoch, seed",
                    (exp_id, config_hash),
                ).fetchall()
        return [_row_dict(row) for row in rows]

    def _result_dict(self, row: sqlite3.Row, with_record: bool) -> dict[str, Any]:
        out = _row_dict(row)
        queued_hash = out.pop("queued_hash", None)
        # current: does this result describe the experiment's config as queued now?
        out["current"] = None if queued_hash is None else (out["config_hash"] == queued_hash)
        raw = out.pop("results_json")
        if with_record:
            out["record"] = json.loads(raw)
        return out

    def results(self, *, include_legacy: bool = True, with_record: bool = True) -> list[dict[str, Any]]:
        """All results (summary columns, ``legacy``, ``current``, and the parsed ``record``)."""
        sql = (
            "SELECT r.*, e.config_hash AS queued_hash FROM results r"
            " LEFT JOIN experiments e ON e.exp_id = r.exp_id"
        )
        if not include_legacy:
            sql += " WHERE r.legacy = 0"
        sql += " ORDER BY COALESCE(e.queue_order, 1 << 30), r.exp_id"
        with self._lock:
            rows = self._db.execute(sql).fetchall()
        return [self._result_dict(row, with_record) for row in rows]

    def result(self, exp_id: str) -> dict[str, Any] | None:
        with self._lock:
            row = self._db.execute(
                "SELECT r.*, e.config_hash AS queued_hash FROM results r"
                " LEFT JOIN experiments e ON e.exp_id = r.exp_id WHERE r.exp_id = ?",
                (exp_id,),
            ).fetchone()
        return None if row is None else self._result_dict(row, True)

    def history(self, exp_id: str) -> list[dict[str, Any]]:
        """Earlier fembed results of ``exp_id`` that other runs replaced, newest first (each
        with its parsed ``record`` and ``replaced_at``)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT * FROM result_history WHERE exp_id = ? ORDER BY replaced_at DESC", (exp_id,)
            ).fetchall()
        out = []
        for row in rows:
            item = _row_dict(row)
            item["record"] = json.loads(item.pop("results_json"))
            out.append(item)
        return out

    def is_done(self, exp_id: str, config_hash: str) -> bool:
        """True if a fembed (non-legacy) result of ``exp_id`` for ``config_hash`` is stored."""
        with self._lock:
            row = self._db.execute(
                "SELECT 1 FROM results WHERE exp_id = ? AND config_hash = ? AND legacy = 0",
                (exp_id, config_hash),
            ).fetchone()
        return row is not None
