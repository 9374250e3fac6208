"""Every comparison the report makes, paired and corrected for the number made.

* Against the baselines: each comparable fembed result's seed ensemble against the volatility
  reference and against the logistic regression on its tier's features, on the windows both
  scored. A seed × window bootstrap (stats.paired_bootstrap with resample_seeds) gives the ΔAUC
  interval and p-value, so the ensemble's seed noise counts too. Each baseline is one family;
  Holm's adjustment over it decides "beats" (Δ > 0, adjusted p < ALPHA).
* d_embed: an embedded BCE run against the no-embedding run of its tier and architecture. A
  baseline of another architecture is shown but not judged: the difference is not an
  embedding effect.
* Losses: a non-BCE run against the BCE run whose config is identical apart from the loss.
  When both were early-stopped on the same metric their saved predictions are compared; when
  not (BCE on val AUC, four losses on val loss), both sides are re-selected on val AUC from the
  epoch history (each seed's best val AUC over the epochs it trained) and compared seed by seed,
  so neither side gets a selection rule the other did not.
* Legacy records are never compared with fembed's: other data, inputs and selection.

Validation both selected each seed's epoch and scores it. ``selection_gap`` estimates the
resulting optimism from the epoch history.
"""

from __future__ import annotations

import dataclasses
import math
from collections import defaultdict
from typing import TYPE_CHECKING, Any

import numpy as np

from fembed_jax import stats
from fembed_jax.predictions import Predictions, PredictionsError, align
from fembed_jax.report.multiplicity import holm

if TYPE_CHECKING:  # annotations only: collect calls judge (ReportData.judged)
    from fembed_jax.report.collect import Entry, ReportData

ALPHA = 0.05
DETECT_AUC = 0.01  # the effect "what would change this conclusion" sizes the work for (issue 16)
_BASELINE_EMBEDDINGS = {None, "none", "linear"}
# Config fields a loss comparison may differ in (besides the loss itself).
_LOSS_FIELDS = {"exp_id", "priority", "description", "loss", "loss_params", "early_stop_metric", "seeds"}
_ARCH = ("d_model", "n_layers", "n_heads", "d_ff")
# The selection gap needs a plateau to compare with: at least this many epochs per seed.
_MIN_GAP_EPOCHS = 6


@dataclasses.dataclass
class Comparison:
    entry: Entry
    against: str  # what it is compared with (a baseline's name or an experiment's label)
    pair: dict | None = None  # paired_bootstrap result (auc, pr_auc)
    diff: float | None = None  # the Δ AUC judged
    low: float | None = None
    high: float | None = None
    p_value: float | None = None
    p_adjusted: float | None = None
    method: str = ""
    verdict: str = "cannot be judged"
    in_family: bool = False
    other: Entry | None = None  # the compared experiment (d_embed / loss rows)
    # The AUCs the Δ compares (stats.mean_std of each side) when they are not the entries' own
    # reported stats: loss rows re-selected on the epoch history.
    sides: tuple[dict, dict] | None = None


@dataclasses.dataclass
class Judgement:
    reference: list[Comparison]
    logistic: list[Comparison]
    d_embed: list[Comparison]
    loss: list[Comparison]
    selection_gap: dict[str, float | None]
    # what would detect DETECT_AUC against the reference (stats.runs_to_detect), None: nothing judged
    detection: dict | None = None

    def beats(self, rows: list[Comparison]) -> tuple[int, int]:
        """(k, n): how many of the family's n comparisons the fembed side wins."""
        family = [r for r in rows if r.in_family]
        return sum(1 for r in family if r.verdict.startswith("better")), len(family)

    def of(self, rows: list[Comparison], exp_id: str) -> Comparison | None:
        return next((r for r in rows if r.entry.exp_id == exp_id), None)


def paired(a: Predictions, b: Predictions, data: ReportData, *,
           resample_seeds: bool = True) -> tuple[dict | None, str]:
    """Seed × window paired bootstrap of a − b (AUC and PR-AUC) on their shared windows (windows
    alone with ``resample_seeds=False``)."""
    try:
        ia, ib = align(a, b)
        result = stats.paired_bootstrap(a.probs[:, ia], b.probs[:, ib], a.labels[ia], n_boot=data.n_boot,
                                        seed=data.seed, block_length=min(data.block_length, len(ia)),
                                        resample_seeds=resample_seeds, metrics=("auc", "pr_auc"))
    except (PredictionsError, ValueError) as exc:
        return None, str(exc)
    return result, ""


