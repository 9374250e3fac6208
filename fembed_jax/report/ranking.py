"""The results tables: the ranking of comparable fembed results, the baselines scored at the
same operating points, what is not ranked and why, and the comparison tables.

Every row of the ranking shows the seed ensemble (mean probability over seeds) at operating
points that exist for any calibration: average precision, precision at fixed alert rates,
AUC, and calibration (Brier and log-loss skill against the train base rate). Precision at
0.5 is shown, over the seeds where it is defined, but never ranks.
"""

from __future__ import annotations

from typing import Any

from fembed_jax import metrics
from fembed_jax import fmt
from fembed_jax.report.baselines import Reference
from fembed_jax.report.collect import Entry, ReportData
from fembed_jax.report.judge import Comparison
from fembed_jax.report.tables import Table

RATES = tuple(metrics.ALERT_RATES)  # top1pct, top5pct, top10pct
RATE_LABEL = {"top1pct": "top 1%", "top5pct": "top 5%", "top10pct": "top 10%"}


def _skill(m: dict | None, base_rate: float | None) -> dict:
    return metrics.skill_scores(m, base_rate) if m else dict.fromkeys(("brier_skill", "log_loss_skill"))


def _judged_cell(row: Comparison | None) -> str:
    if row is None:
        return "-"
    if row.diff is None:
        return row.verdict
    return (f"{fmt.signed(row.diff)} {fmt.signed_interval(row.low, row.high)} "
            f"(Holm p {fmt.p_value(row.p_adjusted)})")


RANKING_HEADERS = ["Rank", "Exp ID", "Tier", "d_embed", "Loss", "Embedding", "Seeds",
                   "PR-AUC [95% CI]", *(f"Precision {RATE_LABEL[r]} (TP/k) [Wilson] ×lift" for r in RATES),
                   "AUC [95% CI]", "Δ AUC vs reference", "Δ AUC vs logistic", "Brier skill", "Log-loss skill",
                   "Precision at 0.5, seeds (defined/n)", "Selection gap"]
_RANKING_ALIGN = ["r", "l", "l", "r", "l", "l", "r", "r", "r", "r", "r", "r", "r", "r", "r", "r", "r", "r"]


def top_results(data: ReportData, top: int) -> Table:
    judged = data.judged
    rows = []
    for rank, e in enumerate(data.ranked()[:top], start=1):
        s = e.stats
        ens, ap, auc = s["ensemble"], s["ensemble_pr_auc"], s["ensemble_auc"] or {}
        skill = _skill(ens, e.train_base_rate)
        rows.append([
            rank, f"**{e.label}**" if rank == 1 else e.label, e.tier, fmt.d_embed(e.config.get("d_embed")),
            fmt.loss_label(e.config.get("loss"), e.config.get("loss_params")), e.config.get("embedding") or "?",
            s["n_seeds"], fmt.with_ci(ap["pr_auc"], ap["low"], ap["high"]), *(fmt.at_rate(ens, r) for r in RATES),
            fmt.with_ci(auc.get("auc"), auc.get("low"), auc.get("high")),
            _judged_cell(judged.of(judged.reference, e.exp_id)), _judged_cell(judged.of(judged.logistic, e.exp_id)),
            fmt.signed(skill["brier_skill"]), fmt.signed(skill["log_loss_skill"]), fmt.precision_spread(s["precision"]),
            fmt.signed(judged.selection_gap.get(e.exp_id)),
        ])
    for base in baselines_of(data):
        rows.append(baseline_row(base))
    return Table(RANKING_HEADERS, rows, _RANKING_ALIGN)


def baselines_of(data: ReportData) -> list[Reference]:
    """The reference and the logistic baselines that were computed, in that order."""
    out = [data.reference] if data.reference is not None and data.reference.result is not None else []
    return out + [b for _, b in sorted(data.baselines.items()) if b.result is not None]


def baseline_row(base: Reference) -> list[Any]:
    """A baseline as a row of the ranking table (not ranked), at the same operating points."""
    m, ap, auc = base.result["metrics"], base.result["pr_auc_ci"], base.result["auc_ci"]
    return ["baseline", base.name, base.tier if base.kind == "logistic" else "-", "-", "logistic", "-", 1,
            fmt.with_ci(ap["pr_auc"], ap["low"], ap["high"]), *(fmt.at_rate(m, r) for r in RATES),
            fmt.with_ci(auc["auc"], auc["low"], auc["high"]), "-", "-", fmt.signed(m.get("brier_skill")),
            fmt.signed(m.get("log_loss_skill")), fmt.precision(m["precision"], m["n_positive_preds"]),
            "none (fit on train)"]


def _precision_counts(m: dict) -> str:
    """"0.600 (6/10)", or "undefined (0 predicted)" alone."""
    if not m.get("n_positive_preds"):
        return fmt.precision(m.get("precision"), m.get("n_positive_preds"))
    return f"{fmt.num(m['precision'])} ({fmt.counts(m['true_positives'], m['n_positive_preds'])})"


