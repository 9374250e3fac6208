"""`fembed export`: every result in the run store as one table (CSV, parquet or JSON) for
pandas, a spreadsheet or another tracker, with the data and protocol each result came from."""

from __future__ import annotations

import argparse
import io
import json
import sys
from pathlib import Path

from fembed_jax.atomic import atomic_write

from .common import UsageError, console, guarded, registry_from_args
from .paths import add_path_options, outputs_dir

SUMMARY = ("precision_mean", "precision_std", "tp_total", "pred_pos_total", "recall_mean", "auc_mean",
           "auc_std", "collapsed", "epochs", "seconds", "finished_at")


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "export", help="all results as CSV, parquet or JSON (one row per result)",
        description="Write every result of the run store as one table: id, legacy or fembed, whether it "
                    "describes the current config, run hash, data source, seeds and epochs it ran with, "
                    "the registry's seeds and epochs, and the summary metrics.",
        epilog="examples:\n  fembed export --csv > results.csv\n  fembed export --parquet --out results.parquet\n"
               "  fembed export --json | jq '.[] | select(.auc_mean > 0.74) | .exp_id'",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    kind = parser.add_mutually_exclusive_group(required=True)
    kind.add_argument("--csv", dest="format", action="store_const", const="csv")
    kind.add_argument("--parquet", dest="format", action="store_const", const="parquet")
    kind.add_argument("--json", dest="format", action="store_const", const="json")
    parser.add_argument("--out", metavar="PATH", help="file to write (default: stdout; parquet needs --out)")
    add_path_options(parser, data=False)
    parser.set_defaults(func=run)


def rows(results: list[dict], registry) -> list[dict]:
    out = []
    for r in results:
        record = r.get("record") or {}
        planned = registry.get(r["exp_id"]) if r["exp_id"] in registry else None
        seeds = len(record.get("seeds") or ()) or None
        epochs_cap = (record.get("hyperparameters") or {}).get("epochs")
        out.append({
            "exp_id": r["exp_id"], "source": "legacy" if r.get("legacy") else "fembed",
            "current": r.get("current"), "run_hash": r.get("run_hash"),
            "data": (record.get("data") or {}).get("source_id"),
            "seeds": seeds, "max_epochs": epochs_cap,
            "registry_seeds": planned.seeds if planned else None,
            "registry_epochs": planned.epochs if planned else None,
            "quick": bool(planned and not r.get("legacy") and
                          ((seeds or 0) < planned.seeds or (epochs_cap or 0) < planned.epochs)),
            **{k: r.get(k) for k in SUMMARY},
        })
    return out


@guarded
def run(args: argparse.Namespace) -> int:
    import pandas as pd

    from fembed_jax.store import DB_FILENAME, RunStore

    if args.format == "parquet" and not args.out:
        raise UsageError("--parquet needs --out PATH (parquet is binary)")
    registry = registry_from_args(args)
    path = outputs_dir(args, registry.path) / DB_FILENAME
    results = []
    if path.exists():
        with RunStore(path, readonly=True) as store:
            results = store.results()
    table = rows(results, registry)
    frame = pd.DataFrame(table, columns=["exp_id", "source", "current", "run_hash", "data", "seeds",
                                         "max_epochs", "registry_seeds", "registry_epochs", "quick", *SUMMARY])
    if args.format == "json":
        text = json.dumps(table, indent=1)
    elif args.format == "csv":
        buffer = io.StringIO()
        frame.to_csv(buffer, index=False)
        text = buffer.getvalue()
    if args.format == "parquet":
        atomic_write(Path(args.out), lambda handle: frame.to_parquet(handle, index=False))
    elif args.out:
        atomic_write(Path(args.out), text.encode("utf-8"))
    else:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
        return 0
    console.print(f"wrote {len(table)} result(s) to {args.out}", highlight=False)
    return 0
