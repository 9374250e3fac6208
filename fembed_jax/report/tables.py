"""The report's bookkeeping tables as (headers, rows): overview, run status, pending, collapse,
legacy records and the held-out test split. The results tables are in report.ranking."""

from __future__ import annotations

import dataclasses
import math
from collections import defaultdict
from typing import Any

from fembed_jax import stats
from fembed_jax import fmt
from fembed_jax.report.collect import Entry, ReportData

CATEGORY_DESCRIPTIONS = {
    "FE": "Feature embedding architecture experiments",
    "LF": "Loss function experiments",
    "AE": "Advanced embedding architecture experiments",
}
# What the original's records are, spelled out (original_system.md §8: B2, B5; §6.3).
LEGACY_DATA = "the original's SPY data, validation 2023-2024"
LEGACY_SELECTION = "final-epoch weights, 1 seed; last writer of its folder"
LEGACY_VERDICT = "cannot be judged"


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
    """Experiments per category (id prefix) of the registry: done (like with like) and done as
    a quick run or on other data (not counted as done)."""
    by_cat: dict[str, list] = defaultdict(list)
    for cfg in _registry_configs(data):
        by_cat[category_of(cfg.exp_id)].append(cfg)
    rows, totals = [], [0, 0, 0]
    for cat, cfgs in by_cat.items():
        priorities = list(dict.fromkeys(c.priority for c in cfgs))
        states = [data.counted_state(c.exp_id) for c in cfgs]
        counts = [len(cfgs), states.count("done"), states.count("quick")]
        totals = [t + c for t, c in zip(totals, counts, strict=True)]
        span = priorities[0] if len(priorities) == 1 else f"{priorities[0]} to {priorities[-1]}"
        rows.append([f"{cat} ({span})", *counts, CATEGORY_DESCRIPTIONS.get(cat, f"{cat} experiments")])
    rows.append(["**Total**", *(f"**{t}**" for t in totals), ""])
    return Table(["Category", "Count", "Done", "Quick or other data", "Description"], rows,
                 ["l", "r", "r", "r", "l"])


def describe_best(entry: Entry | None) -> str:
    if entry is None:
        return "-"
    ci, auc = entry.stats["ensemble_pr_auc"], entry.stats["ensemble_auc"] or {}
    return (f"{entry.label}: PR-AUC {fmt.with_ci(ci['pr_auc'], ci['low'], ci['high'])}, "
            f"AUC {fmt.with_ci(auc.get('auc'), auc.get('low'), auc.get('high'))} (seed ensembles)")


def priority_status(data: ReportData) -> tuple[Table, list[dict]]:
    """Per priority: counts per state, overall status and the best ranked result; also the
    pending list. Quick runs and results on other data are not done."""
    by_priority: dict[str, list] = defaultdict(list)
    for cfg in _registry_configs(data):
        by_priority[cfg.priority].append(cfg)
    ranked = data.ranked()
    rows, pending = [], []
    for priority in data.registry.priorities if data.registry is not None else []:
        cfgs = by_priority[priority]
        states = [data.counted_state(c.exp_id) for c in cfgs]
        n = {s: states.count(s) for s in ("done", "quick", "running", "pending", "failed", "skipped")}
        if n["done"] == len(cfgs):
            status = "complete"
        elif n["running"]:
            status = "running"
        elif n["failed"]:
            status = f"failed ({n['failed']})"
        elif n["done"] or n["quick"]:
            status = "partial"
        else:
            status = "pending"
        ids = [c.exp_id for c in cfgs]
        best = next((e for e in ranked if e.exp_id in ids), None)
        rows.append([priority, _span(ids), len(cfgs), n["done"], n["quick"], n["running"], n["pending"],
                     n["failed"], status, describe_best(best)])
        remaining = [c for c, s in zip(cfgs, states, strict=True) if s != "done"]
        if remaining:
            kinds = sorted({c.loss for c in remaining} - {"bce"}) or ["bce"]
            embeds = sorted({c.embedding for c in remaining} - {"none", "linear"})
            kind = ", ".join(kinds) + (f"; embedding {', '.join(embeds)}" if embeds else "")
            pending.append({"priority": priority, "ids": _span([c.exp_id for c in remaining]),
                            "remaining": len(remaining), "kind": kind,
                            "states": ", ".join(f"{v} {k}" for k, v in n.items() if v and k != "done"),
                            "command": f"fembed run --priority {priority}"})
    table = Table(["Priority", "Experiments", "Total", "Done", "Quick or other data", "Running", "Pending",
                   "Failed", "Status", "Best ranked result (ensemble PR-AUC)"], rows,
                  ["l", "l", "r", "r", "r", "r", "r", "r", "l", "l"])
    return table, pending


def pending_table(pending: list[dict]) -> Table:
    return Table(["Priority", "Experiments left", "Count", "Type", "State", "Command"],
                 [[p["priority"], p["ids"], p["remaining"], p["kind"], p["states"], f"`{p['command']}`"]
                  for p in pending], ["l", "l", "r", "l", "l", "l"])


