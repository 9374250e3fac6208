"""Statistics behind the report: Wilson intervals, seed spreads, ensembles, bootstraps, the
volatility reference, and the val_predictions.npz file they read."""

from __future__ import annotations

import os
from types import SimpleNamespace

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from fembed_jax import stats
from fembed_jax.predictions import (PredictionsError, align, load_predictions, predictions_path,
                                    save_predictions, write_predictions)


# ---- Wilson intervals ----------------------------------------------------------------------------

@pytest.mark.parametrize("tp, pp, low, high", [
    # data_and_features.md A10(c): the original's headline precisions and their intervals
    (6, 7, 0.487, 0.974),   # LF-40 "85.7%"
    (9, 13, 0.424, 0.873),  # FE-06 "69.2%"
    (12, 20, 0.387, 0.781),  # FE-26
    (2, 2, 0.342, 1.000),   # FE-38 "100%"
    # textbook values
    (0, 10, 0.0, 0.2775),
    (5, 10, 0.2366, 0.7634),
])
def test_precision_interval_matches_known_wilson_values(tp, pp, low, high):
    out = stats.precision_interval(tp, pp)
    assert out["precision"] == pytest.approx(tp / pp)
    assert (out["true_positives"], out["predicted_positives"]) == (tp, pp)
    assert out["ci_low"] == pytest.approx(low, abs=5e-4)
    assert out["ci_high"] == pytest.approx(high, abs=5e-4)


def test_no_positive_prediction_has_the_uninformative_interval():
    assert stats.precision_interval(0, 0) == {"precision": 0.0, "true_positives": 0,
                                              "predicted_positives": 0, "ci_low": 0.0, "ci_high": 1.0}


def test_mean_std_uses_the_sample_std_and_skips_missing_values():
    assert stats.mean_std([1.0, 2.0, 3.0, None]) == {"mean": 2.0, "std": 1.0, "n": 3}
    assert stats.mean_std([0.7]) == {"mean": 0.7, "std": None, "n": 1}
    assert stats.mean_std([None]) == {"mean": None, "std": None, "n": 0}


# ---- per seed and per experiment -----------------------------------------------------------------

def test_legacy_seed_row_derives_true_positives_from_precision_and_predicted_positives():
    record = {"val_metrics": {"precision": 0.6, "recall": 0.0789, "auc": 0.7227, "n_positive_preds": 10,
                              "pred_range": 0.66}}
    (row,) = stats.seed_metrics(record)
    assert (row["true_positives"], row["predicted_positives"]) == (6, 10)
    assert row["ci_low"] == pytest.approx(0.3127, abs=1e-3) and not row["collapsed"]


def test_experiment_stats_spread_typical_interval_and_diverged_seeds():
    def seed(s, tp, pp, auc, diverged=False):
        return {"seed": s, "precision": tp / pp if pp else 0.0, "recall": tp / 76, "auc": auc,
                "true_positives": tp, "n_positive_preds": pp, "pred_range": 0.8, "pred_max": 0.9,
                "collapsed": pp == 0, "diverged": diverged}

    record = {"exp_id": "X-01", "val_metrics_per_seed": [
        seed(42, 6, 10, 0.70), seed(43, 8, 14, 0.72), seed(44, 0, 0, None, diverged=True)]}
    s = stats.experiment_stats(record)
    assert s["n_seeds"] == 3 and s["n_diverged"] == 1
    assert s["precision"]["mean"] == pytest.approx((0.6 + 8 / 14) / 2)
    assert s["auc"] == {"mean": pytest.approx(0.71), "std": pytest.approx(np.std([0.7, 0.72], ddof=1)), "n": 2}
    assert (s["tp_mean"], s["pred_pos_mean"]) == (7.0, 12.0)
    assert s["typical"] == stats.precision_interval(7, 12)
    assert s["collapsed_seeds"] == 1 and s["ensemble"] is None


# ---- ensemble ------------------------------------------------------------------------------------

def test_ensemble_is_the_mean_probability_over_seeds_scored_as_one_model():
    probs = np.array([[0.9, 0.2, 0.6, 0.1],
                      [0.7, 0.6, 0.2, 0.1]])
    labels = np.array([1, 0, 1, 0])
    mean, used = stats.ensemble_probs(probs)
    np.testing.assert_allclose(mean, [0.8, 0.4, 0.4, 0.1])
    out = stats.ensemble_metrics(probs, labels)
    assert out["n_seeds_used"] == 2
    assert (out["true_positives"], out["n_positive_preds"]) == (1, 1)
    assert out["precision"] == 1.0 and out["recall"] == 0.5
    assert out["auc"] == pytest.approx(roc_auc_score(labels, [0.8, 0.4, 0.4, 0.1]))


def test_ensemble_leaves_out_a_diverged_seed():
    probs = np.array([[0.9, 0.1], [np.nan, np.nan], [0.7, 0.3]])
    mean, used = stats.ensemble_probs(probs)
    assert used == 2
    np.testing.assert_allclose(mean, [0.8, 0.2])


