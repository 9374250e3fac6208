"""`fembed compare A B [C ...]`: what differs between experiments, and whether their results do.

Configs are shown side by side, only the fields that differ. Metrics are mean ± std over seeds
(AUC, PR-AUC, precision of the top 5% of windows, Brier; precision at 0.5 over the seeds where it
is defined) and the seed ensemble's AUC and PR-AUC intervals and top-5% precision. When runs saved their validation predictions,
each experiment after the first is tested against the first with a paired bootstrap on the
windows both scored (differences of the seed ensembles' AUC and precision, 95% intervals).
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from rich.markup import escape
from rich.table import Table

from fembed_jax import fmt
from fembed_jax.config_diff import config_differences

from .common import LEGACY_SUFFIX, UsageError, console, guarded, registry_from_args, split_legacy
from .paths import add_path_options, outputs_dir, store_path


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "compare", help="configs side by side (only differences) and a paired bootstrap of results",
        description="Compare experiments: the config fields that differ, the metrics (mean ± std over "
                    "seeds, TP/pred+, Wilson interval) and, where validation predictions were saved, a "
                    "paired bootstrap of each experiment against the first on the same windows. "
                    f"Append {LEGACY_SUFFIX} to an id for its imported legacy record.",
        epilog="examples:\n"
               "  fembed compare FE-04 LF-48                 a loss against its BCE twin\n"
               "  fembed compare FE-05 FE-06 FE-11 --all-fields\n"
               f"  fembed compare FE-05 FE-05{LEGACY_SUFFIX}          fembed against the original",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("ids", nargs="+", metavar="ID", help="two or more experiment ids")
    parser.add_argument("--all-fields", action="store_true", help="show identical config fields too")
    parser.add_argument("--bootstrap", type=int, default=2000, metavar="N", help="resamples (default 2000)")
    parser.add_argument("--block", type=int, default=1, metavar="L",
                        help="bootstrap block length in windows (default 1)")
    parser.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    parser.add_argument("--json", action="store_true",
                        help="print one JSON object: config differences, metrics, paired tests")
    add_path_options(parser, data=False)
    parser.set_defaults(func=run)


class _Subject:
    """One experiment as compared: its record (None if not run), config and statistics."""

    def __init__(self, name: str, exp_id: str, source: str, record: dict | None, config: dict,
                 predictions=None, n_boot: int = 2000, seed: int = 0, block: int = 1):
        from fembed_jax import stats

        self.name, self.exp_id, self.source, self.record, self.config = name, exp_id, source, record, config
        self.predictions = predictions
        self.stats = (stats.experiment_stats(record, predictions, n_boot=n_boot, seed=seed, block_length=block)
                      if record else None)


def _resolve(name: str, store, registry, outputs, args) -> _Subject:
    from fembed_jax.legacy import legacy_record
    from fembed_jax.predictions import PredictionsError, load_predictions
    from fembed_jax.report.collect import check_predictions, scored_predictions

    kw = dict(n_boot=args.bootstrap, seed=args.seed, block=args.block)
    exp_id, want_legacy = split_legacy(name)
    row = store.result(exp_id) if store is not None else None
    if want_legacy:
        record = legacy_record(row, outputs, exp_id)
        if record is None:
            raise UsageError(f"{name}: no legacy record of {exp_id} (import one with `fembed import-legacy DIR`)")
        return _Subject(name, exp_id, "legacy", record, dict(record.get("config") or {}), **kw)
    if row is not None:
        record = row["record"]
        if row.get("legacy"):
            return _Subject(name, exp_id, "legacy", record, dict(record.get("config") or {}), **kw)
        pred, note = None, None
        try:
            pred = load_predictions(outputs, exp_id)
        except PredictionsError as exc:
            note = str(exc)
        if pred is not None:
            pred = scored_predictions(pred, record)  # the windows its val metrics are scored on
            note = check_predictions(pred, record)
            pred = None if note else pred
        if note:
            console.print(f"[yellow]warning:[/] {escape(exp_id)}: predictions not used ({escape(note)})")
        config = dict(record.get("config") or {})
        if record.get("data", {}).get("source_id"):
            config["data"] = record["data"]["source_id"]
        return _Subject(name, exp_id, "fembed", record, config, pred, **kw)
    if exp_id in registry:
        return _Subject(name, exp_id, "not run", None, registry.get(exp_id).to_dict(), **kw)
    raise UsageError(f"{name}: no result in the run store and no such experiment in {registry.path}")


def _value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


@guarded
def run(args: argparse.Namespace) -> int:
    from fembed_jax.store import RunStore

    if len(args.ids) < 2:
        raise UsageError("compare needs at least two experiment ids")
    if len(set(args.ids)) != len(args.ids):
        raise UsageError(f"an id is given twice: {' '.join(args.ids)}")
    for name in ("bootstrap", "block"):
        if getattr(args, name) < 1:
            raise UsageError(f"--{name} must be at least 1, got {getattr(args, name)}")
    registry = registry_from_args(args)
    outputs = outputs_dir(args, registry.path)
    path = store_path(args, registry.path)
    if path.exists():
        with RunStore(path, readonly=True) as store:
            subjects = [_resolve(name, store, registry, outputs, args) for name in args.ids]
    else:
        subjects = [_resolve(name, None, registry, outputs, args) for name in args.ids]
    names = [s.name + ("" if s.source == "fembed" else f" ({s.source})") for s in subjects]

    differences = config_differences([s.config for s in subjects], args.all_fields)
    paired_results, missing, unpaired = _paired(subjects, names, args)
    if args.json:
        print(json.dumps({
            "ids": names,
            "config_differences": [{"field": f, "values": v} for f, v in differences],
            "metrics": {n: s.stats for n, s in zip(names, subjects)},
            "paired": paired_results, "unpaired": unpaired, "missing_predictions": missing,
            "bootstrap": {"resamples": args.bootstrap, "block": args.block, "seed": args.seed},
        }, indent=1, default=_jsonable))
        return 0
    _print_config(differences, names, args.all_fields)
    _print_metrics(subjects, names)
    paired = Table(title=f"paired bootstrap against {escape(names[0])} (seed ensembles, same windows; "
                         f"{args.bootstrap} resamples, block {args.block})",
                   title_justify="left", header_style="bold")
    paired.add_column("experiment")
    paired.add_column("metric")
    for column in ("Δ", "95% CI", "p", "windows"):
        paired.add_column(column, justify="right", no_wrap=True)
    for name, why in unpaired.items():
        console.print(f"[yellow]{escape(name)}:[/] cannot pair with {escape(names[0])}: {escape(why)}")
    for entry in paired_results:
        paired.add_row(escape(entry["experiment"]), "AUC" if entry["metric"] == "auc" else "precision",
                       fmt.signed(entry["diff"]), fmt.signed_interval(entry["low"], entry["high"]),
                       fmt.num(entry["p_value"]), str(entry["windows"]))
    if paired.row_count:
        console.print(paired)
        console.print("Δ = experiment − first; p: two-sided bootstrap p-value of Δ = 0. "
                      "An interval that contains 0 means the windows cannot tell them apart.")
    if missing:
        console.print(f"no paired test for {', '.join(escape(m) for m in missing)}: "
                      "needs val_predictions.npz for both runs (legacy records have none)")
    return 0


def _print_config(differences, names: list[str], all_fields: bool) -> None:
    title = "config" if all_fields else "config: fields that differ"
    if differences:
        table = Table(title=title, title_justify="left", header_style="bold")
        table.add_column("field")
        for name in names:
            table.add_column(escape(name))
        for field, values in differences:
            table.add_row(escape(field), *(escape(_value(v)) for v in values))
        console.print(table)
    else:
        console.print("config: identical (apart from the ids)")


def _print_metrics(subjects: list[_Subject], names: list[str]) -> None:
    from fembed_jax import stats

    table = Table(title="validation metrics", title_justify="left", header_style="bold")
    table.add_column("metric")
    for name in names:
        table.add_column(escape(name), justify="right")

    def metric_row(label, fn):
        table.add_row(label, *(fn(s.stats) if s.stats else "-" for s in subjects))

    metric_row("seeds", lambda s: str(s["n_seeds"]))
    metric_row("AUC mean ± std", lambda s: fmt.pm(s["auc"]))
    metric_row("PR-AUC mean ± std", lambda s: fmt.pm(s["pr_auc"]))
    metric_row("precision top 5% mean ± std", lambda s: fmt.pm(s["precision_top5pct"]))
    metric_row("Brier mean ± std", lambda s: fmt.pm(s["brier"]))
    # Over the seeds where it is defined ("3/5 seeds defined"); never averaged in as 0.
    metric_row("precision at 0.5 mean ± std", lambda s: fmt.precision_spread(s["precision"]))
    metric_row("TP/pred+ at 0.5 (mean per seed)", lambda s: fmt.mean_counts(s["tp_mean"], s["pred_pos_mean"]))
    metric_row("recall at 0.5 mean ± std", lambda s: fmt.pm(s["recall"]))
    metric_row("collapsed seeds", lambda s: f"{s['collapsed_seeds']}/{s['n_seeds']}")

    def ensemble(s, fn):
        return fn(s) if s["ensemble"] and s["ensemble_auc"] else "-"

    metric_row("ensemble AUC [95% CI]",
               lambda s: ensemble(s, lambda s: fmt.with_ci(s["ensemble_auc"]["auc"], s["ensemble_auc"]["low"],
                                                           s["ensemble_auc"]["high"])))
    metric_row("ensemble PR-AUC [95% CI]",
               lambda s: ensemble(s, lambda s: fmt.with_ci(s["ensemble_pr_auc"]["pr_auc"],
                                                           s["ensemble_pr_auc"]["low"], s["ensemble_pr_auc"]["high"])))
    metric_row("ensemble precision top 5% (TP/k) [Wilson]",
               lambda s: ensemble(s, lambda s: fmt.at_rate(s["ensemble"], "top5pct")))
    metric_row("ensemble precision at 0.5 (TP/pred+)",
               lambda s: (f"{fmt.precision(s['ensemble']['precision'], s['ensemble']['n_positive_preds'])} "
                          f"({fmt.counts(s['ensemble']['true_positives'], s['ensemble']['n_positive_preds'])})")
               if s["ensemble"] else "-")
    console.print(table)
    if any(s.source == "legacy" for s in subjects):
        console.print(f"legacy = {stats.LEGACY_LABEL}")


def _paired(subjects: list[_Subject], names: list[str], args) -> tuple[list[dict], list[str], dict[str, str]]:
    """Each experiment after the first against the first: paired bootstrap rows, the names
    without predictions, and the names whose windows cannot be aligned (with why)."""
    from fembed_jax import stats
    from fembed_jax.predictions import PredictionsError, align

    base, rows, missing, unpaired = subjects[0], [], [], {}
    for name, other in zip(names[1:], subjects[1:], strict=True):
        if base.predictions is None or other.predictions is None:
            missing.append(name)
            continue
        try:
            ia, ib = align(other.predictions, base.predictions)
        except PredictionsError as exc:
            unpaired[name] = str(exc)
            continue
        if args.block > len(ia):
            raise UsageError(f"--block {args.block} is longer than the {len(ia)} validation windows "
                             f"{name} and {names[0]} share")
        result = stats.paired_bootstrap(other.predictions.probs[:, ia], base.predictions.probs[:, ib],
                                        other.predictions.labels[ia], n_boot=args.bootstrap, seed=args.seed,
                                        block_length=args.block)
        for metric in ("auc", "precision"):
            entry = result[metric]
            rows.append({"experiment": name, "metric": metric, "diff": entry["diff"], "low": entry["low"],
                         "high": entry["high"], "p_value": entry["p_value"], "windows": len(ia)})
    return rows, missing, unpaired


def _jsonable(value):
    import numpy as np

    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)
