"""Key findings computed from the results, each with the noise it has to beat.

A difference between two experiments is called "beyond seed noise" when it exceeds twice its
standard error, SE = sqrt(s_a^2 / n_a + s_b^2 / n_b) from the seed std s and seed count n of
each. A legacy record has one seed and no std: it borrows the median seed std of fembed's own
results (when there are any), so the original's single-seed comparisons get a scale too.
When both experiments saved predictions, the paired bootstrap on the same windows is shown.
"""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Any

from fembed_jax import stats
from fembed_jax.predictions import PredictionsError, align
from fembed_jax.report.collect import Entry, ReportData

TIER_ORDER = {"a20": 0, "a50": 1, "a100": 2, "a200": 3, "a500": 4}
# Config fields that make two runs "the same architecture and training" for a loss comparison.
_LOSS_FIELDS = {"exp_id", "priority", "description", "loss", "loss_params", "early_stop_metric", "seeds"}
_BASELINE_EMBEDDINGS = {None, "none", "linear"}


def difference(a: dict, b: dict, typical_std: float | None) -> dict:
    """Difference of two mean_std dicts with its standard error and verdict."""
    if a.get("mean") is None or b.get("mean") is None:
        return {"diff": None, "se": None, "verdict": "-"}
    diff = a["mean"] - b["mean"]
    parts, borrowed = [], False
    for side in (a, b):
        std, n = side.get("std"), max(int(side.get("n") or 1), 1)
        if std is None:
            if typical_std is None:
                return {"diff": diff, "se": None, "verdict": "1 seed: no spread to judge by"}
            std, borrowed = typical_std, True
        parts.append(std * std / n)
    se = math.sqrt(sum(parts))
    if se == 0:
        verdict = "no spread" if diff == 0 else "beyond seed noise"
    else:
        verdict = "beyond seed noise" if abs(diff) > 2 * se else "within seed noise"
    if borrowed:
        verdict += " (typical seed std)"
    return {"diff": diff, "se": se, "verdict": verdict}


def paired(a: Entry, b: Entry, data: ReportData) -> dict | None:
    """Paired bootstrap of a − b on their shared windows; None without both predictions."""
    if a.predictions is None or b.predictions is None:
        return None
    try:
        ia, ib = align(a.predictions, b.predictions)
        return stats.paired_bootstrap(a.predictions.probs[:, ia], b.predictions.probs[:, ib],
                                      a.predictions.labels[ia], n_boot=data.n_boot, seed=data.seed,
                                      block_length=min(data.block_length, len(ia)))
    except (PredictionsError, ValueError):
        return None


def _arch(config: dict) -> tuple:
    return tuple(config.get(k) for k in ("d_model", "n_layers", "n_heads", "d_ff"))


def _is_bce_plain(entry: Entry) -> bool:
    return (entry.config.get("loss") or "bce") == "bce" and entry.config.get("embedding") in _BASELINE_EMBEDDINGS


def d_embed_effect(data: ReportData) -> list[dict]:
    """Per tier and source: BCE runs with no or the linear embedding, against the tier's no-embedding baseline.

    Each row: tier, source, entry, baseline (Entry or None), same_arch (baseline has the same
    d_model/layers/heads/d_ff), auc (difference dict), pair (paired bootstrap or None).
    Sorted by tier, source (fembed first), d_embed (None first).
    """
    typical = data.typical_auc_std()
    groups: dict[tuple, list[Entry]] = defaultdict(list)
    for entry in data.entries:
        if _is_bce_plain(entry) and entry.stats["auc"]["mean"] is not None:
            groups[(entry.tier, entry.source)].append(entry)
    rows = []
    def group_order(item):
        (tier, source), _ = item
        return TIER_ORDER.get(tier, 99), str(tier), source != "fembed"

    for (tier, source), entries in sorted(groups.items(), key=group_order):
        baselines = [e for e in entries if e.config.get("d_embed") is None]
        entries.sort(key=lambda e: (e.config.get("d_embed") is not None, e.config.get("d_embed") or 0, e.exp_id))
        for entry in entries:
            same = [b for b in baselines if _arch(b.config) == _arch(entry.config)]
            baseline = (same or baselines or [None])[0]
            if baseline is entry:
                baseline = None
            rows.append({
                "tier": tier, "source": source, "entry": entry, "baseline": baseline,
                "same_arch": baseline is not None and _arch(baseline.config) == _arch(entry.config),
                "auc": difference(entry.stats["auc"], baseline.stats["auc"], typical) if baseline else None,
                "pair": paired(entry, baseline, data) if baseline else None,
            })
    return rows


def d_embed_summary(rows: list[dict]) -> list[str]:
    """One sentence per (tier, source): the best d_embed and how many embeddings beat noise."""
    lines = []
    by_group: dict[tuple, list[dict]] = defaultdict(list)
    for row in rows:
        by_group[(row["tier"], row["source"])].append(row)
    for (tier, source), group in by_group.items():
        best = max(group, key=lambda r: r["entry"].stats["auc"]["mean"])
        embedded = [r for r in group if r["entry"].config.get("d_embed") is not None and r["auc"]]
        above = sum(1 for r in embedded if _beyond(r, +1))
        below = sum(1 for r in embedded if _beyond(r, -1))
        unjudged = sum(1 for r in embedded if r["auc"]["se"] is None)
        spread = best["entry"].stats["auc"]
        text = (f"**{tier}** ({source}): highest AUC with d_embed {best['entry'].config.get('d_embed')} "
                f"({best['entry'].label}, {spread['mean']:.3f}"
                + (f" ± {spread['std']:.3f}" if spread.get("std") is not None else "") + ")")
        if embedded:
            text += (f"; of {len(embedded)} embedded run(s) against no embedding, {above} better and "
                     f"{below} worse beyond seed noise, {len(embedded) - above - below - unjudged} within it")
            if unjudged:
                text += f", {unjudged} cannot be judged (one seed and no fembed seed spread yet)"
        else:
            text += "; no embedded run with a no-embedding baseline to compare"
        lines.append(text + ".")
    return lines


