"""The report's tables as (headers, rows), and the flat results table for CSV / parquet."""

from __future__ import annotations

import dataclasses
import json
from collections import defaultdict
from typing import Any

import pandas as pd

from fembed_jax.report import fmt
from fembed_jax.report.collect import Entry, ReportData
from fembed_jax.stats import LEGACY_LABEL

CATEGORY_DESCRIPTIONS = {
    "FE": "Feature embedding architecture experiments",
    "LF": "Loss function experiments",
    "AE": "Advanced embedding architecture experiments",
}
REFERENCE_NAME = "volatility only (ATR14/Close, logistic regression)"


@dataclasses.dataclass
class Table:
    headers: list[str]
    rows: list[list[Any]]
    align: list[str] | None = None


def category_of(exp_id: str) -> str:
    return exp_id.split("-", 1)[0]


def _span(ids: list[str]) -> str:
    return ids[0] if len(ids) == 1 else f"{ids[0]} to {ids[-1]}"


def _registry_configs(data: ReportData) -> list:
    return list(data.registry.experiments) if data.registry is not None else []


def overview(data: ReportData) -> Table:
    """Experiments per category (id prefix) of the registry, with how many are done."""
    by_cat: dict[str, list] = defaultdict(list)
    for cfg in _registry_configs(data):
        by_cat[category_of(cfg.exp_id)].append(cfg)
    rows, total, done_total = [], 0, 0
    for cat, cfgs in by_cat.items():
        priorities = list(dict.fromkeys(c.priority for c in cfgs))
        done = sum(1 for c in cfgs if data.state_of(c.exp_id) == "done")
        total += len(cfgs)
        done_total += done
        span = priorities[0] if len(priorities) == 1 else f"{priorities[0]} to {priorities[-1]}"
        rows.append([f"{cat} ({span})", len(cfgs), done,
                     CATEGORY_DESCRIPTIONS.get(cat, f"{cat} experiments")])
    rows.append(["**Total**", f"**{total}**", f"**{done_total}**", ""])
    return Table(["Category", "Count", "Done", "Description"], rows, ["l", "r", "r", "l"])


def best_of(entries: list[Entry]) -> Entry | None:
    ranked = sorted((e for e in entries if e.stats.get("typical")), key=lambda e: e.rank_key)
    return ranked[0] if ranked else None


def describe_best(entry: Entry | None) -> str:
    if entry is None:
        return "-"
    t = entry.stats["typical"]
    return (f"{entry.label}: precision {fmt.num(entry.stats['precision']['mean'])} "
            f"({fmt.mean_counts(entry.stats['tp_mean'], entry.stats['pred_pos_mean'])}, "
            f"95% CI from {fmt.num(t['ci_low'])}), AUC {fmt.pm(entry.stats['auc'])}")


def priority_status(data: ReportData) -> tuple[Table, list[dict]]:
    """Per priority: counts per state, overall status and the best result; also the pending list."""
    by_priority: dict[str, list] = defaultdict(list)
    for cfg in _registry_configs(data):
        by_priority[cfg.priority].append(cfg)
    entries_by_id: dict[str, list[Entry]] = defaultdict(list)
    for entry in data.entries:
        entries_by_id[entry.exp_id].append(entry)
    rows, pending = [], []
    for priority in data.registry.priorities if data.registry is not None else []:
        cfgs = by_priority[priority]
        states = [data.state_of(c.exp_id) for c in cfgs]
        n = {s: states.count(s) for s in ("done", "running", "pending", "failed", "skipped")}
        if n["done"] == len(cfgs):
            status = "complete"
        elif n["running"]:
            status = "running"
        elif n["failed"]:
            status = f"failed ({n['failed']})"
        elif n["done"]:
            status = "partial"
        else:
            status = "pending"
        ids = [c.exp_id for c in cfgs]
        fembed = [e for i in ids for e in entries_by_id[i] if not e.legacy]
        legacy = [e for i in ids for e in entries_by_id[i] if e.legacy]
        best = best_of(fembed)
        best_text = describe_best(best) if best else (
            "legacy only: " + describe_best(best_of(legacy)) if best_of(legacy) else "-")
        rows.append([priority, _span(ids), len(cfgs), n["done"], n["running"], n["pending"], n["failed"],
                     status, best_text])
        remaining = [c for c, s in zip(cfgs, states, strict=True) if s != "done"]
        if remaining:
            kinds = sorted({c.loss for c in remaining} - {"bce"}) or ["bce"]
            embeds = sorted({c.embedding for c in remaining} - {"none", "linear"})
            kind = ", ".join(kinds) + (f"; embedding {', '.join(embeds)}" if embeds else "")
            pending.append({"priority": priority, "ids": _span([c.exp_id for c in remaining]),
                            "remaining": len(remaining), "kind": kind,
                            "states": ", ".join(f"{v} {k}" for k, v in n.items() if v and k != "done"),
                            "command": f"fembed run --priority {priority}"})
    table = Table(["Priority", "Experiments", "Total", "Done", "Running", "Pending", "Failed", "Status",
                   "Best result (by precision CI lower bound)"], rows,
                  ["l", "l", "r", "r", "r", "r", "r", "l", "l"])
    return table, pending


