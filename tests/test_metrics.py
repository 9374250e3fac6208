"""Classification metrics vs scikit-learn and statsmodels, undefined precision, the operating-point
and calibration metrics, the collapse flag, Wilson intervals, seed aggregation."""

import json
import math
import warnings

import numpy as np
import pytest
from sklearn.metrics import (accuracy_score, average_precision_score, brier_score_loss, f1_score, log_loss,
                             precision_score, recall_score, roc_auc_score)
from statsmodels.stats.proportion import proportion_confint

from fembed_jax.metrics import (
    AGGREGATED_METRICS,
    ALERT_RATES,
    aggregate_seeds,
    alert_rate_metrics,
    classification_metrics,
    reliability_bins,
    skill_scores,
    wilson_interval,
)

PROBS = np.array([0.9, 0.2, 0.55, 0.4, 0.7, 0.1, 0.5, 0.3], dtype=np.float32)
LABELS = np.array([1, 0, 0, 1, 1, 0, 1, 0], dtype=np.float32)

SPEC_KEYS = {
    "precision", "recall", "f1", "accuracy", "auc", "pred_min", "pred_max", "pred_mean",
    "pred_std", "pred_range", "n_positive_preds", "n_samples", "class_balance", "positive_rate",
}  # fmt: skip
ADDED_KEYS = {"true_positives", "precision_ci_low", "precision_ci_high", "n_nonfinite", "collapsed",
              "pr_auc", "brier", "log_loss",
              *(f"{f}_{r}" for r in ALERT_RATES for f in ("k", "tp", "precision", "recall", "lift", "episodes")),
              *(f"precision_{r}_ci_{end}" for r in ALERT_RATES for end in ("low", "high"))}
# A fixed vector with ties and an 18% base rate, like the validation split's.
RNG = np.random.default_rng(7)
Y200 = (RNG.random(200) < 0.18).astype(np.float32)
P200 = np.round(np.clip(RNG.normal(0.15, 0.08, 200) + 0.12 * Y200, 0.001, 0.999), 2).astype(np.float32)


def test_matches_sklearn_and_numpy():
    m = classification_metrics(PROBS, LABELS)
    assert set(m) == SPEC_KEYS | ADDED_KEYS
    pred = (PROBS >= 0.5).astype(int)  # 0.5 itself counts as positive
    y = LABELS.astype(int)
    assert m["precision"] == precision_score(y, pred, zero_division=0) == pytest.approx(3 / 4)
    assert m["recall"] == recall_score(y, pred, zero_division=0) == pytest.approx(3 / 4)
    assert m["f1"] == f1_score(y, pred, zero_division=0)
    assert m["accuracy"] == accuracy_score(y, pred) == pytest.approx(6 / 8)
    assert m["auc"] == roc_auc_score(y, PROBS)
    assert m["pred_min"] == pytest.approx(0.1) and m["pred_max"] == pytest.approx(0.9)
    assert m["pred_range"] == pytest.approx(0.8)
    assert m["pred_mean"] == pytest.approx(float(np.mean(PROBS)))
    assert m["pred_std"] == pytest.approx(float(np.std(PROBS)))  # ddof 0
    assert (m["n_positive_preds"], m["true_positives"], m["n_samples"]) == (4, 3, 8)
    assert m["class_balance"] == m["positive_rate"] == 0.5
    assert (m["precision_ci_low"], m["precision_ci_high"]) == wilson_interval(3, 4)
    assert m["collapsed"] is False


def test_values_are_plain_python_and_json_serialisable():
    m = classification_metrics(PROBS.reshape(-1, 1), LABELS.reshape(-1, 1))
    for key, value in m.items():
        assert value is None or type(value) in (float, int, bool), key
    json.dumps(m)
    json.dumps(aggregate_seeds([m, m]))


def test_one_class_labels_give_auc_none_without_warning():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        m = classification_metrics([0.1, 0.6, 0.3], [0, 0, 0])
    assert m["auc"] is None and m["pr_auc"] is None
    assert m["precision"] == 0.0  # 1 predicted positive, 0 true
    assert m["recall"] is None  # no positive label: recall undefined too


