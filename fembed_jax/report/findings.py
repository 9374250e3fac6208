"""Key findings computed from the results, each stated with the comparison behind it.

The verdicts come from report.judge (paired bootstraps, Holm over a stated family). This module
turns them into sentences and gathers the smaller facts: how much the numbers can be trusted,
the selection optimism, test-split access and probability collapse.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from fembed_jax.data.splits import SELECTION_BLOCK
from fembed_jax.report.collect import ReportData
from fembed_jax.report.judge import ALPHA, Comparison


def _median(values) -> float | None:
    values = [v for v in values if v is not None]
    return float(np.median(values)) if values else None


def opening(data: ReportData) -> list[str]:
    """The lines Key Findings opens with: how many experiments beat each baseline."""
    judged = data.judged
    lines = []
    k, n = judged.beats(judged.reference)
    worse = sum(1 for r in judged.reference if r.in_family and r.verdict.startswith("worse"))
    if data.reference is None or data.reference.result is None:
        lines.append("**The volatility reference was not computed**, so no experiment is judged against it.")
    else:
        lines.append(f"**{k} of {n} experiments beat the reference (paired, corrected)**: seed ensemble minus "
                     f"the volatility-only reference in validation AUC, seed × window bootstrap, Holm over the "
                     f"{n} comparison(s), α = {ALPHA}" + (f"; {worse} are worse" if worse else "") + ".")
    k, n = judged.beats(judged.logistic)
    if n:
        lines.append(f"**{k} of {n} experiments beat a logistic regression on their tier's decision-day "
                     f"features** (same test, Holm over {n}).")
    elif data.baselines:
        lines.append("No experiment could be paired with the logistic baseline of its tier.")
    unpaired = [r for r in judged.reference if not r.in_family]
    if unpaired:
        lines.append(f"{len(unpaired)} comparable result(s) cannot be judged (no saved predictions).")
    return lines


def what_would_change(data: ReportData) -> str:
    """How many more seeds or folds would detect a DETECT_AUC difference from the reference."""
    plan = data.judged.detection
    if plan is None:
        return "What would change this conclusion cannot be sized: no comparison with the reference was judged."
    text = (f"**What would change this conclusion**: detecting a {plan['effect']:.2f} AUC difference from the "
            f"reference (two-sided α = {plan['alpha']}, {plan['power']:.0%} power) needs a standard error of "
            f"{plan['se_needed']:.4f}; today's is {plan['se']:.4f} (median of {plan['n_comparisons']} "
            f"comparison(s)), adding in quadrature {plan['window_se']:.4f} from which validation windows "
            f"were drawn and {plan['seed_se']:.4f} from the {plan['n_seeds']} seeds. ")
    if plan["seeds_needed"] is None:
        text += "More seeds cannot get there on these windows; "
    elif plan["seeds_needed"] <= plan["n_seeds"]:
        text += "Today's seeds suffice for that effect; "
    else:
        text += f"About {plan['seeds_needed']} seeds on these windows would; "
    return text + (f"about {plan['folds_needed']} validation period(s) of this size (walk-forward folds) at "
                   f"{plan['n_seeds']} seeds would.")


def selection(data: ReportData) -> str:
    """The selection-optimism sentence, with the median gap from the epoch history."""
    gaps = [data.judged.selection_gap.get(e.exp_id) for e in data.comparable]
    gap = _median(gaps)
    known = sum(1 for g in gaps if g is not None)
    text = ("Each seed's epoch was chosen (early stopping on val AUC, or val loss for four losses) on the "
            f"selection windows, the even blocks of {SELECTION_BLOCK} validation windows; every number here "
            "is scored on the odd blocks, which nothing was selected on, so neither fembed's results nor the "
            "baselines (fitted on train) carry the selection's optimism. What remains is the winner's curse "
            "of ranking many results on the same windows.")
    if gap is not None:
        text += (f" For scale: on the selection windows the chosen epoch's val AUC stands a median {gap:+.3f} "
                 f"above the mean of the second half of training ({known} result(s), epoch history), the "
                 "optimism this protocol keeps out of the scores.")
    else:
        text += " No result has enough epoch history to size the bias."
    return text


def trust(data: ReportData) -> dict[str, Any]:
    """How many comparable results rest on undefined or few-positive precision, and the typical
    spreads (seed std over results with at least two seeds)."""
    entries = data.comparable
    undefined = [e for e in entries if e.stats["undefined_precision_seeds"]]
    widths = [(e.stats["ensemble_pr_auc"] or {}) for e in entries]
    widths = [w["high"] - w["low"] for w in widths if w.get("low") is not None]
    return {"n": len(entries), "undefined": len(undefined),
            "all_undefined": sum(1 for e in undefined if e.stats["precision"]["n"] == 0),
            "median_pr_auc_ci_width": _median(widths),
            "median_auc_std": _median([e.stats["auc"]["std"] for e in entries]),
            "median_pr_auc_std": _median([e.stats["pr_auc"]["std"] for e in entries]),
            "median_precision_std": _median([e.stats["precision"]["std"] for e in entries])}


def family_summary(rows: list[Comparison], what: str, baseline: str) -> str:
    """One sentence: k of n better / worse (Holm over n), how many not judged and why."""
    family = [r for r in rows if r.in_family]
    better = sum(1 for r in family if r.verdict.startswith("better"))
    worse = sum(1 for r in family if r.verdict.startswith("worse"))
    other_arch = sum(1 for r in rows if r.verdict.startswith("not judged: other architecture"))
    unjudged = len(rows) - len(family) - other_arch
    if not rows:
        return f"No {what} comparison among comparable fembed results yet."
    if not family and not other_arch:
        return (f"No {what} run can be judged yet ({len(rows)} without a comparable baseline run or "
                "saved predictions).")
    text = (f"{better} of {len(family)} {what} run(s) are better than {baseline} and {worse} worse "
            f"(paired, Holm over the {len(family)})")
    if other_arch:
        text += f"; {other_arch} compared with another architecture, not judged (not an embedding effect)"
    if unjudged:
        text += f"; {unjudged} cannot be judged"
    return text + "."


def collapse_list(data: ReportData) -> list[dict]:
    """fembed results where at least one seed collapsed (no prediction >= 0.5, or range < 0.1).
    Legacy records stay in their own table (collapsed_legacy names them)."""
    out = []
    for entry in data.fembed:
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


def collapsed_legacy(data: ReportData) -> list[str]:
    return [e.exp_id for e in data.legacy if e.stats["collapsed_seeds"]]
