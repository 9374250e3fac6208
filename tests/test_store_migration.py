"""A store of release 0.1 (schema 1, tests/data/store_v1.db: two trained experiments with their
epoch rows and 29 legacy records) migrates with everything kept; so does a schema 2 one, which
gains the machine samples; a crash in the middle of the migration leaves it usable; replaced
results are kept in the run history."""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

from fembed_jax.store import SCHEMA_VERSION, RunStore
from fembed_jax.store import schema as schema_mod

FIXTURE = Path(__file__).parent / "data" / "store_v1.db"


def _contents(path: Path, tables=("experiments", "epochs", "results")) -> dict:
    with sqlite3.connect(path) as db:
        out = {table: sorted(map(tuple, db.execute(f"SELECT * FROM {table}").fetchall()))
               for table in tables}
    db.close()
    return out


def test_a_release_0_1_store_migrates_with_every_row_kept(tmp_path):
    path = tmp_path / "fembed.db"
    shutil.copyfile(FIXTURE, path)
    before = _contents(path)
    assert len(before["results"]) == 29 and len(before["epochs"]) == 8
    with RunStore(path, readonly=True) as reader:  # a reader of an old store has it migrated first
        assert reader.schema_version() == SCHEMA_VERSION
        assert {r["exp_id"] for r in reader.results() if not r["legacy"]} == {"FE-01", "FE-68"}
        assert reader.history("FE-01") == []
    assert _contents(path) == before



def test_a_schema_2_store_migrates_to_3_with_every_row_kept(tmp_path, monkeypatch):
    path = tmp_path / "fembed.db"
    shutil.copyfile(FIXTURE, path)
    monkeypatch.setattr(schema_mod, "SCHEMA_VERSION", 2)
    with RunStore(path) as old:  # what fembed 0.2 made of it, with a replaced result in its history
        record = old.result("FE-01")["record"]
        old.record_result("FE-01", "another-run", {**record, "run_hash": "another-run"})
        assert old.schema_version() == 2
    monkeypatch.undo()
    tables = ("experiments", "epochs", "results", "result_history")
    before = _contents(path, tables)
    assert len(before["result_history"]) == 1
    with RunStore(path, readonly=True) as reader:  # a reader of an old store has it migrated first
        assert reader.schema_version() == SCHEMA_VERSION == 3
        assert reader.machine_samples("FE-01") == []
    assert _contents(path, tables) == before
    with sqlite3.connect(path) as db:
        columns = [row[1] for row in db.execute("PRAGMA table_info(machine_samples)")]
        indexes = [row[1] for row in db.execute("PRAGMA index_list(machine_samples)")]
    db.close()
    assert columns == ["exp_id", "epoch", "recorded_at", "host", "pid", "cpu_percent", "rss_mb",
                       "gpu_util_percent", "gpu_mem_mb"]
    assert indexes == ["machine_samples_by_time"]
    with RunStore(path) as store:
        store.record_machine("FE-01", 0, {"rss_mb": 512.0})
        assert [s["rss_mb"] for s in store.machine_samples("FE-01")] == [512.0]

def test_a_crash_during_the_migration_leaves_the_old_store_usable(tmp_path):
    path = tmp_path / "fembed.db"
    shutil.copyfile(FIXTURE, path)
    before = _contents(path)
    code = ("import os; os.environ['FEMBED_FAULT'] = 'store.migrate:1:kill'\n"
            "from fembed_jax.store import RunStore\n"
            f"RunStore({str(path)!r})\n")
    killed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert killed.returncode == -9, killed.stderr  # SIGKILLed inside the migration's transaction
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT version FROM schema_version").fetchone()[0] == 1
    db.close()
    assert _contents(path) == before
    with RunStore(path) as store:  # the next open migrates it
        assert store.schema_version() == SCHEMA_VERSION
    assert _contents(path) == before


def test_a_replaced_result_is_kept_in_the_history(tmp_path):
    path = tmp_path / "fembed.db"
    shutil.copyfile(FIXTURE, path)
    with RunStore(path) as store:
        old = store.result("FE-01")
        config = json.loads(store.experiment("FE-01")["config_json"])
        store.sync_queue([{**config, "exp_id": "FE-01", "config_hash": "another-run"}])
        new_record = {**old["record"], "run_hash": "another-run"}
        store.record_result("FE-01", "another-run", new_record)
        (kept,) = store.history("FE-01")
        assert kept["config_hash"] == old["config_hash"] and kept["record"] == old["record"]
        assert kept["auc_mean"] == old["auc_mean"]
        store.record_result("FE-01", "another-run", new_record)  # the same run again: no new entry
        assert len(store.history("FE-01")) == 1
        store.reset("FE-01")  # --force: the result goes, its history entry stays
        assert store.result("FE-01") is None or store.result("FE-01")["legacy"]
        assert [h["config_hash"] for h in store.history("FE-01")] == ["another-run", old["config_hash"]]
