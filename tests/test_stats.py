"""Statistics behind the report, each against an independent implementation (scikit-learn,
statsmodels, plain loops over the same resamples): Wilson intervals, undefined precision, seed
spreads, ensembles, AUC and average-precision bootstraps, the seed × window paired bootstrap,
Holm / Benjamini-Hochberg, the baselines, and the val_predictions.npz file they read."""

from __future__ import annotations

import os
from types import SimpleNamespace

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.proportion import proportion_confint

from fembed_jax import stats
from fembed_jax.report import baselines
from fembed_jax.report.multiplicity import benjamini_hochberg, holm
from fembed_jax.data.splits import report_mask
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


def test_wilson_equals_statsmodels_for_every_count_up_to_60():
    for pp in range(1, 61):
        for tp in range(pp + 1):
            out = stats.precision_interval(tp, pp)
            low, high = proportion_confint(tp, pp, alpha=0.05, method="wilson")
            assert out["ci_low"] == pytest.approx(low, abs=2e-5) and out["ci_high"] == pytest.approx(high, abs=2e-5)


def test_no_positive_prediction_is_undefined_with_the_uninformative_interval():
    assert stats.precision_interval(0, 0) == {"precision": None, "true_positives": 0,
                                              "predicted_positives": 0, "ci_low": 0.0, "ci_high": 1.0}


def test_mean_std_uses_the_sample_std_and_skips_missing_values():
    assert stats.mean_std([1.0, 2.0, 3.0, None]) == {"mean": 2.0, "std": 1.0, "n": 3, "n_total": 4}
    assert stats.mean_std([0.7]) == {"mean": 0.7, "std": None, "n": 1, "n_total": 1}
    assert stats.mean_std([None]) == {"mean": None, "std": None, "n": 0, "n_total": 1}


# ---- per seed and per experiment -----------------------------------------------------------------

def test_legacy_seed_row_derives_true_positives_from_precision_and_predicted_positives():
    record = {"val_metrics": {"precision": 0.6, "recall": 0.0789, "auc": 0.7227, "n_positive_preds": 10,
                              "pred_range": 0.66}}
    (row,) = stats.seed_metrics(record)
    assert (row["true_positives"], row["predicted_positives"]) == (6, 10)
    assert row["ci_low"] == pytest.approx(0.3127, abs=1e-3) and not row["collapsed"]


def test_legacy_zero_over_zero_is_undefined_even_when_the_record_says_0():
    (row,) = stats.seed_metrics({"val_metrics": {"precision": 0.0, "recall": 0.0, "auc": 0.61,
                                                 "n_positive_preds": 0, "pred_range": 0.05}})
    assert row["precision"] is None and (row["true_positives"], row["predicted_positives"]) == (0, 0)


def test_experiment_stats_averages_precision_over_the_defined_seeds_only():
    def seed(s, tp, pp, auc, diverged=False):
        return {"seed": s, "precision": tp / pp if pp else 0.0, "recall": tp / 76, "auc": auc,
                "true_positives": tp, "n_positive_preds": pp, "pred_range": 0.8, "pred_max": 0.9,
                "collapsed": pp == 0, "diverged": diverged}

    # FE-06's seeds as the review rebuilt them: 1/3, 1/4, 1/5, 0/0, 0/0 (and one diverged seed)
    record = {"exp_id": "X-01", "val_metrics_per_seed": [
        seed(42, 1, 3, 0.70), seed(43, 1, 4, 0.72), seed(44, 1, 5, 0.71), seed(45, 0, 0, 0.73),
        seed(46, 0, 0, 0.74), seed(47, 0, 0, None, diverged=True)]}
    s = stats.experiment_stats(record)
    assert s["n_seeds"] == 6 and s["n_diverged"] == 1
    assert [r["precision"] for r in s["seeds"]][3:] == [None, None, None]  # 0.0 in the record
    defined = [1 / 3, 1 / 4, 1 / 5]
    assert s["precision"]["mean"] == pytest.approx(np.mean(defined))  # 0.261, not 0.157
    assert s["precision"]["std"] == pytest.approx(np.std(defined, ddof=1))
    assert (s["precision"]["n"], s["precision"]["n_total"]) == (3, 5)
    assert s["undefined_precision_seeds"] == 2 and (s["tp_pooled"], s["pred_pos_pooled"]) == (3, 12)
    aucs = [0.70, 0.72, 0.71, 0.73, 0.74]
    assert s["auc"]["mean"] == pytest.approx(np.mean(aucs)) and s["auc"]["std"] == pytest.approx(np.std(aucs, ddof=1))
    assert s["typical"] is None and s["collapsed_seeds"] == 3 and s["ensemble"] is None


