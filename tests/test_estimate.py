"""Estimates before work (fembed_jax.estimate): the cache and its keys, the arithmetic of the
cost model, checkpoint disk against a real run's, the dry run's JSON, the >1 day flag, ETAs."""

from __future__ import annotations

import json
import logging
import math
import time

import pytest

from helpers import synthetic_dataset, tiny_config, tiny_registry, write_project

from fembed_jax import estimate


@pytest.fixture
def cache_file(tmp_path):
    return tmp_path / "estimates.json"


@pytest.fixture(scope="module")
def measured(tmp_path_factory):
    """One measurement of the tiny config's program with 2 members (and its cache file)."""
    from fembed_jax.train.engine import DeviceData

    path = tmp_path_factory.mktemp("estimate") / "estimates.json"
    cfg = tiny_config(epochs=3, patience=10)
    data = DeviceData.from_dataset(synthetic_dataset())
    point = estimate.measure(cfg, data, 2, budget_s=5.0, cache_file=path)
    return cfg, data, point, path


def test_cache_is_keyed_by_shape_and_invalidated_by_a_code_change(measured, monkeypatch):
    cfg, _, point, path = measured
    cache = estimate.load_cache(path)
    import jax

    machine_id = estimate.devices_machine(jax.devices()[:1])
    assert estimate.point_at(cache["shapes"].get(estimate.shape_id(cfg, machine_id)), 2)["step_seconds"] == \
        pytest.approx(point["step_seconds"])
    # Values the program takes as arrays share the measurement; a shape field does not.
    assert estimate.shape_id(cfg.replace(learning_rate=3e-4, seeds=5), machine_id) == estimate.shape_id(cfg, machine_id)
    assert estimate.shape_id(cfg.replace(d_model=32), machine_id) != estimate.shape_id(cfg, machine_id)
    assert estimate.shape_id(cfg, "cpu:other x4 cores, 1 device(s)") != estimate.shape_id(cfg, machine_id)
    monkeypatch.setattr(estimate, "code_digest", lambda: "changed-code")
    assert cache["shapes"].get(estimate.shape_id(cfg, machine_id)) is None


def test_a_corrupt_cache_is_ignored_with_one_warning(cache_file, caplog):
    cache_file.write_text('{"schema": 1, "shapes": {"x": ')
    estimate._warned.clear()
    with caplog.at_level(logging.WARNING, logger="fembed_jax.estimate"):
        assert estimate.load_cache(cache_file)["shapes"] == {}
        assert estimate.load_cache(cache_file)["runs"] == {}
    assert len(caplog.records) == 1 and "ignored" in caplog.records[0].getMessage()
    estimate.save_cache({"schema": 1, "shapes": {}, "runs": {"h": {}}}, cache_file)  # rebuilt
    assert estimate.load_cache(cache_file)["runs"] == {"h": {}}


def test_the_estimate_is_epochs_times_steps_times_step_time_plus_eval(measured):
    cfg, data, point, _ = measured
    train, val = data.size("train"), data.size("val")
    (est,) = estimate.estimate_group([cfg], train, val, {cfg.exp_id: 4661}, point=point)
    steps = math.ceil(train / cfg.batch_size)
    per_epoch = steps * point["step_seconds"] + val * point["eval_seconds_per_window"] + point["save_seconds"]
    assert est.steps_per_epoch == steps and est.epochs == 3 and est.source == "measured"
    assert est.seconds_per_epoch == pytest.approx(per_epoch)
    assert est.seconds == pytest.approx(point["compile_seconds"] + 3 * per_epoch
                                        + val * point["eval_seconds_per_window"])
    # Two experiments sharing the program split its time by seeds; a resumed one trains the rest.
    other = cfg.replace(exp_id="T-02", seeds=1, learning_rate=3e-4)
    shared = estimate.estimate_group([cfg, other], train, val, {"T-01": 4661, "T-02": 4661},
                                     point=estimate.point_at({"points": {"2": point}}, 3),
                                     done_epochs={"T-01": 1})
    assert shared[0].members == 3 and shared[0].seconds == pytest.approx(2 * shared[1].seconds)
    assert shared[0].epochs == 2 and "scaled to 3 members" in shared[0].source


