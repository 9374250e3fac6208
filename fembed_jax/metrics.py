"""Evaluation metrics on host arrays (numpy + scikit-learn), as plain JSON-ready Python values.

``classification_metrics`` reproduces the original's ``evaluate_model`` record (spec §6.1) and
adds what a threshold of 0.5 cannot say: the counts behind precision with a Wilson interval,
average precision (PR-AUC), precision and recall at fixed alert rates (the top 1%, 5% and 10% of
windows, an operating point that exists whatever the calibration), the Brier score and log-loss.
``skill_scores`` compares the last two with the constant predictor of the train base rate.
``aggregate_seeds`` summarises the per-seed records of one experiment.

Precision with no predicted positive is undefined: it is None here, never 0 (a 0 would be
averaged in as the worst possible precision).
"""

from __future__ import annotations

import math
import operator
from collections.abc import Mapping, Sequence

import numpy as np

__all__ = [
    "AGGREGATED_METRICS",
    "ALERT_RATES",
    "COLLAPSE_RANGE",
    "LOG_LOSS_EPS",
    "aggregate_seeds",
    "alert_rate_metrics",
    "classification_metrics",
    "reliability_bins",
    "skill_scores",
    "wilson_interval",
]

# Probabilities spread over less than this are "collapsed" (the original's FE-69/70/72 cases).
COLLAPSE_RANGE = 0.1
# Alert rates (share of windows flagged, highest probabilities first) and their key suffixes.
ALERT_RATES = {"top1pct": 0.01, "top5pct": 0.05, "top10pct": 0.10}
# Probabilities are clipped to [eps, 1 - eps] for the log-loss: the losses' own eps.
LOG_LOSS_EPS = 1e-7

