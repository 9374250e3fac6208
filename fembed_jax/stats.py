"""Statistics that say how much a result can be trusted.

The original reported one seed's precision from a handful of predicted positives (6/7 for its
"85.7%" headline). This module puts the noise beside every number:

* per seed: precision as TP / predicted positives with a Wilson 95% interval;
* over seeds: mean ± sample std (ddof 1) of precision, recall and AUC;
* the seed ensemble: the mean probability over seeds, scored like one model;
* AUC with a bootstrap interval over the validation windows;
* a paired bootstrap of the difference between two experiments on the same windows;
* a one-feature reference: logistic regression on ATR14 / Close.

Everything is numpy (plus scikit-learn for the logistic regression); bootstraps are seeded and
vectorised (one weight matrix of resample counts, no Python loop over resamples).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from fembed_jax.metrics import classification_metrics, wilson_interval

__all__ = [
    "DEFAULT_BOOTSTRAP",
    "LEGACY_LABEL",
    "auc_rank",
    "bootstrap_auc",
    "bootstrap_weights",
    "ensemble_metrics",
    "ensemble_probs",
    "experiment_stats",
    "mean_std",
    "paired_bootstrap",
    "precision_interval",
    "seed_metrics",
    "top_k_precision",
    "volatility_feature",
    "volatility_reference",
]

DEFAULT_BOOTSTRAP = 2000
LEGACY_LABEL = "legacy (1 seed, final-epoch weights)"


# ---- counts and spreads -----------------------------------------------------------------------

class BlockLengthError(ValueError):
    """A bootstrap block longer than the windows it resamples (a user's --block)."""


def precision_interval(true_positives: int, predicted_positives: int, z: float = 1.96) -> dict:
    """Precision TP / PP with its Wilson interval; PP = 0 gives precision 0 and (0, 1)."""
    tp, pp = int(true_positives), int(predicted_positives)
    low, high = wilson_interval(tp, pp, z)
    return {"precision": tp / pp if pp else 0.0, "true_positives": tp,
            "predicted_positives": pp, "ci_low": low, "ci_high": high}


def mean_std(values: Sequence[float | None]) -> dict:
    """{"mean", "std", "n"} over the values that are not None; std is ddof 1 (None when n < 2)."""
    kept = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    n = len(kept)
    return {"mean": float(np.mean(kept)) if n else None,
            "std": float(np.std(kept, ddof=1)) if n >= 2 else None, "n": n}


def _true_positives(m: Mapping[str, Any]) -> int | None:
    if m.get("true_positives") is not None:
        return int(m["true_positives"])
    if m.get("precision") is None or m.get("n_positive_preds") is None:
        return None
    # The original recorded precision and predicted positives only: TP = precision * PP.
    return int(round(float(m["precision"]) * float(m["n_positive_preds"])))


def seed_metrics(record: Mapping[str, Any]) -> list[dict]:
    """One normalised row per seed of a result record.

    fembed records carry ``val_metrics_per_seed``; a legacy record has only ``val_metrics``
    (one seed, seed unknown). Row keys: seed, precision, recall, auc, true_positives,
    predicted_positives, ci_low, ci_high (Wilson 95%), pred_min, pred_max, pred_range,
    collapsed (no positive prediction or pred_range < 0.1), diverged.
    """
    per_seed = record.get("val_metrics_per_seed")
    if not isinstance(per_seed, list) or not per_seed:
        val = record.get("val_metrics")
        per_seed = [val] if isinstance(val, Mapping) else []
    rows = []
    for m in per_seed:
        tp = _true_positives(m)
        pp = None if m.get("n_positive_preds") is None else int(round(float(m["n_positive_preds"])))
        interval = (precision_interval(tp, pp) if tp is not None and pp is not None and 0 <= tp <= pp
                    else {"ci_low": None, "ci_high": None})
        pred_range = m.get("pred_range")
        collapsed = m.get("collapsed")
        if collapsed is None:
            collapsed = (pp == 0) or (pred_range is not None and float(pred_range) < 0.1)
        rows.append({
            "seed": m.get("seed"), "precision": m.get("precision"), "recall": m.get("recall"),
            "auc": m.get("auc"), "true_positives": tp, "predicted_positives": pp,
            "ci_low": interval["ci_low"], "ci_high": interval["ci_high"],
            "pred_min": m.get("pred_min"), "pred_max": m.get("pred_max"), "pred_range": pred_range,
            "collapsed": bool(collapsed), "diverged": bool(m.get("diverged", False)),
        })
    return rows


# ---- the seed ensemble ------------------------------------------------------------------------

def ensemble_probs(probs) -> tuple[np.ndarray, int]:
    """Mean probability over seeds of a (K, n) array, and how many seeds went into it.

    Seeds with any non-finite probability (a diverged run) are left out; if every seed is
    non-finite the plain mean (non-finite) is returned with 0 seeds used.
    """
    p = np.asarray(probs, np.float64)
    if p.ndim == 1:
        return p, 1
    finite = np.all(np.isfinite(p), axis=1)
    if not finite.any():
        return p.mean(axis=0), 0
    return p[finite].mean(axis=0), int(finite.sum())


def ensemble_metrics(probs, labels, threshold: float = 0.5) -> dict:
    """classification_metrics of the seed-mean probability, plus ``n_seeds_used``."""
    mean, used = ensemble_probs(probs)
    out = classification_metrics(mean, labels, threshold)
    out["n_seeds_used"] = used
    return out


# ---- AUC and bootstraps ------------------------------------------------------------------------

def _check_scores(probs, labels) -> tuple[np.ndarray, np.ndarray]:
    p = np.asarray(probs, np.float64).reshape(-1)
    y = np.asarray(labels).reshape(-1)
    if p.shape != y.shape:
        raise ValueError(f"probs has {p.size} elements but labels has {y.size}")
    if not np.all((y == 0) | (y == 1)):
        raise ValueError("labels must be 0 or 1")
    if not np.all(np.isfinite(p)):
        raise ValueError(f"{int(np.sum(~np.isfinite(p)))} non-finite probabilities: AUC undefined")
    return p, y.astype(np.float64)


def _weighted_auc(scores: np.ndarray, labels: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """AUC of every row of ``weights`` (B, n): each window counted as often as its weight.

    AUC = sum_{i pos, j neg} w_i w_j ([s_i > s_j] + 0.5 [s_i = s_j]) / (W_pos W_neg), the
    Mann-Whitney statistic with ties counted half. Computed over the sorted distinct scores with
    cumulative sums, O(B n). Rows without a positive or a negative give NaN.
    """
    order = np.argsort(scores, kind="stable")
    s, y = scores[order], labels[order]
    w = np.atleast_2d(weights)[:, order].astype(np.float64)
    group_starts = np.flatnonzero(np.r_[True, s[1:] != s[:-1]])
    pos = np.add.reduceat(w * y, group_starts, axis=1)
    neg = np.add.reduceat(w * (1.0 - y), group_starts, axis=1)
    neg_below = np.cumsum(neg, axis=1) - neg
    numerator = np.sum(pos * (neg_below + 0.5 * neg), axis=1)
    denominator = pos.sum(axis=1) * neg.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denominator > 0, numerator / denominator, np.nan)


def auc_rank(probs, labels) -> float | None:
    """ROC AUC by the rank (Mann-Whitney) formula, ties counted half; None with one class."""
    p, y = _check_scores(probs, labels)
    value = float(_weighted_auc(p, y, np.ones((1, p.size)))[0])
    return None if math.isnan(value) else value


def bootstrap_weights(n: int, n_boot: int, rng: np.random.Generator, block_length: int = 1) -> np.ndarray:
    """(n_boot, n) resample counts: row b says how often each window is drawn in resample b.

    block_length 1 draws windows independently; L > 1 is a moving-block bootstrap (n/L blocks of
    L consecutive windows, truncated to n), which keeps the serial dependence of daily data.
    """
    if n < 1 or n_boot < 1:
        raise ValueError(f"bootstrap needs n >= 1 and n_boot >= 1, got n={n}, n_boot={n_boot}")
    if not 1 <= block_length <= n:
        raise BlockLengthError(f"bootstrap block length {block_length} is outside [1, {n}] "
                               f"({n} windows are scored)")
    if block_length == 1:
        idx = rng.integers(0, n, size=(n_boot, n))
    else:
        n_blocks = math.ceil(n / block_length)
        first = rng.integers(0, n - block_length + 1, size=(n_boot, n_blocks))
        idx = (first[:, :, None] + np.arange(block_length)).reshape(n_boot, -1)[:, :n]
    flat = idx + (np.arange(n_boot) * n)[:, None]
    return np.bincount(flat.ravel(), minlength=n_boot * n).reshape(n_boot, n)


def _interval(values: np.ndarray, level: float) -> tuple[float | None, float | None]:
    values = values[np.isfinite(values)]
    if values.size == 0:
        return None, None
    alpha = (1.0 - level) / 2.0
    low, high = np.quantile(values, [alpha, 1.0 - alpha])
    return float(low), float(high)


def _check_level(level: float) -> None:
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level}")


