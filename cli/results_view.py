"""The results part of `fembed show`: per-seed metrics and the aggregate, from the run store."""

from __future__ import annotations

import argparse
import datetime as dt

from rich.table import Table

from fembed_jax.config import ExperimentConfig
from fembed_jax.fmt import num
from fembed_jax.train.plan import describe_result

from .common import LEGACY_SUFFIX, console, registry_from_args
from .paths import outputs_dir

LEGACY_LABEL = "legacy record (original system, 1 seed, final-epoch weights)"


def stored(cfg: ExperimentConfig, args: argparse.Namespace) -> tuple[dict | None, dict | None, list[dict]]:
    """(queue row, result, earlier results other runs replaced) of ``cfg`` from the run store;
    (None, None, []) when there is no store."""
    from fembed_jax.store import DB_FILENAME, RunStore

    registry_path = registry_from_args(args).path
    path = outputs_dir(args, registry_path) / DB_FILENAME
    if not path.exists():
        return None, None, []
    with RunStore(path, readonly=True) as store:
        return store.experiment(cfg.exp_id), store.result(cfg.exp_id), store.history(cfg.exp_id)


def print_results(cfg: ExperimentConfig, args: argparse.Namespace) -> None:
    from fembed_jax.store import DB_FILENAME

    queued, result, history = stored(cfg, args)
    _print_history(history)
    if queued is None and result is None:
        path = outputs_dir(args, registry_from_args(args).path) / DB_FILENAME
        console.print(f"No results yet (no run store at {path})." if not path.exists() else "No results yet.")
        return
    if queued:
        state = queued["state"] + (f": {queued['error']}" if queued.get("error") else "")
        console.print(f"state: {state} (attempts {queued.get('attempts') or 0})", highlight=False)
    if not result:
        console.print("No results yet.")
        return
    record = result["record"]

    label = LEGACY_LABEL if result.get("legacy") else (
        f"{describe_result(result)}, selection '{record.get('selection')}'")
    stale = "" if result.get("current") in (None, True) else "  [yellow](from an older config)[/]"
    print_record(f"{label}{stale}", record)
    if not result.get("legacy"):
        from fembed_jax.legacy import legacy_copies

        if cfg.exp_id in legacy_copies(outputs_dir(args, registry_from_args(args).path)):
            console.print(f"a legacy record is kept beside it: fembed show {cfg.exp_id}{LEGACY_SUFFIX}",
                          highlight=False)


def print_record(label: str, record: dict) -> None:
    """One result record: its per-seed validation metrics and their mean ± std."""
    console.print(f"[bold]results[/]: {label}")
    per_seed = record.get("val_metrics_per_seed") or [dict(record.get("val_metrics", {}), seed="-")]
    table = Table(header_style="bold")
    for column in ("seed", "precision", "95% CI", "TP/pred+", "recall", "AUC", "pred range",
                   "best epoch", "collapsed"):
        table.add_column(column)
    for m in per_seed:
        ci = (f"{m['precision_ci_low']:.2f}-{m['precision_ci_high']:.2f}"
              if m.get("precision_ci_low") is not None else "-")
        precision = ("undefined (0 predicted)" if m.get("n_positive_preds") == 0 and m.get("precision") is None
                     else num(m.get("precision")))
        table.add_row("-" if m.get("seed") is None else str(m["seed"]), precision, ci,
                      f"{m.get('true_positives', '-')}/{m.get('n_positive_preds', '-')}",
                      num(m.get("recall")), num(m.get("auc")), num(m.get("pred_range")),
                      # results.json counts epochs from 0 (-1: none chosen); the views count from 1, as the run log does
                      "-" if (m.get("best_epoch") is None or m["best_epoch"] < 0) else str(m["best_epoch"] + 1),
                      "yes" if m.get("collapsed") else "")
    console.print(table)
    agg = record.get("val_metrics_aggregate") or {}
    parts = []
    for key in ("precision", "recall", "auc"):
        entry = agg.get(key) or {}
        if entry.get("mean") is not None:
            std = f" ± {entry['std']:.3f}" if entry.get("std") is not None else ""
            parts.append(f"{key} {entry['mean']:.3f}{std}")
    if parts:
        console.print("mean ± std over seeds: " + ", ".join(parts))


def _print_history(history: list[dict]) -> None:
    if not history:
        return
    table = Table(header_style="bold", title=f"earlier runs, replaced ({len(history)})", title_justify="left")
    for column in ("run hash", "protocol and data", "AUC (mean)", "precision (mean)", "replaced"):
        table.add_column(column)
    for old in history:
        when = dt.datetime.fromtimestamp(old["replaced_at"]).isoformat(sep=" ", timespec="minutes")
        table.add_row(str(old.get("run_hash")), describe_result(old), num(old.get("auc_mean")),
                      num(old.get("precision_mean")), when)
    console.print(table)