def test_the_measured_step_time_is_within_a_loose_factor_of_a_real_epoch(measured):
    """Timing, so a generous bound (a shared 2-core CPU): the steady epoch of a real run against
    the estimate's steps x step time."""
    from fembed_jax.train.fit import fit

    cfg, data, point, _ = measured
    seconds = []
    fit(cfg.replace(epochs=3), data, [1, 2], on_epoch=lambda report: seconds.append(time.monotonic()))
    real_epoch = min(b - a for a, b in zip(seconds, seconds[1:]))  # train + validation
    predicted = math.ceil(data.size("train") / cfg.batch_size) * point["step_seconds"] \
        + data.size("val") * point["eval_seconds_per_window"]
    assert predicted / 6 < real_epoch < predicted * 6, (predicted, real_epoch)


def test_the_disk_estimate_is_what_a_real_runs_checkpoints_hold(measured, tmp_path, monkeypatch):
    from fembed_jax import faults
    from fembed_jax.checkpoint import Checkpointer, tree_bytes
    from fembed_jax.train.fit import fit

    cfg, data, point, _ = measured
    root = tmp_path / "T-01"
    peak = [0]
    real_hit = faults.hit

    def hit(name: str) -> None:  # a new step complete, the oldest not yet deleted: the peak
        if name == "checkpoint.step_written":
            peak[0] = max(peak[0], tree_bytes(root))
        real_hit(name)

    monkeypatch.setattr(faults, "hit", hit)
    with Checkpointer(root, "h" * 16) as checkpointer:
        fit(cfg, data, [1, 2], checkpointer=checkpointer, keep="best")
        peak[0] = max(peak[0], tree_bytes(root))
        after = checkpointer.free("best").after
    from fembed_jax.catalog import param_counts

    params = param_counts([cfg])
    (est,) = estimate.estimate_group([cfg], data.size("train"), data.size("val"), params, point=point)
    # The tiny model's steps are ~230 kB, a fifth of it orbax's per-file metadata, whose size
    # varies from save to save (OCDBT manifests, the growing history in the meta): measured
    # 0.85-0.95 of the real peak here. On real models the arrays dominate and it is closer.
    assert est.checkpoint_peak_bytes == pytest.approx(peak[0], rel=0.25)
    assert est.checkpoint_after_bytes == pytest.approx(after, rel=0.25)
    last = estimate._checkpoint_bytes(point, cfg.seeds, params[cfg.exp_id], cfg.epochs, "last")[1]
    assert last == pytest.approx(est.checkpoint_peak_bytes / 3, rel=1e-6)  # one step of the three


def test_over_a_day_is_flagged_with_a_gpu_projection_from_the_flops():
    cfg = tiny_config(epochs=50)
    slow = {"members": 2, "step_seconds": 2_000.0, "flops_per_step": 1e12, "eval_seconds_per_window": 0.0,
            "compile_seconds": 0.0, "source": "measured"}
    (est,) = estimate.estimate_group([cfg], 320, 96, {cfg.exp_id: 4661}, point=slow, gpu=(1e13, "assumed x"))
    assert est.over_a_day and est.gpu_source == "assumed x"
    assert est.gpu_seconds == pytest.approx(50 * (10 + 96 / 32 / 3) * 1e12 / 1e13)
    (fast,) = estimate.estimate_group([cfg], 320, 96, {cfg.exp_id: 4661}, point={**slow, "step_seconds": 0.1})
    assert not fast.over_a_day and fast.gpu_seconds is None


def test_a_recorded_gpu_rate_replaces_the_assumed_one(tmp_path):
    assert estimate.gpu_rate(tmp_path)[1].startswith("assumed")
    (tmp_path / "gpu_epoch.json").write_text(json.dumps({"rows": [
        {"model": "FE-06", "flops_per_step": 4e9, "step_seconds": 0.002},
        {"model": "FE-50", "flops_per_step": 1e9, "step_seconds": 0.001}]}))
    rate, source = estimate.gpu_rate(tmp_path)
    assert rate == pytest.approx(1.5e12) and "gpu_epoch.json" in source