def bootstrap_auc(probs, labels, n_boot: int = DEFAULT_BOOTSTRAP, seed: int = 0,
                  level: float = 0.95, block_length: int = 1) -> dict:
    """AUC of 1-D ``probs`` with a percentile bootstrap interval over the windows.

    Returns {"auc", "low", "high", "level", "n_boot", "n_valid" (resamples with both classes),
    "block_length", "seed"}. ``probs`` of shape (K, n) are averaged over seeds first (the
    ensemble).
    """
    _check_level(level)
    p, _ = ensemble_probs(probs)
    p, y = _check_scores(p, labels)
    weights = bootstrap_weights(p.size, n_boot, np.random.default_rng(seed), block_length)
    aucs = _weighted_auc(p, y, weights)
    low, high = _interval(aucs, level)
    point = _weighted_auc(p, y, np.ones((1, p.size)))[0]
    return {"auc": None if math.isnan(point) else float(point), "low": low, "high": high,
            "level": level, "n_boot": n_boot, "n_valid": int(np.isfinite(aucs).sum()),
            "block_length": block_length, "seed": seed}


def _weighted_precision(pred: np.ndarray, labels: np.ndarray, weights: np.ndarray) -> np.ndarray:
    tp = weights @ (pred * labels)
    pp = weights @ pred
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(pp > 0, tp / pp, np.nan)