def test_experiment_stats_with_predictions_scores_the_seeds_and_the_ensemble():
    from fembed_jax.predictions import Predictions

    p, y = _scores(n=300)
    probs = np.stack([p, np.clip(p + 0.05, 0, 1)])
    pred = Predictions(probs=probs, labels=y, starts=np.arange(y.size), seeds=np.array([42, 43]), dates=None)
    s = stats.experiment_stats({"val_metrics_per_seed": [{"seed": 42}, {"seed": 43}]}, pred, n_boot=100)
    assert s["seeds"][1]["pr_auc"] == pytest.approx(average_precision_score(y, probs[1]))
    assert s["pr_auc"]["n"] == 2
    mean = probs.mean(axis=0)
    assert s["ensemble_pr_auc"]["pr_auc"] == pytest.approx(average_precision_score(y, mean))
    assert s["ensemble_auc"]["auc"] == pytest.approx(roc_auc_score(y, mean))
    assert s["ensemble"]["pr_auc"] == pytest.approx(average_precision_score(y, mean))


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


def test_vectorised_average_precision_equals_sklearn_with_weights_one_by_one():
    p, y = _scores(seed=4)
    w = stats.bootstrap_weights(p.size, 25, np.random.default_rng(3))
    fast = stats._weighted_ap(p, y, w)
    slow = [average_precision_score(y, p, sample_weight=row) for row in w]
    np.testing.assert_allclose(fast, slow, atol=1e-12)
    assert stats._weighted_ap(p, y, np.ones((1, p.size)))[0] == pytest.approx(average_precision_score(y, p))


def test_row_wise_scores_each_resample_with_its_own_probabilities():
    p, y = _scores(seed=5)
    rng = np.random.default_rng(8)
    scores = np.round(np.clip(p + rng.normal(0, 0.1, (12, p.size)), 0, 1), 2)  # ties in every row
    w = stats.bootstrap_weights(p.size, 12, rng)
    np.testing.assert_allclose(stats._weighted_auc(scores, y, w),
                               [roc_auc_score(y, s, sample_weight=r) for s, r in zip(scores, w)], atol=1e-12)
    np.testing.assert_allclose(stats._weighted_ap(scores, y, w),
                               [average_precision_score(y, s, sample_weight=r) for s, r in zip(scores, w)],
                               atol=1e-12)


def test_bootstrap_pr_auc_equals_percentiles_of_a_loop_over_the_same_resamples():
    p, y = _scores(seed=6)
    out = stats.bootstrap_pr_auc(p, y, n_boot=200, seed=11)
    w = stats.bootstrap_weights(p.size, 200, np.random.default_rng(11))
    loop = [average_precision_score(y, p, sample_weight=row) for row in w]
    assert (out["low"], out["high"]) == pytest.approx(tuple(np.quantile(loop, [0.025, 0.975])))
    assert out["pr_auc"] == pytest.approx(average_precision_score(y, p))


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


