"""Walk-forward folds in the report: experiments run on K consecutive periods (`fembed run
--folds K`, fembed_jax.folds), fold by fold and across folds.

Per fold: the seed ensemble's AUC and PR-AUC on the fold's report windows with bootstrap
intervals, and its paired Δ AUC against the volatility reference fitted on the same fold's train
windows and scored on the same windows (seed × window bootstrap, report.judge.paired). Across
folds: the mean, the standard deviation between folds beside the mean seed standard deviation
within them (the larger says whether more periods or more seeds would sharpen a conclusion), and
in how many folds the Δ interval lies above zero. No correction across folds: the folds
replicate one claim, they are not a family of claims.
"""

from __future__ import annotations

import dataclasses
import statistics
from typing import Any

from fembed_jax import fmt
from fembed_jax.report.baselines import Reference
from fembed_jax.report.collect import Entry, ReportData
from fembed_jax.report.tables import Table


@dataclasses.dataclass
class FoldResult:
    entry: Entry
    period: str  # the validation decision days, "first to last"
    delta: dict | None  # paired_bootstrap's "auc" (diff, low, high, p_value) against the fold's reference
    why: str = ""  # why there is no delta

    @property
    def auc(self) -> float | None:
        return (self.entry.stats.get("ensemble_auc") or {}).get("auc")


def _usable(data: ReportData, entry: Entry) -> bool:
    return (not entry.other_protocol and not entry.other_data and (data.include_quick or not entry.quick)
            and entry.predictions is not None)


def _reference_of(data: ReportData, fold: int) -> Reference | None:
    return data.reference if fold == 1 else data.fold_references.get(fold)


def _period(entry: Entry) -> str:
    val = ((entry.record.get("data") or {}).get("splits") or {}).get("val") or {}
    return f"{val.get('first_decision', '?')} to {val.get('last_decision', '?')}"


def fold_results(data: ReportData) -> dict[str, list[FoldResult]]:
    """Experiment id -> its usable folds in fold order, for experiments with two or more
    (computed once per ReportData)."""
    if data._folds is None:
        data._folds = _fold_results(data)
    return data._folds


def _fold_results(data: ReportData) -> dict[str, list[FoldResult]]:
    from fembed_jax.folds import split_fold
    from fembed_jax.report.judge import paired

    by_base: dict[str, list[Entry]] = {}
    for entry in data.fembed:
        by_base.setdefault(split_fold(entry.exp_id)[0], []).append(entry)
    out = {}
    for base, entries in by_base.items():
        usable = sorted((e for e in entries if _usable(data, e)), key=lambda e: e.fold)
        if len(usable) < 2 or not any(e.fold > 1 for e in usable):
            continue
        rows = []
        for entry in usable:
            ref = _reference_of(data, entry.fold)
            if ref is None or ref.predictions is None:
                why = (ref.error if ref is not None and ref.error else "no reference computed")
                rows.append(FoldResult(entry, _period(entry), None, why))
                continue
            pair, why = paired(entry.predictions, ref.predictions, data)
            rows.append(FoldResult(entry, _period(entry), pair["auc"] if pair else None, why))
        out[base] = rows
    return out


def _sd(values: list[float]) -> float | None:
    return statistics.stdev(values) if len(values) >= 2 else None


def summary(rows: list[FoldResult]) -> dict[str, Any]:
    """Across one experiment's folds: AUC mean, sd between folds, range; mean seed sd within
    folds; Δ vs reference mean and sd, and the folds whose Δ interval lies above zero."""
    aucs = [r.auc for r in rows if r.auc is not None]
    seed_sds = [r.entry.stats["auc"]["std"] for r in rows if r.entry.stats["auc"].get("std") is not None]
    deltas = [r.delta for r in rows if r.delta is not None and r.delta.get("diff") is not None]
    return {
        "folds": len(rows), "auc_mean": statistics.fmean(aucs) if aucs else None, "auc_sd_between": _sd(aucs),
        "auc_min": min(aucs, default=None), "auc_max": max(aucs, default=None),
        "seed_sd_within": statistics.fmean(seed_sds) if seed_sds else None,
        "delta_mean": statistics.fmean(d["diff"] for d in deltas) if deltas else None,
        "delta_sd": _sd([d["diff"] for d in deltas]), "delta_n": len(deltas),
        "delta_above_zero": sum(1 for d in deltas if d.get("low") is not None and d["low"] > 0),
    }


def per_fold_table(results: dict[str, list[FoldResult]]) -> Table:
    rows = []
    for base, folds in results.items():
        for r in folds:
            s = r.entry.stats
            auc, ap = s.get("ensemble_auc") or {}, s.get("ensemble_pr_auc") or {}
            d = r.delta or {}
            rows.append([base, r.entry.fold, r.period, s["n_seeds"], fmt.with_ci(auc.get("auc"), auc.get("low"), auc.get("high")),
                         fmt.with_ci(ap.get("pr_auc"), ap.get("low"), ap.get("high")), fmt.pm(s["auc"]),
                         f"{fmt.signed(d['diff'])} {fmt.signed_interval(d.get('low'), d.get('high'))}"
                         if r.delta else f"- ({r.why})"])
    return Table(["Exp ID", "Fold", "Val decision days", "Seeds", "AUC [95% CI]", "PR-AUC [95% CI]",
                  "AUC mean ± std (seeds)", "Δ AUC vs reference on the fold [95% CI]"],
                 rows, ["l", "r", "l", "r", "r", "r", "r", "r"])


def across_table(results: dict[str, list[FoldResult]]) -> Table:
    rows = []
    for base, folds in results.items():
        s = summary(folds)
        rows.append([base, s["folds"], fmt.num(s["auc_mean"]), fmt.num(s["auc_sd_between"]),
                     f"{fmt.num(s['auc_min'])} to {fmt.num(s['auc_max'])}", fmt.num(s["seed_sd_within"]),
                     f"{fmt.signed(s['delta_mean'])} ± {fmt.num(s['delta_sd'])}" if s["delta_n"] else "-",
                     f"{s['delta_above_zero']} of {s['delta_n']}" if s["delta_n"] else "-"])
    return Table(["Exp ID", "Folds", "AUC mean", "AUC sd between folds", "AUC range", "AUC sd between seeds (mean)",
                  "Δ AUC vs reference mean ± sd", "Folds with Δ interval above 0"],
                 rows, ["l", "r", "r", "r", "r", "r", "r", "r"])