def paired_bootstrap(probs_a, probs_b, labels, n_boot: int = DEFAULT_BOOTSTRAP, seed: int = 0,
                     level: float = 0.95, threshold: float = 0.5, block_length: int = 1) -> dict:
    """Difference A − B of AUC and of precision on the same windows, with bootstrap intervals.

    Both experiments are scored on every resample with the *same* resample counts, so the
    window-to-window luck they share cancels in the difference. (K, n) inputs are averaged over
    seeds first: the comparison is between seed ensembles; seed-to-seed spread is separate.
    Per metric: {"a", "b", "diff", "low", "high", "n_valid", "prob_a_better" (share of valid
    resamples with diff > 0), "p_value" (two-sided, 2 · min(share <= 0, share >= 0), capped
    at 1)}. Precision resamples where either model has no positive prediction are not valid.
    """
    _check_level(level)
    pa, _ = ensemble_probs(probs_a)
    pb, _ = ensemble_probs(probs_b)
    pa, y = _check_scores(pa, labels)
    pb, _ = _check_scores(pb, labels)
    weights = bootstrap_weights(y.size, n_boot, np.random.default_rng(seed), block_length)
    ones = np.ones((1, y.size))
    out: dict[str, Any] = {"n_boot": n_boot, "level": level, "seed": seed, "threshold": threshold,
                           "block_length": block_length, "n_windows": int(y.size)}

    def summarise(a_point, b_point, a_boot, b_boot):
        diff = a_boot - b_boot
        valid = diff[np.isfinite(diff)]
        low, high = _interval(diff, level)
        entry = {"a": a_point, "b": b_point,
                 "diff": None if a_point is None or b_point is None else a_point - b_point,
                 "low": low, "high": high, "n_valid": int(valid.size),
                 "prob_a_better": float(np.mean(valid > 0)) if valid.size else None,
                 "p_value": (min(1.0, 2.0 * min(np.mean(valid <= 0), np.mean(valid >= 0)))
                             if valid.size else None)}
        if entry["p_value"] is not None:
            entry["p_value"] = float(entry["p_value"])
        return entry

    def point(values):
        value = float(values[0])
        return None if math.isnan(value) else value

    out["auc"] = summarise(point(_weighted_auc(pa, y, ones)), point(_weighted_auc(pb, y, ones)),
                           _weighted_auc(pa, y, weights), _weighted_auc(pb, y, weights))
    pred_a = (pa >= threshold).astype(np.float64)
    pred_b = (pb >= threshold).astype(np.float64)
    out["precision"] = summarise(point(_weighted_precision(pred_a, y, ones)),
                                 point(_weighted_precision(pred_b, y, ones)),
                                 _weighted_precision(pred_a, y, weights),
                                 _weighted_precision(pred_b, y, weights))
    return out


