"""`fembed run --backend ray` (fembed_jax/train/ray_backend.py) on a local Ray instance with 2
CPUs: the same results, store rows and TUI as the local backend; a killed Ray worker's task is
retried and resumes from its checkpoint; without Ray the error says how to install it.

Cost on a busy 2-core machine: ~10 s to start Ray, then every Ray worker imports JAX and loads
compiled programs from the session's shared cache (FEMBED_CACHE, as in test_runner_groups.py).
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from fembed_jax.cli.main import main
from helpers import tiny_registry, write_project

# Two structures, so two groups (two Ray tasks) are in flight at once on the 2 CPUs.
EXPERIMENTS = """\
[[experiments]]
id = "RB-01"
priority = "RB-P1"
tier = "a20"
d_embed = 8
loss = "focal"
loss_params = { gamma = 2.0, alpha = 0.25 }
description = "focal"

[[experiments]]
id = "RB-02"
priority = "RB-P1"
tier = "a20"
d_embed = 16
description = "bce, another structure"
"""
IDS = ("RB-01", "RB-02")
KILL_REQUEST = "kill-after-first-checkpoint"


@pytest.fixture(scope="module")
def shared_cache(tmp_path_factory):
    """The session's compiled-program cache, as test_runner_groups.py uses it."""
    cache = tmp_path_factory.getbasetemp() / "fembed-cache"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("FEMBED_CACHE", str(cache))
        yield cache


def _kill_hook(request: str):
    """A Ray worker set-up hook: the first worker to reach `fit.epoch_done` (right after a
    checkpoint is saved) while `request` exists removes it and SIGKILLs itself (a node lost
    mid-run). Only one worker wins the unlink, so Ray's retry runs undisturbed."""

    def setup() -> None:
        import os
        import signal

        from fembed_jax import faults

        original = faults.hit

        def hit(point: str) -> None:
            original(point)
            if point == "fit.epoch_done":
                try:
                    os.unlink(request)
                except FileNotFoundError:
                    return
                os.kill(os.getpid(), signal.SIGKILL)

        faults.hit = hit

    return setup


@pytest.fixture(scope="module")
def ray_instance(tmp_path_factory, shared_cache):
    """A local Ray instance with 2 CPUs, started by the test; yields the kill-request path."""
    ray = pytest.importorskip("ray")
    request = tmp_path_factory.mktemp("ray-faults") / KILL_REQUEST
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             logging_level="WARNING",
             runtime_env={"worker_process_setup_hook": _kill_hook(str(request))})
    try:
        yield request
    finally:
        ray.shutdown()


def _run(root: Path, *args: str) -> tuple[int, float]:
    registry = write_project(root, tiny_registry(EXPERIMENTS))
    started = time.perf_counter()
    code = main(["--registry", str(registry), "run", *args])
    return code, time.perf_counter() - started


@pytest.fixture(scope="module")
def runs(tmp_path_factory, ray_instance):
    """The tiny priority through the local backend and through Ray (wall seconds printed)."""
    base = tmp_path_factory.mktemp("ray-backend")
    local_code, local_s = _run(base / "local", "--priority", "RB-P1")
    ray_code, ray_s = _run(base / "ray", "--priority", "RB-P1", "--backend", "ray")
    print(f"\ntiny priority (2 experiments x 2 seeds x 2 epochs): local {local_s:.1f} s, "
          f"Ray (local instance, 2 CPUs) {ray_s:.1f} s")
    assert (local_code, ray_code) == (0, 0)
    return {"local": base / "local", "ray": base / "ray", "base": base}


def results(root: Path, exp_id: str) -> dict:
    return json.loads((root / "outputs" / exp_id / "results.json").read_text())


def assert_same_results(got: dict, want: dict) -> None:
    assert got["run_hash"] == want["run_hash"] and got["seeds"] == want["seeds"] == [42, 43]
    assert got["best_epoch"] == want["best_epoch"]
    for key in ("train_loss", "val_loss"):
        np.testing.assert_allclose([h[key] for h in got["history"]],
                                   [h[key] for h in want["history"]], rtol=1e-5, atol=1e-6)
    for mine, theirs in zip(got["val_metrics_per_seed"], want["val_metrics_per_seed"], strict=True):
        assert mine["n_positive_preds"] == theirs["n_positive_preds"]
        assert mine["auc"] == pytest.approx(theirs["auc"], abs=1e-5)
        assert mine["precision"] == pytest.approx(theirs["precision"], abs=1e-6)


