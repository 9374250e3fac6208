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
from helpers import TINY_BCE, tiny_registry, write_project

TINY_EXPERIMENTS = TINY_BCE + """
[[experiments]]
id = "TT-02"
priority = "P2"
tier = "a20"
d_embed = 8
loss = "focal"
loss_params = { gamma = 2.0, alpha = 0.5 }
dropout = 0.3  # its own program: TT-01 rerun alone must equal TT-01 of `run --all` bit for bit
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


def test_each_experiment_has_a_run_log_of_what_happened_to_it(tmp_path):
    """outputs/<ID>/run.log (what `fembed tui` tails): one line an event, appended by every run."""
    registry = make_project(tmp_path)
    assert main(["--registry", str(registry), "run", "--exp-id", "TT-01"]) == 0
    lines = (tmp_path / "outputs" / "TT-01" / "run.log").read_text(encoding="utf-8").splitlines()
    events = [line.split(" ", 2)[2] for line in lines]  # after the date and the time
    assert events[0].startswith("start: 2 seed(s), up to 2 epochs")
    assert events[1].startswith("epoch 1/2 done: ") and events[2].startswith("epoch 2/2 done: ")
    assert events[3].startswith("checkpoints reduced to --keep best: ")
    assert events[4].startswith("done: validation AUC ") and len(events) == 5
    assert not (tmp_path / "outputs" / "TT-02").exists()


def test_the_runner_records_a_machine_sample_per_epoch_in_the_store(tmp_path):
    """What a TUI on another host shows of the runner's machine use (fembed_jax.resources)."""
    import socket

    registry = make_project(tmp_path)
    assert main(["--registry", str(registry), "run", "--exp-id", "TT-01"]) == 0
    with RunStore(tmp_path / "outputs" / "fembed.db", readonly=True) as store:
        samples = store.machine_samples("TT-01")
    assert [s["epoch"] for s in samples] == [0, 1]
    if sys.platform.startswith("linux"):  # resources reads the RSS from /proc
        assert all(s["rss_mb"] is not None and s["rss_mb"] > 0 for s in samples)
    assert {(s["host"], s["pid"]) for s in samples} == {(socket.gethostname(), os.getpid())}
    assert samples[0]["recorded_at"] <= samples[1]["recorded_at"]


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