# ---- one experiment ----------------------------------------------------------------------------

def experiment_stats(record: Mapping[str, Any], predictions: Any = None, *,
                     n_boot: int = DEFAULT_BOOTSTRAP, seed: int = 0, block_length: int = 1,
                     level: float = 0.95) -> dict:
    """Everything the report and ``fembed compare`` show about one result record.

    Keys: exp_id, legacy, n_seeds, seeds (the per-seed rows of ``seed_metrics``), precision /
    recall / auc (mean_std over the seeds that did not diverge), tp_mean, pred_pos_mean,
    typical (precision_interval of a typical seed: mean TP over mean predicted positives,
    rounded — the Wilson lower bound ``typical["ci_low"]`` ranks results), collapsed_seeds,
    pred_range_min, pred_max_max; with ``predictions`` (a predictions.Predictions) also
    ensemble (ensemble_metrics) and ensemble_auc (bootstrap_auc of the ensemble); else None.
    Seed-summed counts are not pooled into one interval: every seed sees the same windows.
    """
    rows = seed_metrics(record)
    healthy = [r for r in rows if not r["diverged"]] or rows
    tp = mean_std([r["true_positives"] for r in healthy])
    pp = mean_std([r["predicted_positives"] for r in healthy])
    typical = None
    if tp["mean"] is not None and pp["mean"] is not None:
        k, n = int(round(tp["mean"])), int(round(pp["mean"]))
        typical = precision_interval(min(k, n), n)
    out: dict[str, Any] = {
        "exp_id": record.get("exp_id"),
        "legacy": bool(record.get("legacy", False)),
        "n_seeds": len(rows),
        "n_diverged": sum(1 for r in rows if r["diverged"]),
        "seeds": rows,
        "precision": mean_std([r["precision"] for r in healthy]),
        "recall": mean_std([r["recall"] for r in healthy]),
        "auc": mean_std([r["auc"] for r in healthy]),
        "tp_mean": tp["mean"],
        "pred_pos_mean": pp["mean"],
        "typical": typical,
        "collapsed_seeds": sum(1 for r in rows if r["collapsed"]),
        "pred_range_min": min((r["pred_range"] for r in rows if r["pred_range"] is not None), default=None),
        "pred_max_max": max((r["pred_max"] for r in rows if r["pred_max"] is not None), default=None),
        "ensemble": None,
        "ensemble_auc": None,
    }
    if predictions is not None:
        out["ensemble"] = ensemble_metrics(predictions.probs, predictions.labels)
        if out["ensemble"]["n_seeds_used"] and out["ensemble"]["auc"] is not None:
            mean, _ = ensemble_probs(predictions.probs)
            out["ensemble_auc"] = bootstrap_auc(mean, predictions.labels, n_boot=n_boot, seed=seed,
                                                level=level, block_length=block_length)
    return out