def pending_table(pending: list[dict]) -> Table:
    return Table(["Priority", "Experiments left", "Count", "Type", "State", "Command"],
                 [[p["priority"], p["ids"], p["remaining"], p["kind"], p["states"], f"`{p['command']}`"]
                  for p in pending], ["l", "l", "r", "l", "l", "l"])


def top_results(data: ReportData, top: int) -> Table:
    headers = ["Rank", "Exp ID", "Source", "Tier", "d_embed", "Loss", "Embedding",
               "Precision 95% CI (typical seed)", "TP/pred+ (mean per seed)", "Precision mean ± std",
               "Recall mean ± std", "AUC mean ± std", "Seeds", "Ensemble precision (TP/pred+)",
               "Ensemble AUC [95% bootstrap CI]"]
    rows = []
    for rank, entry in enumerate(data.ranked()[:top], start=1):
        s, t = entry.stats, entry.stats["typical"]
        ens, ens_auc = s.get("ensemble"), s.get("ensemble_auc")
        rows.append([
            rank, f"**{entry.label}**" if rank == 1 else entry.label,
            LEGACY_LABEL if entry.legacy else "fembed", entry.tier, fmt.d_embed(entry.config.get("d_embed")),
            fmt.loss_label(entry.config.get("loss"), entry.config.get("loss_params")),
            entry.config.get("embedding") or "?",
            fmt.interval(t["ci_low"], t["ci_high"]), fmt.mean_counts(s["tp_mean"], s["pred_pos_mean"]),
            fmt.pm(s["precision"]), fmt.pm(s["recall"]), fmt.pm(s["auc"]), s["n_seeds"],
            (f"{fmt.num(ens['precision'])} ({fmt.counts(ens['true_positives'], ens['n_positive_preds'])})"
             if ens else "-"),
            (f"{fmt.num(ens_auc['auc'])} {fmt.interval(ens_auc['low'], ens_auc['high'])}" if ens_auc else "-"),
        ])
    ref = reference_row(data, len(headers))
    if ref:
        rows.append(ref)
    return Table(headers, rows, ["r", "l", "l", "l", "r", "l", "l", "l", "r", "r", "r", "r", "r", "r", "r"])


def reference_row(data: ReportData, width: int) -> list[Any] | None:
    """The one-feature baseline as a row of the ranking table. Its precision is that of the 5%
    highest-scored windows (a logistic fit on an 18% label seldom reaches 0.5)."""
    ref = data.reference
    if ref is None or ref.result is None:
        return None
    top, ci = ref.result["top_k"], ref.result["auc_ci"]
    row = ["ref", REFERENCE_NAME, "reference", "-", "-", "logistic", "-",
           fmt.interval(top["ci_low"], top["ci_high"]), f"{top['true_positives']}/{top['k']} (top 5%)",
           fmt.num(top["precision"]), fmt.num(top["recall"]),
           f"{fmt.num(ci['auc'])} {fmt.interval(ci['low'], ci['high'])}", 1, "-", "-"]
    return (row + ["-"] * width)[:width]