def assert_same_predictions(got_root: Path, want_root: Path, exp_id: str) -> None:
    path = Path("outputs") / exp_id / "val_predictions.npz"
    with np.load(got_root / path) as got, np.load(want_root / path) as want:
        assert sorted(got.files) == sorted(want.files)
        for name in got.files:
            if np.issubdtype(got[name].dtype, np.floating):
                np.testing.assert_allclose(got[name], want[name], rtol=1e-5, atol=1e-6)
            else:
                np.testing.assert_array_equal(got[name], want[name])


def test_ray_backend_gives_the_local_backends_results_and_store(runs):
    from fembed_jax.store import RunStore

    for exp_id in IDS:
        got, want = results(runs["ray"], exp_id), results(runs["local"], exp_id)
        assert_same_results(got, want)
        assert got["training"]["resumed_from_epoch"] is None
        assert_same_predictions(runs["ray"], runs["local"], exp_id)
    with RunStore(runs["ray"] / "outputs" / "fembed.db", readonly=True) as ray_store, \
            RunStore(runs["local"] / "outputs" / "fembed.db", readonly=True) as local_store:
        assert ray_store.counts() == local_store.counts()
        assert ray_store.counts()["done"] == 2
        for exp_id in IDS:
            rows = ray_store.epochs(exp_id)
            assert [(r["epoch"], r["seed"]) for r in rows] == [(0, 0), (0, 1), (1, 0), (1, 1)]
            local_rows = local_store.epochs(exp_id)
            np.testing.assert_allclose([r["val_loss"] for r in rows],
                                       [r["val_loss"] for r in local_rows], rtol=1e-5, atol=1e-6)
            assert ray_store.result(exp_id)["record"]["val_metrics"] == pytest.approx(
                local_store.result(exp_id)["record"]["val_metrics"], abs=1e-5)


def test_a_killed_ray_worker_is_retried_and_resumes_from_its_checkpoint(runs, ray_instance):
    request = ray_instance
    request.touch()  # the worker that saves the first checkpoint dies right after it
    root = runs["base"] / "killed"
    code, _ = _run(root, "--exp-id", "RB-01", "--backend", "ray")
    assert code == 0
    assert not request.exists(), "no Ray worker was killed"
    got = results(root, "RB-01")
    assert got["training"]["resumed_from_epoch"] == 0  # the retry resumed after epoch 0
    assert_same_results(got, results(runs["local"], "RB-01"))
    assert_same_predictions(root, runs["local"], "RB-01")


async def test_tui_shows_a_ray_run_like_a_local_one(runs):
    from textual.widgets import DataTable

    from fembed_jax.registry import load_registry
    from fembed_jax.tui.app import FembedMonitor

    def cells(table: DataTable, keys: tuple[str, ...]) -> dict[str, tuple[str, ...]]:
        columns = [c.key.value for c in table.ordered_columns]
        return {row.key.value: tuple(getattr(table.get_row(row.key)[columns.index(k)], "plain",
                                             str(table.get_row(row.key)[columns.index(k)]))
                                     for k in keys)
                for row in table.ordered_rows}

    shown = {}
    for backend in ("local", "ray"):
        root = runs[backend]
        app = FembedMonitor(load_registry(root / "registry" / "experiments.toml"),
                            root / "outputs" / "fembed.db", static=True)
        async with app.run_test(size=(120, 40)) as pilot:
            await pilot.pause()
            queue = cells(app.query_one("#queue-table", DataTable), ("state", "progress", "seeds"))
            await pilot.press("2")
            await pilot.pause()
            found = cells(app.query_one("#results-table", DataTable),
                          ("precision", "tp", "recall", "auc", "epochs"))
        shown[backend] = queue, found
    queue, found = shown["ray"]
    assert {exp_id: state for exp_id, (state, *_) in queue.items()} == dict.fromkeys(IDS, "done")
    assert sorted(found) == list(IDS)
    assert shown["ray"] == shown["local"]


def test_backend_ray_without_ray_says_how_to_install(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    registry = write_project(tmp_path, tiny_registry(EXPERIMENTS))
    code = main(["--registry", str(registry), "run", "--priority", "RB-P1", "--backend", "ray"])
    assert code == 2
    err = capsys.readouterr().err
    assert "--backend ray needs Ray" in err and "pip install 'fembed[ray]'" in " ".join(err.split())
    assert not (tmp_path / "outputs" / "RB-01").exists()


def test_address_needs_the_ray_backend(tmp_path, capsys):
    registry = write_project(tmp_path, tiny_registry(EXPERIMENTS))
    assert main(["--registry", str(registry), "run", "--all", "--address", "auto"]) == 2
    assert "--address needs --backend ray" in capsys.readouterr().err
    assert os.path.exists(registry)