def test_dry_run_json_has_the_keys_scripts_read(tmp_path, capsys, shared_cache, monkeypatch):
    from fembed_jax.cli.main import main

    # Its own estimates (the shared cache holds the pace earlier tests' runs recorded).
    monkeypatch.setattr(estimate, "cache_path", lambda: tmp_path / "estimates.json")

    registry = write_project(tmp_path, tiny_registry('[[experiments]]\nid = "TT-01"\npriority = "P1"\n'
                                                     'tier = "a20"\n'))
    assert main(["--registry", str(registry), "run", "--all", "--dry-run", "--json", "--no-measure"]) == 0
    plan = json.loads(capsys.readouterr().out)
    (row,) = plan["experiments"]
    assert row["exp_id"] == "TT-01" and row["status"] == "run" and row["group"] == "TT-01"
    keys = {"seconds", "source", "checkpoint_peak_bytes", "checkpoint_after_bytes", "peak_memory_bytes",
            "gpu_seconds"}
    assert keys <= set(row["estimate"]) and keys <= set(plan["total"])
    assert row["estimate"]["seconds"] > 0 and row["estimate"]["source"].startswith("flops model")
    assert row["estimate"]["checkpoint_peak_bytes"] > row["estimate"]["checkpoint_after_bytes"] > 0
    assert main(["--registry", str(registry), "run", "--all", "--json"]) == 2  # only with --dry-run

    # The FLOPs count is cached per shape: a second plan reads it instead of lowering again (so
    # repeated dry runs of --all complete what one plan's lowering budget left without a count).
    def no_lowering(*_args, **_kwargs):
        raise AssertionError("lowered again")
    monkeypatch.setattr(estimate, "step_flops", no_lowering)
    assert main(["--registry", str(registry), "run", "--all", "--dry-run", "--json", "--no-measure"]) == 0
    again = json.loads(capsys.readouterr().out)["experiments"][0]["estimate"]
    assert again["seconds"] == pytest.approx(row["estimate"]["seconds"]) and again["source"] == row["estimate"]["source"]


def test_eta_comes_from_the_estimate_remembered_for_the_run_hash(monkeypatch, cache_file):
    estimate.save_cache({"schema": 1, "shapes": {}, "runs": {
        "h1": {"seconds_per_epoch": 10.0, "compile_seconds": 5.0, "epochs": 4},
        "h2": {"seconds_per_epoch": 2.0, "compile_seconds": 1.0, "epochs": 3}}}, cache_file)
    monkeypatch.setattr(estimate, "cache_path", lambda: cache_file)
    now = 1000.0
    running = {"exp_id": "A", "state": "running", "run_hash": "h1", "epochs_run": 1, "started_at": 990.0}
    pending = {"exp_id": "B", "state": "pending", "run_hash": "h2", "epochs_run": 0}
    assert estimate.eta_seconds(running, last_epoch_at=996.0, now=now) == pytest.approx(3 * 10 - 4)
    assert estimate.eta_seconds(pending) == pytest.approx(3 * 2 + 1)
    assert estimate.eta_seconds({"state": "pending", "run_hash": "unknown"}) is None
    assert estimate.eta_seconds({"state": "done", "run_hash": "h1"}) == 0.0
    queue = estimate.queue_eta([running, pending, {"exp_id": "C", "state": "done"}],
                               last_epoch_at={"A": 996.0}, now=now)
    assert queue.seconds == pytest.approx(26 + 7) and queue.unknown == 0 and set(queue.per_row) == {"A", "B"}
    # A runner that died (shown interrupted) resumes from its last epoch: no time into it counts.
    queue = estimate.queue_eta([{**running, "shown_state": "interrupted"}], now=now)
    assert queue.seconds == pytest.approx(3 * 10)
    queue = estimate.queue_eta([{"exp_id": "D", "state": "pending", "run_hash": "unknown"}, pending])
    assert queue.seconds == pytest.approx(7) and queue.unknown == 1 and queue.per_row["D"] is None