def d_embed_table(data: ReportData, rows: list[dict]) -> Table:
    headers = ["Tier", "Exp ID", "Source", "d_embed", "d_model/L/heads/d_ff", "AUC mean ± std (seeds)",
               "Δ AUC vs no embedding", "2·SE", "Verdict", "Paired Δ AUC [95% CI]", "Precision mean ± std",
               "TP/pred+"]
    out = []
    for row in rows:
        e, s = row["entry"], row["entry"].stats
        diff = row["auc"]
        baseline = row["baseline"]
        vs = "-" if baseline is None else (f"{fmt.signed(diff['diff'])} vs {baseline.label}"
                                           + ("" if row["same_arch"] else " (other architecture)"))
        pair = row["pair"]
        out.append([e.tier, e.label, e.source, fmt.d_embed(e.config.get("d_embed")),
                    "/".join(str(e.config.get(k)) for k in ("d_model", "n_layers", "n_heads", "d_ff")),
                    f"{fmt.pm(s['auc'])} ({s['auc']['n']})", vs,
                    fmt.num(2 * diff["se"]) if diff and diff.get("se") is not None else "-",
                    diff["verdict"] if diff else "baseline" if e.config.get("d_embed") is None else "no baseline",
                    (f"{fmt.signed(pair['auc']['diff'])} {fmt.signed_interval(pair['auc']['low'], pair['auc']['high'])}"
                     if pair else "-"),
                    fmt.pm(s["precision"]), fmt.mean_counts(s["tp_mean"], s["pred_pos_mean"])])
    ref = data.reference
    if ref is not None and ref.result is not None and out:
        ci = ref.result["auc_ci"]
        out.append(["all", REFERENCE_NAME, "reference", "-", "-",
                    f"{fmt.num(ci['auc'])} {fmt.interval(ci['low'], ci['high'])}", "-", "-", "-", "-",
                    f"{fmt.num(ref.result['top_k']['precision'])} (top 5%)",
                    f"{ref.result['top_k']['true_positives']}/{ref.result['top_k']['k']}"])
    return Table(headers, out, ["l", "l", "l", "r", "l", "r", "l", "r", "l", "r", "r", "r"])


def loss_table(data: ReportData, rows: list[dict]) -> Table:
    headers = ["Exp ID", "Loss", "BCE twin", "AUC (loss)", "AUC (BCE)", "Δ AUC", "2·SE", "Verdict",
               "Paired Δ AUC [95% CI]", "Precision (loss)", "Precision (BCE)", "Paired Δ precision [95% CI]"]
    out = []
    for row in rows:
        e, twin, diff, pair = row["entry"], row["twin"], row["auc"], row["pair"]
        out.append([e.label, fmt.loss_label(e.config.get("loss"), e.config.get("loss_params")), twin.label,
                    fmt.pm(e.stats["auc"]), fmt.pm(twin.stats["auc"]), fmt.signed(diff["diff"]),
                    fmt.num(2 * diff["se"]) if diff.get("se") is not None else "-", diff["verdict"],
                    (f"{fmt.signed(pair['auc']['diff'])} {fmt.signed_interval(pair['auc']['low'], pair['auc']['high'])}"
                     if pair else "-"),
                    fmt.pm(e.stats["precision"]), fmt.pm(twin.stats["precision"]),
                    (f"{fmt.signed(pair['precision']['diff'])} "
                     f"{fmt.signed_interval(pair['precision']['low'], pair['precision']['high'])}"
                     if pair and pair["precision"]["diff"] is not None else "-")])
    ref = data.reference
    if ref is not None and ref.result is not None and out:
        ci = ref.result["auc_ci"]
        out.append([REFERENCE_NAME, "logistic", "-", f"{fmt.num(ci['auc'])} {fmt.interval(ci['low'], ci['high'])}",
                    "-", "-", "-", "-", "-", f"{fmt.num(ref.result['top_k']['precision'])} (top 5%)", "-", "-"])
    return Table(headers, out, ["l", "l", "l", "r", "r", "r", "r", "l", "r", "r", "r", "r"])


