"""Run store: queue state machine, claims across processes, WAL readers, epochs, results."""

from __future__ import annotations

import dataclasses
import json
import multiprocessing
import os
import sqlite3
import subprocess
import sys
import threading
import time
import types

import numpy as np
import pytest

from fembed_jax.store import schema as schema_mod
from fembed_jax.store import RunStore, StoreError, make_owner
from helpers import old_store


class FakeClock:
    """Deterministic time for heartbeat staleness (no sleeping in tests)."""

    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@dataclasses.dataclass(frozen=True)
class TinyConfig:
    exp_id: str
    priority: str
    tier: str
    d_model: int = 64
    loss_params: types.MappingProxyType = dataclasses.field(
        default_factory=lambda: types.MappingProxyType({"gamma": 2.0})
    )

    @property
    def config_hash(self) -> str:
        return f"h{self.d_model}"


def cfg(exp_id: str, run_hash: str = "h1", tier: str = "a100") -> dict:
    return {"exp_id": exp_id, "priority": "P1", "tier": tier, "run_hash": run_hash}


@pytest.fixture
def db_path(tmp_path):
    return tmp_path / "outputs" / "fembed.db"


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
def store(db_path, clock):
    with RunStore(db_path, clock=clock) as s:
        s.sync_queue([cfg("FE-01"), cfg("FE-02"), cfg("LF-01", tier="a500")])
        yield s


