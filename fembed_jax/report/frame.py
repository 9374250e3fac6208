"""The flat results table written beside the report (CSV and parquet): one row per result
(a fembed run, or a legacy record, told apart by ``source``), the same named columns always,
a header even when there is no result.

Unprefixed metric columns (pr_auc, auc, precision_top5pct, brier, ...) are the seed
ensemble's on the validation windows; ``*_mean``/``*_std`` are over seeds (precision over the
seeds where it is defined, ``precision_n_defined`` of ``n_seeds``). ``delta_*_vs_reference`` /
``_vs_logistic`` are the paired seed × window bootstrap differences of report.judge.
"""

from __future__ import annotations

import json
from typing import Any

import pandas as pd

from fembed_jax.folds import split_fold
from fembed_jax.metrics import ALERT_RATES
from fembed_jax.report.collect import Entry, ReportData, selection_rule
from fembed_jax.report.folds import fold_results
from fembed_jax.report.judge import Comparison
from fembed_jax.report.ranking import entry_skill

_RATE_FIELDS = ("precision", "tp", "k", "precision_{}_ci_low", "precision_{}_ci_high", "recall", "lift", "episodes")
_RATE_COLUMNS = tuple((f.format(r) if "{}" in f else f"{f}_{r}") for r in ALERT_RATES for f in _RATE_FIELDS)
_VERSUS = ("reference", "logistic")


def versus_columns(name: str) -> tuple[str, ...]:
    """delta_auc_vs_<name> with its interval, p, Holm p, verdict, delta_pr_auc_vs_<name> with its interval."""
    return (f"delta_auc_vs_{name}", f"delta_auc_vs_{name}_ci_low", f"delta_auc_vs_{name}_ci_high",
            f"p_vs_{name}", f"p_holm_vs_{name}", f"verdict_vs_{name}", f"delta_pr_auc_vs_{name}",
            f"delta_pr_auc_vs_{name}_ci_low", f"delta_pr_auc_vs_{name}_ci_high")

COLUMNS = (
    "exp_id", "fold", "val_first_decision", "val_last_decision", "source", "legacy", "current", "priority", "tier", "d_embed", "d_model", "n_layers", "n_heads",
    "d_ff", "loss", "loss_params", "embedding", "early_stop_metric", "selection", "selection_windows", "state",
    "like_with_like", "quick", "other_data", "other_protocol", "flags", "data_source", "ranked", "rank", "n_seeds", "n_diverged", "epochs",
    "seconds", "timestamp", "config_hash", "run_hash",
    "auc_mean", "auc_std", "pr_auc_mean", "pr_auc_std", "precision_mean", "precision_std",
    "precision_n_defined", "recall_mean", "recall_std", "tp_mean", "pred_pos_mean", "tp_pooled",
    "pred_pos_pooled", "collapsed_seeds", "pred_range_min",
    "ensemble_seeds", "pr_auc", "pr_auc_ci_low", "pr_auc_ci_high", "auc", "auc_ci_low", "auc_ci_high",
    *_RATE_COLUMNS, "brier", "brier_skill", "log_loss", "log_loss_skill", "train_base_rate",
    "ensemble_precision", "ensemble_tp", "ensemble_pred_pos", "ensemble_recall",
    *(c for v in _VERSUS for c in versus_columns(v)),
    "selection_gap_auc", "test_read_by",
)
_INT_COLUMNS = ("fold", "d_embed", "d_model", "n_layers", "n_heads", "d_ff", "epochs", "rank", "n_seeds", "n_diverged",
                "precision_n_defined", "tp_pooled", "pred_pos_pooled", "collapsed_seeds", "ensemble_seeds",
                "ensemble_tp", "ensemble_pred_pos", *(c for c in _RATE_COLUMNS if c.split("_")[0] in
                                                      ("tp", "k", "episodes")))
_BOOL_COLUMNS = ("legacy", "current", "like_with_like", "quick", "other_data", "other_protocol", "ranked")


def _versus(row: Comparison | None, name: str) -> dict[str, Any]:
    pr = ((row.pair or {}).get("pr_auc") or {}) if row else {}
    values = (row.diff, row.low, row.high, row.p_value, row.p_adjusted, row.verdict) if row else (None,) * 6
    return dict(zip(versus_columns(name), (*values, pr.get("diff"), pr.get("low"), pr.get("high")), strict=True))