def collapse_table(rows: list[dict]) -> Table:
    return Table(["Exp ID", "Source", "Collapsed seeds", "Tier", "d_embed", "Min pred range", "Max probability",
                  "AUC mean ± std", "Reading"],
                 [[r["entry"].label, r["entry"].source, f"{r['collapsed']}/{r['n_seeds']}", r["entry"].tier,
                   fmt.d_embed(r["entry"].config.get("d_embed")), fmt.num(r["pred_range"]), fmt.num(r["pred_max"]),
                   fmt.pm(r["entry"].stats["auc"]), r["reading"]] for r in rows],
                 ["l", "l", "r", "l", "r", "r", "r", "r", "l"])


def legacy_inputs(entry: Entry) -> str:
    """What the legacy model saw: AE embeddings were never optimised (B2); FE and LF runs had
    OHLCV columns among their inputs (B5)."""
    return "embedding untrained (B2)" if category_of(entry.exp_id) == "AE" else "OHLCV as inputs (B5)"


def legacy_loss_vs_constant(entry: Entry) -> str:
    """The original's val loss against the best constant (its val positive rate), for BCE runs
    (other losses' val loss is not a log-loss). Worse than the constant = over-confident."""
    val_loss = (entry.record.get("training") or {}).get("val_loss")
    rate = (entry.record.get("val_metrics") or {}).get("positive_rate")
    if (entry.config.get("loss") or "bce") != "bce" or val_loss is None or rate is None or not 0 < rate < 1:
        return "-"
    constant = -(rate * math.log(rate) + (1 - rate) * math.log1p(-rate))
    return f"{val_loss:.3f} vs {constant:.3f}" + (" (worse)" if val_loss > constant else "")


def legacy_table(data: ReportData) -> Table:
    rows = []
    for e in data.legacy:
        s, seed = e.stats, e.stats["seeds"][0] if e.stats["seeds"] else {}
        src = e.record.get("legacy_source") or {}
        n = (e.record.get("val_metrics") or {}).get("n_samples")
        rows.append([e.label, src.get("directory", "-"), f"{LEGACY_DATA} ({n} windows)", legacy_inputs(e),
                     LEGACY_SELECTION, e.tier, fmt.d_embed(e.config.get("d_embed")),
                     fmt.loss_label(e.config.get("loss"), e.config.get("loss_params")),
                     fmt.precision(seed.get("precision"), seed.get("predicted_positives")),
                     fmt.counts(seed.get("true_positives"), seed.get("predicted_positives")),
                     # 0/0 has the interval (0, 1), which says nothing: not shown
                     fmt.interval(seed.get("ci_low"), seed.get("ci_high")) if seed.get("predicted_positives") else "-",
                     fmt.num(s["recall"]["mean"]),
                     fmt.num(s["auc"]["mean"]), legacy_loss_vs_constant(e), LEGACY_VERDICT,
                     "; ".join(e.record.get("notes") or []) or "-"])
    return Table(["Exp ID", "Original directory", "Data", "Inputs", "Selection", "Tier", "d_embed", "Loss",
                  "Precision at 0.5", "TP/pred+", "Wilson 95% CI", "Recall", "AUC", "Val BCE vs constant",
                  "Verdict", "Notes"], rows,
                 ["l", "l", "l", "l", "l", "l", "r", "l", "r", "r", "r", "r", "r", "r", "l", "l"])


def _test_spreads(per_seed: list[dict] | None, aggregate: dict | None) -> dict[str, dict]:
    """mean_std per metric from per-seed test metrics, else from a stored aggregate."""
    keys = ("auc", "pr_auc", "precision", "precision_top5pct")
    if per_seed:
        return {k: stats.mean_std([m.get(k) for m in per_seed]) for k in keys}
    return {k: dict((aggregate or {}).get(k) or {}) for k in keys}


def test_rows(data: ReportData) -> list[list[Any]]:
    rows = []
    for exp_id, result in sorted(data.test_results.items()):
        s = _test_spreads(result.get("metrics_per_seed"), result.get("aggregate"))
        rows.append([exp_id, "fembed evaluate", result.get("n_seeds", "-"), fmt.pm(s["auc"]), fmt.pm(s["pr_auc"]),
                     fmt.pm(s["precision_top5pct"]), fmt.precision_spread(s["precision"]),
                     fmt.num((result.get("ensemble") or {}).get("auc")), result.get("n_windows", "-"),
                     result.get("checkpoint_epoch", "-"), result.get("timestamp", "-")])
    for e in data.fembed:
        per_seed = e.record.get("test_metrics_per_seed")
        if not per_seed:
            continue
        s = _test_spreads(per_seed, None)
        rows.append([e.exp_id, "fembed run --eval-test", len(per_seed), fmt.pm(s["auc"]), fmt.pm(s["pr_auc"]),
                     fmt.pm(s["precision_top5pct"]), fmt.precision_spread(s["precision"]), "-",
                     per_seed[0].get("n_samples", "-"), "selected epoch", e.record.get("timestamp", "-")])
    return rows


def test_table(data: ReportData) -> Table:
    return Table(["Exp ID", "Read by", "Seeds", "AUC mean ± std", "PR-AUC mean ± std", "Precision top 5% mean ± std",
                  "Precision at 0.5 mean ± std", "Ensemble AUC", "Test windows", "Checkpoint epoch", "Evaluated"],
                 test_rows(data), ["l", "l", "r", "r", "r", "r", "r", "r", "r", "r", "l"])