def _from_pair(row: Comparison, pair: dict | None, why: str = "") -> Comparison:
    row.pair = pair
    if pair is None:
        row.verdict = f"cannot be judged ({why})" if why else "cannot be judged"
        return row
    auc = pair["auc"]
    row.diff, row.low, row.high, row.p_value = auc["diff"], auc["low"], auc["high"], auc["p_value"]
    row.method = f"seed × window bootstrap, {pair['n_windows']} windows"
    row.in_family = row.p_value is not None
    return row


def _correct(rows: list[Comparison], better: str, worse: str) -> None:
    """Holm over the rows in the family; verdicts from the adjusted p-values."""
    family = [r for r in rows if r.in_family]
    for row, adjusted in zip(family, holm([r.p_value for r in family]), strict=True):
        row.p_adjusted = adjusted
        if adjusted is not None and adjusted < ALPHA and row.diff is not None and row.diff != 0:
            row.verdict = better if row.diff > 0 else worse
        else:
            row.verdict = "no detectable difference"


def _versus(data: ReportData, baseline_of) -> list[Comparison]:
    rows = []
    for entry in data.comparable:
        base = baseline_of(entry)
        if base is None or base.predictions is None:
            continue
        row = Comparison(entry, base.name)
        if entry.predictions is None:
            rows.append(_from_pair(row, None, "no saved predictions"))
            continue
        rows.append(_from_pair(row, *paired(entry.predictions, base.predictions, data)))
    return rows


def _arch(config: dict) -> tuple:
    return tuple(config.get(k) for k in _ARCH)


def d_embed_rows(data: ReportData) -> list[Comparison]:
    """Embedded BCE runs (no or linear embedding) against their tier's no-embedding run."""
    groups: dict[Any, list[Entry]] = defaultdict(list)
    for e in data.comparable:
        if (e.config.get("loss") or "bce") == "bce" and e.config.get("embedding") in _BASELINE_EMBEDDINGS:
            groups[e.tier].append(e)
    rows = []
    for tier in sorted(groups, key=str):
        entries = groups[tier]
        baselines = [e for e in entries if e.config.get("d_embed") is None]
        for e in sorted(entries, key=lambda x: (x.config.get("d_embed") is not None, x.config.get("d_embed") or 0,
                                                 x.exp_id)):
            if e.config.get("d_embed") is None:
                continue
            same = [b for b in baselines if _arch(b.config) == _arch(e.config)]
            base = (same or baselines or [None])[0]
            if base is None:
                rows.append(Comparison(e, "-", verdict="no no-embedding run of this tier"))
                continue
            row = Comparison(e, base.label, other=base)
            if not same:
                row.verdict = "not judged: other architecture (not an embedding effect)"
                if e.predictions is not None and base.predictions is not None:
                    row.pair = paired(e.predictions, base.predictions, data)[0]
                    if row.pair:
                        auc = row.pair["auc"]
                        row.diff, row.low, row.high, row.p_value = auc["diff"], auc["low"], auc["high"], auc["p_value"]
                rows.append(row)
                continue
            if e.predictions is None or base.predictions is None:
                rows.append(_from_pair(row, None, "no saved predictions"))
                continue
            rows.append(_from_pair(row, *paired(e.predictions, base.predictions, data)))
    return rows


def history_best_auc(record: dict) -> list[float | None]:
    """Per seed: the best val AUC over the epochs it trained (selection on val AUC), on the
    windows the epoch history scores (the selection windows)."""
    history = record.get("history") or []
    n = len(record.get("seeds") or [])
    best: list[float | None] = [None] * n
    for h in history:
        for k in range(min(n, len(h.get("val_auc") or []))):
            value = h["val_auc"][k]
            if (h.get("trained") or [True] * n)[k] and value is not None and math.isfinite(value):
                best[k] = value if best[k] is None else max(best[k], value)
    return best


_RESELECTED = "both re-selected on val AUC from the epoch history (selection windows)"


def _history_pair(a: Entry, b: Entry, xa: list[float | None],
                  xb: list[float | None]) -> tuple[float | None, float | None, str]:
    """(Δ mean, p, method) of the seeds' history-best val AUC (xa, xb: history_best_auc of a
    and b); paired over common seeds."""
    from scipy import stats as sps

    sa, sb = a.record.get("seeds") or [], b.record.get("seeds") or []
    common = [(x, y) for s, x in zip(sa, xa) for t, y in zip(sb, xb) if s == t and x is not None and y is not None]
    if len(common) >= 2:
        x, y = np.array(common).T
        p = float(sps.ttest_rel(x, y).pvalue) if np.any(x != y) else 1.0
        return float(np.mean(x - y)), p, f"{_RESELECTED}, paired t over {len(common)} seeds"
    x, y = [v for v in xa if v is not None], [v for v in xb if v is not None]
    if len(x) >= 2 and len(y) >= 2:
        p = float(sps.ttest_ind(x, y, equal_var=False).pvalue)
        return float(np.mean(x) - np.mean(y)), p, f"{_RESELECTED}, Welch t"
    return None, None, f"{_RESELECTED}: too few seeds to test"


