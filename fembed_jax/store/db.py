"""Opening the run store and the connection every store method goes through.

Concurrency model
-----------------
* WAL journal: readers never block the writer and the writer never blocks readers.
* Every write is one short ``BEGIN IMMEDIATE`` transaction (``StoreBase._write``): it takes
  the single write lock up front, so a read-then-update inside it is atomic across processes,
  and a waiting writer queues on ``busy_timeout`` instead of failing with "database is locked".
* Readers run in autocommit mode (each SELECT is its own snapshot, or a short ``BEGIN`` when
  several SELECTs must agree: ``StoreBase._read``), so they never hold a snapshot open between
  polls. Reader stores (``readonly=True``) set ``PRAGMA query_only`` and cannot write by accident.

Times are Unix seconds (``time.time()``, REAL columns).
"""

from __future__ import annotations

import contextlib
import math
import os
import pathlib
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, Self

from fembed_jax import faults
from fembed_jax.store import schema

__all__ = [
    "BOOL_COLUMNS",
    "DB_FILENAME",
    "DEFAULT_BUSY_TIMEOUT_S",
    "StoreBase",
    "StoreError",
    "default_store_path",
    "finite_or_none",
    "row_dict",
]

DB_FILENAME = "fembed.db"
# How long a write waits for another writer's lock before it fails.
DEFAULT_BUSY_TIMEOUT_S = 30.0  # FEMBED_STORE_BUSY_TIMEOUT_S overrides it (seconds)
BOOL_COLUMNS = ("active", "is_best", "collapsed", "legacy")  # 0/1 columns, read back as bools


class StoreError(RuntimeError):
    """The run store cannot be used (newer schema, unknown experiment, invalid state)."""


def default_store_path(outputs_dir: str | os.PathLike[str] = "outputs") -> pathlib.Path:
    return pathlib.Path(outputs_dir) / DB_FILENAME


def finite_or_none(value: Any) -> float | None:
    """``value`` as a float for a REAL column; None, NaN and infinities as NULL."""
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def row_dict(row: sqlite3.Row) -> dict[str, Any]:
    """A row as a dict, its BOOL_COLUMNS as bools."""
    out = dict(row)
    for column in BOOL_COLUMNS:
        if column in out and out[column] is not None:
            out[column] = bool(out[column])
    return out


def _refuse_foreign_file(path: pathlib.Path) -> None:
    """Refuse a store file that is empty while results exist beside it: SQLite would treat a
    truncated (0-byte) file as a new database and silently start an empty queue, losing every
    queue state, epoch row and legacy record. (A file that is not SQLite at all SQLite refuses
    itself: `_open_error`.)

    Only stat(), never open(): POSIX record locks belong to the process, and closing *any*
    descriptor of the file drops every lock the process's SQLite connections hold on it. Another
    process closing its connection then takes itself for the last one and deletes the -wal and
    -shm files under the live writer (seen: a runner's heartbeat opened a second store and a
    `fembed report` closed, after which the runner wrote into an unlinked WAL that no other
    process could read and new connections failed with "disk I/O error").
    """
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return
    except OSError as err:
        raise StoreError(f"run store {path} cannot be read: {err.strerror or err}") from err
    if size == 0 and any(path.parent.glob("*/results.json")):
        raise StoreError(f"run store {path} is empty (0 bytes) although results exist in "
                         f"{path.parent}: it was truncated or replaced; move it aside to start a "
                         "new store (results.json files are kept)")


# Less free space than this beside the store makes an SQLite open error a full disk (a WAL
# store's first connection creates its 32 kB -shm index, a writer its -wal).
FULL_DISK_BYTES = 2**20


