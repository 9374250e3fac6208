"""Evaluation metrics on host arrays (numpy + scikit-learn), as plain JSON-ready Python values.

``classification_metrics`` reproduces the original's ``evaluate_model`` record (spec §6.1) and
adds the counts behind precision, a Wilson interval for it, and a probability-collapse flag.
``aggregate_seeds`` summarises the per-seed records of one experiment.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Sequence

import numpy as np

__all__ = [
    "AGGREGATED_METRICS",
    "COLLAPSE_RANGE",
    "aggregate_seeds",
    "classification_metrics",
    "wilson_interval",
]

# Probabilities spread over less than this are "collapsed" (the original's FE-69/70/72 cases).
COLLAPSE_RANGE = 0.1

AGGREGATED_METRICS = (
    "precision", "recall", "f1", "accuracy", "auc", "pred_range", "n_positive_preds",
)  # fmt: skip


def wilson_interval(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion k / n.

    center = (k/n + z^2/(2n)) / (1 + z^2/n)
    half   = z / (1 + z^2/n) * sqrt(k/n (1 - k/n) / n + z^2 / (4 n^2))
    returns (max(0, center - half), min(1, center + half)); n = 0 gives (0.0, 1.0), the
    interval that says nothing (e.g. precision with no positive predictions).
    """
    try:
        if isinstance(successes, bool) or isinstance(n, bool):
            raise TypeError
        successes, n = operator.index(successes), operator.index(n)
    except TypeError:
        raise ValueError(
            f"wilson_interval: successes and n must be integers, got {successes!r}, {n!r}"
        ) from None
    if not 0 <= successes <= n:
        raise ValueError(
            f"wilson_interval: need 0 <= successes <= n, got successes={successes}, n={n}"
        )
    if not z > 0:
        raise ValueError(f"wilson_interval: z must be > 0, got {z!r}")
    if n == 0:
        return 0.0, 1.0
    phat = successes / n
    z2 = z * z
    denom = 1.0 + z2 / n
    center = (phat + z2 / (2 * n)) / denom
    half = z / denom * math.sqrt(phat * (1 - phat) / n + z2 / (4 * n * n))
    return max(0.0, center - half), min(1.0, center + half)


def classification_metrics(probs, labels, threshold: float = 0.5) -> dict:
    """Metrics of probabilities ``probs`` against binary ``labels`` (both flattened).

    Predicted class = 1 iff p >= threshold. Keys (spec §6.1): precision, recall, f1 (sklearn,
    zero_division=0), accuracy, auc (roc_auc_score; None when labels have one class), pred_min,
    pred_max, pred_mean, pred_std (ddof 0), pred_range (max - min), n_positive_preds, n_samples,
    class_balance (float32 mean of labels), positive_rate (sum(labels) / n in float64). Added:
    true_positives; precision_ci_low / precision_ci_high, the Wilson 95% interval of
    true_positives / n_positive_preds; collapsed = no positive prediction or pred_range < 0.1;
    n_nonfinite. A diverged model's NaN probabilities do not raise: they count as negative
    predictions (NaN >= threshold is false), auc is None, and the pred_* statistics cover the
    finite probabilities only (None if there are none).
    """
    p = np.asarray(probs).reshape(-1)
    if not np.issubdtype(p.dtype, np.floating):
        p = p.astype(np.float64)
    y = np.asarray(labels).reshape(-1)
    if p.shape != y.shape:
        raise ValueError(f"probs has {p.size} elements but labels has {y.size}")
    if p.size == 0:
        raise ValueError("classification_metrics: no samples")
    if not np.all((y == 0) | (y == 1)):
        raise ValueError("labels must be 0 or 1")
    # Imported here: sklearn.metrics takes ~1 s to import, which `fembed run` would otherwise
    # pay before its first epoch instead of after it.
    from sklearn.metrics import accuracy_score, f1_score, precision_score, recall_score, roc_auc_score

    y = y.astype(np.int64)
    pred = (p >= threshold).astype(np.int64)

    finite = p[np.isfinite(p)]
    n_nonfinite = int(p.size - finite.size)
    # The original caught sklearn's one-class ValueError; sklearn >= 1.6 warns and returns NaN.
    has_both_classes = 0 < np.sum(y) < y.size
    auc = float(roc_auc_score(y, p)) if has_both_classes and n_nonfinite == 0 else None
    true_positives = int(np.sum((pred == 1) & (y == 1)))
    n_positive_preds = int(np.sum(pred))
    ci_low, ci_high = wilson_interval(true_positives, n_positive_preds)

    def stat(fn):  # over the finite probabilities; None if there are none
        return float(fn(finite)) if finite.size else None

    pred_range = stat(lambda a: np.max(a) - np.min(a))
    collapsed = n_positive_preds == 0 or pred_range is None or pred_range < COLLAPSE_RANGE
    return {
        "precision": float(precision_score(y, pred, zero_division=0)),
        "recall": float(recall_score(y, pred, zero_division=0)),
        "f1": float(f1_score(y, pred, zero_division=0)),
        "accuracy": float(accuracy_score(y, pred)),
        "auc": auc,
        "pred_min": stat(np.min),
        "pred_max": stat(np.max),
        "pred_mean": stat(np.mean),
        "pred_std": stat(np.std),
        "pred_range": pred_range,
        "n_positive_preds": n_positive_preds,
        "n_samples": int(p.size),
        "class_balance": float(np.mean(y.astype(np.float32))),
        "positive_rate": float(np.sum(y) / y.size),
        "true_positives": true_positives,
        "precision_ci_low": ci_low,
        "precision_ci_high": ci_high,
        "n_nonfinite": n_nonfinite,
        "collapsed": bool(collapsed),
    }


def aggregate_seeds(per_seed: Sequence[dict]) -> dict:
    """Mean and spread over seeds of the metrics in AGGREGATED_METRICS.

    For each metric: {"mean", "std", "min", "max", "n"}, over the seeds where it is not None
    (an AUC is None on a one-class set); std is the sample standard deviation (ddof 1: the seeds
    are a sample of the seed distribution), None when n < 2; every field None when n = 0.
    Also n_seeds, collapsed_count (seeds flagged ``collapsed``) and collapsed_any.
    Precision is not pooled over seeds: all seeds see the same samples, so pooled counts are not
    independent trials; each seed's record carries its own Wilson interval.
    """
    if len(per_seed) == 0:
        raise ValueError("aggregate_seeds: no per-seed metrics given")
    out: dict = {"n_seeds": len(per_seed)}
    for key in AGGREGATED_METRICS:
        values = [float(m[key]) for m in per_seed if m.get(key) is not None]
        n = len(values)
        arr = np.asarray(values, dtype=np.float64)
        out[key] = {
            "mean": float(np.mean(arr)) if n else None,
            "std": float(np.std(arr, ddof=1)) if n >= 2 else None,
            "min": float(np.min(arr)) if n else None,
            "max": float(np.max(arr)) if n else None,
            "n": n,
        }
    collapsed_count = sum(1 for m in per_seed if m.get("collapsed"))
    out["collapsed_count"] = collapsed_count
    out["collapsed_any"] = collapsed_count > 0
    return out
