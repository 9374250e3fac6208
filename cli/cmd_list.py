"""`fembed list`: the experiments of the registry, filtered, as a table or JSON."""

from __future__ import annotations

import argparse
import json

from rich import box
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
    """The stable keys first, then every other resolved config field (learning rate, epochs,
    seeds, batch size, patience, selection, ...)."""
    config = cfg.to_dict()
    record = {"id": cfg.exp_id}
    record.update({k: v for k, v in config.items() if k in JSON_FIELDS})
    record.update({k: v for k, v in config.items() if k not in JSON_FIELDS and k != "exp_id"})
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
                  title_justify="left", header_style="bold", box=box.SIMPLE_HEAD, pad_edge=False,
                  padding=0)
    # Identity and count columns never wrap or crop (a cropped parameter count reads as another
    # number); on a narrow terminal loss and embedding parameters fold so 80 columns still read.
    narrow = console.is_terminal and console.width < 120
    widest = {"id": max((len(c.exp_id) for c in configs), default=2),
              "params": max((len(f"{counts[c.exp_id]:,}") for c in configs), default=6)}
    for column, justify, wrap in (("id", "left", False), ("pri", "left", False),
                                  ("tier", "left", False), ("E", "right", False),
                                  ("D/L/H/ff", "left", False), ("drop", "right", False),
                                  ("loss", "left", True), ("embedding", "left", True),
                                  ("params", "right", False)):
        table.add_column(column, justify=justify, no_wrap=not wrap, overflow="fold",
                         width=13 if wrap and narrow else None, min_width=widest.get(column))
    for cfg in configs:
        loss = cfg.loss + (" " + _brief(cfg.loss_params) if cfg.loss_params else "")
        embedding = cfg.embedding + (" " + _brief(cfg.embedding_params) if cfg.embedding_params else "")
        table.add_row(cfg.exp_id, cfg.priority, cfg.tier, str(cfg.d_embed or "-"),
                      f"{cfg.d_model}/{cfg.n_layers}/{cfg.n_heads}/{cfg.d_ff}", f"{cfg.dropout:g}",
                      loss, embedding, f"{counts[cfg.exp_id]:,}")
    console.print(table)
    return 0


# Short names so a row fits 80 columns; `fembed show ID` and --json give the full names.
_SHORT = {"gamma": "γ", "alpha": "α", "epsilon": "ε", "pos_weight": "w+", "gamma_pos": "γ+",
          "gamma_neg": "γ-", "lambda_entropy": "λ", "lambda_var": "λ", "lambda_cal": "λ",
          "temperature": "T", "num_heads": "h", "num_layers": "L", "compression_ratio": "r",
          "hidden_dim": "hid", "head_dim": "hd", "latent_dim": "z"}


def _brief(params) -> str:
    parts = []
    for key, value in params.items():
        if key == "combine_method":
            parts.append(str(value))
        elif key in ("use_position", "use_skip"):
            parts.append(("" if value else "no-") + key.removeprefix("use_"))
        else:
            parts.append(f"{_SHORT.get(key, key)}{value:g}" if isinstance(value, float)
                         else f"{_SHORT.get(key, key)}{value}")
    return " ".join(parts)