def test_seed_by_window_bootstrap_equals_an_independent_loop_over_the_same_draws():
    p, y = _scores(n=200, seed=9)
    rng = np.random.default_rng(1)
    a = np.clip(p + rng.normal(0, 0.05, (5, p.size)), 0, 1)  # five seeds
    b = np.clip(p[None] * 0.8 + 0.05, 0, 1)  # one reference
    out = stats.paired_bootstrap(a, b, y, n_boot=150, seed=4, resample_seeds=True, metrics=("auc", "pr_auc"))
    draw = np.random.default_rng(4)  # the documented order: window counts, then seed draws
    w = stats.bootstrap_weights(p.size, 150, draw)
    seeds = draw.integers(0, 5, size=(150, 5))
    diffs = {"auc": [], "pr_auc": []}
    for row, pick in zip(w, seeds):
        ens = a[pick].mean(axis=0)
        diffs["auc"].append(roc_auc_score(y, ens, sample_weight=row) - roc_auc_score(y, b[0], sample_weight=row))
        diffs["pr_auc"].append(average_precision_score(y, ens, sample_weight=row)
                               - average_precision_score(y, b[0], sample_weight=row))
    for metric, values in diffs.items():
        values = np.asarray(values)
        assert (out[metric]["low"], out[metric]["high"]) == pytest.approx(tuple(np.quantile(values, [0.025, 0.975])))
        expected_p = min(1.0, 2 * min(np.sum(values <= 0) + 1, np.sum(values >= 0) + 1) / (values.size + 1))
        assert out[metric]["p_value"] == pytest.approx(expected_p)
    assert out["auc"]["diff"] == pytest.approx(roc_auc_score(y, a.mean(axis=0)) - roc_auc_score(y, b[0]))
    # resampling seeds widens the interval of a seed-noisy ensemble
    plain = stats.paired_bootstrap(a, b, y, n_boot=150, seed=4)
    assert plain["auc"]["high"] - plain["auc"]["low"] <= out["auc"]["high"] - out["auc"]["low"] + 1e-9


def test_holm_and_benjamini_hochberg_equal_statsmodels():
    p = [0.01, 0.04, 0.03, 0.2, 0.005, None, 0.5]
    kept = [v for v in p if v is not None]
    for ours, method in ((holm(p), "holm"), (benjamini_hochberg(p), "fdr_bh")):
        theirs = iter(multipletests(kept, method=method)[1])
        assert ours[5] is None
        np.testing.assert_allclose([v for v in ours if v is not None], list(theirs), atol=1e-12)
    assert holm([None, None]) == [None, None]


def test_paired_bootstrap_detects_a_clearly_better_model_and_is_antisymmetric():
    p, y = _scores(n=400)
    perfect = np.where(y == 1, 0.9, 0.1)
    out = stats.paired_bootstrap(perfect, p, y, n_boot=400, seed=2)
    assert out["auc"]["a"] == 1.0 and out["auc"]["b"] == pytest.approx(roc_auc_score(y, p))
    assert out["auc"]["low"] > 0 and out["auc"]["share_a_better"] == 1.0
    assert out["auc"]["p_value"] == pytest.approx(2 / 401)  # never 0: 400 resamples cannot prove that
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


def _reference_data(rows=1200, context=10, seed=0):
    rng = np.random.default_rng(seed)
    feature = rng.lognormal(-4.5, 0.4, rows)  # ATR/Close-like scale ~0.01
    starts = {"train": np.arange(0, 800 - context, dtype=np.int32),
              "val": np.arange(800, 1200 - context, dtype=np.int32)}
    # the label of a window depends on the feature of its decision day (start + context - 1)
    labels = {k: (feature[v + context - 1] * rng.lognormal(0, 0.2, v.size) > 0.014).astype(np.float32)
              for k, v in starts.items()}
    return feature, starts, labels, context


def test_volatility_reference_fits_on_train_decision_days_and_scores_val():
    feature, starts, labels, context = _reference_data()
    out = baselines.fit_and_score(feature, starts, labels, context, n_boot=200)
    # scored on the report windows, the validation windows fembed's results are scored on
    scored = report_mask("alternate", starts["val"].size)
    assert out["n_train"] == starts["train"].size and out["n_val"] == scored.sum() < starts["val"].size
    # a monotone one-feature model ranks like the feature itself (independent of the fit)
    val_rows, val_labels = (starts["val"] + context - 1)[scored], labels["val"][scored]
    assert out["metrics"]["auc"] == pytest.approx(roc_auc_score(val_labels, feature[val_rows]))
    assert out["metrics"]["pr_auc"] == pytest.approx(average_precision_score(val_labels, feature[val_rows]))
    assert out["auc_ci"]["low"] <= out["metrics"]["auc"] <= out["auc_ci"]["high"]
    assert out["pr_auc_ci"]["low"] <= out["metrics"]["pr_auc"] <= out["pr_auc_ci"]["high"]
    assert out["train_base_rate"] == pytest.approx(labels["train"].mean())
    assert out["metrics"]["brier_skill"] > 0 and out["metrics"]["k_top5pct"] == round(0.05 * scored.sum())
    assert out["probs"].shape == (scored.sum(),)


