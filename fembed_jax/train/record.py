"""The results.json record: a superset of the original's fields (spec §6.2).

The original's field names keep their meaning so old analysis scripts still work:
`val_metrics.precision` etc. hold the mean over seeds (the single-seed original had one value);
per-seed values, spreads, Wilson intervals, seeds, best epochs, config hash and versions are added.
With `selection_windows = "alternate"` the val metrics are scored on the report windows, which
early stopping never read; the history (and `training`) on the selection windows it read
(`selection_windows` says which and how many).
Precision with no predicted positive is null (undefined), and its means cover the seeds where it
is defined (`val_metrics_aggregate.precision.n` of `n_seeds`). Every per-seed record (val and
test) also carries the Brier and log-loss skill against the train split's base rate.
"""

from __future__ import annotations

import datetime as _dt
import platform
import sys
from typing import Any

from fembed_jax import __version__, metrics
from fembed_jax.config import ExperimentConfig
from fembed_jax.data.splits import SELECTION_BLOCK, selection_masks
from fembed_jax.train.fit import FitResult

RECORD_SCHEMA_VERSION = 1  # of the results.json record (the run store has its own: store.SCHEMA_VERSION)


def estimated_params(cfg: ExperimentConfig) -> int:
    """The original's arch_grid estimate (spec §1.9): linear embedding assumed, RevIN excluded."""
    n, f_eff = cfg.num_patches, cfg.d_embed or cfg.num_features
    d, ff = cfg.d_model, cfg.d_ff
    embed = cfg.num_features * cfg.d_embed + 3 * cfg.d_embed if cfg.d_embed else 0
    layer = (4 * d * d + 4 * d) + 4 * d + (2 * d * ff + ff + d)
    return (embed + cfg.patch_length * f_eff * d + d + (n + 10) * d + cfg.n_layers * layer
            + 2 * d + d * n + 1)


# Beside jax/flax/optax, the packages that decide feature values (pandas, TA-Lib, arch), the
# metrics (scikit-learn, numpy) and the checkpoints (orbax).
_RECORDED_PACKAGES = {"jaxlib": "jaxlib", "numpy": "numpy", "pandas": "pandas", "talib": "TA-Lib",
                      "arch": "arch", "scikit_learn": "scikit-learn", "orbax_checkpoint": "orbax-checkpoint"}


def versions() -> dict[str, str]:
    from importlib import metadata

    import flax
    import jax
    import optax

    found = {"fembed": __version__, "jax": jax.__version__, "flax": flax.__version__,
             "optax": optax.__version__, "python": sys.version.split()[0],
             "platform": platform.platform()}
    for key, distribution in _RECORDED_PACKAGES.items():
        try:
            found[key] = metadata.version(distribution)
        except metadata.PackageNotFoundError:
            found[key] = None
    return found


def device_info() -> dict[str, Any]:
    import jax

    dev = jax.devices()[0]
    return {"platform": dev.platform, "kind": getattr(dev, "device_kind", dev.platform),
            "count": jax.device_count()}