def loss_vs_bce(data: ReportData) -> list[dict]:
    """Every non-BCE run paired with a BCE run of the same source whose config is identical
    apart from the loss (and its early-stopping metric and seed count).

    Rows: entry, twin, auc (difference), precision (difference), pair (paired bootstrap or None).
    """
    typical = data.typical_auc_std()

    def key(entry: Entry) -> str:
        return repr(sorted((k, repr(v)) for k, v in entry.config.items() if k not in _LOSS_FIELDS))

    bce: dict[tuple, list[Entry]] = defaultdict(list)
    for entry in data.entries:
        if (entry.config.get("loss") or "bce") == "bce":
            bce[(entry.source, key(entry))].append(entry)
    rows = []
    for entry in data.entries:
        if (entry.config.get("loss") or "bce") == "bce":
            continue
        twins = bce.get((entry.source, key(entry)))
        if not twins:
            continue
        twin = twins[0]
        rows.append({"entry": entry, "twin": twin,
                     "auc": difference(entry.stats["auc"], twin.stats["auc"], typical),
                     "precision": difference(entry.stats["precision"], twin.stats["precision"], None),
                     "pair": paired(entry, twin, data)})
    return rows


def _beyond(row: dict, sign: int) -> bool:
    return row["auc"]["verdict"].startswith("beyond") and row["auc"]["diff"] * sign > 0


def loss_family_summary(rows: list[dict]) -> list[dict]:
    """Per loss: pairs, mean AUC difference, how many beyond noise each way."""
    families: dict[str, list[dict]] = defaultdict(list)
    for row in rows:
        families[str(row["entry"].config.get("loss"))].append(row)
    out = []
    for loss, group in sorted(families.items()):
        diffs = [r["auc"]["diff"] for r in group if r["auc"]["diff"] is not None]
        out.append({"loss": loss, "pairs": len(group),
                    "mean_diff": sum(diffs) / len(diffs) if diffs else None,
                    "better": sum(1 for r in group if _beyond(r, +1)),
                    "worse": sum(1 for r in group if _beyond(r, -1))})
    return out


def collapse_list(data: ReportData) -> list[dict]:
    """Results where at least one seed collapsed (no prediction >= 0.5, or range < 0.1)."""
    out = []
    for entry in data.entries:
        s = entry.stats
        if not s["collapsed_seeds"]:
            continue
        pred_max = s["pred_max_max"]
        rng = s["pred_range_min"]
        if pred_max is not None and pred_max < 0.5:
            reading = (f"no probability reaches 0.5 (max {pred_max:.3f}): a threshold effect, "
                       f"the ranking (AUC {s['auc']['mean']:.3f}) is intact" if s["auc"]["mean"] is not None
                       else f"no probability reaches 0.5 (max {pred_max:.3f})")
        elif rng is not None and rng < 0.1:
            reading = f"probabilities squeezed into a band of width {rng:.3f}"
        else:
            reading = "no positive prediction in some seeds"
        out.append({"entry": entry, "collapsed": s["collapsed_seeds"], "n_seeds": s["n_seeds"],
                    "pred_range": rng, "pred_max": pred_max, "reading": reading})
    return out


def reliability(data: ReportData) -> dict[str, Any]:
    """How many results rest on few predicted positives, and the typical spreads."""
    import numpy as np

    entries = [e for e in data.entries if e.stats.get("typical")]
    few = [e for e in entries if (e.stats["pred_pos_mean"] or 0) < 10]
    widths = [e.stats["typical"]["ci_high"] - e.stats["typical"]["ci_low"] for e in entries]
    prec_std = [e.stats["precision"]["std"] for e in data.fembed if e.stats["precision"]["std"] is not None]
    auc_std = [e.stats["auc"]["std"] for e in data.fembed if e.stats["auc"]["std"] is not None]
    return {"n": len(entries), "few_positive": len(few),
            "median_ci_width": float(np.median(widths)) if widths else None,
            "median_precision_std": float(np.median(prec_std)) if prec_std else None,
            "median_auc_std": float(np.median(auc_std)) if auc_std else None}


def versus_reference(data: ReportData, entries: list[Entry]) -> list[dict]:
    """Paired bootstrap of each entry's ensemble against the volatility reference."""
    ref = data.reference
    if ref is None or ref.predictions is None:
        return []
    rows = []
    for entry in entries:
        if entry.predictions is None:
            continue
        try:
            ia, ib = align(entry.predictions, ref.predictions)
        except PredictionsError:
            continue
        result = stats.paired_bootstrap(entry.predictions.probs[:, ia], ref.predictions.probs[:, ib],
                                        entry.predictions.labels[ia], n_boot=data.n_boot, seed=data.seed,
                                        block_length=min(data.block_length, len(ia)))
        rows.append({"entry": entry, "pair": result, "n_windows": len(ia)})
    return rows
