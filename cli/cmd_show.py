"""`fembed show ID`: one experiment's resolved config, what differs from the defaults, results."""

from __future__ import annotations

import argparse
import json

from rich.table import Table

from fembed_jax.catalog import param_counts
from fembed_jax.config import ExperimentConfig
from fembed_jax.config_diff import differences_from_defaults

from .common import console, experiment_or_usage_error, guarded, registry_from_args


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "show", help="show one experiment: config, overrides, results",
        description="Show the resolved configuration of one experiment, what it changes relative "
                    "to the registry defaults, and its results when it has run.",
        epilog="example:\n  fembed show LF-40", formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("exp_id", metavar="ID", help="experiment id, e.g. FE-06")
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
    cfg = experiment_or_usage_error(registry, args.exp_id)
    params = param_counts([cfg])[cfg.exp_id]
    if args.toml:
        print(registry_entry(cfg, dict(registry.defaults)), end="")
        return 0
    if args.json:
        from .results_view import stored

        queued, result, history = stored(cfg, args)
        print(json.dumps({"id": cfg.exp_id, "config": cfg.to_dict(), "config_hash": cfg.config_hash,
                          "params": params,
                          "differs_from_defaults": sorted(differences_from_defaults(cfg, dict(registry.defaults))),
                          "queue": queued, "result": result, "history": history}, indent=1, default=str))
        return 0
    console.print(f"[bold]{cfg.exp_id}[/]  {cfg.priority}  {cfg.tier} ({cfg.num_features} features)  "
                  f"{params:,} parameters  config {cfg.config_hash}")
    console.print(cfg.description, highlight=False)
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


def registry_entry(cfg: ExperimentConfig, defaults: dict) -> str:
    """A [[experiments]] table that loads back to ``cfg`` under the same [defaults]."""
    from fembed_jax.grids import to_toml

    return to_toml({"id": cfg.exp_id, "priority": cfg.priority, "tier": cfg.tier,
                    "description": cfg.description, **differences_from_defaults(cfg, defaults)})


def _print_results(cfg: ExperimentConfig, args: argparse.Namespace) -> None:
    try:
        from .results_view import print_results
    except ImportError:  # the results view arrives with the runner
        return
    print_results(cfg, args)