# ---- AUC and the bootstrap -----------------------------------------------------------------------

def _scores(n=300, seed=0, signal=0.3):
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.2).astype(float)
    p = np.round(np.clip(rng.random(n) * 0.5 + signal * y, 0, 1), 2)  # rounded: many ties
    return p, y


def test_rank_auc_equals_sklearn_with_ties():
    for seed in range(3):
        p, y = _scores(seed=seed)
        assert stats.auc_rank(p, y) == pytest.approx(roc_auc_score(y, p), abs=1e-12)
    assert stats.auc_rank([0.1, 0.2], [1, 1]) is None


def test_bootstrap_weights_are_resample_counts():
    w = stats.bootstrap_weights(50, 40, np.random.default_rng(1))
    assert w.shape == (40, 50) and np.all(w.sum(axis=1) == 50) and w.min() >= 0
    blocks = stats.bootstrap_weights(50, 40, np.random.default_rng(1), block_length=7)
    assert np.all(blocks.sum(axis=1) == 50)
    again = stats.bootstrap_weights(50, 40, np.random.default_rng(1))
    np.testing.assert_array_equal(w, again)


def test_vectorised_bootstrap_auc_equals_resampling_one_by_one():
    p, y = _scores()
    w = stats.bootstrap_weights(p.size, 25, np.random.default_rng(3))
    fast = stats._weighted_auc(p, y, w)
    slow = [roc_auc_score(y, p, sample_weight=row) for row in w]
    np.testing.assert_allclose(fast, slow, atol=1e-12)


def test_bootstrap_auc_interval_known_cases():
    y = np.array([0] * 80 + [1] * 20, float)
    perfect = stats.bootstrap_auc(y * 0.5 + 0.25, y, n_boot=300)
    assert (perfect["auc"], perfect["low"], perfect["high"]) == (1.0, 1.0, 1.0)
    noise = stats.bootstrap_auc(np.random.default_rng(5).random(400), np.r_[np.zeros(320), np.ones(80)],
                                n_boot=500, seed=1)
    assert noise["low"] < 0.5 < noise["high"]
    assert noise["low"] < noise["auc"] < noise["high"] and noise["n_valid"] == 500
    assert stats.bootstrap_auc(*_scores(), n_boot=200, seed=7) == stats.bootstrap_auc(*_scores(), n_boot=200, seed=7)


def test_paired_bootstrap_of_identical_predictions_is_exactly_zero():
    p, y = _scores()
    out = stats.paired_bootstrap(p, p, y, n_boot=300)
    for metric in ("auc", "precision"):
        assert out[metric]["diff"] == 0.0
        assert (out[metric]["low"], out[metric]["high"]) == (0.0, 0.0)
        assert out[metric]["p_value"] == 1.0


def test_paired_bootstrap_detects_a_clearly_better_model_and_is_antisymmetric():
    p, y = _scores(n=400)
    perfect = np.where(y == 1, 0.9, 0.1)
    out = stats.paired_bootstrap(perfect, p, y, n_boot=400, seed=2)
    assert out["auc"]["a"] == 1.0 and out["auc"]["b"] == pytest.approx(roc_auc_score(y, p))
    assert out["auc"]["low"] > 0 and out["auc"]["prob_a_better"] == 1.0 and out["auc"]["p_value"] == 0.0
    swapped = stats.paired_bootstrap(p, perfect, y, n_boot=400, seed=2)
    assert swapped["auc"]["diff"] == pytest.approx(-out["auc"]["diff"])
    assert swapped["auc"]["high"] == pytest.approx(-out["auc"]["low"])


def test_paired_bootstrap_precision_difference_with_known_answer():
    y = np.array([1, 1, 0, 0] * 25, float)
    a = np.where(y == 1, 0.9, 0.1)  # predicts exactly the positives: precision 1
    b = np.tile([0.9, 0.9, 0.9, 0.1], 25)  # 2 of every 3 predictions right
    out = stats.paired_bootstrap(a, b, y, n_boot=300)
    assert out["precision"]["a"] == 1.0 and out["precision"]["b"] == pytest.approx(2 / 3)
    assert out["precision"]["diff"] == pytest.approx(1 / 3)
    assert 0 < out["precision"]["low"] < 1 / 3 < out["precision"]["high"]


def test_seed_stacked_inputs_are_compared_as_ensembles():
    p, y = _scores()
    stacked = np.stack([p, p])
    assert stats.paired_bootstrap(stacked, p, y, n_boot=50)["auc"]["diff"] == 0.0


def test_top_k_precision():
    out = stats.top_k_precision([0.9, 0.8, 0.7, 0.1], [1, 0, 1, 1], k=3)
    assert (out["k"], out["true_positives"], out["precision"]) == (3, 2, pytest.approx(2 / 3))
    assert out["recall"] == pytest.approx(2 / 3) and out["ci_low"] == stats.precision_interval(2, 3)["ci_low"]


# ---- volatility reference ------------------------------------------------------------------------

