"""`fembed status`: the queue and recent results, read from the run store."""

from __future__ import annotations

import argparse
import time

from rich.markup import escape
from rich.table import Table

from .common import console, guarded, registry_from_args
from .paths import add_path_options, outputs_dir

STATE_STYLE = {"pending": "dim", "running": "bold yellow", "done": "green", "failed": "red",
               "skipped": "dim"}


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "status", help="queue state and recent results from the run store",
        description="Show the run queue (pending, running, done, failed) and the latest results. "
                    "Reads the store while runs write to it.",
        epilog="example:\n  fembed status --results 20", formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--results", type=int, default=10, metavar="N", help="how many recent results (default 10)")
    add_path_options(parser, data=False)
    parser.set_defaults(func=run)


@guarded
def run(args: argparse.Namespace) -> int:
    from fembed_jax.store import RunStore

    registry = registry_from_args(args)
    path = outputs_dir(args, registry.path) / "fembed.db"
    if not path.exists():
        console.print(f"No run store at {path} yet. Start a run, e.g. [bold]fembed run --priority P1[/].")
        return 0
    with RunStore(path, readonly=True) as store:
        rows = store.experiments()
        counts = store.counts()
        results = store.results(with_record=False)
    console.print("queue: " + ", ".join(f"{n} {state}" for state, n in counts.items() if n))
    now = time.time()
    active = [r for r in rows if r["state"] in ("running", "failed")]
    if active:
        table = Table(header_style="bold", title="running and failed", title_justify="left")
        for column in ("id", "state", "attempts", "epochs", "owner / error", "heartbeat"):
            table.add_column(column)
        for r in active:
            beat = r.get("heartbeat_at")
            table.add_row(r["exp_id"], f"[{STATE_STYLE[r['state']]}]{r['state']}[/]", str(r.get("attempts") or 0),
                          str(r.get("epochs_run") or 0),
                          escape(str(r.get("claimed_by") if r["state"] == "running" else r.get("error") or "")),
                          f"{now - beat:.0f}s ago" if beat else "-")
        console.print(table)
    recent = sorted(results, key=lambda r: r.get("finished_at") or 0, reverse=True)[: args.results]
    if recent:
        table = Table(header_style="bold", title=f"latest {len(recent)} result(s)", title_justify="left")
        for column in ("id", "precision (mean±std)", "TP/pred+", "recall", "AUC (mean±std)", "collapse", "epochs", "time"):
            table.add_column(column)
        for r in recent:
            table.add_row(
                r["exp_id"] + (" (legacy)" if r.get("legacy") else ""),
                _pm(r.get("precision_mean"), r.get("precision_std")),
                f"{r.get('tp_total') if r.get('tp_total') is not None else '-'}/"
                f"{r.get('pred_pos_total') if r.get('pred_pos_total') is not None else '-'}",
                _num(r.get("recall_mean")), _pm(r.get("auc_mean"), r.get("auc_std")),
                "yes" if r.get("collapsed") else "", str(r.get("epochs") or "-"),
                f"{(r.get('seconds') or 0) / 60:.1f} min")
        console.print(table)
    return 0


def _num(value) -> str:
    return "-" if value is None else f"{value:.3f}"


def _pm(mean, std) -> str:
    if mean is None:
        return "-"
    return f"{mean:.3f}" + (f" ± {std:.3f}" if std is not None else "")