def loss_family_table(summary: list[dict]) -> Table:
    return Table(["Loss", "Pairs", "Mean Δ AUC vs BCE", "Better beyond noise", "Worse beyond noise"],
                 [[s["loss"], s["pairs"], fmt.signed(s["mean_diff"]), s["better"], s["worse"]] for s in summary],
                 ["l", "r", "r", "r", "r"])


def collapse_table(rows: list[dict]) -> Table:
    return Table(["Exp ID", "Source", "Collapsed seeds", "Tier", "d_embed", "Min pred range", "Max probability",
                  "AUC mean ± std", "Reading"],
                 [[r["entry"].label, r["entry"].source, f"{r['collapsed']}/{r['n_seeds']}", r["entry"].tier,
                   fmt.d_embed(r["entry"].config.get("d_embed")), fmt.num(r["pred_range"]), fmt.num(r["pred_max"]),
                   fmt.pm(r["entry"].stats["auc"]), r["reading"]] for r in rows],
                 ["l", "l", "r", "l", "r", "r", "r", "r", "l"])


def reference_table(data: ReportData) -> Table | None:
    ref = data.reference
    if ref is None or ref.result is None:
        return None
    m, ci, top = ref.result["metrics"], ref.result["auc_ci"], ref.result["top_k"]
    return Table(["Reference", "AUC [95% bootstrap CI]", "Precision at 0.5 (TP/pred+)", "Recall at 0.5",
                  "Precision of the top 5% (TP/k)", "Its Wilson 95% CI", "Val windows", "Positive rate",
                  "Train windows", "Data"],
                 [[REFERENCE_NAME, f"{fmt.num(ci['auc'])} {fmt.interval(ci['low'], ci['high'])}",
                   f"{fmt.num(m['precision'])} ({fmt.counts(m['true_positives'], m['n_positive_preds'])})",
                   fmt.num(m["recall"]), f"{fmt.num(top['precision'])} ({top['true_positives']}/{top['k']})",
                   fmt.interval(top["ci_low"], top["ci_high"]), ref.result["n_val"], fmt.num(m["positive_rate"]),
                   ref.result["n_train"], ref.source]],
                 ["l", "r", "r", "r", "r", "r", "r", "r", "r", "l"])


def versus_reference_table(rows: list[dict]) -> Table:
    return Table(["Exp ID", "Ensemble AUC", "Reference AUC", "Δ AUC [95% paired CI]", "P(model better)", "Windows"],
                 [[r["entry"].label, fmt.num(r["pair"]["auc"]["a"]), fmt.num(r["pair"]["auc"]["b"]),
                   f"{fmt.signed(r['pair']['auc']['diff'])} "
                   f"{fmt.signed_interval(r['pair']['auc']['low'], r['pair']['auc']['high'])}",
                   fmt.num(r["pair"]["auc"]["prob_a_better"], 2), r["n_windows"]] for r in rows],
                 ["l", "r", "r", "r", "r", "r"])


def legacy_table(data: ReportData) -> Table:
    rows = []
    for e in data.legacy:
        s, seed = e.stats, e.stats["seeds"][0] if e.stats["seeds"] else {}
        src = e.record.get("legacy_source") or {}
        rows.append([e.label, src.get("directory", "-"), e.tier, fmt.d_embed(e.config.get("d_embed")),
                     fmt.loss_label(e.config.get("loss"), e.config.get("loss_params")),
                     fmt.num(s["precision"]["mean"]),
                     fmt.counts(seed.get("true_positives"), seed.get("predicted_positives")),
                     fmt.interval(seed.get("ci_low"), seed.get("ci_high")), fmt.num(s["recall"]["mean"]),
                     fmt.num(s["auc"]["mean"]), fmt.num(seed.get("pred_range")),
                     "; ".join(e.record.get("notes") or []) or "-"])
    return Table(["Exp ID", "Original directory", "Tier", "d_embed", "Loss", "Precision", "TP/pred+",
                  "Wilson 95% CI", "Recall", "AUC", "Pred range", "Notes"], rows,
                 ["l", "l", "l", "r", "l", "r", "r", "r", "r", "r", "r", "l"])


