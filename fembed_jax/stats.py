"""Statistics that say how much a result can be trusted.

The original reported one seed's precision from a handful of predicted positives (6/7 for its
"85.7%" headline). This module puts the noise beside every number:

* per seed: precision as TP / predicted positives with a Wilson 95% interval (None, not 0,
  when nothing was predicted positive);
* over seeds: mean ± sample std (ddof 1), over the seeds where the metric is defined;
* the seed ensemble: the mean probability over seeds, scored like one model;
* AUC and average precision (PR-AUC) with bootstrap intervals over the windows;
* a paired bootstrap of the difference between two scorers on the same windows, resampling
  windows and, on request, seeds too (the ensemble's own seed noise);
* (the adjustment of a family of p-values is report.multiplicity's).

Everything is numpy; bootstraps are seeded and vectorised (one weight matrix of resample
counts, no Python loop over resamples).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from fembed_jax.metrics import ALERT_RATES, COLLAPSE_RANGE, classification_metrics, wilson_interval

__all__ = [
    "DEFAULT_BOOTSTRAP",
    "LEGACY_LABEL",
    "OPERATING_KEYS",
    "auc_rank",
    "bootstrap_auc",
    "bootstrap_pr_auc",
    "bootstrap_weights",
    "ensemble_metrics",
    "ensemble_probs",
    "experiment_stats",
    "mean_std",
    "paired_bootstrap",
    "precision_interval",
    "seed_metrics",
]

DEFAULT_BOOTSTRAP = 2000
LEGACY_LABEL = "legacy (1 seed, final-epoch weights)"
# Per-seed metrics that do not depend on a probability threshold (classification_metrics).
OPERATING_KEYS = ("pr_auc", "brier", "log_loss",
                  *(f"{m}_{rate}" for rate in ALERT_RATES for m in ("precision", "recall", "lift")))


# ---- counts and spreads -----------------------------------------------------------------------

class BlockLengthError(ValueError):
    """A bootstrap block longer than the windows it resamples (a user's --block)."""


def precision_interval(true_positives: int, predicted_positives: int, z: float = 1.96) -> dict:
    """Precision TP / PP with its Wilson interval; PP = 0 gives precision None and (0, 1)."""
    tp, pp = int(true_positives), int(predicted_positives)
    low, high = wilson_interval(tp, pp, z)
    return {"precision": tp / pp if pp else None, "true_positives": tp,
            "predicted_positives": pp, "ci_low": low, "ci_high": high}


def mean_std(values: Sequence[float | None]) -> dict:
    """{"mean", "std", "n", "n_total"} over the values that are not None (n of n_total are
    defined); std is ddof 1 (None when n < 2)."""
    kept = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    n = len(kept)
    return {"mean": float(np.mean(kept)) if n else None,
            "std": float(np.std(kept, ddof=1)) if n >= 2 else None, "n": n, "n_total": len(values)}


def _true_positives(m: Mapping[str, Any]) -> int | None:
    if m.get("true_positives") is not None:
        return int(m["true_positives"])
    if m.get("n_positive_preds") is not None and int(round(float(m["n_positive_preds"]))) == 0:
        return 0
    if m.get("precision") is None or m.get("n_positive_preds") is None:
        return None
    # The original recorded precision and predicted positives only: TP = precision * PP.
    return int(round(float(m["precision"]) * float(m["n_positive_preds"])))


def seed_metrics(record: Mapping[str, Any], predictions: Any = None) -> list[dict]:
    """One normalised row per seed of a result record.

    fembed records carry ``val_metrics_per_seed``; a legacy record has only ``val_metrics``
    (one seed, seed unknown). Row keys: seed, precision (None when the seed predicted nothing
    positive, whatever an older record stored), recall, auc, true_positives,
    predicted_positives, ci_low, ci_high (Wilson 95%), pred_min, pred_max, pred_range,
    collapsed, diverged, and OPERATING_KEYS: from ``predictions`` (checked to be the record's)
    when given, else from the record (None where an older record lacks them).
    """
    per_seed = record.get("val_metrics_per_seed")
    if not isinstance(per_seed, list) or not per_seed:
        val = record.get("val_metrics")
        per_seed = [val] if isinstance(val, Mapping) else []
    rows = []
    for k, m in enumerate(per_seed):
        tp = _true_positives(m)
        pp = None if m.get("n_positive_preds") is None else int(round(float(m["n_positive_preds"])))
        interval = (precision_interval(tp, pp) if tp is not None and pp is not None and 0 <= tp <= pp
                    else {"ci_low": None, "ci_high": None})
        pred_range = m.get("pred_range")
        collapsed = m.get("collapsed")
        if collapsed is None:
            collapsed = (pp == 0) or (pred_range is not None and float(pred_range) < COLLAPSE_RANGE)
        operating = {key: m.get(key) for key in OPERATING_KEYS}
        if predictions is not None and k < predictions.n_seeds and np.all(np.isfinite(predictions.probs[k])):
            full = classification_metrics(predictions.probs[k], predictions.labels)
            operating = {key: full[key] for key in OPERATING_KEYS}
        rows.append({
            "seed": m.get("seed"), "precision": None if pp == 0 else m.get("precision"),
            "recall": m.get("recall"), "auc": m.get("auc"), "true_positives": tp,
            "predicted_positives": pp, "ci_low": interval["ci_low"], "ci_high": interval["ci_high"],
            "pred_min": m.get("pred_min"), "pred_max": m.get("pred_max"), "pred_range": pred_range,
            "collapsed": bool(collapsed), "diverged": bool(m.get("diverged", False)), **operating,
        })
    return rows


# ---- the seed ensemble ------------------------------------------------------------------------

def _finite_seeds(probs) -> np.ndarray:
    """(K, n) float64 rows of ``probs`` without a non-finite value (a diverged seed)."""
    p = np.atleast_2d(np.asarray(probs, np.float64))
    return p[np.all(np.isfinite(p), axis=1)]


def ensemble_probs(probs) -> tuple[np.ndarray, int]:
    """Mean probability over seeds of a (K, n) array, and how many seeds went into it.

    Seeds with any non-finite probability (a diverged run) are left out; if every seed is
    non-finite the plain mean (non-finite) is returned with 0 seeds used.
    """
    p = np.asarray(probs, np.float64)
    if p.ndim == 1:
        return p, 1
    finite = _finite_seeds(p)
    if finite.shape[0] == 0:
        return p.mean(axis=0), 0
    return finite.mean(axis=0), int(finite.shape[0])


def ensemble_metrics(probs, labels, threshold: float = 0.5) -> dict:
    """classification_metrics of the seed-mean probability, plus ``n_seeds_used``."""
    mean, used = ensemble_probs(probs)
    out = classification_metrics(mean, labels, threshold)
    out["n_seeds_used"] = used
    return out


# ---- AUC, average precision and bootstraps ----------------------------------------------------

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


def _grouped(scores: np.ndarray, labels: np.ndarray, weights: np.ndarray, descending: bool):
    """Per row of (B, n) ``scores``/``weights`` (scores may be (n,)): the weighted positive and
    negative counts of each group of tied scores, in score order, zero-padded to n groups."""
    w = np.atleast_2d(np.asarray(weights, np.float64))
    s = np.broadcast_to(np.asarray(scores, np.float64), w.shape)
    order = np.argsort(-s if descending else s, axis=1, kind="stable")
    s = np.take_along_axis(s, order, 1)
    y = labels[order]
    w = np.take_along_axis(w, order, 1)
    rows, n = w.shape
    new = np.ones(s.shape, bool)
    new[:, 1:] = s[:, 1:] != s[:, :-1]
    flat = (np.cumsum(new, axis=1) - 1 + (np.arange(rows) * n)[:, None]).ravel()
    pos = np.bincount(flat, weights=(w * y).ravel(), minlength=rows * n).reshape(rows, n)
    neg = np.bincount(flat, weights=(w * (1.0 - y)).ravel(), minlength=rows * n).reshape(rows, n)
    return pos, neg


def _weighted_auc(scores: np.ndarray, labels: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """AUC of every row of ``weights`` (B, n), each window counted as often as its weight;
    ``scores`` is (n,) or, for seed-resampled ensembles, (B, n).

    AUC = sum_{i pos, j neg} w_i w_j ([s_i > s_j] + 0.5 [s_i = s_j]) / (W_pos W_neg), the
    Mann-Whitney statistic with ties counted half, over groups of tied scores with cumulative
    sums. Rows without a positive or a negative give NaN.
    """
    pos, neg = _grouped(scores, labels, weights, descending=False)
    neg_below = np.cumsum(neg, axis=1) - neg
    numerator = np.sum(pos * (neg_below + 0.5 * neg), axis=1)
    denominator = pos.sum(axis=1) * neg.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denominator > 0, numerator / denominator, np.nan)


def _weighted_ap(scores: np.ndarray, labels: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Average precision of every row, as scikit-learn defines it: sum over distinct thresholds
    (highest first) of (R_k - R_{k-1}) · P_k, with P_k and R_k the weighted precision and recall
    of the windows scored >= the k-th threshold. Rows without a positive give NaN."""
    pos, neg = _grouped(scores, labels, weights, descending=True)
    tp, flagged = np.cumsum(pos, axis=1), np.cumsum(pos + neg, axis=1)
    total = pos.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.where(flagged > 0, tp / flagged, 0.0)
        return np.where(total > 0, np.sum(pos * precision, axis=1) / total, np.nan)


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


def _bootstrap(metric, key: str, probs, labels, n_boot: int, seed: int, level: float,
               block_length: int) -> dict:
    _check_level(level)
    p, _ = ensemble_probs(probs)
    p, y = _check_scores(p, labels)
    weights = bootstrap_weights(p.size, n_boot, np.random.default_rng(seed), block_length)
    values = metric(p, y, weights)
    low, high = _interval(values, level)
    point = metric(p, y, np.ones((1, p.size)))[0]
    return {key: None if math.isnan(point) else float(point), "low": low, "high": high,
            "level": level, "n_boot": n_boot, "n_valid": int(np.isfinite(values).sum()),
            "block_length": block_length, "seed": seed}


def bootstrap_auc(probs, labels, n_boot: int = DEFAULT_BOOTSTRAP, seed: int = 0,
                  level: float = 0.95, block_length: int = 1) -> dict:
    """AUC of 1-D ``probs`` with a percentile bootstrap interval over the windows.

    Returns {"auc", "low", "high", "level", "n_boot", "n_valid" (resamples with both classes),
    "block_length", "seed"}. ``probs`` of shape (K, n) are averaged over seeds first (the
    ensemble).
    """
    return _bootstrap(_weighted_auc, "auc", probs, labels, n_boot, seed, level, block_length)


def bootstrap_pr_auc(probs, labels, n_boot: int = DEFAULT_BOOTSTRAP, seed: int = 0,
                     level: float = 0.95, block_length: int = 1) -> dict:
    """Average precision with a percentile bootstrap interval: bootstrap_auc's keys with
    "pr_auc" for "auc" (the same resamples for the same seed)."""
    return _bootstrap(_weighted_ap, "pr_auc", probs, labels, n_boot, seed, level, block_length)


def _weighted_precision(pred: np.ndarray, labels: np.ndarray, weights: np.ndarray) -> np.ndarray:
    pred = np.broadcast_to(pred, weights.shape)
    tp = np.sum(weights * pred * labels, axis=1)
    pp = np.sum(weights * pred, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(pp > 0, tp / pp, np.nan)


def _p_value(diff: np.ndarray) -> float | None:
    """Two-sided bootstrap p-value of diff = 0: 2 · min((#<=0 + 1), (#>=0 + 1)) / (B + 1),
    capped at 1. The +1 keeps p above 0 (a finite number of resamples cannot prove p = 0),
    which matters once p-values are multiplied by a family size."""
    valid = diff[np.isfinite(diff)]
    if valid.size == 0:
        return None
    low, high = np.sum(valid <= 0) + 1, np.sum(valid >= 0) + 1
    return float(min(1.0, 2.0 * min(low, high) / (valid.size + 1)))


def _seed_resampled(probs: np.ndarray, index: np.ndarray | None) -> np.ndarray:
    """(n,) ensemble, or (B, n) ensembles of the seeds drawn by ``index`` (B, K)."""
    if index is None:
        return probs.mean(axis=0)
    return probs[index].mean(axis=1)


def paired_bootstrap(probs_a, probs_b, labels, n_boot: int = DEFAULT_BOOTSTRAP, seed: int = 0,
                     level: float = 0.95, threshold: float = 0.5, block_length: int = 1,
                     resample_seeds: bool = False, metrics: Sequence[str] = ("auc", "precision")) -> dict:
    """Difference A − B of seed ensembles on the same windows, with bootstrap intervals.

    Both are scored on every resample with the *same* resample counts, so the window-to-window
    luck they share cancels in the difference. (K, n) inputs are averaged over their finite
    seeds. With ``resample_seeds`` each resample also redraws each side's K seeds with
    replacement before averaging (a seed × window bootstrap: the ensemble's seed noise enters
    the interval); two sides with the same number of seeds draw the same seed positions (seed
    42 + k shares its initialisation across experiments of one architecture). ``metrics``: any
    of "auc", "pr_auc", "precision" (at ``threshold``). Per metric: {"a", "b", "diff", "low",
    "high", "n_valid", "se" (the bootstrap standard error of diff), "share_a_better" (share of
    valid resamples with diff > 0: a bootstrap share, not a probability), "p_value" (two-sided,
    see _p_value)}. Precision resamples where
    either side predicts nothing positive are not valid.
    """
    _check_level(level)
    pa, pb = _finite_seeds(probs_a), _finite_seeds(probs_b)
    if pa.shape[0] == 0 or pb.shape[0] == 0:
        raise ValueError("paired bootstrap: a side has no seed with finite probabilities")
    _, y = _check_scores(pa[0], labels)
    _check_scores(pb[0], labels)
    rng = np.random.default_rng(seed)
    weights = bootstrap_weights(y.size, n_boot, rng, block_length)
    ia = ib = None
    if resample_seeds:
        ia = rng.integers(0, pa.shape[0], size=(n_boot, pa.shape[0]))
        ib = ia if pb.shape[0] == pa.shape[0] else rng.integers(0, pb.shape[0], size=(n_boot, pb.shape[0]))
    ones = np.ones((1, y.size))
    point_a, point_b = pa.mean(axis=0), pb.mean(axis=0)
    boot_a, boot_b = _seed_resampled(pa, ia), _seed_resampled(pb, ib)
    out: dict[str, Any] = {"n_boot": n_boot, "level": level, "seed": seed, "threshold": threshold,
                           "block_length": block_length, "n_windows": int(y.size),
                           "resample_seeds": resample_seeds, "seeds_a": int(pa.shape[0]),
                           "seeds_b": int(pb.shape[0])}

    def point(values):
        value = float(values[0])
        return None if math.isnan(value) else value

    scorers = {"auc": _weighted_auc, "pr_auc": _weighted_ap,
               "precision": lambda s, yy, w: _weighted_precision((s >= threshold).astype(np.float64), yy, w)}
    for name in metrics:
        fn = scorers[name]
        a, b = point(fn(point_a, y, ones)), point(fn(point_b, y, ones))
        diff = fn(boot_a, y, weights) - fn(boot_b, y, weights)
        valid = diff[np.isfinite(diff)]
        low, high = _interval(diff, level)
        out[name] = {"a": a, "b": b, "diff": None if a is None or b is None else a - b,
                     "low": low, "high": high, "n_valid": int(valid.size),
                     "se": float(np.std(valid, ddof=1)) if valid.size > 1 else None,
                     "share_a_better": float(np.mean(valid > 0)) if valid.size else None,
                     "p_value": _p_value(diff)}
    return out


def runs_to_detect(total_se: float, window_se: float, n_seeds: int, effect: float = 0.01,
                   alpha: float = 0.05, power: float = 0.8) -> dict:
    """How much more work would detect a difference of ``effect`` (two-sided ``alpha``, ``power``).

    A paired difference of seed ensembles on fixed windows has two sources of error: which
    windows were drawn (``window_se``: the bootstrap over windows alone) and which seeds
    (the rest of ``total_se``, the seed × window bootstrap, falling as 1/seeds). More seeds shrink
    only the seed part; K walk-forward folds of the same size bring K times the windows and
    independent ensembles, dividing the whole variance by K. Returns the standard error needed,
    the two parts, the seeds needed on these windows (None: the window part alone is too large)
    and the folds needed at today's seeds."""
    from statistics import NormalDist

    z = NormalDist().inv_cdf(1 - alpha / 2) + NormalDist().inv_cdf(power)
    needed = effect / z
    window_var = min(window_se, total_se) ** 2
    seed_var_per_seed = (total_se ** 2 - window_var) * n_seeds  # the seed part with one seed
    seeds = None
    if window_var < needed ** 2:
        seeds = max(n_seeds if seed_var_per_seed == 0 else 1,
                    math.ceil(seed_var_per_seed / (needed ** 2 - window_var)))
    return {"effect": effect, "alpha": alpha, "power": power, "se_needed": needed, "se": total_se,
            "window_se": math.sqrt(window_var), "seed_se": math.sqrt(max(0.0, total_se ** 2 - window_var)),
            "n_seeds": n_seeds, "seeds_needed": seeds,
            "folds_needed": max(1, math.ceil(total_se ** 2 / needed ** 2))}


# ---- one experiment ----------------------------------------------------------------------------

def experiment_stats(record: Mapping[str, Any], predictions: Any = None, *,
                     n_boot: int = DEFAULT_BOOTSTRAP, seed: int = 0, block_length: int = 1,
                     level: float = 0.95) -> dict:
    """Everything the report and ``fembed compare`` show about one result record.

    Keys: exp_id, legacy, n_seeds, n_diverged, seeds (seed_metrics rows); over the seeds that
    did not diverge, mean_std of precision (over the seeds where it is defined: its "n" of
    "n_total"), recall, auc and every OPERATING_KEYS metric; tp_mean, pred_pos_mean,
    tp_pooled / pred_pos_pooled (counts summed over seeds; not independent trials, every seed
    scores the same windows), undefined_precision_seeds, collapsed_seeds, pred_range_min,
    pred_max_max; typical: None (kept for test_results.json; the rounded "typical seed"
    interval it held was no interval of a reported estimate). With ``predictions`` (a
    predictions.Predictions) also ensemble (ensemble_metrics), ensemble_auc and
    ensemble_pr_auc (bootstrap intervals of the ensemble); else None.
    """
    rows = seed_metrics(record, predictions)
    healthy = [r for r in rows if not r["diverged"]] or rows
    tp = mean_std([r["true_positives"] for r in healthy])
    pp = mean_std([r["predicted_positives"] for r in healthy])
    counted = [r for r in healthy if r["true_positives"] is not None and r["predicted_positives"] is not None]
    out: dict[str, Any] = {
        "exp_id": record.get("exp_id"),
        "legacy": bool(record.get("legacy", False)),
        "n_seeds": len(rows),
        "n_diverged": sum(1 for r in rows if r["diverged"]),
        "seeds": rows,
        **{key: mean_std([r[key] for r in healthy]) for key in ("precision", "recall", "auc", *OPERATING_KEYS)},
        "tp_mean": tp["mean"],
        "pred_pos_mean": pp["mean"],
        "tp_pooled": sum(r["true_positives"] for r in counted) if counted else None,
        "pred_pos_pooled": sum(r["predicted_positives"] for r in counted) if counted else None,
        "undefined_precision_seeds": sum(1 for r in healthy if r["predicted_positives"] == 0),
        "typical": None,
        "collapsed_seeds": sum(1 for r in rows if r["collapsed"]),
        "pred_range_min": min((r["pred_range"] for r in rows if r["pred_range"] is not None), default=None),
        "pred_max_max": max((r["pred_max"] for r in rows if r["pred_max"] is not None), default=None),
        "ensemble": None,
        "ensemble_auc": None,
        "ensemble_pr_auc": None,
    }
    if predictions is not None:
        out["ensemble"] = ensemble_metrics(predictions.probs, predictions.labels)
        if out["ensemble"]["n_seeds_used"] and out["ensemble"]["auc"] is not None:
            mean, _ = ensemble_probs(predictions.probs)
            kw = dict(n_boot=n_boot, seed=seed, level=level, block_length=block_length)
            out["ensemble_auc"] = bootstrap_auc(mean, predictions.labels, **kw)
            out["ensemble_pr_auc"] = bootstrap_pr_auc(mean, predictions.labels, **kw)
    return out
