"""What a fembed result has to beat, scored on the same validation windows: the one-feature
volatility reference (logistic regression on ATR14/Close) and a logistic regression on all of
a tier's features at the decision day. Both are fitted on the train windows only and scored on
the report windows of fembed's ranking protocol (DEFAULT_SELECTION_RULE: the validation windows
no run's early stopping read), the windows fembed's results are scored on.

Errors (no data, a file that cannot be read) are returned in ``Reference.error``, not raised:
a report without a baseline is still useful.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import numpy as np

from fembed_jax import metrics, stats
from fembed_jax.config import DEFAULT_SELECTION_RULE
from fembed_jax.data.splits import report_mask
from fembed_jax.predictions import Predictions
from fembed_jax.report.data_identity import data_key

REFERENCE_NAME = "volatility only (ATR14/Close, logistic regression)"
# The logistic baseline's L2 strength, fixed before any result was seen: moderate shrinkage for
# up to 500 correlated features. Not tuned: tuning it on validation would select on the very
# windows the comparison is scored on.
LOGISTIC_C = 0.1


def logistic_name(tier: str) -> str:
    return f"logistic regression on the {tier} features at the decision day"


@dataclasses.dataclass
class Reference:
    """A baseline scorer: its result (None when unavailable), validation predictions and where
    its data came from. ``data_key`` identifies the data (see report.data_identity)."""

    result: dict[str, Any] | None
    predictions: Predictions | None
    source: str
    error: str | None = None
    name: str = REFERENCE_NAME
    kind: str = "volatility"  # "volatility" | "logistic"
    tier: str | None = None
    data_key: tuple | None = None


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


def fit_and_score(x, starts: Mapping[str, np.ndarray], labels: Mapping[str, np.ndarray],
                  context_length: int, *, C: float = 1.0, n_boot: int = stats.DEFAULT_BOOTSTRAP,
                  seed: int = 0, block_length: int = 1, level: float = 0.95) -> dict:
    """Logistic regression on the rows of ``x`` (one row per matrix row, one column per feature)
    at each window's decision day, starts[s][k] + context_length - 1: fit on train, score the
    val report windows.

    Features are standardised on train (scikit-learn's L2 penalty would otherwise shrink a
    feature of scale 0.01 to nothing); a non-finite cell takes its train column's median.
    Returns {"metrics": classification_metrics on val plus skill_scores against the train
    base rate, "auc_ci": bootstrap_auc, "pr_auc_ci": bootstrap_pr_auc, "train_base_rate",
    "n_train", "n_val", "n_features", "probs" (val probabilities)}.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x = np.asarray(x, np.float64)
    x = x[:, None] if x.ndim == 1 else x

    def split(name):
        rows = np.asarray(starts[name]) + context_length - 1
        return x[rows], np.asarray(labels[name], np.float64)

    x_train, y_train = split("train")
    x_val, y_val = split("val")
    scored = report_mask(DEFAULT_SELECTION_RULE, y_val.size)
    x_val, y_val = x_val[scored], y_val[scored]
    usable = np.any(np.isfinite(x_train), axis=0)
    if not usable.any() or len(np.unique(y_train)) < 2:
        raise ValueError("the train split needs finite features and both classes")
    x_train, x_val = x_train[:, usable], x_val[:, usable]
    fill = np.nanmedian(np.where(np.isfinite(x_train), x_train, np.nan), axis=0)
    x_train = np.where(np.isfinite(x_train), x_train, fill)
    x_val = np.where(np.isfinite(x_val), x_val, fill)
    model = make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=5000))
    model.fit(x_train, y_train)
    probs = model.predict_proba(x_val)[:, 1]
    base_rate = float(y_train.mean())
    m = metrics.classification_metrics(probs, y_val)
    m.update(metrics.skill_scores(m, base_rate))
    kw = dict(n_boot=n_boot, seed=seed, level=level, block_length=block_length)
    return {"metrics": m, "auc_ci": stats.bootstrap_auc(probs, y_val, **kw),
            "pr_auc_ci": stats.bootstrap_pr_auc(probs, y_val, **kw), "train_base_rate": base_rate,
            "n_train": int(y_train.size), "n_val": int(y_val.size), "n_features": int(usable.sum()),
            "probs": probs}


def _load(data_config: Any, tier: str):
    from fembed_jax.data import DataConfig, load_dataset

    cfg = data_config or DataConfig()
    return cfg, load_dataset(tier, cfg)


def _reference(dataset, result: dict, name: str, kind: str, tier: str) -> Reference:
    probs = result.pop("probs")
    labels = np.asarray(dataset.labels["val"], np.float32)
    scored = report_mask(DEFAULT_SELECTION_RULE, labels.size)
    dates = dataset.decision_dates("val")
    pred = Predictions(probs=np.asarray(probs, np.float32)[None, :], labels=labels[scored],
                       starts=np.asarray(dataset.starts["val"])[scored], seeds=np.zeros(1, np.int64),
                       dates=None if dates is None else np.asarray(dates)[scored])
    val = dataset.split_info()["val"]
    source = (f"{dataset.source_id.split('|')[0]} [{tier}], val decision days "
              f"{val['first_decision']} to {val['last_decision']}")
    return Reference(result, pred, source, name=name, kind=kind, tier=tier,
                     data_key=data_key(dataset.source_id, val))


def volatility_reference(data_config: Any = None, *, tier: str = "a20", n_boot: int = stats.DEFAULT_BOOTSTRAP,
                         seed: int = 0, block_length: int = 1) -> Reference:
    """The ATR14/Close reference on ``tier``'s windows of ``data_config``.

    Validation windows are defined by dates, so every tier has the same decision days; the
    smallest tier is the cheapest to build.
    """
    try:
        from fembed_jax.data.tierstore import tier_frame

        cfg, dataset = _load(data_config, tier)
        frame = tier_frame(cfg, tier).frame
        if len(frame) != dataset.matrix.shape[0]:
            raise ValueError(f"tier {tier}: frame has {len(frame)} rows, the dataset {dataset.matrix.shape[0]}")
        feature = volatility_feature(frame)
        rows = np.asarray(dataset.starts["val"]) + dataset.context_length - 1
        if not np.all(np.isfinite(feature[rows])):
            raise ValueError(f"{int(np.sum(~np.isfinite(feature[rows])))} validation windows have no "
                             "ATR14/Close (too close to the start of the data)")
        result = fit_and_score(feature, dataset.starts, dataset.labels, dataset.context_length,
                               n_boot=n_boot, seed=seed, block_length=block_length)
    except Exception as exc:  # noqa: BLE001 - reported in the document instead
        return Reference(None, None, source="", error=f"{type(exc).__name__}: {exc}", tier=tier)
    return _reference(dataset, result, REFERENCE_NAME, "volatility", tier)


def logistic_baseline(data_config: Any, tier: str, *, n_boot: int = stats.DEFAULT_BOOTSTRAP,
                      seed: int = 0, block_length: int = 1) -> Reference:
    """Logistic regression (C = LOGISTIC_C) on every feature of ``tier`` at the decision day."""
    name = logistic_name(tier)
    try:
        _, dataset = _load(data_config, tier)
        result = fit_and_score(dataset.matrix, dataset.starts, dataset.labels, dataset.context_length,
                               C=LOGISTIC_C, n_boot=n_boot, seed=seed, block_length=block_length)
    except Exception as exc:  # noqa: BLE001 - reported in the document instead
        return Reference(None, None, source="", error=f"{type(exc).__name__}: {exc}", name=name,
                         kind="logistic", tier=tier)
    return _reference(dataset, result, name, "logistic", tier)