def test_collapse_flag_both_ways():
    # no positive prediction (FE-69-like: max prob < 0.5), even with a wide range
    no_pos = classification_metrics([0.01, 0.3, 0.45, 0.2], [1, 0, 1, 0])
    # precision is undefined (None), never 0: sklearn's zero_division=0 would average it in as 0
    assert no_pos["n_positive_preds"] == 0 and no_pos["precision"] is None and no_pos["collapsed"]
    assert (no_pos["precision_ci_low"], no_pos["precision_ci_high"]) == (0.0, 1.0)
    # positive predictions, but everything within a 0.1 band
    narrow = classification_metrics([0.50, 0.52, 0.55, 0.58], [1, 0, 1, 0])
    assert narrow["n_positive_preds"] == 4 and narrow["collapsed"]
    assert classification_metrics([0.05, 0.7, 0.2, 0.9], [0, 1, 0, 1])["collapsed"] is False


def test_threshold_is_respected():
    m = classification_metrics(PROBS, LABELS, threshold=0.8)
    assert m["n_positive_preds"] == 1 and m["precision"] == 1.0


@pytest.mark.parametrize(
    "probs,labels,match",
    [
        ([0.1, 0.2], [0, 1, 1], "labels has 3"),
        ([], [], "no samples"),
        ([0.1, 0.2], [0, 2], "labels must be 0 or 1"),
    ],
)
def test_bad_inputs_raise(probs, labels, match):
    with pytest.raises(ValueError, match=match):
        classification_metrics(probs, labels)


def test_nan_probabilities_of_a_diverged_model_do_not_raise():
    m = classification_metrics([0.9, float("nan"), 0.2, 0.6], [1, 1, 0, 0])
    assert m["n_nonfinite"] == 1 and m["auc"] is None
    assert (m["n_positive_preds"], m["true_positives"]) == (2, 1)  # NaN counts as negative
    assert m["pred_min"] == pytest.approx(0.2) and m["pred_range"] == pytest.approx(0.7)
    json.dumps(m)
    assert m["pr_auc"] is None and m["brier"] is None and m["precision_top5pct"] is None
    all_nan = classification_metrics([float("nan")] * 3, [1, 0, 0])
    assert all_nan["pred_mean"] is None and all_nan["collapsed"] is True


def test_wilson_interval():
    lo, hi = wilson_interval(6, 7)  # LF-40's 6/7
    assert lo == pytest.approx(0.487, abs=1e-3) and hi == pytest.approx(0.974, abs=1e-3)
    assert wilson_interval(0, 0) == (0.0, 1.0)
    lo, hi = wilson_interval(0, 10)
    assert lo == 0.0 and 0 < hi < 0.35
    lo, hi = wilson_interval(10, 10)
    assert hi == 1.0 and 0.65 < lo < 1
    # by hand, 1/2 at z = 1: center 0.5, half = (1 / 1.5) * sqrt(1/8 + 1/16)
    lo, hi = wilson_interval(1, 2, z=1.0)
    assert lo == pytest.approx(0.5 - math.sqrt(3 / 16) / 1.5) and hi == pytest.approx(1 - lo)
    for bad in [(3, 2), (-1, 5), (1.5, 3), (True, 2)]:
        with pytest.raises(ValueError):
            wilson_interval(*bad)
    with pytest.raises(ValueError, match="z"):
        wilson_interval(1, 2, z=0)


def test_aggregate_seeds():
    seeds = [
        classification_metrics([0.9, 0.2, 0.6, 0.3], [1, 0, 0, 1]),
        classification_metrics([0.8, 0.1, 0.4, 0.7], [1, 0, 0, 1]),
        classification_metrics([0.45, 0.46, 0.47, 0.48], [1, 0, 0, 1]),
    ]
    seeds.append(dict(seeds[0], auc=None))  # e.g. a seed evaluated on a one-class set
    agg = aggregate_seeds(seeds)
    assert agg["n_seeds"] == 4
    assert set(AGGREGATED_METRICS) <= set(agg)
    precisions = [s["precision"] for s in seeds]
    assert precisions[2] is None  # the third seed predicts nothing positive
    defined = [p for p in precisions if p is not None]
    assert agg["precision"]["mean"] == pytest.approx(np.mean(defined))  # not averaged in as 0
    assert agg["precision"]["std"] == pytest.approx(np.std(defined, ddof=1))
    assert agg["precision"]["n"] == 3 and agg["n_seeds"] == 4
    aucs = [s["auc"] for s in seeds[:3]]
    assert agg["auc"]["n"] == 3 and agg["auc"]["mean"] == pytest.approx(np.mean(aucs))
    assert agg["auc"]["min"] == min(aucs) and agg["auc"]["max"] == max(aucs)
    assert agg["n_positive_preds"]["mean"] == pytest.approx(np.mean([2, 2, 0, 2]))
    assert agg["collapsed_count"] == 1 and agg["collapsed_any"] is True