def test_a_done_experiment_keeps_only_its_selected_weights_unless_asked(tmp_path, capsys):
    """--keep best (default): checkpoints/<ID>/ shrinks to selected/, which `fembed evaluate`
    restores; --keep last leaves the last step, --keep all the last two."""
    registry = make_project(tmp_path)
    assert main(["--registry", str(registry), "run", "--exp-id", "TT-01"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    ckpt = tmp_path / "checkpoints" / "TT-01"
    assert sorted(p.name for p in ckpt.iterdir()) == ["selected"]
    assert "TT-01: checkpoints " in out and "(kept the selected weights)" in out
    before, after = out.split("TT-01: checkpoints ")[1].split(" (kept")[0].split(" → ")
    assert before != after
    code = main(["--registry", str(registry), "evaluate", "TT-01", "--split", "val"])
    assert code == 0 and "matches results.json" in capsys.readouterr().out

    for keep, steps in (("last", ["1"]), ("all", ["0", "1"])):
        assert main(["--registry", str(registry), "run", "--exp-id", "TT-01", "--force",
                     "--keep", keep]) == 0
        assert sorted(p.name for p in ckpt.iterdir()) == steps, keep
        code = main(["--registry", str(registry), "evaluate", "TT-01", "--split", "val"])
        assert code == 0 and "matches results.json" in capsys.readouterr().out


def test_ctrl_c_inside_an_epoch_saves_the_position_and_the_run_resumes_from_it(tmp_path, capsys):
    """SIGINT mid-epoch (between chunks of 4 steps): the runner says where it stops, saves the
    position, exits 130; the same command resumes from that batch and ends like a clean run."""
    from fembed_jax import faults

    clean, stopped = tmp_path / "clean", tmp_path / "stopped"
    assert main(["--registry", str(make_project(clean, epochs=3)), "run", "--exp-id", "TT-01"]) == 0
    registry = make_project(stopped, epochs=3)
    faults.arm("fit.chunk_trained:9:sigint")  # 30 batches an epoch: chunks end at 4, 8, ..., 28, 30
    try:
        code = main(["--registry", str(registry), "run", "--exp-id", "TT-01", "--chunk-steps", "4"])
    finally:
        faults.disarm()
    out = " ".join(capsys.readouterr().out.split())
    assert code == 130, out
    assert "SIGINT: stopping after the steps in progress" in out
    assert "stopping: saving the position inside epoch 2 (step 8/30) of TT-01…" in out
    assert ("stopped by SIGINT: TT-01 inside epoch 2/3 (step 8/30); that position is checkpointed "
            "and the same command resumes from there.") in out
    assert sorted(p.name for p in (stopped / "checkpoints" / "TT-01").iterdir()) == ["0", "1"]

    assert main(["--registry", str(registry), "run", "--exp-id", "TT-01"]) == 0
    resumed = results_of(stopped, "TT-01")
    assert resumed["training"]["resumed_from_epoch"] == 0
    assert comparable(resumed) == comparable(results_of(clean, "TT-01"))


class _Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def _display_events(display, cfg):
    from fembed_jax.train.early_stopping import StopState
    from fembed_jax.train.fit import EpochReport, StepReport

    stop = StopState.fresh(2)
    display.event("start", cfg=cfg, position=0, total=2, seeds=2, group=[cfg.exp_id])
    for epoch in range(2):
        for step in (100, 200, 300):
            yield
            display.event("step", cfg=cfg, report=StepReport(epoch, step, 400, stop.active.copy(), stop))
        stop.best_metric[:] = [0.61 + epoch / 100, 0.58]
        yield
        display.event("epoch", cfg=cfg, elapsed=0.0, report=EpochReport(
            epoch, np.zeros(2), np.zeros(2), [0.6, 0.5], np.ones(2, bool), np.ones(2, bool), stop, 1.0))
    display.event("stopping", cfg=cfg, epoch=2, step=120, steps=400)
    display.event("freed", cfg=cfg, before=48_000_000, after=6_000_000, kept="best")
    display.event("end", cfg=cfg, record={"val_metrics": {"precision": 0.5, "recall": 0.4, "auc": 0.6}})


@pytest.mark.parametrize("quiet", [False, True])
def test_without_a_terminal_progress_is_a_line_every_30_seconds(monkeypatch, capsys, quiet):
    """rich draws no bars into a log file: the display writes one line per experiment in
    training every LOG_EVERY_S instead (with its step, seeds, best metric and an ETA from the
    measured pace); -q writes none, and no notes."""
    from cli import cmd_run
    from helpers import tiny_config

    clock = _Clock()
    monkeypatch.setattr(cmd_run.time, "monotonic", clock)
    cfg = tiny_config(exp_id="FE-06", epochs=10)
    with cmd_run._Display(2, quiet=quiet, live=False) as display:
        for _ in _display_events(display, cfg):
            clock.now += 10  # an event every 10 s
    lines = capsys.readouterr().out.splitlines()
    progress = [line for line in lines if "ETA" in line or "seeds 2/2" in line]
    assert "FE-06: precision 0.500 recall 0.400 AUC 0.600 (mean of 2 seeds)" in lines
    assert "stopping: saving the position inside epoch 3 (step 120/400) of FE-06…" in lines
    if quiet:
        assert not progress and not any("checkpoints" in line or "training 2 seed" in line for line in lines)
        return
    assert "FE-06 (1/2): training 2 seed(s), up to 10 epochs" in lines
    assert "FE-06: checkpoints 48 MB → 6.0 MB (kept the selected weights)" in lines
    assert len(progress) == 2  # 80 s of events: at 30 s and 60 s
    first, second = progress
    # the pace since the first report: a quarter epoch per 10 s
    assert "FE-06 (1/2): epoch 1/10 step 300/400, seeds 2/2 training, ETA ≤ 6m10s" in first
    assert ("FE-06 (1/2): epoch 2/10 step 200/400, seeds 2/2 training  best AUC 0.610, "
            "ETA ≤ 5m40s; queue 0/2 done") in second