def build_record(cfg: ExperimentConfig, fit: FitResult, *, params: int, splits: dict[str, int],
                 data_info: dict[str, Any], run_hash: str) -> dict[str, Any]:
    # Skill needs the train base rate, which only the data knows; the constant predictor of it
    # is what a model that learned nothing else would score.
    train_rate = ((data_info.get("splits") or {}).get("train") or {}).get("base_rate")
    per_seed = [dict(m, **metrics.skill_scores(m, train_rate)) for m in fit.per_seed]
    test_per_seed = (None if fit.test_metrics is None else
                     [dict(m, **metrics.skill_scores(m, train_rate)) for m in fit.test_metrics])
    healthy = [m for m in per_seed if not m["diverged"]]
    agg = metrics.aggregate_seeds(healthy or per_seed) if per_seed else fit.aggregate  # a diverged seed says nothing
    mean = lambda key: _mean([m[key] for m in healthy if m.get(key) is not None])  # noqa: E731
    val_metrics = {key: mean(key) for key in (
        "precision", "recall", "f1", "accuracy", "auc", "pred_min", "pred_max", "pred_mean",
        "pred_std", "pred_range", "n_positive_preds", "class_balance", "positive_rate",
        "pr_auc", "brier", "log_loss", "brier_skill", "log_loss_skill")}
    val_metrics["n_samples"] = per_seed[0]["n_samples"] if per_seed else 0
    stopped_early = [bool(c >= cfg.patience) for c in fit.stop.counter]
    summary = {
        "precision_mean": _stat(agg, "precision", "mean"), "precision_std": _stat(agg, "precision", "std"),
        "recall_mean": _stat(agg, "recall", "mean"),
        "auc_mean": _stat(agg, "auc", "mean"), "auc_std": _stat(agg, "auc", "std"),
        "tp_total": sum(m["true_positives"] for m in healthy),
        "pred_pos_total": sum(m["n_positive_preds"] for m in healthy),
        "collapsed": any(m["collapsed"] for m in healthy),
        "epochs": max(fit.epochs_run) if fit.epochs_run else 0,
        "seconds": fit.seconds,
    }
    return {
        "schema_version": RECORD_SCHEMA_VERSION,
        "exp_id": cfg.exp_id,
        "priority": cfg.priority,
        "description": cfg.description,
        "tier": cfg.tier,
        "num_features": cfg.num_features,
        "d_embed": cfg.d_embed,
        "architecture": {k: getattr(cfg, k) for k in (
            "d_model", "n_layers", "n_heads", "d_ff", "context_length", "patch_length", "stride")},
        "hyperparameters": {k: getattr(cfg, k) for k in (
            "dropout", "head_dropout", "learning_rate", "batch_size", "epochs", "use_revin",
            "weight_decay")},
        "loss_function": {"loss_fn": cfg.loss, "loss_params": dict(cfg.loss_params),
                          "early_stopping_metric": cfg.early_stop_metric},
        "embedding": {"type": cfg.embedding, "params": dict(cfg.embedding_params)},
        "parameters": {"estimated": estimated_params(cfg), "actual": params},
        "splits": splits,
        "training": {
            "train_loss": _mean([l.get("train_loss") for l in fit.last if l]),
            "val_loss": _mean([l.get("val_loss") for l in fit.last if l]),
            "val_auc": _mean([l.get("val_auc") for l in fit.last if l and l.get("val_auc") is not None]),
            "stopped_early": all(stopped_early),
            "training_time_min": fit.seconds / 60.0,
            "per_seed": [dict(l, seed=s, epochs_run=e, best_epoch=int(b), stopped_early=se)
                         for l, s, e, b, se in zip(fit.last, fit.seeds, fit.epochs_run,
                                                   fit.stop.best_epoch, stopped_early)],
            "resumed_from_epoch": fit.resumed_from,
        },
        "val_metrics": val_metrics,
        "val_metrics_per_seed": per_seed,
        "val_metrics_aggregate": agg,
        "summary": summary,
        "test_metrics_per_seed": test_per_seed,
        "seeds": fit.seeds,
        "selection": cfg.selection,
        "selection_windows": selection_windows(cfg, splits.get("val", 0)),
        "best_epoch": [int(b) for b in fit.stop.best_epoch],
        "diverged_seeds": [s for s, m in zip(fit.seeds, per_seed) if m["diverged"]],
        "history": fit.history,
        "config": cfg.to_dict(),
        "config_hash": cfg.config_hash,
        "run_hash": run_hash,
        "data": data_info,
        "device": device_info(),
        "versions": versions(),
        "timestamp": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
    }


def selection_windows(cfg: ExperimentConfig, n_val: int) -> dict[str, Any]:
    """Which validation windows chose the epoch and which the val metrics are scored on."""
    select, report = selection_masks(n_val, cfg.selection_windows)
    return {"rule": cfg.selection_windows, "block": SELECTION_BLOCK if cfg.selection_windows != "all" else None,
            "n_selection": int(select.sum()), "n_report": int(report.sum()),
            "history_on": "selection windows", "val_metrics_on": "report windows"}


def _stat(agg: dict, metric: str, key: str) -> float | None:
    entry = agg.get(metric)
    return entry.get(key) if isinstance(entry, dict) else None


def _mean(values: list) -> float | None:
    values = [float(v) for v in values if v is not None]
    return sum(values) / len(values) if values else None
