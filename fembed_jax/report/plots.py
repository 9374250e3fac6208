"""PNG figures of the report (matplotlib, Agg backend, no pyplot global state).

* precision_recall.png — precision-recall curves of the top ranked seed ensembles and the
  baselines on the validation windows, with the base rate (the precision of guessing) and the
  fixed alert rates marked; replaces a scatter of precision at 0.5, an operating point most
  calibrated models never reach.
* auc.png — AUC per fembed result: seed values as dots, mean ± std as a bar; the volatility-only
  reference and its bootstrap interval as a shaded band. Legacy records are not drawn: other
  data, inputs and selection (see the Legacy Results table).
* reliability.png — reliability diagram: mean predicted probability against the observed rate in
  ten equal-count bins, for the same scorers as the PR curves.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fembed_jax import metrics, stats
from fembed_jax.atomic import atomic_write
from fembed_jax.report.collect import Entry, ReportData
from fembed_jax.report.ranking import baselines_of

MAX_AUC_ROWS = 80  # beyond this the AUC chart shows the top rows by mean AUC
MAX_CURVES = 4  # ranked ensembles drawn in the curve plots (besides the baselines)


def _figure(width: float, height: float):
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=110, layout="constrained")


def _save(fig, path: Path) -> Path:
    return atomic_write(path, lambda fh: fig.savefig(fh, format="png"))


def _scorers(data: ReportData) -> list[tuple[str, np.ndarray, np.ndarray, dict]]:
    """(label, probabilities, labels, style) of the top ranked ensembles and the baselines."""
    out = []
    for e in data.ranked()[:MAX_CURVES]:
        mean, _ = stats.ensemble_probs(e.predictions.probs)
        out.append((f"{e.label} (ensemble)", mean, e.predictions.labels, {"lw": 1.4}))
    for b in baselines_of(data):
        out.append((b.name, b.predictions.probs[0], b.predictions.labels, {"lw": 1.0, "ls": "--"}))
    return out


def precision_recall(data: ReportData, path: Path) -> Path:
    from sklearn.metrics import average_precision_score, precision_recall_curve

    fig = _figure(8.0, 6.0)
    ax = fig.add_subplot()
    scorers = _scorers(data)
    for label, probs, labels, style in scorers:
        precision, recall, _ = precision_recall_curve(labels, probs)
        ap = average_precision_score(labels, probs)
        ax.step(recall, precision, where="post", label=f"{label}: PR-AUC {ap:.3f}", **style)
        for rate in metrics.ALERT_RATES.values():
            at = metrics.alert_rate_metrics(probs, labels, rate)
            ax.plot([at["recall"]], [at["precision"]], "o", ms=3, color=ax.lines[-1].get_color())
    if scorers:
        base = float(np.mean(scorers[0][2]))
        ax.axhline(base, color="black", lw=0.7, ls=":", label=f"base rate {base:.3f} (precision of guessing)")
        ax.legend(fontsize=7, loc="upper right")
    ax.set_xlabel("recall (dots: the top 1%, 5% and 10% of windows)")
    ax.set_ylabel("precision")
    ax.set_xlim(-0.01, 1.01)
    ax.set_ylim(-0.02, 1.02)
    ax.set_title("Precision-recall curves on the validation split (the windows that also chose each epoch)")
    return _save(fig, path)


def auc_per_experiment(data: ReportData, path: Path) -> Path:
    entries: list[Entry] = sorted((e for e in data.fembed if e.stats["auc"]["mean"] is not None),
                                  key=lambda e: e.stats["auc"]["mean"], reverse=True)[:MAX_AUC_ROWS]
    entries.reverse()  # best at the top of the chart
    fig = _figure(8.0, max(2.5, 0.5 + 0.22 * len(entries)))
    ax = fig.add_subplot()
    for i, e in enumerate(entries):
        color = "tab:blue" if data.like_with_like(e) else "tab:orange"
        seeds = [r["auc"] for r in e.stats["seeds"] if r["auc"] is not None and not r["diverged"]]
        ax.scatter(seeds, [i] * len(seeds), s=10, color=color, alpha=0.5, zorder=2)
        spread = e.stats["auc"]
        ax.errorbar([spread["mean"]], [i], xerr=[[spread["std"] or 0.0], [spread["std"] or 0.0]], fmt="D",
                    ms=4, color=color, capsize=2, zorder=3)
    ax.set_yticks(range(len(entries)), [e.label for e in entries], fontsize=7)
    ref = data.reference
    if ref is not None and ref.result is not None:
        ci = ref.result["auc_ci"]
        if ci["low"] is not None:
            ax.axvspan(ci["low"], ci["high"], color="tab:red", alpha=0.12, lw=0)
        ax.axvline(ci["auc"], color="tab:red", lw=1, label=f"volatility only {ci['auc']:.3f} (band: 95% CI)")
    ax.axvline(0.5, color="black", lw=0.6, ls=":", label="chance")
    ax.set_xlabel("validation AUC (dots: seeds; diamond: mean ± std; orange: quick run or other data)")
    ax.set_title("AUC per fembed result with seed spread")
    ax.legend(fontsize=8, loc="lower right")
    return _save(fig, path)


def reliability(data: ReportData, path: Path) -> Path:
    fig = _figure(6.5, 6.0)
    ax = fig.add_subplot()
    top = 0.0
    for label, probs, labels, style in _scorers(data):
        bins = metrics.reliability_bins(probs, labels)
        x, y = [b["mean_prob"] for b in bins], [b["observed"] for b in bins]
        top = max(top, *x, *y)
        ax.plot(x, y, marker="o", ms=3, label=label, **style)
    top = min(1.0, max(0.2, top * 1.1))
    ax.plot([0, top], [0, top], color="black", lw=0.7, ls=":", label="perfect calibration")
    ax.set_xlim(0, top)
    ax.set_ylim(0, top)
    ax.set_xlabel("mean predicted probability (10 equal-count bins)")
    ax.set_ylabel("observed positive rate")
    ax.set_title("Reliability on the validation split")
    ax.legend(fontsize=7, loc="upper left")
    return _save(fig, path)


def write_plots(data: ReportData, folder: Path) -> list[Path]:
    return [precision_recall(data, folder / "precision_recall.png"),
            auc_per_experiment(data, folder / "auc.png"),
            reliability(data, folder / "reliability.png")]
