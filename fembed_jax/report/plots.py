"""PNG figures of the report (matplotlib, Agg backend, no pyplot global state).

* precision_recall.png — precision vs recall per result; vertical bars: Wilson 95% interval of a
  typical seed's precision, horizontal bars: recall ± seed std; legacy records hollow.
* auc.png — AUC per result: seed values as dots, mean ± std as a bar; the volatility-only
  reference and its bootstrap interval as a shaded band.
"""

from __future__ import annotations

from pathlib import Path

from fembed_jax.atomic import atomic_write
from fembed_jax.report.collect import Entry, ReportData

MAX_AUC_ROWS = 80  # beyond this the AUC chart shows the top rows by mean AUC
MAX_LABELS = 40


def _figure(width: float, height: float):
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=110, layout="constrained")


def _save(fig, path: Path) -> Path:
    return atomic_write(path, lambda fh: fig.savefig(fh, format="png"))


def precision_recall(data: ReportData, path: Path) -> Path:
    fig = _figure(8.0, 6.0)
    ax = fig.add_subplot()
    entries = [e for e in data.entries if e.stats.get("typical") and e.stats["recall"]["mean"] is not None]
    for source, marker, face in (("fembed", "o", None), ("legacy", "s", "none")):
        group = [e for e in entries if e.source == source]
        if not group:
            continue
        x = [e.stats["recall"]["mean"] for e in group]
        y = [e.stats["precision"]["mean"] for e in group]
        lo = [max(0.0, yi - e.stats["typical"]["ci_low"]) for e, yi in zip(group, y, strict=True)]
        hi = [max(0.0, e.stats["typical"]["ci_high"] - yi) for e, yi in zip(group, y, strict=True)]
        xerr = [e.stats["recall"]["std"] or 0.0 for e in group]
        color = "tab:blue" if source == "fembed" else "tab:gray"
        ax.errorbar(x, y, yerr=[lo, hi], xerr=xerr, fmt=marker, color=color, mfc=face or color,
                    ecolor=color, elinewidth=0.8, capsize=2, alpha=0.8,
                    label="fembed (mean over seeds)" if source == "fembed" else "legacy (1 seed, final epoch)")
    if len(entries) <= MAX_LABELS:
        for e in entries:
            ax.annotate(e.label, (e.stats["recall"]["mean"], e.stats["precision"]["mean"]), fontsize=7,
                        xytext=(3, 3), textcoords="offset points")
    ref = data.reference
    if ref is not None and ref.result is not None:
        m = ref.result["metrics"]
        ax.axhline(m["positive_rate"], color="tab:red", lw=0.8, ls="--",
                   label=f"positive rate {m['positive_rate']:.3f} (precision of guessing)")
    ax.set_xlabel("recall (threshold 0.5)")
    ax.set_ylabel("precision; bars = Wilson 95% CI of a typical seed")
    ax.set_ylim(-0.02, 1.02)
    ax.set_title("Precision vs recall on the validation split")
    if entries:
        ax.legend(fontsize=8, loc="upper right")
    return _save(fig, path)


def auc_per_experiment(data: ReportData, path: Path) -> Path:
    entries: list[Entry] = sorted((e for e in data.entries if e.stats["auc"]["mean"] is not None),
                                  key=lambda e: e.stats["auc"]["mean"], reverse=True)[:MAX_AUC_ROWS]
    entries.reverse()  # best at the top of the chart
    fig = _figure(8.0, max(2.5, 0.5 + 0.22 * len(entries)))
    ax = fig.add_subplot()
    for i, e in enumerate(entries):
        color = "tab:blue" if not e.legacy else "tab:gray"
        seeds = [r["auc"] for r in e.stats["seeds"] if r["auc"] is not None and not r["diverged"]]
        ax.scatter(seeds, [i] * len(seeds), s=10, color=color, alpha=0.5, zorder=2)
        spread = e.stats["auc"]
        ax.errorbar([spread["mean"]], [i], xerr=[[spread["std"] or 0.0], [spread["std"] or 0.0]], fmt="D",
                    ms=4, color=color, mfc=color if not e.legacy else "none", capsize=2, zorder=3)
    ax.set_yticks(range(len(entries)), [e.label for e in entries], fontsize=7)
    ref = data.reference
    if ref is not None and ref.result is not None:
        ci = ref.result["auc_ci"]
        if ci["low"] is not None:
            ax.axvspan(ci["low"], ci["high"], color="tab:red", alpha=0.12, lw=0)
        ax.axvline(ci["auc"], color="tab:red", lw=1, label=f"volatility only {ci['auc']:.3f} (band: 95% CI)")
    ax.axvline(0.5, color="black", lw=0.6, ls=":", label="chance")
    ax.set_xlabel("validation AUC (dots: seeds; diamond: mean ± std; hollow: legacy)")
    ax.set_title("AUC per experiment with seed spread")
    ax.legend(fontsize=8, loc="lower right")
    return _save(fig, path)


def write_plots(data: ReportData, folder: Path) -> list[Path]:
    return [precision_recall(data, folder / "precision_recall.png"),
            auc_per_experiment(data, folder / "auc.png")]