def test_aggregate_single_seed_and_all_auc_missing():
    one = classification_metrics([0.2, 0.7], [0, 0])
    agg = aggregate_seeds([one])
    assert agg["precision"]["std"] is None and agg["precision"]["n"] == 1
    none = aggregate_seeds([classification_metrics([0.2, 0.3], [0, 1])] * 2)
    assert none["precision"] == {"mean": None, "std": None, "min": None, "max": None, "n": 0}
    assert agg["auc"] == {"mean": None, "std": None, "min": None, "max": None, "n": 0}
    with pytest.raises(ValueError):
        aggregate_seeds([])


def test_threshold_free_metrics_match_sklearn_on_a_fixed_vector():
    m = classification_metrics(P200, Y200)
    y, p = Y200.astype(int), P200.astype(np.float64)
    assert m["pr_auc"] == pytest.approx(average_precision_score(y, p), abs=1e-12)
    assert m["brier"] == pytest.approx(brier_score_loss(y, p), abs=1e-12)
    assert m["log_loss"] == pytest.approx(log_loss(y, np.clip(p, 1e-7, 1 - 1e-7)), abs=1e-12)
    assert m["auc"] == pytest.approx(roc_auc_score(y, p))


def test_alert_rates_against_an_independent_count():
    y, p = Y200.astype(int), P200.astype(np.float64)
    base = y.mean()
    for name, rate in ALERT_RATES.items():
        k = max(1, round(rate * y.size))
        # independent: a stable sort on (-p, position) is the documented tie rule
        top = sorted(range(y.size), key=lambda i: (-p[i], i))[:k]
        tp = int(sum(y[i] for i in top))
        m = classification_metrics(P200, Y200)
        assert (m[f"k_{name}"], m[f"tp_{name}"]) == (k, tp)
        assert m[f"precision_{name}"] == pytest.approx(tp / k)
        low, high = proportion_confint(tp, k, alpha=0.05, method="wilson")
        assert m[f"precision_{name}_ci_low"] == pytest.approx(low, abs=2e-5)
        assert m[f"precision_{name}_ci_high"] == pytest.approx(high, abs=2e-5)
        assert m[f"recall_{name}"] == pytest.approx(tp / y.sum())
        assert m[f"lift_{name}"] == pytest.approx(tp / k / base)


def test_alert_episodes_count_runs_of_flagged_windows():
    probs = np.zeros(40)
    probs[[3, 4, 5, 20, 27]] = [0.9, 0.8, 0.7, 0.95, 0.6]  # 3-5 one run; 20 and 27 are 7 apart
    out = alert_rate_metrics(probs, np.zeros(40), 5 / 40)
    assert out["k"] == 5 and out["episodes"] == 3 and out["recall"] is None and out["lift"] is None
    assert alert_rate_metrics(probs, np.zeros(40), 5 / 40, episode_gap=10)["episodes"] == 2


def test_skill_against_the_constant_predictor_of_the_train_base_rate():
    m = classification_metrics(P200, Y200)
    train_rate = 0.228
    out = skill_scores(m, train_rate)
    y = Y200.astype(int)
    constant = np.full(y.size, train_rate)
    assert out["brier_reference"] == pytest.approx(brier_score_loss(y, constant))
    assert out["log_loss_reference"] == pytest.approx(log_loss(y, constant))
    assert out["brier_skill"] == pytest.approx(1 - brier_score_loss(y, P200) / brier_score_loss(y, constant))
    assert out["log_loss_skill"] == pytest.approx(1 - m["log_loss"] / log_loss(y, constant))
    # the constant itself has skill 0
    assert skill_scores(classification_metrics(constant, y), train_rate)["brier_skill"] == pytest.approx(0, abs=1e-12)
    assert skill_scores(m, None) == dict.fromkeys(out)


def test_reliability_bins_are_equal_count():
    bins = reliability_bins(P200, Y200, n_bins=10)
    assert [b["n"] for b in bins] == [20] * 10
    order = np.argsort(P200, kind="stable")
    assert bins[0]["mean_prob"] == pytest.approx(P200[order[:20]].mean())
    assert bins[-1]["observed"] == pytest.approx(Y200[order[-20:]].mean())