def not_ranked(data: ReportData) -> Table:
    """fembed results left out of the ranking, with why."""
    ranked = {id(e) for e in data.ranked()}
    rows = []
    for e in data.fembed:
        if id(e) in ranked or e.fold > 1:  # earlier folds: the Walk-forward Folds section
            continue
        reasons = list(e.flags)
        if e.quick and data.include_quick:
            reasons = [f for f in reasons if not f.startswith("quick")]
        if e.predictions is None:
            reasons.append("no usable val_predictions.npz (the ensemble cannot be scored)")
        rows.append([e.label, "; ".join(reasons) or "-", e.tier, e.stats["n_seeds"], fmt.pm(e.stats["auc"]),
                     fmt.pm(e.stats["pr_auc"]), fmt.precision_spread(e.stats["precision"])])
    return Table(["Exp ID", "Why not ranked", "Tier", "Seeds", "AUC mean ± std (seeds)", "PR-AUC mean ± std (seeds)",
                  "Precision at 0.5 (defined/n)"], rows, ["l", "l", "l", "r", "r", "r", "r"])


def baselines_table(data: ReportData) -> Table | None:
    bases = baselines_of(data)
    if not bases:
        return None
    rows = []
    for b in bases:
        m, ci, ap = b.result["metrics"], b.result["auc_ci"], b.result["pr_auc_ci"]
        rows.append([b.name, fmt.with_ci(ci["auc"], ci["low"], ci["high"]),
                     fmt.with_ci(ap["pr_auc"], ap["low"], ap["high"]), fmt.at_rate(m, "top5pct"),
                     _precision_counts(m),
                     fmt.num(m["brier"]), fmt.signed(m.get("brier_skill")), fmt.num(m["log_loss"]),
                     fmt.num(m.get("log_loss_reference")), b.result["n_features"], b.result["n_train"],
                     b.result["n_val"], fmt.num(m["positive_rate"]), fmt.num(b.result["train_base_rate"]), b.source])
    return Table(["Baseline", "AUC [95% CI]", "PR-AUC [95% CI]", "Precision top 5% (TP/k) [Wilson] ×lift",
                  "Precision at 0.5 (TP/pred+)", "Brier", "Brier skill", "Log-loss", "Log-loss of the constant",
                  "Features", "Train windows", "Val windows", "Val positive rate", "Train positive rate", "Data"],
                 rows, ["l", "r", "r", "r", "r", "r", "r", "r", "r", "r", "r", "r", "r", "r", "l"])


def versus_table(data: ReportData) -> Table:
    """Every comparable result against both baselines: Δ AUC, both p-values, the verdict."""
    judged = data.judged
    rows = []
    for e in data.comparable:
        ref, lr = judged.of(judged.reference, e.exp_id), judged.of(judged.logistic, e.exp_id)
        if ref is None and lr is None:
            continue
        cells = []
        for row in (ref, lr):
            pr = (row.pair or {}).get("pr_auc") if row else None
            cells += (["-"] * 5 if row is None else
                      [fmt.delta({"diff": row.diff, "low": row.low, "high": row.high}), fmt.p_value(row.p_value),
                       fmt.p_value(row.p_adjusted), row.verdict, fmt.delta(pr)])
        rows.append([e.label, *cells])
    return Table(["Exp ID", "Δ AUC vs reference [95% CI]", "p", "Holm p", "Verdict", "Δ PR-AUC vs reference",
                  "Δ AUC vs logistic [95% CI]", "p", "Holm p", "Verdict", "Δ PR-AUC vs logistic"], rows,
                 ["l", "r", "r", "r", "l", "r", "r", "r", "r", "l", "r"])


def d_embed_table(rows: list[Comparison]) -> Table:
    out = []
    for r in rows:
        e = r.entry
        out.append([e.tier, e.label, fmt.d_embed(e.config.get("d_embed")),
                    "/".join(str(e.config.get(k)) for k in ("d_model", "n_layers", "n_heads", "d_ff")), r.against,
                    f"{fmt.pm(e.stats['auc'])} ({e.stats['auc']['n']})",
                    fmt.delta({"diff": r.diff, "low": r.low, "high": r.high}), fmt.p_value(r.p_value),
                    fmt.p_value(r.p_adjusted), r.verdict, fmt.delta((r.pair or {}).get("pr_auc"))])
    return Table(["Tier", "Exp ID", "d_embed", "d_model/L/heads/d_ff", "vs", "AUC mean ± std (seeds)",
                  "Paired Δ AUC [95% CI]", "p", "Holm p", "Verdict", "Paired Δ PR-AUC"], out,
                 ["l", "l", "r", "l", "l", "r", "r", "r", "r", "l", "r"])


def loss_table(rows: list[Comparison]) -> Table:
    out = []
    for r in rows:
        e, twin = r.entry, r.other
        out.append([e.label, fmt.loss_label(e.config.get("loss"), e.config.get("loss_params")), r.against,
                    f"{e.config.get('early_stop_metric') or '?'} / {twin.config.get('early_stop_metric') or '?'}",
                    *(fmt.pm(side) for side in (r.sides or (e.stats["auc"], twin.stats["auc"]))),
                    fmt.delta({"diff": r.diff, "low": r.low, "high": r.high}) if r.low is not None else fmt.signed(r.diff),
                    fmt.p_value(r.p_value), fmt.p_value(r.p_adjusted), r.verdict, r.method or "-"])
    return Table(["Exp ID", "Loss", "BCE twin", "Selected on (loss / BCE)", "AUC (loss)", "AUC (BCE)", "Δ AUC",
                  "p", "Holm p", "Verdict", "How"], out, ["l", "l", "l", "l", "r", "r", "r", "r", "r", "l", "l"])


def entry_skill(e: Entry) -> dict:
    return _skill(e.stats.get("ensemble"), e.train_base_rate)
