"""`fembed show ID`: one experiment's resolved config, what differs from the defaults, results."""

from __future__ import annotations

import argparse
import json

from rich.markup import escape
from rich.table import Table

from fembed_jax.catalog import param_counts
from fembed_jax.config import ExperimentConfig
from fembed_jax.config_diff import differences_from_defaults, flatten
from fembed_jax.folds import fold_data_config, split_fold
from fembed_jax.grids import to_toml
from fembed_jax.registry import DATE_KEYS

from .common import (LEGACY_SUFFIX, UsageError, console, experiment_or_usage_error, guarded,
                     registry_from_args, split_legacy)
from .paths import data_config_from_args, outputs_dir
from .results_view import LEGACY_LABEL, print_record, print_results, stored


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "show", help="show one experiment: config, overrides, results",
        description="Show the resolved configuration of one experiment, what it changes relative "
                    "to the registry defaults, and its results when it has run.",
        epilog=f"examples:\n  fembed show LF-40\n  fembed show FE-05{LEGACY_SUFFIX}", formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("exp_id", metavar="ID",
                        help=f"experiment id, e.g. FE-06; ID{LEGACY_SUFFIX} shows its imported legacy record")
    parser.add_argument("--outputs", metavar="DIR",
                        help="outputs folder holding fembed.db (default: the project's outputs/, "
                             "or $FEMBED_OUTPUTS)")
    parser.add_argument("--json", action="store_true",
                        help="print one JSON object: config, fields that differ, params, queue state, result")
    parser.add_argument("--toml", action="store_true",
                        help="print the experiment as a registry entry to paste (id, priority, tier, "
                             "description and what differs from [defaults])")
    parser.set_defaults(func=run)


@guarded
def run(args: argparse.Namespace) -> int:
    registry = registry_from_args(args)
    exp_id, want_legacy = split_legacy(args.exp_id)
    cfg = experiment_or_usage_error(registry, exp_id)
    if want_legacy:
        if args.toml:
            raise UsageError(f"--toml prints the registry's entry of {exp_id}; drop {LEGACY_SUFFIX}")
        return _show_legacy(cfg, args)
    params = param_counts([cfg])[cfg.exp_id]
    if args.toml:
        print(registry_entry(cfg, dict(registry.defaults)), end="")
        return 0
    base, fold = split_fold(cfg.exp_id)
    split = fold_data_config(data_config_from_args(args, registry), fold) if fold > 1 else None
    if args.json:
        queued, result, history = stored(cfg, args)
        print(json.dumps({"id": cfg.exp_id, "config": cfg.to_dict(), "config_hash": cfg.config_hash,
                          "params": params, "fold": fold,
                          "fold_split": split and {k: getattr(split, k) for k in DATE_KEYS},
                          "differs_from_defaults": sorted(differences_from_defaults(cfg, dict(registry.defaults))),
                          "queue": queued, "result": result, "history": history}, indent=1, default=str))
        return 0
    console.print(f"[bold]{cfg.exp_id}[/]  {cfg.priority}  {cfg.tier} ({cfg.num_features} features)  "
                  f"{params:,} parameters  config {cfg.config_hash}")
    console.print(cfg.description, highlight=False)
    if split is not None:
        console.print(f"walk-forward fold {fold} of {base} (fembed run --folds): val from {split.val_start}, "
                      f"test {split.test_start} to {split.test_end}; trained on every window before its val",
                      highlight=False)
    diffs = differences_from_defaults(cfg, dict(registry.defaults))
    table = Table(header_style="bold", title="resolved config (* = differs from \\[defaults])",
                  title_justify="left")
    table.add_column("field")
    table.add_column("value")
    for key, value in cfg.to_dict().items():
        if key in ("exp_id", "description"):
            continue
        mark = "*" if key in diffs else ""
        table.add_row(f"{mark}{key}", str(value))
    console.print(table)
    _print_results(cfg, args)
    return 0


def _show_legacy(cfg: ExperimentConfig, args: argparse.Namespace) -> int:
    """The legacy record of ``cfg``: the fields where what the original ran differs from the
    registry's config, and its metrics."""
    from fembed_jax.legacy import legacy_record

    _, result, _ = stored(cfg, args)
    record = legacy_record(result, outputs_dir(args, registry_from_args(args).path), cfg.exp_id)
    if record is None:
        raise UsageError(f"{args.exp_id}: no legacy record of {cfg.exp_id} "
                         "(import one with `fembed import-legacy DIR`)")
    ran, registered = flatten(record.get("config") or {}), flatten(cfg.to_dict())
    differs = {key: {"legacy": value, "registry": registered.get(key)} for key, value in ran.items()
               if key in registered and key != "description" and value != registered[key]}
    if args.json:
        print(json.dumps({"id": cfg.exp_id, "source": "legacy", "differs_from_registry": differs,
                          "record": record}, indent=1, default=str))
        return 0
    source = record.get("legacy_source") or {}
    console.print(f"[bold]{cfg.exp_id}{LEGACY_SUFFIX}[/]  {cfg.priority}  {cfg.tier}  "
                  f"imported from {escape(str(source.get('path') or '?'))}", highlight=False)
    if differs:
        table = Table(header_style="bold", title="what the original ran, where it differs from the registry",
                      title_justify="left")
        for column in ("field", "legacy", "registry"):
            table.add_column(column)
        for key, pair in differs.items():
            table.add_row(key, *("none" if v is None else str(v) for v in (pair["legacy"], pair["registry"])))
        console.print(table)
    print_record(LEGACY_LABEL, record)
    return 0


def registry_entry(cfg: ExperimentConfig, defaults: dict) -> str:
    """A [[experiments]] table that loads back to ``cfg`` under the same [defaults]."""
    return to_toml({"id": cfg.exp_id, "priority": cfg.priority, "tier": cfg.tier,
                    "description": cfg.description, **differences_from_defaults(cfg, defaults)})


def _print_results(cfg: ExperimentConfig, args: argparse.Namespace) -> None:
    print_results(cfg, args)