def test_new_store_is_wal_with_current_schema(db_path):
    with RunStore(db_path) as s:
        assert s.schema_version() == schema_mod.SCHEMA_VERSION
    raw = sqlite3.connect(db_path)
    try:
        assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        tables = {r[0] for r in raw.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    finally:
        raw.close()
    assert {"schema_version", "experiments", "epochs", "results"} <= tables


def test_migration_hook_runs_and_newer_schema_is_refused(db_path, monkeypatch):
    RunStore(db_path).close()

    def add_note_column(db):
        db.execute("ALTER TABLE experiments ADD COLUMN note TEXT")

    current = schema_mod.SCHEMA_VERSION
    monkeypatch.setattr(schema_mod, "SCHEMA_VERSION", current + 1)
    monkeypatch.setattr(schema_mod, "MIGRATIONS", {**schema_mod.MIGRATIONS, current: add_note_column})
    with RunStore(db_path) as s:
        assert s.schema_version() == current + 1
        s.sync_queue([cfg("FE-01")])
        assert "note" in s.experiment("FE-01")

    monkeypatch.setattr(schema_mod, "SCHEMA_VERSION", current)
    with pytest.raises(StoreError, match="newer"):
        RunStore(db_path)


def test_sync_queue_adds_keeps_and_resets_on_changed_hash(store):
    assert [e["exp_id"] for e in store.experiments()] == ["FE-01", "FE-02", "LF-01"]
    assert all(e["state"] == "pending" for e in store.experiments())
    assert store.claim("FE-01", "a:1:x")
    assert store.record_result("FE-01", "h1", {"exp_id": "FE-01"})

    report = store.sync_queue([cfg("FE-02"), cfg("FE-01"), cfg("LF-01", "h2"), cfg("AE-01")])
    assert report.added == ("AE-01",)
    assert report.reset == ("LF-01",)
    assert set(report.unchanged) == {"FE-01", "FE-02"}
    assert store.experiment("FE-01")["state"] == "done"  # same hash: untouched
    assert [e["exp_id"] for e in store.experiments()] == ["FE-02", "FE-01", "LF-01", "AE-01"]

    # A changed hash resets a done experiment; its old result no longer counts as done.
    store.sync_queue([cfg("FE-01", "h9")])
    row = store.experiment("FE-01")
    assert (row["state"], row["attempts"], row["run_hash"]) == ("pending", 0, "h9")
    assert not store.is_done("FE-01", "h9")
    assert store.result("FE-01")["current"] is False

    with pytest.raises(ValueError, match="FE-02 appears twice"):
        store.sync_queue([cfg("FE-02"), cfg("FE-02")])


def test_sync_queue_accepts_dataclass_configs_with_readonly_mappings(db_path):
    with RunStore(db_path) as s:
        s.sync_queue([TinyConfig("FE-01", "P1", "a20")])
        row = s.experiment("FE-01")
    assert row["run_hash"] == "h64"  # a config queued directly: keyed by its config hash
    assert json.loads(row["config_json"])["loss_params"] == {"gamma": 2.0}
    assert row["tier"] == "a20"


def test_claim_release_fail_done_state_machine(store):
    assert store.claim("FE-01", "A")
    row = store.experiment("FE-01")
    assert (row["state"], row["attempts"], row["claimed_by"]) == ("running", 1, "A")
    assert not store.claim("FE-01", "B")  # fresh heartbeat: B must wait
    assert store.claim("FE-01", "A")  # idempotent for the holder, no extra attempt
    assert store.experiment("FE-01")["attempts"] == 1
    assert store.heartbeat("FE-01", "A")
    assert not store.heartbeat("FE-01", "B")

    assert not store.release("FE-01", "B")  # not the holder
    assert store.release("FE-01", "A", "pending")  # interrupted
    assert store.experiment("FE-01")["state"] == "pending"
    assert not store.heartbeat("FE-01", "A")

    assert store.claim("FE-01", "B")
    assert store.mark_failed("FE-01", "B", "RuntimeError: boom")
    row = store.experiment("FE-01")
    assert (row["state"], row["error"], row["claimed_by"], row["attempts"]) == ("failed", "RuntimeError: boom", None, 2)

    assert store.claim("FE-01", "C")  # failed experiments may be claimed again
    row = store.experiment("FE-01")
    assert (row["state"], row["error"], row["attempts"]) == ("running", None, 3)
    assert store.record_result("FE-01", "h1", {"exp_id": "FE-01"})
    row = store.experiment("FE-01")
    assert (row["state"], row["claimed_by"]) == ("done", None)
    assert not store.claim("FE-01", "D")
    assert store.is_done("FE-01", "h1")

    assert store.claim("FE-02", "A", max_attempts=1)
    assert store.release("FE-02", "A", "skipped")
    assert not store.claim("FE-02", "A")
    assert store.counts() == {"pending": 1, "running": 0, "done": 1, "failed": 0, "skipped": 1}

    with pytest.raises(ValueError, match="state must be"):
        store.release("LF-01", "A", "done")
    with pytest.raises(StoreError, match="unknown experiment NOPE"):
        store.claim("NOPE", "A")


def test_max_attempts_blocks_further_claims(store):
    assert store.claim("FE-01", "A", max_attempts=1)
    store.mark_failed("FE-01", "A", "x")
    assert not store.claim("FE-01", "A", max_attempts=1)
    assert store.claim("FE-01", "A", max_attempts=2)


def test_stale_heartbeat_is_taken_over(store, clock):
    assert store.claim("FE-01", "A")
    clock.now += 100
    assert not store.claim("FE-01", "B", stale_after_s=600)
    assert store.heartbeat("FE-01", "A")
    clock.now += 601
    assert store.claim("FE-01", "B", stale_after_s=600)
    row = store.experiment("FE-01")
    assert (row["claimed_by"], row["attempts"], row["heartbeat_at"]) == ("B", 2, clock.now)
    assert not store.heartbeat("FE-01", "A")  # A learns it lost the claim
    assert not store.release("FE-01", "A")


def test_claim_of_a_dead_local_process_is_taken_over(store):
    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(finished.stdout)
    dead_owner = f"{make_owner().rsplit(':', 2)[0]}:{dead_pid}:deadbeef"
    assert store.claim("FE-01", dead_owner)
    assert store.claim("FE-01", make_owner())  # heartbeat is fresh, but its process is gone
    live_owner = make_owner()  # this very process: alive
    assert store.claim("FE-02", live_owner)
    assert not store.claim("FE-02", "otherhost:1:abc")


def test_claim_next_follows_queue_order(store):
    assert store.claim_next("A") == "FE-01"
    assert store.claim_next("B") == "FE-02"
    store.mark_failed("FE-02", "B", "x")
    assert store.claim_next("C", exp_ids=["FE-02", "LF-01"]) == "LF-01"
    assert store.claim_next("C") is None  # FE-02 failed: not retried by default
    assert store.claim_next("C", retry_failed=True) == "FE-02"


def _claim_worker(db_path, barrier, results):
    try:
        barrier.wait(timeout=60)
        with RunStore(db_path) as s:  # fresh file: schema creation races too
            s.sync_queue([cfg("FE-01"), cfg("FE-02")])
            results.put(("ok", s.claim("FE-01", make_owner())))
    except Exception as err:  # report, don't hang the parent
        results.put(("error", repr(err)))


def test_processes_racing_for_one_experiment_exactly_one_wins(db_path):
    ctx = multiprocessing.get_context("spawn")
    n = 4
    barrier, results = ctx.Barrier(n), ctx.Queue()
    procs = [ctx.Process(target=_claim_worker, args=(db_path, barrier, results)) for _ in range(n)]
    for p in procs:
        p.start()
    outcomes = [results.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=60)
    assert all(kind == "ok" for kind, _ in outcomes), outcomes
    assert sum(won for _, won in outcomes) == 1
    with RunStore(db_path) as s:
        row = s.experiment("FE-01")
        assert (row["state"], row["attempts"]) == ("running", 1)
        assert len(s.experiments()) == 2


def test_reader_reads_while_a_writer_holds_the_write_lock(store, db_path):
    store.record_epoch("FE-01", "h1", 0, [{"seed": 0, "val_auc": 0.6}])
    with RunStore(db_path, readonly=True, busy_timeout_s=0.2) as reader:
        with store._write() as db:  # an open write transaction, uncommitted
            db.execute("UPDATE experiments SET state = 'running' WHERE exp_id = 'FE-01'")
            # Short busy timeout: a reader that had to wait would fail, WAL means it never waits.
            assert reader.experiment("FE-01")["state"] == "pending"  # last committed snapshot
            assert reader.counts()["pending"] == 3
            assert len(reader.epochs("FE-01")) == 1
            assert reader.results() == []
        assert reader.experiment("FE-01")["state"] == "running"


def test_reader_snapshot_does_not_block_writer(store, db_path):
    with RunStore(db_path, readonly=True) as reader, reader._read():
        reader.experiments()
        with RunStore(db_path, busy_timeout_s=0.2) as writer:
            assert writer.claim("FE-01", "A")  # commits while the reader's snapshot is open


def test_writer_waits_for_another_writer_instead_of_failing(store, db_path):
    holding = threading.Event()

    def hold_lock():
        with store._write() as db:
            db.execute("UPDATE experiments SET updated_at = 0")
            holding.set()
            time.sleep(0.3)

    t = threading.Thread(target=hold_lock)
    t.start()
    holding.wait(5)
    with RunStore(db_path) as other:
        assert other.claim("FE-02", "B")  # queued on busy_timeout, then succeeds
    t.join()


_OPEN_AND_CLOSE = ("import sys; from fembed_jax.store import RunStore; "
                   "RunStore(sys.argv[1]).close(); RunStore(sys.argv[1], readonly=True).close()")
_STATE_OF_FE01 = ("import sys; from fembed_jax.store import RunStore; "
                  "print(RunStore(sys.argv[1], readonly=True).experiment('FE-01')['state'])")


def test_a_writer_opening_more_stores_keeps_its_wal_when_another_process_closes(store, db_path):
    """A runner opens more stores while its first one writes (its heartbeat thread does). Then
    another process (`fembed status`, a report, the TUI) opens and closes the store; it must not
    take itself for the last connection and delete the -wal and -shm under the runner, whose
    writes would then go to an unlinked file nobody else reads (POSIX locks are dropped by any
    close() of the file in a process: the store never opens it but through SQLite)."""
    assert store.claim("FE-01", "A")
    RunStore(db_path, readonly=True).close()
    with RunStore(db_path) as second:
        assert second.heartbeat("FE-01", "A")
    subprocess.run([sys.executable, "-c", _OPEN_AND_CLOSE, str(db_path)], check=True, timeout=120)
    assert db_path.with_name("fembed.db-wal").exists() and db_path.with_name("fembed.db-shm").exists()
    assert store.release("FE-01", "A", "failed", error="boom")  # written after the other closed
    seen = subprocess.run([sys.executable, "-c", _STATE_OF_FE01, str(db_path)], check=True,
                          capture_output=True, text=True, timeout=120).stdout.strip()
    assert seen == "failed"


def test_readonly_store_refuses_writes(store, db_path):
    with RunStore(db_path, readonly=True) as reader:
        with pytest.raises(StoreError, match="read-only"):
            reader.claim("FE-01", "A")
        assert [e["exp_id"] for e in reader.experiments(state="pending", tier="a100")] == ["FE-01", "FE-02"]


def test_epochs_upsert_rewrites_resumed_epochs(store):
    store.claim("FE-01", "A")
    store.record_epoch("FE-01", "h1", 0, [{"seed": 0, "train_loss": 0.7, "val_auc": 0.5, "is_best": True},
                                          {"seed": 1, "train_loss": 0.8, "val_auc": float("nan")}])
    store.record_epoch("FE-01", "h1", 1, [{"seed": 0, "train_loss": 0.6}, {"seed": 1, "train_loss": 0.65}])
    # A resumed run re-records epoch 1: rewritten, not duplicated.
    store.record_epoch("FE-01", "h1", 1, [{"seed": 0, "train_loss": 0.55, "active": False},
                                          {"seed": 1, "train_loss": np.float32(0.5)}])
    rows = store.epochs("FE-01")
    assert [(r["epoch"], r["seed"]) for r in rows] == [(0, 0), (0, 1), (1, 0), (1, 1)]
    assert rows[0]["is_best"] is True and rows[1]["val_auc"] is None
    assert rows[2]["train_loss"] == pytest.approx(0.55) and rows[2]["active"] is False
    assert rows[3]["attempt"] == 1
    assert store.experiment("FE-01")["epochs_run"] == 2

    assert store.truncate_epochs("FE-01", "h1", after_epoch=0) == 2
    assert store.experiment("FE-01")["epochs_run"] == 1
    # Rows of another config hash are kept but hidden behind the queue's current hash.
    store.record_epoch("FE-01", "old", 5, [{"seed": 0}])
    assert [r["epoch"] for r in store.epochs("FE-01")] == [0, 0]
    assert [r["epoch"] for r in store.epochs("FE-01", "old")] == [5]
    with pytest.raises(ValueError, match="without 'seed'"):
        store.record_epoch("FE-01", "h1", 2, [{"train_loss": 1.0}])

    assert store.reset("FE-01")
    assert store.epochs("FE-01") == [] and store.experiment("FE-01")["attempts"] == 0



def test_machine_samples_round_trip_oldest_first_with_unknowns_as_null(store, clock):
    from fembed_jax import resources
    from fembed_jax.store.machines import MACHINE_COLUMNS

    assert MACHINE_COLUMNS == resources.KEYS  # the runner records what sample() returns
    assert store.machine_samples("FE-01") == []
    store.record_machine("FE-01", 0, {"cpu_percent": 187.5, "rss_mb": 1200.0, "gpu_util_percent": None,
                                      "gpu_mem_mb": float("nan")}, host="box", pid=4242)
    clock.now += 5
    store.record_machine("FE-01", 1, {"cpu_percent": np.float32(90.0), "rss_mb": 1300.0})
    store.record_machine("FE-02", 0, {"rss_mb": 10.0})
    first, second = store.machine_samples("FE-01")
    assert first == {"epoch": 0, "recorded_at": 1_000_000.0, "host": "box", "pid": 4242, "cpu_percent": 187.5,
                     "rss_mb": 1200.0, "gpu_util_percent": None, "gpu_mem_mb": None}
    assert second["epoch"] == 1 and second["cpu_percent"] == pytest.approx(90.0)
    assert second["recorded_at"] == 1_000_005.0 and second["host"] is None
    with RunStore(store.path, readonly=True) as reader:  # what the TUI on another host reads
        assert [s["rss_mb"] for s in reader.machine_samples("FE-01")] == [1200.0, 1300.0]
        with pytest.raises(StoreError, match="read-only"):
            reader.record_machine("FE-01", 2, {})


def test_machine_samples_keep_the_newest_per_experiment(store, monkeypatch):
    from fembed_jax.store import machines

    monkeypatch.setattr(machines, "MACHINE_SAMPLES_KEPT", 3)
    for epoch in range(5):  # the same clock reading: the order of recording decides
        store.record_machine("FE-01", epoch, {"rss_mb": float(epoch)})
    store.record_machine("FE-02", 0, {"rss_mb": 1.0})
    assert [s["epoch"] for s in store.machine_samples("FE-01")] == [2, 3, 4]
    assert [s["epoch"] for s in store.machine_samples("FE-01", last=1)] == [4]  # what the monitor reads
    assert len(store.machine_samples("FE-02")) == 1  # another experiment's are not counted


@pytest.mark.parametrize("version", [2, 3])
def test_a_reader_of_an_older_store_it_cannot_write_reads_it_as_it_is(tmp_path, monkeypatch, version):
    path = old_store(tmp_path / "outputs" / "fembed.db", version)
    real_access = os.access  # a read-only mount, as far as fembed sees: it cannot migrate it
    monkeypatch.setattr(os, "access", lambda path, mode, **kw: False if mode == os.W_OK
                        else real_access(path, mode, **kw))
    with RunStore(path, readonly=True) as reader:
        assert reader.schema_version() == version  # not migrated: read through today's names
        queued = {e["exp_id"]: e for e in reader.experiments()}
        assert {"FE-01", "FE-68"} <= set(queued) and queued["FE-01"]["run_hash"]
        assert reader.result("FE-01")["current"] is True  # results and queue matched by run hash
        assert reader.history("FE-01")[0]["run_hash"] == queued["FE-01"]["run_hash"]
        assert len(reader.epochs("FE-01")) > 0
        assert reader.machine_samples("FE-01") == []


LEGACY_RECORD = {
    "exp_id": "AE-14",
    "training": {"train_loss": 0.47, "val_loss": 0.46, "val_auc": 0.711, "stopped_early": False,
                 "training_time_min": 0.5},
    "val_metrics": {"precision": 0.5454545454545454, "recall": 0.0789, "auc": 0.711,
                    "pred_range": 0.741, "n_positive_preds": 11},
    "timestamp": "2026-02-08T09:23:53.675393",
}


def test_results_round_trip_with_summary_and_numpy_values(store):
    record = {
        "exp_id": "FE-02",
        "config_hash": "h1",
        "seeds": [0, 1],
        "val_metrics": {"precision": np.float64(0.6), "auc": np.float32(0.7), "per_seed_auc": np.array([0.69, 0.71])},
        "summary": {"precision_mean": 0.6, "precision_std": 0.05, "recall_mean": 0.1, "auc_mean": 0.7,
                    "auc_std": 0.01, "tp_total": 9, "pred_pos_total": 15, "collapsed": False, "epochs": 23,
                    "seconds": 81.5, "finished_at": 1_700_000_000.0},
    }
    store.claim("FE-02", "A")
    assert store.record_result("FE-02", "h1", record)
    got = store.result("FE-02")
    assert got["record"]["val_metrics"]["per_seed_auc"] == [0.69, 0.71]
    assert got["record"]["seeds"] == [0, 1]
    assert got["precision_mean"] == 0.6 and got["tp_total"] == 9 and got["collapsed"] is False
    assert got["epochs"] == 23 and got["legacy"] is False and got["current"] is True
    assert [r["exp_id"] for r in store.results()] == ["FE-02"]
    assert store.result("FE-01") is None

    # Explicit summary overrides the record's; unknown columns are refused.
    store.record_result("FE-02", "h1", record, summary={"auc_mean": 0.75})
    assert store.result("FE-02")["auc_mean"] == 0.75
    with pytest.raises(ValueError, match="unknown summary column"):
        store.record_result("FE-02", "h1", record, summary={"auc": 0.7})


def test_legacy_results_never_touch_the_queue_or_replace_fembed_results(store):
    assert store.record_result("FE-01", None, LEGACY_RECORD, legacy=True)
    got = store.result("FE-01")
    assert got["legacy"] is True and got["tp_total"] == 6 and got["pred_pos_total"] == 11
    assert got["collapsed"] is False and got["seconds"] == pytest.approx(30.0)
    assert got["precision_std"] is None and got["finished_at"] is not None
    assert store.experiment("FE-01")["state"] == "pending"
    assert not store.is_done("FE-01", "h1")
    assert store.results(include_legacy=False) == []

    store.claim("FE-01", "A")
    store.record_result("FE-01", "h1", {"exp_id": "FE-01", "summary": {"precision_mean": 0.3}})
    assert not store.record_result("FE-01", None, LEGACY_RECORD, legacy=True)
    got = store.result("FE-01")
    assert got["legacy"] is False and got["precision_mean"] == 0.3
    # A legacy record of an experiment the queue does not know.
    assert store.record_result("XX-99", None, LEGACY_RECORD, legacy=True)
    assert store.result("XX-99")["current"] is None


def test_record_result_for_a_stale_config_does_not_mark_done(store):
    store.claim("FE-01", "A")
    store.sync_queue([cfg("FE-01", "h2")])  # registry changed under the runner
    assert not store.record_result("FE-01", "h1", {"exp_id": "FE-01"})
    assert store.experiment("FE-01")["state"] == "pending"


def test_closed_store_refuses_use(db_path):
    with RunStore(db_path) as s:
        pass
    assert s.closed
    with pytest.raises(StoreError, match="closed"):
        s.experiments()
    s.close()  # idempotent


def test_a_heartbeat_outlives_a_store_it_cannot_open_and_beats_once_it_can(store, db_path, clock, monkeypatch):
    """The runner's heartbeat thread opens its own store; a failure there (found on a real run:
    "disk I/O error") must not end the thread with a traceback and leave the claim to go stale:
    one warning line, then the next beat reopens and writes (two beats seen in the store, at
    the thread's real clock, after the claim at the fixture's)."""
    from fembed_jax import store as store_package
    from fembed_jax.train.queue import Heartbeat

    assert store.claim("FE-01", "A")
    real, failures = store_package.RunStore, [StoreError("disk I/O error")] * 2

    def flaky(*args, **kwargs):
        if failures:
            raise failures.pop()
        return real(*args, **kwargs)

    def beat_after(stamp: float) -> float:
        deadline = time.monotonic() + 30
        while store.experiment("FE-01")["heartbeat_at"] <= stamp and time.monotonic() < deadline:
            time.sleep(0.02)
        return store.experiment("FE-01")["heartbeat_at"]

    monkeypatch.setattr(store_package, "RunStore", flaky)
    with (pytest.warns(RuntimeWarning, match="cannot be written now .*disk I/O error.*retrying"),
          Heartbeat(db_path, ["FE-01"], "A", every=0.02) as beat):
        beat.start()
        first = beat_after(clock.now)
        second = beat_after(first)
        assert beat.is_alive()
    assert not failures and clock.now < first < second and not beat.is_alive()


def test_an_open_that_fails_on_a_full_disk_says_so(tmp_path, monkeypatch):
    """SQLite says only "disk I/O error" when a full disk leaves no room for the -shm index (seen
    with tests/reliability/test_full_disk.py's filled tmpfs): the message names the full disk and
    says nothing is lost; with space left it stays SQLite's own words."""
    from fembed_jax.store import db

    path = tmp_path / "fembed.db"
    err = sqlite3.OperationalError("disk I/O error")
    plain = str(db._open_error(path, err, "read"))
    assert plain == f"run store {path} cannot be read: disk I/O error"
    monkeypatch.setattr(db.os, "statvfs", lambda _: types.SimpleNamespace(f_bavail=3, f_frsize=4096))
    full = str(db._open_error(path, err, "opened for writing"))
    assert full.startswith(f"run store {path} cannot be opened for writing: disk I/O error; the disk "
                           "holding it is full (12 kB free): nothing is lost")
    foreign = str(db._open_error(path, sqlite3.DatabaseError("file is not a database"), "read"))
    assert "is not an SQLite run store" in foreign