def loss_rows(data: ReportData) -> list[Comparison]:
    """Every comparable non-BCE run against its BCE twin (same config apart from the loss)."""
    def key(e: Entry) -> str:
        return repr(sorted((k, repr(v)) for k, v in e.config.items() if k not in _LOSS_FIELDS))

    bce: dict[str, list[Entry]] = defaultdict(list)
    for e in data.comparable:
        if (e.config.get("loss") or "bce") == "bce":
            bce[key(e)].append(e)
    rows = []
    for e in data.comparable:
        if (e.config.get("loss") or "bce") == "bce" or not bce.get(key(e)):
            continue
        twins = bce[key(e)]
        same = [t for t in twins if t.config.get("early_stop_metric") == e.config.get("early_stop_metric")]
        twin = (same or twins)[0]
        row = Comparison(e, twin.label, other=twin)
        if same and e.predictions is not None and twin.predictions is not None:
            rows.append(_from_pair(row, *paired(e.predictions, twin.predictions, data)))
            continue
        if same:
            rows.append(_from_pair(row, None, "no saved predictions"))
            continue
        xa, xb = history_best_auc(e.record), history_best_auc(twin.record)
        row.diff, row.p_value, row.method = _history_pair(e, twin, xa, xb)
        row.method = (f"selected on {e.config.get('early_stop_metric')} vs "
                      f"{twin.config.get('early_stop_metric')}: " + row.method)
        row.sides = (stats.mean_std(xa), stats.mean_std(xb))
        row.in_family = row.p_value is not None
        rows.append(row)
    return rows


def selection_gap(record: dict) -> float | None:
    """Mean over seeds of (val AUC at the selected epoch) − (mean val AUC over the second half
    of the epochs it trained): how far the epoch chosen on validation stands above its plateau.
    Part of the gap is real improvement, part is the luck of choosing the maximum of a noisy
    curve on the windows that then score it. None without history or with short runs."""
    history = record.get("history") or []
    best = record.get("best_epoch") or []
    gaps = []
    for k, chosen in enumerate(best):
        curve = {h["epoch"]: h["val_auc"][k] for h in history
                 if k < len(h.get("val_auc") or []) and (h.get("trained") or [True] * (k + 1))[k]
                 and h["val_auc"][k] is not None}
        if len(curve) < _MIN_GAP_EPOCHS or chosen not in curve:
            continue
        epochs = sorted(curve)
        plateau = [curve[e] for e in epochs[len(epochs) // 2:]]
        gaps.append(curve[chosen] - float(np.mean(plateau)))
    return float(np.mean(gaps)) if gaps else None


def judge(data: ReportData) -> Judgement:
    ref = data.reference if data.reference is not None and data.reference.result is not None else None
    reference = _versus(data, lambda e: ref)
    logistic = _versus(data, lambda e: data.baselines.get(e.tier) if data.baselines.get(e.tier) is not None
                       and data.baselines[e.tier].result is not None else None)
    _correct(reference, "better than the reference", "worse than the reference")
    _correct(logistic, "better than the logistic baseline", "worse than the logistic baseline")
    embed = d_embed_rows(data)
    _correct(embed, "better than no embedding", "worse than no embedding")
    losses = loss_rows(data)
    _correct(losses, "better than BCE", "worse than BCE")
    return Judgement(reference, logistic, embed, losses,
                     {e.exp_id: selection_gap(e.record) for e in data.fembed},
                     detection_plan(data, reference))


def detection_plan(data: ReportData, rows: list[Comparison]) -> dict | None:
    """How many seeds or folds would detect a DETECT_AUC difference from the reference: from the
    median standard errors of the judged comparisons, seed × window and windows alone."""
    totals, windows, seeds = [], [], []
    for row in rows:
        total = (row.pair or {}).get("auc", {}).get("se") if row.in_family else None
        if total is None or data.reference is None or data.reference.predictions is None:
            continue
        alone, _ = paired(row.entry.predictions, data.reference.predictions, data, resample_seeds=False)
        window = (alone or {}).get("auc", {}).get("se")
        if window is not None:
            totals.append(total)
            windows.append(window)
            seeds.append(row.pair["seeds_a"])
    if not totals:
        return None
    plan = stats.runs_to_detect(float(np.median(totals)), float(np.median(windows)), int(np.median(seeds)),
                                effect=DETECT_AUC, alpha=ALPHA)
    return dict(plan, n_comparisons=len(totals))