def _open_error(path: pathlib.Path, err: sqlite3.Error, what: str) -> StoreError:
    """The one-line error for SQLite failing to open the store (`what`: "read", "opened for
    writing"): a file that is not SQLite, a full disk (SQLite only says "disk I/O error" when it
    cannot create the -shm index), or SQLite's own words."""
    if isinstance(err, sqlite3.DatabaseError) and "not a database" in str(err):
        return StoreError(f"{path} is not an SQLite run store (damaged or another file); move it "
                          "aside to start a new store")
    try:
        fs = os.statvfs(path.parent)
        free = fs.f_bavail * fs.f_frsize
    except (OSError, AttributeError):  # no statvfs (Windows) or no folder
        free = None
    if free is not None and free < FULL_DISK_BYTES:
        return StoreError(f"run store {path} cannot be {what}: {err}; the disk holding it is full "
                          f"({free // 1024} kB free): nothing is lost, free some space and run the "
                          "same command again")
    return StoreError(f"run store {path} cannot be {what}: {err}")


class StoreBase:
    """The connection to the run store at ``path`` (created with its schema on first open).

    Use as a context manager, or call ``close()``; one connection per store object, shared by
    the object's methods under a lock (so a Textual worker thread may use it too).
    ``readonly=True`` opens a reader (TUI, ``fembed status``): it needs an existing store of
    this schema version (an older one is migrated first, or where the store cannot be written,
    read as it is from schema.READABLE_SINCE on), opens it read-only at the SQLite level and
    refuses every write.
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
            raise _open_error(self.path, err, "opened for writing") from err
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
            raise _open_error(self.path, err, "read") from err
        if version is not None and version[0] < schema.SCHEMA_VERSION and writable:
            conn.close()  # an older store: a writer migrates it (one transaction), then we read
            StoreBase(self.path, busy_timeout_s=self._busy_timeout_s).close()
            return self._open_reader()
        # A store we cannot write is read as it is, if its schema is one this fembed still reads
        # (the tables added since then read as empty).
        if version is None or not schema.READABLE_SINCE <= version[0] <= schema.SCHEMA_VERSION:
            conn.close()
            if version is None:
                raise StoreError(f"{self.path} is not a fembed run store (it has no schema)")
            raise StoreError(f"run store {self.path} has schema version {version[0]}; this fembed reads "
                             f"{schema.READABLE_SINCE} to {schema.SCHEMA_VERSION} (a writer such as "
                             "`fembed run` migrates an older one)")
        if version[0] < schema.SCHEMA_VERSION:
            try:  # temp views only: the store itself is opened read-only (mode=ro)
                conn.execute("PRAGMA query_only = 0")
                schema.read_as_current(conn, version[0])
                conn.execute("PRAGMA query_only = 1")
            except sqlite3.Error as err:
                conn.close()
                raise StoreError(f"run store {self.path} cannot be read: {err}") from err
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

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        mode = "readonly" if self.readonly else "read-write"
        return f"{type(self).__name__}({str(self.path)!r}, {mode}{', closed' if self.closed else ''})"

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

    # -- schema ------------------------------------------------------------------------------

    def _ensure_schema(self) -> None:
        db = self._db
        has_table = db.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'"
        ).fetchone()
        if has_table:
            row = db.execute("SELECT version FROM schema_version WHERE id = 1").fetchone()
            if row is not None and row[0] == schema.SCHEMA_VERSION:
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
            for statement in schema.TABLES_V1:  # not executescript: it would COMMIT our transaction
                db.execute(statement)
            db.execute("INSERT INTO schema_version (id, version, updated_at) VALUES (1, 1, ?)", (now,))
            version = 1
        else:
            version = db.execute("SELECT version FROM schema_version WHERE id = 1").fetchone()[0]
        if version > schema.SCHEMA_VERSION:
            raise StoreError(
                f"run store {self.path} has schema version {version}, newer than this fembed "
                f"understands ({schema.SCHEMA_VERSION}); upgrade fembed"
            )
        while version < schema.SCHEMA_VERSION:
            migrate = schema.MIGRATIONS.get(version)
            if migrate is None:
                raise StoreError(f"run store {self.path}: no migration from schema version {version}")
            migrate(db)
            faults.hit("store.migrate")  # a crash here rolls the whole migration back
            version += 1
            db.execute("UPDATE schema_version SET version = ?, updated_at = ? WHERE id = 1", (version, now))

    def schema_version(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT version FROM schema_version WHERE id = 1").fetchone()[0])