def test_logistic_baseline_uses_train_only_and_matches_a_hand_built_fit():
    from sklearn.linear_model import LogisticRegression

    feature, starts, labels, context = _reference_data()
    rng = np.random.default_rng(3)
    matrix = np.column_stack([feature, rng.normal(size=feature.size), rng.normal(size=feature.size)])
    out = baselines.fit_and_score(matrix, starts, labels, context, C=baselines.LOGISTIC_C, n_boot=20)
    tr, va = starts["train"] + context - 1, (starts["val"] + context - 1)[report_mask("alternate", starts["val"].size)]
    mu, sd = matrix[tr].mean(axis=0), matrix[tr].std(axis=0)
    model = LogisticRegression(C=baselines.LOGISTIC_C, max_iter=5000).fit((matrix[tr] - mu) / sd, labels["train"])
    np.testing.assert_allclose(out["probs"], model.predict_proba((matrix[va] - mu) / sd)[:, 1], atol=1e-6)
    flipped = dict(labels, val=1 - labels["val"])  # validation labels never reach the fit
    np.testing.assert_allclose(baselines.fit_and_score(matrix, starts, flipped, context, C=0.1, n_boot=5)["probs"],
                               out["probs"])


def test_volatility_feature_prefers_the_tiers_atr_column():
    import pandas as pd

    frame = pd.DataFrame({"High": np.linspace(11, 12, 40), "Low": np.linspace(9, 10, 40),
                          "Close": np.full(40, 10.0), "atr_14": np.full(40, 0.5)})
    np.testing.assert_allclose(baselines.volatility_feature(frame), 0.05)
    talib_based = baselines.volatility_feature(frame.drop(columns="atr_14"))
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


def test_runs_to_detect_sizes_seeds_and_folds_for_the_power_asked():
    """Against scipy: a z-test of the difference with the planned standard error has at least the
    power asked, and one seed or fold fewer has less."""
    from scipy.stats import norm

    def power(se):
        return norm.cdf(0.01 / se - norm.ppf(0.975)) + norm.cdf(-0.01 / se - norm.ppf(0.975))

    # Window noise alone is above what is needed: more seeds cannot help, folds can.
    plan = stats.runs_to_detect(0.02, 0.012, 5)
    assert plan["se_needed"] == pytest.approx(0.01 / (norm.ppf(0.975) + norm.ppf(0.8)))
    assert plan["seeds_needed"] is None and plan["seed_se"] == pytest.approx(0.016)
    k = plan["folds_needed"]
    assert power(0.02 / np.sqrt(k)) >= 0.8 > power(0.02 / np.sqrt(k - 1))
    # Mostly seed noise: more seeds on the same windows get there.
    plan = stats.runs_to_detect(0.006, 0.002, 5)
    m = plan["seeds_needed"]
    seed_var = (0.006 ** 2 - 0.002 ** 2) * 5
    assert m > 5 and power(np.sqrt(0.002 ** 2 + seed_var / m)) >= 0.8 > power(np.sqrt(0.002 ** 2 + seed_var / (m - 1)))
    assert stats.runs_to_detect(0.003, 0.002, 5)["seeds_needed"] == 3  # fewer than today would do


def test_paired_bootstrap_reports_the_standard_error_of_the_difference():
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 2, 400)
    a = np.clip(labels * 0.3 + rng.normal(0.35, 0.2, (3, 400)), 0, 1)
    b = np.clip(labels * 0.1 + rng.normal(0.45, 0.2, (3, 400)), 0, 1)
    out = stats.paired_bootstrap(a, b, labels, n_boot=2000, resample_seeds=True, metrics=("auc",))["auc"]
    # a normal interval from the standard error is close to the percentile interval
    assert out["se"] > 0 and (out["high"] - out["low"]) / (2 * 1.96) == pytest.approx(out["se"], rel=0.15)
