"""The epoch loop: train K seeds together, evaluate, early-stop per seed, checkpoint, report.

The loop stays in Python so that every epoch can be checkpointed, reported and interrupted; the
work inside an epoch is one compiled call (engine.py). Seeds that hit patience are frozen by a
mask; the loop ends when all have stopped or at max epochs. A run resumed from the checkpoint of
epoch k continues at k+1 and ends with exactly the results of an uninterrupted run.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from sklearn.metrics import roc_auc_score

from fembed_jax import metrics
from fembed_jax.config import ExperimentConfig
from fembed_jax.train.early_stopping import StopState
from fembed_jax.train.engine import DeviceData, Engine, seed_keys, select_seeds


class Interrupted(Exception):
    """Training stopped on request after its last epoch was checkpointed."""

    def __init__(self, epoch: int):
        super().__init__(f"interrupted after epoch {epoch}")
        self.epoch = epoch


@dataclasses.dataclass
class EpochReport:
    epoch: int
    train_loss: np.ndarray  # (K,)
    val_loss: np.ndarray  # (K,)
    val_auc: list  # K floats or None
    trained: np.ndarray  # (K,) bool: the seed trained this epoch
    improved: np.ndarray  # (K,) bool
    stop: StopState
    seconds: float

    def rows(self) -> list[dict]:
        """One row per seed that trained this epoch, for the run store."""
        return [{"seed": k, "train_loss": float(self.train_loss[k]), "val_loss": float(self.val_loss[k]),
                 "val_auc": self.val_auc[k], "active": bool(not self.stop.stopped[k]),
                 "is_best": bool(self.improved[k])}
                for k in range(len(self.trained)) if self.trained[k]]


@dataclasses.dataclass
class FitResult:
    seeds: list[int]
    stop: StopState
    epochs_run: list[int]  # per seed: epochs it trained
    per_seed: list[dict]  # classification metrics on the selected weights, val split
    aggregate: dict
    last: dict  # per seed: last epoch's train_loss / val_loss / val_auc
    history: list[dict]  # per epoch: train_loss, val_loss, val_auc lists
    val_probs: np.ndarray  # (K, n_val) on the selected weights
    test_metrics: list[dict] | None
    seconds: float
    resumed_from: int | None


def safe_auc(labels: np.ndarray, probs: np.ndarray) -> float | None:
    if len(np.unique(labels)) < 2 or not np.all(np.isfinite(probs)):
        return None
    return float(roc_auc_score(labels, probs))


def _state_tree(params, opt_state, best, keys, stop: StopState, epoch: int) -> dict[str, Any]:
    return {"params": params, "opt_state": opt_state, "best_params": best, "keys": keys,
            "stop": stop.to_tree(), "epoch": np.int32(epoch)}


def fit(cfg: ExperimentConfig, data: DeviceData, seeds: list[int], *,
        checkpointer=None,
        on_epoch: Callable[[EpochReport], None] | None = None,
        should_stop: Callable[[], bool] | None = None,
        evaluate_test: bool = False,
        engine: Engine | None = None) -> FitResult:
    """Train len(seeds) seeds of `cfg` and evaluate the selected weights on the validation split.

    `checkpointer` (fembed_jax.checkpoint.Checkpointer) gives resume and per-epoch saves;
    `should_stop` is polled after each checkpointed epoch and raises Interrupted when true.
    """
    started = time.monotonic()
    engine = engine or Engine(cfg, data)
    keys = seed_keys(seeds)
    params, opt_state = engine.init(keys)
    best = jax.tree.map(jnp.copy, params)
    stop = StopState.fresh(len(seeds))
    history: list[dict] = []
    start_epoch, resumed_from = 0, None

    if checkpointer is not None:
        template = _state_tree(params, opt_state, best, keys, stop, 0)
        restored = checkpointer.restore_latest(template)
        if restored is not None:
            epoch, state, meta = restored
            params, opt_state, best = state["params"], state["opt_state"], state["best_params"]
            stop = StopState.from_tree(state["stop"])
            history = list(meta.get("history", []))
            start_epoch, resumed_from = int(epoch) + 1, int(epoch)

    val_labels = np.asarray(data.labels["val"])
    last_epoch = start_epoch - 1
    for epoch in range(start_epoch, cfg.epochs):
        if stop.stopped.all():
            break
        t0 = time.monotonic()
        trained = stop.active.copy()
        params, opt_state, train_loss = engine.train_epoch(params, opt_state, keys, epoch, trained)
        probs, val_loss = engine.evaluate(params, "val")
        train_loss = np.asarray(train_loss)
        aucs = [safe_auc(val_labels, probs[k]) for k in range(len(seeds))]
        improved = stop.update(epoch, cfg.early_stop_metric, aucs, val_loss, train_loss,
                               cfg.patience, cfg.min_delta)
        improved &= trained
        best = select_seeds(improved, params, best)
        last_epoch = epoch
        history.append({"epoch": epoch, "trained": trained.tolist(),
                        "train_loss": train_loss.tolist(), "val_loss": val_loss.tolist(),
                        "val_auc": aucs})
        if checkpointer is not None:
            checkpointer.save(epoch, _state_tree(params, opt_state, best, keys, stop, epoch),
                              {"history": history, "seeds": seeds})
        if on_epoch is not None:
            on_epoch(EpochReport(epoch, train_loss, val_loss, aucs, trained, improved, stop,
                                 time.monotonic() - t0))
        if should_stop is not None and should_stop() and not stop.stopped.all():
            raise Interrupted(epoch)
    stop.finish(max(last_epoch, 0))

    selected = best if cfg.selection == "best" else params
    val_probs, _ = engine.evaluate(selected, "val")
    per_seed = []
    for k in range(len(seeds)):
        m = metrics.classification_metrics(val_probs[k], val_labels)
        m["seed"] = seeds[k]
        m["best_epoch"] = int(stop.best_epoch[k])
        m["stop_epoch"] = int(stop.stop_epoch[k])
        m["diverged"] = bool(stop.diverged[k])
        per_seed.append(m)
    test_metrics = None
    if evaluate_test and data.size("test") > 0:
        test_probs, _ = engine.evaluate(selected, "test")
        test_labels = np.asarray(data.labels["test"])
        test_metrics = [metrics.classification_metrics(test_probs[k], test_labels)
                        for k in range(len(seeds))]
    last = {}
    for k in range(len(seeds)):
        rows = [h for h in history if h["trained"][k]]
        last[k] = ({"train_loss": rows[-1]["train_loss"][k], "val_loss": rows[-1]["val_loss"][k],
                    "val_auc": rows[-1]["val_auc"][k]} if rows else {})
    epochs_run = [sum(1 for h in history if h["trained"][k]) for k in range(len(seeds))]
    return FitResult(seeds=list(seeds), stop=stop, epochs_run=epochs_run, per_seed=per_seed,
                     # a diverged seed's metrics say nothing about the experiment
                     aggregate=metrics.aggregate_seeds([m for m in per_seed if not m["diverged"]]
                                                       or per_seed), last=[last[k] for k in range(len(seeds))],
                     history=history, val_probs=val_probs, test_metrics=test_metrics,
                     seconds=time.monotonic() - started, resumed_from=resumed_from)
