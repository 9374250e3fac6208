"""`fembed run` trains experiments of equal structure in one program; `--no-group` does not, and
both end with the same results (the grouped-vs-alone equality at the queue level)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from fembed_jax.cli.main import main
from fembed_jax.train import engine as engine_module
from fembed_jax.train import fit as fit_module
from helpers import tiny_registry, write_project

GROUP_EXPERIMENTS = """\
[[experiments]]
id = "GR-01"
priority = "P1"
tier = "a20"
d_embed = 8
loss = "focal"
loss_params = { gamma = 2.0, alpha = 0.25 }
description = "focal, one structure"

[[experiments]]
id = "GR-02"
priority = "P1"
tier = "a20"
d_embed = 8
loss = "focal"
loss_params = { gamma = 1.0, alpha = 0.5 }
weight_decay = 0.01
description = "focal, same structure, other values"

[[experiments]]
id = "GR-03"
priority = "P1"
tier = "a20"
d_embed = 16
description = "bce, another structure"
"""


pytestmark = pytest.mark.usefixtures("shared_cache")  # tests/conftest.py

def project(root: Path) -> Path:
    return write_project(root, tiny_registry(GROUP_EXPERIMENTS))


def engines_built(monkeypatch) -> list[str]:
    """Which experiment each training program (the Engine fit_group builds) was built for; the
    estimates' FLOPs analysis builds engines too, only when its cache lacks the shape."""
    built: list[str] = []

    def counting(cfg, *args, **kwargs):
        built.append(cfg.exp_id)
        return engine_module.Engine(cfg, *args, **kwargs)

    monkeypatch.setattr(fit_module, "Engine", counting)
    return built


def results(root: Path, exp_id: str) -> dict:
    return json.loads((root / "outputs" / exp_id / "results.json").read_text())


def test_run_groups_equal_structures_and_matches_no_group(tmp_path, monkeypatch, capsys):
    grouped_root, alone_root = tmp_path / "grouped", tmp_path / "alone"
    built = engines_built(monkeypatch)
    assert main(["--registry", str(project(grouped_root)), "run", "--all"]) == 0
    assert built == ["GR-01", "GR-03"], built  # GR-02 trained inside GR-01's program
    assert "one compiled program for 2 experiments: GR-01, GR-02" in capsys.readouterr().out

    built.clear()
    assert main(["--registry", str(project(alone_root)), "run", "--all", "--no-group"]) == 0
    assert built == ["GR-01", "GR-02", "GR-03"]

    for exp_id in ("GR-01", "GR-02", "GR-03"):
        got, alone = results(grouped_root, exp_id), results(alone_root, exp_id)
        assert got["run_hash"] == alone["run_hash"] and got["seeds"] == alone["seeds"] == [42, 43]
        assert got["best_epoch"] == alone["best_epoch"]
        for key in ("train_loss", "val_loss"):
            np.testing.assert_allclose([h[key] for h in got["history"]],
                                       [h[key] for h in alone["history"]], rtol=1e-5, atol=1e-6)
        for mine, theirs in zip(got["val_metrics_per_seed"], alone["val_metrics_per_seed"]):
            assert mine["n_positive_preds"] == theirs["n_positive_preds"]
            assert mine["auc"] == pytest.approx(theirs["auc"], abs=2e-4)  # near-tied pairs
        # every experiment keeps its own predictions and checkpoint
        with np.load(grouped_root / "outputs" / exp_id / "val_predictions.npz") as npz:
            assert npz["probs"].shape == (2, got["splits"]["val"])
        assert any((grouped_root / "checkpoints" / exp_id).iterdir())


def test_an_interrupted_group_resumes_each_member(tmp_path, monkeypatch):
    """SIGINT during a group's first epoch: both members are left pending with a checkpoint, and
    the next run finishes them with the results of an uninterrupted grouped run."""
    import signal

    from fembed_jax.store import RunStore
    from fembed_jax.train import fit as fit_module

    clean, stopped = tmp_path / "clean", tmp_path / "stopped"
    assert main(["--registry", str(project(clean)), "run", "--exp-id", "GR-01", "--exp-id",
                 "GR-02"]) == 0
    original = fit_module.Member

    def member_with_signal(cfg, seeds, checkpointer=None, on_epoch=None, *args, **kwargs):
        def hook(report):
            on_epoch(report)
            if cfg.exp_id == "GR-02" and report.epoch == 0:
                signal.raise_signal(signal.SIGINT)  # handled by the runner: stop after this epoch
        return original(cfg, seeds, checkpointer, hook, *args, **kwargs)

    monkeypatch.setattr(fit_module, "Member", member_with_signal)
    registry = project(stopped)
    assert main(["--registry", str(registry), "run", "--exp-id", "GR-01", "--exp-id", "GR-02"]) == 130
    with RunStore(stopped / "outputs" / "fembed.db", readonly=True) as store:
        assert store.counts().get("pending") == 2
    monkeypatch.setattr(fit_module, "Member", original)
    assert main(["--registry", str(registry), "run", "--exp-id", "GR-01", "--exp-id", "GR-02"]) == 0
    for exp_id in ("GR-01", "GR-02"):
        got, want = results(stopped, exp_id), results(clean, exp_id)
        assert got["history"] == want["history"]
        assert got["val_metrics_per_seed"] == want["val_metrics_per_seed"]