def _row(e: Entry, data: ReportData, rank: dict[int, int], access: dict[str, list[str]]) -> dict[str, Any]:
    s, c = e.stats, e.config
    ens = s.get("ensemble") or {}
    ap, auc = s.get("ensemble_pr_auc") or {}, s.get("ensemble_auc") or {}
    judged = data.judged
    source_id = (e.record.get("data") or {}).get("source_id")
    val = ((e.record.get("data") or {}).get("splits") or {}).get("val") or {}
    row = {
        "exp_id": e.exp_id, "fold": None if e.legacy else e.fold, "val_first_decision": val.get("first_decision"),
        "val_last_decision": val.get("last_decision"), "source": e.source, "legacy": e.legacy, "current": e.current,
        "priority": e.priority, "tier": e.tier, **{k: c.get(k) for k in ("d_embed", "d_model", "n_layers",
                                                                         "n_heads", "d_ff", "loss")},
        "loss_params": json.dumps(c.get("loss_params") or {}, sort_keys=True), "embedding": c.get("embedding"),
        "early_stop_metric": c.get("early_stop_metric"), "selection": e.record.get("selection"),
        "selection_windows": None if e.legacy else selection_rule(e.record),
        "state": None if e.legacy else data.state_of(e.exp_id), "like_with_like": data.like_with_like(e),
        "quick": e.quick, "other_data": e.other_data, "other_protocol": e.other_protocol, "flags": "; ".join(e.flags) or None,
        "data_source": source_id.split("|")[0] if source_id else ("original (legacy)" if e.legacy else None),
        "ranked": id(e) in rank, "rank": rank.get(id(e)), "n_seeds": s["n_seeds"], "n_diverged": s["n_diverged"],
        "epochs": (e.record.get("summary") or {}).get("epochs"),
        "seconds": (e.record.get("summary") or {}).get("seconds"), "timestamp": e.record.get("timestamp"),
        "config_hash": e.record.get("config_hash"), "run_hash": e.record.get("run_hash"),
        "precision_n_defined": s["precision"]["n"], "tp_mean": s["tp_mean"], "pred_pos_mean": s["pred_pos_mean"],
        "tp_pooled": s["tp_pooled"], "pred_pos_pooled": s["pred_pos_pooled"],
        "collapsed_seeds": s["collapsed_seeds"], "pred_range_min": s["pred_range_min"],
        "ensemble_seeds": ens.get("n_seeds_used"), "pr_auc": ap.get("pr_auc"), "pr_auc_ci_low": ap.get("low"),
        "pr_auc_ci_high": ap.get("high"), "auc": auc.get("auc"), "auc_ci_low": auc.get("low"),
        "auc_ci_high": auc.get("high"), **{col: ens.get(col) for col in _RATE_COLUMNS},
        "brier": ens.get("brier"), "log_loss": ens.get("log_loss"), "train_base_rate": e.train_base_rate,
        **{k: v for k, v in entry_skill(e).items() if k in ("brier_skill", "log_loss_skill")},
        "ensemble_precision": ens.get("precision"), "ensemble_tp": ens.get("true_positives"),
        "ensemble_pred_pos": ens.get("n_positive_preds"), "ensemble_recall": ens.get("recall"),
        **_versus(judged.of(judged.reference, e.exp_id) if not e.legacy else None, "reference"),
        **_fold_versus(e, data),
        **_versus(judged.of(judged.logistic, e.exp_id) if not e.legacy else None, "logistic"),
        "selection_gap_auc": None if e.legacy else judged.selection_gap.get(e.exp_id),
        "test_read_by": None if e.legacy else ", ".join(access.get(e.exp_id, [])) or None,
    }
    for metric in ("auc", "pr_auc", "precision", "recall"):
        row[f"{metric}_mean"], row[f"{metric}_std"] = s[metric]["mean"], s[metric]["std"]
    return {k: row.get(k) for k in COLUMNS}


def _fold_versus(e: Entry, data: ReportData) -> dict[str, Any]:
    """A walk-forward fold k > 1: its Δ against the reference of its own fold (report.folds); no
    Holm p or verdict, the folds are no family. Fold 1 and the rest: nothing (judge's row above)."""
    if e.fold == 1:
        return {}
    fold = next((r for r in fold_results(data).get(split_fold(e.exp_id)[0], []) if r.entry is e), None)
    d = (fold.delta if fold else None) or {}
    return {"delta_auc_vs_reference": d.get("diff"), "delta_auc_vs_reference_ci_low": d.get("low"),
            "delta_auc_vs_reference_ci_high": d.get("high"), "p_vs_reference": d.get("p_value")}


def results_frame(data: ReportData) -> pd.DataFrame:
    """One row per result, the columns of COLUMNS in that order (CSV and parquet safe)."""
    rank = {id(e): i for i, e in enumerate(data.ranked(), start=1)}
    access = data.test_access()
    frame = pd.DataFrame.from_records([_row(e, data, rank, access) for e in data.entries], columns=list(COLUMNS))
    for column in _INT_COLUMNS:
        frame[column] = pd.array(frame[column], dtype="Int64")
    for column in _BOOL_COLUMNS:
        frame[column] = pd.array(frame[column], dtype="boolean")
    return frame
