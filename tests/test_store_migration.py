"""A store of release 0.1 (schema 1, tests/data/store_v1.db: two trained experiments with their
epoch rows and 29 legacy records) migrates with everything kept; so does a schema 2 one, which
gains the machine samples and has its run-hash column renamed; a crash in the middle of the migration leaves it usable; replaced
results are kept in the run history."""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from fembed_jax.store import SCHEMA_VERSION, RunStore
from helpers import old_store

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



@pytest.mark.parametrize("version", [2, 3])
def test_a_schema_2_or_3_store_migrates_with_every_row_kept_and_the_run_hash_named(tmp_path, version):
    path = old_store(tmp_path / "fembed.db", version)
    tables = ("experiments", "epochs", "results", "result_history")
    before = _contents(path, tables)
    assert len(before["result_history"]) == 1
    with RunStore(path, readonly=True) as reader:  # a reader of an old store has it migrated first
        assert reader.schema_version() == SCHEMA_VERSION == 4
        assert reader.machine_samples("FE-01") == []
        assert reader.experiment("FE-01")["run_hash"] == reader.history("FE-01")[0]["run_hash"]
    assert _contents(path, tables) == before  # every value kept, in the same column order
    with sqlite3.connect(path) as db:
        names = {t: [row[1] for row in db.execute(f"PRAGMA table_info({t})")] for t in (*tables, "machine_samples")}
        indexes = [row[1] for row in db.execute("PRAGMA index_list(machine_samples)")]
    db.close()
    assert all("run_hash" in names[t] and "config_hash" not in names[t] for t in tables)
    assert names["machine_samples"] == ["exp_id", "epoch", "recorded_at", "host", "pid", "cpu_percent", "rss_mb",
                                        "gpu_util_percent", "gpu_mem_mb"]
    assert indexes == ["machine_samples_by_time"]
    with RunStore(path) as store:
        store.record_machine("FE-01", 0, {"rss_mb": 512.0})
        assert [s["rss_mb"] for s in store.machine_samples("FE-01")] == [512.0]
        assert store.is_done("FE-01", store.experiment("FE-01")["run_hash"])


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
        store.sync_queue([{**config, "exp_id": "FE-01", "run_hash": "another-run"}])
        new_record = {**old["record"], "run_hash": "another-run"}
        store.record_result("FE-01", "another-run", new_record)
        (kept,) = store.history("FE-01")
        assert kept["run_hash"] == old["run_hash"] and kept["record"] == old["record"]
        assert kept["auc_mean"] == old["auc_mean"]
        store.record_result("FE-01", "another-run", new_record)  # the same run again: no new entry
        assert len(store.history("FE-01")) == 1
        store.reset("FE-01")  # --force: the result goes, its history entry stays
        assert store.result("FE-01") is None or store.result("FE-01")["legacy"]
        assert [h["run_hash"] for h in store.history("FE-01")] == ["another-run", old["run_hash"]]
