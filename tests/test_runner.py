"""`fembed run` end to end on the built-in data with a tiny registry: results, skip, force, resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from fembed_jax.cli.main import main
from fembed_jax.store import RunStore
from helpers import tiny_registry, write_project

TINY_EXPERIMENTS = """\
[[experiments]]
id = "TT-01"
priority = "P1"
tier = "a20"
d_embed = 8
description = "tiny BCE"

[[experiments]]
id = "TT-02"
priority = "P2"
tier = "a20"
d_embed = 8
loss = "focal"
loss_params = { gamma = 2.0, alpha = 0.5 }
description = "tiny focal"
"""


def make_project(root: Path, epochs: int = 2) -> Path:
    return write_project(root, tiny_registry(TINY_EXPERIMENTS, epochs=epochs))


pytestmark = pytest.mark.usefixtures("shared_cache")  # tests/conftest.py

def results_of(root: Path, exp_id: str) -> dict:
    return json.loads((root / "outputs" / exp_id / "results.json").read_text())


def comparable(record: dict) -> dict:
    """What must be identical between two runs of the same config (not timings or dates)."""
    return {"history": record["history"], "per_seed": record["val_metrics_per_seed"],
            "best_epoch": record["best_epoch"]}


def test_run_writes_results_then_skips_then_force_reruns(tmp_path, capsys):
    registry = make_project(tmp_path)
    assert main(["--registry", str(registry), "run", "--all"]) == 0
    first = results_of(tmp_path, "TT-01")
    assert first["seeds"] == [42, 43] and len(first["val_metrics_per_seed"]) == 2
    assert set(first["val_metrics_aggregate"]) >= {"precision", "recall", "auc", "n_seeds"}
    for key in ("precision", "recall", "f1", "accuracy", "auc", "n_positive_preds", "pred_range"):
        assert key in first["val_metrics"]
    assert first["splits"]["val"] > 400 and first["parameters"]["actual"] > 0
    assert first["device"]["platform"] == "cpu" and first["config"]["loss"] == "bce"
    assert results_of(tmp_path, "TT-02")["loss_function"]["loss_fn"] == "focal"
    with RunStore(tmp_path / "outputs" / "fembed.db", readonly=True) as store:
        assert store.counts()["done"] == 2
        assert len(store.epochs("TT-01")) == 2 * 2  # epochs x seeds

    capsys.readouterr()
    assert main(["--registry", str(registry), "run", "--all"]) == 0
    assert "2 skipped" in capsys.readouterr().out
    assert results_of(tmp_path, "TT-01")["timestamp"] == first["timestamp"]

    time.sleep(1.1)  # timestamps have one-second resolution
    assert main(["--registry", str(registry), "run", "--exp-id", "TT-01", "--force"]) == 0
    again = results_of(tmp_path, "TT-01")
    assert again["timestamp"] != first["timestamp"]
    assert comparable(again) == comparable(first)  # same seeds, same results


def test_dry_run_prints_the_plan_and_trains_nothing(tmp_path, capsys):
    registry = make_project(tmp_path)
    assert main(["--registry", str(registry), "run", "--priority", "P2", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "TT-02" in out and "TT-01" not in out and "train" in out
    assert not (tmp_path / "outputs" / "TT-02").exists()


def test_bad_requests_exit_2(tmp_path, capsys):
    registry = make_project(tmp_path)
    assert main(["--registry", str(registry), "run", "--exp-id", "NO-99"]) == 2
    assert "NO-99" in capsys.readouterr().err
    assert main(["--registry", str(registry), "run"]) == 2
    assert main(["--registry", str(registry), "run", "--all", "--seeds", "0"]) == 2


def test_a_run_interrupted_in_process_resumes_with_identical_results(tmp_path):
    from fembed_jax.checkpoint import Checkpointer
    from fembed_jax.data import load_dataset
    from fembed_jax.registry import load_registry
    from fembed_jax.train.engine import DeviceData, Engine
    from fembed_jax.train.fit import Interrupted, fit

    cfg = load_registry(make_project(tmp_path, epochs=4)).get("TT-01")
    data = DeviceData.from_dataset(load_dataset("a20"))
    engine = Engine(cfg, data)
    whole = fit(cfg, data, [42, 43], engine=engine)

    epochs_seen = []
    ckpt = Checkpointer(tmp_path / "ckpt", "hash-1")
    with pytest.raises(Interrupted):
        fit(cfg, data, [42, 43], engine=engine, checkpointer=ckpt,
            on_epoch=lambda r: epochs_seen.append(r.epoch), should_stop=lambda: len(epochs_seen) == 2)
    resumed = fit(cfg, data, [42, 43], engine=engine, checkpointer=Checkpointer(tmp_path / "ckpt", "hash-1"))
    assert resumed.resumed_from == 1
    assert resumed.history == whole.history
    assert resumed.per_seed == whole.per_seed
    np.testing.assert_array_equal(resumed.val_probs, whole.val_probs)


@pytest.mark.slow
def test_a_killed_run_resumes_and_ends_like_an_uninterrupted_one(tmp_path, shared_cache):
    clean, killed = tmp_path / "clean", tmp_path / "killed"
    reg_clean, reg_killed = make_project(clean, epochs=6), make_project(killed, epochs=6)
    assert main(["--registry", str(reg_clean), "run", "--exp-id", "TT-01"]) == 0

    env = dict(os.environ, FEMBED_CACHE=str(shared_cache))
    cmd = [sys.executable, "-m", "fembed_jax.cli.main", "--registry", str(reg_killed), "run",
           "--exp-id", "TT-01"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ckpt = killed / "checkpoints" / "TT-01"
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and proc.poll() is None:
        if (ckpt / "1").is_dir():  # orbax finalises a step by renaming its directory
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL, "the run finished before it could be killed"
    assert not (killed / "outputs" / "TT-01" / "results.json").exists()

    assert main(["--registry", str(reg_killed), "run", "--exp-id", "TT-01"]) == 0
    resumed = results_of(killed, "TT-01")
    assert resumed["training"]["resumed_from_epoch"] >= 1
    assert comparable(resumed) == comparable(results_of(clean, "TT-01"))