def test_table(data: ReportData) -> Table:
    rows = []
    for exp_id, result in sorted(data.test_results.items()):
        agg = result.get("aggregate") or {}
        typical = result.get("typical") or {}
        ens = result.get("ensemble") or {}
        rows.append([exp_id, result.get("n_seeds", "-"), fmt.pm(agg.get("precision")),
                     fmt.interval(typical.get("ci_low"), typical.get("ci_high")), fmt.pm(agg.get("recall")),
                     fmt.pm(agg.get("auc")), fmt.num(ens.get("auc")), result.get("n_windows", "-"),
                     result.get("checkpoint_epoch", "-"), result.get("timestamp", "-")])
    return Table(["Exp ID", "Seeds", "Precision mean ± std", "Precision 95% CI (typical seed)", "Recall mean ± std",
                  "AUC mean ± std", "Ensemble AUC", "Test windows", "Checkpoint epoch", "Evaluated"], rows,
                 ["l", "r", "r", "r", "r", "r", "r", "r", "r", "l"])


# ---- the flat table ----------------------------------------------------------------------------

def results_frame(data: ReportData) -> pd.DataFrame:
    """One row per result (fembed and legacy), scalar columns only (CSV and parquet safe)."""
    records = []
    for e in data.entries:
        s, c = e.stats, e.config
        typical = s.get("typical") or {}
        ens = s.get("ensemble") or {}
        ens_auc = s.get("ensemble_auc") or {}
        records.append({
            "exp_id": e.exp_id, "source": e.source, "legacy": e.legacy, "current": e.current,
            "priority": e.priority, "tier": e.tier, "d_embed": c.get("d_embed"),
            "d_model": c.get("d_model"), "n_layers": c.get("n_layers"), "n_heads": c.get("n_heads"),
            "d_ff": c.get("d_ff"), "loss": c.get("loss"),
            "loss_params": json.dumps(c.get("loss_params") or {}, sort_keys=True),
            "embedding": c.get("embedding"), "selection": e.record.get("selection"),
            "state": None if e.legacy else data.state_of(e.exp_id),
            "n_seeds": s["n_seeds"], "n_diverged": s["n_diverged"],
            "precision_mean": s["precision"]["mean"], "precision_std": s["precision"]["std"],
            "recall_mean": s["recall"]["mean"], "recall_std": s["recall"]["std"],
            "auc_mean": s["auc"]["mean"], "auc_std": s["auc"]["std"],
            "tp_mean": s["tp_mean"], "pred_pos_mean": s["pred_pos_mean"],
            "precision_ci_low": typical.get("ci_low"), "precision_ci_high": typical.get("ci_high"),
            "ensemble_precision": ens.get("precision"), "ensemble_tp": ens.get("true_positives"),
            "ensemble_pred_pos": ens.get("n_positive_preds"), "ensemble_recall": ens.get("recall"),
            "ensemble_auc": ens_auc.get("auc"), "ensemble_auc_ci_low": ens_auc.get("low"),
            "ensemble_auc_ci_high": ens_auc.get("high"),
            "collapsed_seeds": s["collapsed_seeds"], "pred_range_min": s["pred_range_min"],
            "epochs": (e.record.get("summary") or {}).get("epochs"),
            "seconds": (e.record.get("summary") or {}).get("seconds"),
            "timestamp": e.record.get("timestamp"),
            "config_hash": e.record.get("config_hash"), "run_hash": e.record.get("run_hash"),
        })
    frame = pd.DataFrame.from_records(records)
    if frame.empty:
        return frame
    for column in ("d_embed", "d_model", "n_layers", "n_heads", "d_ff", "epochs", "ensemble_tp",
                   "ensemble_pred_pos"):
        frame[column] = pd.array(frame[column], dtype="Int64")
    frame["current"] = pd.array(frame["current"], dtype="boolean")
    return frame