def test_volatility_reference_fits_on_train_decision_days_and_scores_val():
    rng = np.random.default_rng(0)
    rows, context = 1200, 10
    feature = rng.lognormal(-4.5, 0.4, rows)  # ATR/Close-like scale ~0.01
    starts = {"train": np.arange(0, 800 - context, dtype=np.int32),
              "val": np.arange(800, 1200 - context, dtype=np.int32)}
    # the label of a window depends on the feature of its decision day (start + context - 1)
    labels = {k: (feature[v + context - 1] * rng.lognormal(0, 0.2, v.size) > 0.014).astype(np.float32)
              for k, v in starts.items()}
    out = stats.volatility_reference(feature, starts, labels, context, n_boot=200)
    assert out["coef"] > 0 and out["n_train"] == starts["train"].size and out["n_val"] == starts["val"].size
    assert out["metrics"]["auc"] > 0.85
    assert out["auc_ci"]["low"] <= out["metrics"]["auc"] <= out["auc_ci"]["high"]
    assert out["auc_ci"]["auc"] == pytest.approx(out["metrics"]["auc"])
    assert out["probs"].shape == (starts["val"].size,) and out["top_k"]["k"] == round(0.05 * starts["val"].size)


def test_volatility_feature_prefers_the_tiers_atr_column():
    import pandas as pd

    frame = pd.DataFrame({"High": np.linspace(11, 12, 40), "Low": np.linspace(9, 10, 40),
                          "Close": np.full(40, 10.0), "atr_14": np.full(40, 0.5)})
    np.testing.assert_allclose(stats.volatility_feature(frame), 0.05)
    talib_based = stats.volatility_feature(frame.drop(columns="atr_14"))
    assert np.isnan(talib_based[:14]).all() and np.allclose(talib_based[20:], 0.2)


# ---- val_predictions.npz --------------------------------------------------------------------------

def _dataset(dates=True):
    starts = np.arange(100, 106, dtype=np.int32)
    ds = SimpleNamespace(labels={"val": np.array([0, 1, 0, 1, 1, 0], np.float32)}, starts={"val": starts})
    if dates:
        ds.decision_dates = lambda split: np.arange("2015-03-02", "2015-03-08", dtype="datetime64[D]")
    return ds


def test_predictions_round_trip_and_atomic_write(tmp_path):
    fit = SimpleNamespace(val_probs=np.random.default_rng(0).random((2, 6)).astype(np.float32), seeds=[42, 43])
    path = save_predictions(tmp_path, "FE-01", fit, _dataset())
    assert path == predictions_path(tmp_path, "FE-01") and path.name == "val_predictions.npz"
    assert os.listdir(path.parent) == ["val_predictions.npz"]  # no temporary file left behind
    pred = load_predictions(tmp_path, "FE-01")
    np.testing.assert_array_equal(pred.probs, fit.val_probs)
    np.testing.assert_array_equal(pred.labels, _dataset().labels["val"])
    assert list(pred.seeds) == [42, 43] and pred.dates.dtype == np.dtype("datetime64[D]")
    assert load_predictions(tmp_path, "FE-02") is None


def test_a_damaged_or_inconsistent_predictions_file_names_itself(tmp_path):
    path = predictions_path(tmp_path, "FE-01")
    path.parent.mkdir(parents=True)
    path.write_bytes(b"not a zip")
    with pytest.raises(PredictionsError, match="val_predictions.npz"):
        load_predictions(tmp_path, "FE-01")
    with pytest.raises(PredictionsError, match="labels has shape"):
        write_predictions(path, np.zeros((2, 5)), np.zeros(4), np.arange(5), [1, 2])


def test_align_pairs_windows_by_decision_date_and_checks_labels(tmp_path):
    ds = _dataset()
    a = SimpleNamespace(val_probs=np.full((1, 6), 0.3), seeds=[1])
    save_predictions(tmp_path, "A-01", a, ds)
    shifted = SimpleNamespace(labels={"val": ds.labels["val"][2:]}, starts={"val": ds.starts["val"][2:] - 50},
                              decision_dates=lambda split: ds.decision_dates(split)[2:])
    save_predictions(tmp_path, "B-01", SimpleNamespace(val_probs=np.full((1, 4), 0.6), seeds=[1]), shifted)
    pa, pb = load_predictions(tmp_path, "A-01"), load_predictions(tmp_path, "B-01")
    ia, ib = align(pa, pb)  # other tier: other start rows, same decision days
    assert list(ia) == [2, 3, 4, 5] and list(ib) == [0, 1, 2, 3]
    wrong = SimpleNamespace(labels={"val": 1 - shifted.labels["val"]}, starts=shifted.starts,
                            decision_dates=shifted.decision_dates)
    save_predictions(tmp_path, "C-01", SimpleNamespace(val_probs=np.full((1, 4), 0.6), seeds=[1]), wrong)
    with pytest.raises(PredictionsError, match="different labels"):
        align(pa, load_predictions(tmp_path, "C-01"))
