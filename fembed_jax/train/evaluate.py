"""Scoring a finished run again: its selected weights restored from the checkpoint, the
validation split re-scored (it must reproduce results.json) or the held-out test split scored
once. What `fembed evaluate` runs; the test record goes to outputs/<ID>/test_results.json and
never into the store or a ranking.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import numpy as np

from fembed_jax.config import ExperimentConfig

TEST_NOTE = ("held-out test split, scored once on the weights selected on validation; "
             "reported separately and never used for ranking or selection")
# results.json AUCs must be reproduced this closely by the restored weights
AUC_TOLERANCE = 1e-5


def restore_selected(cfg: ExperimentConfig, engine, run_hash: str, seeds: list[int],
                     checkpoints_dir: Path) -> tuple[int, Any] | None:
    """(epoch, weights) the run selected (``best_params`` for selection "best", ``params`` for
    "last"), from its latest intact checkpoint of `run_hash`: a per-epoch step, or the selected
    weights a finished run keeps. None when there is none."""
    import jax

    from fembed_jax.checkpoint import Checkpointer
    from fembed_jax.train.early_stopping import StopState
    from fembed_jax.train.engine import seed_keys
    from fembed_jax.train.fit import selected_key, state_tree

    keys = seed_keys(seeds)
    params, opt_state = jax.eval_shape(engine.init, keys)  # shapes only: nothing is initialised
    template = state_tree(params, opt_state, params, keys, StopState.fresh(len(seeds)), 0)
    with Checkpointer(checkpoints_dir / cfg.exp_id, run_hash) as checkpointer:
        restored = checkpointer.restore_latest(template)
    if restored is None:
        return None
    epoch, state, _meta = restored
    return int(epoch), state[selected_key(cfg)]


def validation_mismatch(record: dict, probs: np.ndarray, labels: np.ndarray) -> str | None:
    """Why re-scored validation probabilities (every window) do not reproduce `record` (None:
    they do); the record's val metrics are scored on its report windows."""
    from fembed_jax.data.splits import report_mask

    scored = report_mask((record.get("selection_windows") or {}).get("rule"), labels.size)
    probs, labels = probs[:, scored], labels[scored]
    from fembed_jax import stats

    for k, m in enumerate(record.get("val_metrics_per_seed") or []):
        if m.get("auc") is None:
            continue
        auc = stats.auc_rank(probs[k], labels)
        if auc is None or abs(auc - m["auc"]) > AUC_TOLERANCE:
            return (f"the restored weights give seed {m.get('seed')} a validation AUC of {auc}, "
                    f"results.json says {m['auc']}: the checkpoint is not the one this result came from")
    return None


def scored_test_record(cfg: ExperimentConfig, record: dict, run_hash: str, epoch: int, probs: np.ndarray,
                dataset, n_boot: int) -> dict[str, Any]:
    """The test_results.json record of a run's selected weights scored on the test split."""
    from fembed_jax import metrics, stats

    labels = dataset.labels["test"]
    seeds = record.get("seeds") or list(range(len(probs)))
    per_seed = [{**metrics.classification_metrics(probs[k], labels), "seed": seed}
                for k, seed in enumerate(seeds)]
    ensemble = stats.ensemble_metrics(probs, labels)
    ensemble_auc = None
    if ensemble["n_seeds_used"] and ensemble["auc"] is not None:
        ensemble_auc = stats.bootstrap_auc(probs, labels, n_boot=n_boot)
    return {
        "exp_id": cfg.exp_id, "split": "test", "note": TEST_NOTE, "run_hash": run_hash,
        "config_hash": cfg.config_hash, "selection": cfg.selection, "checkpoint_epoch": int(epoch),
        "seeds": seeds, "n_seeds": len(seeds), "n_windows": int(labels.size),
        "positives": int(labels.sum()), "data": dataset.split_info()["test"],
        "metrics_per_seed": per_seed, "aggregate": metrics.aggregate_seeds(per_seed),
        "ensemble": ensemble, "ensemble_auc": ensemble_auc,
        "timestamp": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
    }
