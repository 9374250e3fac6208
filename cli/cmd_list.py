"""`fembed list`: the experiments of the registry, filtered, as a table or JSON."""

from __future__ import annotations

import argparse
import json

from rich.table import Table

from fembed_jax.catalog import param_counts
from fembed_jax.config import ExperimentConfig

from .common import add_filter_options, console, guarded, registry_from_args, select

# The stable JSON interface (DESIGN.md): other tools rely on these keys.
JSON_FIELDS = ("priority", "tier", "num_features", "d_embed", "d_model", "n_layers", "n_heads",
               "d_ff", "dropout", "weight_decay", "loss", "loss_params", "embedding",
               "embedding_params", "early_stop_metric", "description")


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "list", help="list experiments (filterable; --json for tools)",
        description="List the registry's experiments with their shape, loss, embedding and the "
                    "parameter count of the model fembed builds.",
        epilog="examples:\n  fembed list --priority AE-P5\n  fembed list --tier a500 --loss focal\n"
               "  fembed list --json | jq '.[] | select(.params > 1e6) | .id'",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    add_filter_options(parser)
    parser.add_argument("--json", action="store_true", help="print a JSON array, one object per experiment")
    parser.set_defaults(func=run)


def as_json(cfg: ExperimentConfig, params: int) -> dict:
    record = {"id": cfg.exp_id}
    record.update({k: v for k, v in cfg.to_dict().items() if k in JSON_FIELDS})
    record["params"] = params
    record["config_hash"] = cfg.config_hash
    return record


@guarded
def run(args: argparse.Namespace) -> int:
    registry = registry_from_args(args)
    configs = select(registry, args)
    counts = param_counts(configs)
    if args.json:
        print(json.dumps([as_json(cfg, counts[cfg.exp_id]) for cfg in configs], indent=1))
        return 0
    table = Table(title=f"{len(configs)} of {len(registry.experiments)} experiments",
                  title_justify="left", header_style="bold")
    for column, justify in (("id", "left"), ("priority", "left"), ("tier", "left"),
                            ("d_embed", "right"), ("D/L/H/ff", "left"), ("drop", "right"),
                            ("loss", "left"), ("embedding", "left"), ("params", "right")):
        table.add_column(column, justify=justify, no_wrap=True)
    for cfg in configs:
        loss = cfg.loss + (" " + _brief(cfg.loss_params) if cfg.loss_params else "")
        embedding = cfg.embedding + (" " + _brief(cfg.embedding_params) if cfg.embedding_params else "")
        table.add_row(cfg.exp_id, cfg.priority, cfg.tier, str(cfg.d_embed or "-"),
                      f"{cfg.d_model}/{cfg.n_layers}/{cfg.n_heads}/{cfg.d_ff}", f"{cfg.dropout:g}",
                      loss, embedding, f"{counts[cfg.exp_id]:,}")
    console.print(table)
    return 0


def _brief(params) -> str:
    return " ".join(f"{k}={v}" for k, v in params.items())