AGGREGATED_METRICS = (
    "precision", "recall", "f1", "accuracy", "auc", "pred_range", "n_positive_preds",
    "pr_auc", "brier", "log_loss", "brier_skill", "log_loss_skill",
    *(f"{m}_{rate}" for rate in ALERT_RATES for m in ("precision", "recall", "lift")),
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


def alert_rate_metrics(probs, labels, rate: float, *, episode_gap: int = 5) -> dict:
    """Precision and recall among the round(rate · n) (at least 1) highest-scored windows.

    Ties at the cut are broken by position (earlier window first). Returns k, tp, precision
    (tp / k, always defined), its Wilson 95% interval, recall (None without positives), lift
    (precision / positive rate; None without positives) and episodes: runs of flagged windows,
    a new run starting after a gap of more than ``episode_gap`` windows. Alerts in one market
    episode are not independent trials, so the Wilson interval is optimistic when episodes are
    few; the count says how few.
    """
    p = np.asarray(probs, np.float64).reshape(-1)
    y = np.asarray(labels).reshape(-1).astype(np.int64)
    k = max(1, int(round(rate * p.size)))
    top = np.sort(np.argsort(-p, kind="stable")[:k])
    tp = int(y[top].sum())
    positives = int(y.sum())
    low, high = wilson_interval(tp, k)
    precision = tp / k
    base = positives / y.size
    return {"k": k, "tp": tp, "precision": precision, "ci_low": low, "ci_high": high,
            "recall": tp / positives if positives else None,
            "lift": precision / base if positives else None,
            "episodes": int(1 + np.sum(np.diff(top) > episode_gap))}


def classification_metrics(probs, labels, threshold: float = 0.5) -> dict:
    """Metrics of probabilities ``probs`` against binary ``labels`` (both flattened).

    Predicted class = 1 iff p >= threshold. Keys (spec §6.1): precision (None when nothing is
    predicted positive: undefined, not 0), recall and f1 (sklearn, zero_division=0; recall is
    None without positive labels), accuracy, auc (roc_auc_score; None when labels have one
    class), pred_min, pred_max, pred_mean, pred_std (ddof 0), pred_range (max - min),
    n_positive_preds, n_samples, class_balance (float32 mean of labels), positive_rate (sum /
    n in float64). Added: true_positives; precision_ci_low / precision_ci_high, the Wilson 95%
    interval of true_positives / n_positive_preds ((0, 1) when undefined); collapsed = no
    positive prediction or pred_range < 0.1; n_nonfinite; pr_auc (average_precision_score);
    brier (mean squared error of the probabilities); log_loss (probabilities clipped to
    [1e-7, 1 - 1e-7]); per alert rate R in ALERT_RATES: k_R, tp_R, precision_R,
    precision_R_ci_low/high, recall_R, lift_R, episodes_R (alert_rate_metrics).
    A diverged model's NaN probabilities do not raise: they count as negative predictions,
    every threshold-free metric is None, and pred_* cover the finite probabilities only.
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
    from sklearn.metrics import (accuracy_score, average_precision_score, f1_score, recall_score,
                                 roc_auc_score)

    y = y.astype(np.int64)
    pred = (p >= threshold).astype(np.int64)

    finite = p[np.isfinite(p)]
    n_nonfinite = int(p.size - finite.size)
    all_finite = n_nonfinite == 0
    positives = int(np.sum(y))
    # The original caught sklearn's one-class ValueError; sklearn >= 1.6 warns and returns NaN.
    has_both_classes = 0 < positives < y.size
    auc = float(roc_auc_score(y, p)) if has_both_classes and all_finite else None
    true_positives = int(np.sum((pred == 1) & (y == 1)))
    n_positive_preds = int(np.sum(pred))
    ci_low, ci_high = wilson_interval(true_positives, n_positive_preds)

    def stat(fn):  # over the finite probabilities; None if there are none
        return float(fn(finite)) if finite.size else None

    pred_range = stat(lambda a: np.max(a) - np.min(a))
    collapsed = n_positive_preds == 0 or pred_range is None or pred_range < COLLAPSE_RANGE
    p64 = p.astype(np.float64)
    clipped = np.clip(p64, LOG_LOSS_EPS, 1.0 - LOG_LOSS_EPS)
    out = {
        "precision": true_positives / n_positive_preds if n_positive_preds else None,
        "recall": float(recall_score(y, pred, zero_division=0)) if positives else None,
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
        "positive_rate": float(positives / y.size),
        "true_positives": true_positives,
        "precision_ci_low": ci_low,
        "precision_ci_high": ci_high,
        "n_nonfinite": n_nonfinite,
        "collapsed": bool(collapsed),
        "pr_auc": float(average_precision_score(y, p64)) if positives and all_finite else None,
        "brier": float(np.mean((p64 - y) ** 2)) if all_finite else None,
        "log_loss": (float(-np.mean(y * np.log(clipped) + (1 - y) * np.log1p(-clipped)))
                     if all_finite else None),
    }
    for name, rate in ALERT_RATES.items():
        at = alert_rate_metrics(p64, y, rate) if all_finite else {}
        out.update({f"k_{name}": at.get("k"), f"tp_{name}": at.get("tp"),
                    f"precision_{name}": at.get("precision"),
                    f"precision_{name}_ci_low": at.get("ci_low"),
                    f"precision_{name}_ci_high": at.get("ci_high"),
                    f"recall_{name}": at.get("recall"), f"lift_{name}": at.get("lift"),
                    f"episodes_{name}": at.get("episodes")})
    return out


def skill_scores(m: Mapping, base_rate: float | None) -> dict:
    """Brier score and log-loss of ``m`` (classification_metrics) against the constant
    predictor ``base_rate`` (the train split's positive rate: what a model that learned
    nothing but the base rate would say), on the same windows.

    brier_reference = r_val (1 - b)^2 + (1 - r_val) b^2, log_loss_reference = -(r_val log b +
    (1 - r_val) log(1 - b)) with r_val = m["positive_rate"]; skill = 1 - score / reference
    (> 0: better than the constant). Every value None when an input is missing.
    """
    keys = ("brier_reference", "brier_skill", "log_loss_reference", "log_loss_skill")
    r = m.get("positive_rate")
    if base_rate is None or r is None or not 0.0 < float(base_rate) < 1.0:
        return dict.fromkeys(keys)
    b = min(max(float(base_rate), LOG_LOSS_EPS), 1.0 - LOG_LOSS_EPS)
    r = float(r)
    brier_ref = r * (1 - b) ** 2 + (1 - r) * b ** 2
    ll_ref = -(r * math.log(b) + (1 - r) * math.log1p(-b))
    brier, ll = m.get("brier"), m.get("log_loss")
    return {"brier_reference": brier_ref,
            "brier_skill": None if brier is None else 1.0 - float(brier) / brier_ref,
            "log_loss_reference": ll_ref,
            "log_loss_skill": None if ll is None else 1.0 - float(ll) / ll_ref}


def reliability_bins(probs, labels, n_bins: int = 10) -> list[dict]:
    """Calibration table: windows sorted by probability and cut into ``n_bins`` groups of
    (nearly) equal size; per bin the mean probability, the observed positive rate and n.

    Equal-count bins, because with an 18% base rate most probabilities sit below 0.3 and equal-
    width bins above it would be nearly empty.
    """
    p = np.asarray(probs, np.float64).reshape(-1)
    y = np.asarray(labels, np.float64).reshape(-1)
    order = np.argsort(p, kind="stable")
    return [{"mean_prob": float(p[idx].mean()), "observed": float(y[idx].mean()), "n": int(idx.size)}
            for idx in np.array_split(order, min(n_bins, p.size)) if idx.size]


def aggregate_seeds(per_seed: Sequence[dict]) -> dict:
    """Mean and spread over seeds of the metrics in AGGREGATED_METRICS.

    For each metric: {"mean", "std", "min", "max", "n"}, over the seeds where it is not None
    (precision with no predicted positive and an AUC on a one-class set are None): n is the
    number of seeds where it is defined, n_seeds beside it the number of seeds. std is the
    sample standard deviation (ddof 1: the seeds are a sample of the seed distribution), None
    when n < 2; every field None when n = 0. Also n_seeds, collapsed_count and collapsed_any.
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
