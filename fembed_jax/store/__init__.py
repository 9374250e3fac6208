"""The run store: one SQLite file (outputs/fembed.db) shared by runners, the TUI and the CLI.

It holds the queue (one row per experiment, with a claim and a heartbeat so two runners never
train the same experiment), per-epoch metrics per seed, the runner's machine use after each
epoch, and the result of every experiment.
Import everything from here; the modules are where each concern lives:

* ``db``      opening (writer and reader modes, WAL, busy retry), transactions: ``StoreBase``
* ``schema``  the tables, ``SCHEMA_VERSION``, ``STATES`` and the migrations
* ``queue``   the queue's state machine (sync, claim, heartbeat, release, reset, requeue)
* ``epochs``  per-epoch metrics per seed
* ``machines`` the runner's CPU, memory and GPU use after each epoch (bounded per experiment)
* ``results`` result records, their summary columns and the history of replaced results
"""

from __future__ import annotations

from fembed_jax.liveness import make_owner
from fembed_jax.store.db import DB_FILENAME, StoreError, default_store_path
from fembed_jax.store.epochs import EpochStore
from fembed_jax.store.machines import MachineStore
from fembed_jax.store.queue import QueueStore, SyncReport
from fembed_jax.store.results import SUMMARY_COLUMNS, ResultStore, summarize_result
from fembed_jax.store.schema import MIGRATIONS, SCHEMA_VERSION, STATES

__all__ = [
    "RunStore",
    "StoreError",
    "SyncReport",
    "SCHEMA_VERSION",
    "STATES",
    "DB_FILENAME",
    "MIGRATIONS",
    "SUMMARY_COLUMNS",
    "default_store_path",
    "make_owner",
    "summarize_result",
]


class RunStore(QueueStore, EpochStore, MachineStore, ResultStore):
    """The run store at ``path`` (created with its schema on first open): its queue, epoch rows,
    machine samples and results over one connection (fembed_jax.store.db.StoreBase).

    Use as a context manager, or call ``close()``; one connection per store object, shared by
    the object's methods under a lock (so a Textual worker thread may use it too).
    ``readonly=True`` opens a reader (TUI, ``fembed status``): it needs an existing store of
    this schema version (an older one is migrated first, or where the store cannot be written,
    read as it is from schema.READABLE_SINCE on), opens it read-only at the SQLite level and
    refuses every write.
    """