def top_k_precision(probs, labels, k: int) -> dict:
    """Precision (with its Wilson interval) and recall among the ``k`` highest-scored windows
    (ties broken by position): a threshold-free view of a model that rarely reaches 0.5."""
    p, y = _check_scores(probs, labels)
    if not 1 <= k <= p.size:
        raise ValueError(f"k must be in [1, {p.size}], got {k}")
    top = np.argsort(-p, kind="stable")[:k]
    tp = int(y[top].sum())
    return {"k": int(k), **precision_interval(tp, int(k)), "recall": tp / y.sum() if y.sum() else 0.0}


# ---- the one-feature reference -----------------------------------------------------------------

def volatility_feature(frame) -> np.ndarray:
    """ATR(14) / Close per row of a tier frame (Date, OHLCV, features).

    Uses the tier's own ``atr_14`` column (computed on the full raw history) when present,
    else TA-Lib's ATR on the frame's High/Low/Close.
    """
    close = np.asarray(frame["Close"], np.float64)
    if "atr_14" in getattr(frame, "columns", ()):
        atr = np.asarray(frame["atr_14"], np.float64)
    else:
        import talib

        atr = talib.ATR(np.asarray(frame["High"], np.float64), np.asarray(frame["Low"], np.float64),
                        close, 14)
    with np.errstate(invalid="ignore", divide="ignore"):
        return atr / close


def volatility_reference(feature, starts: Mapping[str, np.ndarray], labels: Mapping[str, np.ndarray],
                         context_length: int, *, threshold: float = 0.5,
                         n_boot: int = DEFAULT_BOOTSTRAP, seed: int = 0, block_length: int = 1,
                         level: float = 0.95) -> dict:
    """Logistic regression on one feature at each window's decision day: fit on train, score val.

    ``feature`` is per matrix row (e.g. ``volatility_feature``); window k of split s is decided
    on row starts[s][k] + context_length - 1. The feature is standardised on train (so the L2
    penalty of scikit-learn's default does not shrink a feature of scale 0.01 to nothing).
    Returns {"metrics": classification_metrics on val, "auc_ci": bootstrap_auc, "top_k":
    top_k_precision of the 5% highest-scored validation windows (a logistic fit on a rare
    label seldom reaches 0.5, so its precision at 0.5 says little), "coef" (per train standard
    deviation), "n_train", "n_val", "probs" (val probabilities)}.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x = np.asarray(feature, np.float64)

    def split(name):
        rows = np.asarray(starts[name]) + context_length - 1
        return x[rows], np.asarray(labels[name], np.float64)

    x_train, y_train = split("train")
    keep = np.isfinite(x_train)
    if keep.sum() < 2 or len(np.unique(y_train[keep])) < 2:
        raise ValueError("volatility reference: the train split needs finite features of both classes")
    model = make_pipeline(StandardScaler(), LogisticRegression())
    model.fit(x_train[keep, None], y_train[keep])
    x_val, y_val = split("val")
    if not np.all(np.isfinite(x_val)):
        raise ValueError(f"volatility reference: {int(np.sum(~np.isfinite(x_val)))} validation "
                         "windows have no ATR14/Close (too close to the start of the data)")
    probs = model.predict_proba(x_val[:, None])[:, 1]
    return {"metrics": classification_metrics(probs, y_val, threshold),
            "auc_ci": bootstrap_auc(probs, y_val, n_boot=n_boot, seed=seed, level=level,
                                    block_length=block_length),
            "top_k": top_k_precision(probs, y_val, max(1, int(round(0.05 * y_val.size)))),
            "coef": float(model[-1].coef_[0, 0]), "n_train": int(keep.sum()),
            "n_val": int(y_val.size), "probs": probs}
