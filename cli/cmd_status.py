"""`fembed status`: the queue and recent results, read from the run store."""

from __future__ import annotations

import argparse
import json
import time

from rich.markup import escape
from rich.table import Table

from fembed_jax import fmt
from fembed_jax.estimate import epochs_of, queue_eta
from fembed_jax.liveness import shown_state

from .common import UsageError, console, guarded, registry_from_args
from .paths import add_path_options, outputs_dir

STATE_STYLE = {"pending": "dim", "running": "bold yellow", "stalled": "yellow", "interrupted": "magenta",
               "done": "green", "failed": "red", "skipped": "dim"}
RESULT_FIELDS = ("exp_id", "legacy", "current", "precision_mean", "precision_std", "tp_total",
                 "pred_pos_total", "recall_mean", "auc_mean", "auc_std", "collapsed", "epochs",
                 "seconds", "finished_at")


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "status", help="queue state and recent results from the run store",
        description="Show the run queue (pending, running, done, failed) and the latest results. "
                    "Reads the store while runs write to it. A running experiment whose runner died "
                    "is shown as interrupted (the next run resumes it).",
        epilog="examples:\n  fembed status --results 20\n  fembed status --json | jq '.queue'",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--results", type=int, default=10, metavar="N", help="how many recent results (default 10)")
    parser.add_argument("--json", action="store_true", help="print one JSON object (queue, experiments, results)")
    add_path_options(parser, data=False)
    parser.set_defaults(func=run)


@guarded
def run(args: argparse.Namespace) -> int:
    from fembed_jax.store import DB_FILENAME, RunStore

    if args.results < 0:
        raise UsageError(f"--results must be 0 or more, got {args.results}")
    registry = registry_from_args(args)
    path = outputs_dir(args, registry.path) / DB_FILENAME
    if not path.exists():
        if args.json:
            print(json.dumps({"store": str(path), "exists": False, "queue": {}, "experiments": [],
                              "results": []}))
        else:
            console.print(f"No run store at {path} yet. Start a run, e.g. [bold]fembed run --priority P1[/].")
        return 0
    with RunStore(path, readonly=True) as store:
        rows = store.experiments()
        results = store.results(with_record=False)
        last_epoch_at = {row["exp_id"]: max((e["recorded_at"] for e in store.epochs(row["exp_id"])), default=None)
                         for row in rows if row["state"] == "running"}
    now = time.time()
    for row in rows:
        row["shown_state"], row["liveness"] = shown_state(row, now)
        row["epochs_max"] = epochs_of(row) or None
    left = queue_eta(rows, last_epoch_at=last_epoch_at, now=now)
    for row in rows:
        row["eta_seconds"] = left.per_row.get(row["exp_id"])
    queue_eta_s, no_eta = left.seconds, left.unknown
    counts = {state: sum(row["shown_state"] == state for row in rows) for state in STATE_STYLE}
    counts = {state: n for state, n in counts.items() if n}
    recent = sorted(results, key=lambda r: r.get("finished_at") or 0, reverse=True)[: args.results]
    if args.json:
        print(json.dumps({
            "store": str(path), "exists": True, "queue": counts, "eta_seconds": queue_eta_s,
            "eta_unknown": no_eta,
            "experiments": [_experiment_json(row, now) for row in rows],
            "results": [{k: r.get(k) for k in RESULT_FIELDS} for r in recent],
        }, indent=1))
        return 0

    eta = ""
    if queue_eta_s is not None or no_eta:
        eta = f"; ETA {fmt.duration(queue_eta_s) if queue_eta_s is not None else '?'}" + (
            f" ({no_eta} without an estimate: see fembed run --dry-run)" if no_eta else "")
    console.print("queue: " + (", ".join(f"{n} {state}" for state, n in counts.items()) or "empty") + eta,
                  highlight=False)
    active = [r for r in rows if r["shown_state"] in ("running", "stalled", "interrupted", "failed")]
    if active:
        table = Table(header_style="bold", title="running, interrupted and failed", title_justify="left")
        for column in ("id", "state", "attempts", "epochs", "ETA", "runner / error", "heartbeat"):
            table.add_column(column)
        for r in active:
            beat = r.get("heartbeat_at")
            state = r["shown_state"]
            table.add_row(r["exp_id"], f"[{STATE_STYLE[state]}]{state}[/]", str(r.get("attempts") or 0),
                          f"{r.get('epochs_run') or 0}/{r['epochs_max'] or '?'}",
                          "-" if state == "failed" or r.get("eta_seconds") is None else fmt.duration(r["eta_seconds"]),
                          escape(r.get("error") or "" if state == "failed" else r["liveness"]
                                 + ("; the next run resumes it" if state == "interrupted" else "")),
                          f"{now - beat:.0f}s ago" if beat else "-")
        console.print(table)
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
                fmt.num(r.get("recall_mean")), _pm(r.get("auc_mean"), r.get("auc_std")),
                "yes" if r.get("collapsed") else "", str(r.get("epochs") or "-"),
                f"{(r.get('seconds') or 0) / 60:.1f} min")
        console.print(table)
    return 0


def _experiment_json(row: dict, now: float) -> dict:
    beat = row.get("heartbeat_at")
    return {"id": row["exp_id"], "state": row["shown_state"], "stored_state": row["state"],
            "attempts": row.get("attempts") or 0, "epochs_run": row.get("epochs_run") or 0,
            "epochs": row["epochs_max"],
            # where the next run resumes an interrupted one (None: not interrupted)
            "interrupted_at_epoch": (row.get("epochs_run") or 0) if row["shown_state"] == "interrupted" else None,
            "runner": row.get("claimed_by"), "liveness": row["liveness"] or None,
            "heartbeat_age_s": None if beat is None else round(now - beat, 1),
            "error": row.get("error"), "run_hash": row.get("run_hash"),
            "eta_seconds": row.get("eta_seconds")}


def _pm(mean, std) -> str:
    if mean is None:
        return "-"
    return f"{mean:.3f}" + (f" ± {std:.3f}" if std is not None else "")
