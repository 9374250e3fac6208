"""`fembed data build|info|card`: build and cache the feature tiers, describe them, write the data card."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from rich.markup import escape
from rich.table import Table

from .common import UsageError, console, guarded, note, registry_from_args
from .paths import data_config_from_args, project_root

TIERS = ("a20", "a50", "a100", "a200", "a500")


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "data", help="build, describe and document the feature tiers",
        description="Build the nested feature tiers a20..a500 from raw daily OHLCV (+VIX) and cache "
                    "them, show rows/windows/base rates per tier, or regenerate docs/data_card.md. "
                    "The source is the registry's [data] table (built-in S&P 500 1999-2018), or --data.",
        epilog="examples:\n"
               "  fembed data info\n"
               "  fembed data build --tier a100 --tier a200\n"
               "  fembed data info --data ~/data/SPY.parquet      (your own raw OHLCV)\n"
               "  fembed data info --data ~/data/processed/v1     (a folder of ready tier parquets)\n"
               "  fembed data card",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    actions = parser.add_subparsers(dest="data_command", metavar="ACTION")

    def common(p: argparse.ArgumentParser, tiers: bool = True) -> None:
        if tiers:
            p.add_argument("--tier", action="append", choices=TIERS, default=[],
                           help="tier to handle (repeatable; default: all five)")
        p.add_argument("--data", metavar="PATH",
                       help="raw OHLCV file (CSV/parquet) or a folder of ready tier parquets")

    build = actions.add_parser("build", help="build (or refresh) the cached tiers",
                               description="Compute the tiers from the raw data and cache them as parquet.")
    common(build)
    build.add_argument("--force", action="store_true", help="rebuild even when a cached file is current")
    build.set_defaults(func=run, data_command="build")

    info = actions.add_parser("info", help="rows, dates, windows and base rates per tier",
                              description="Per tier: rows, date range, features, train/val/test "
                                          "windows and label base rates (builds missing tiers).")
    common(info)
    info.add_argument("--task", default="threshold_1pct", help="label task (default threshold_1pct)")
    info.add_argument("--horizon", type=int, default=1, help="label horizon in days (default 1)")
    info.add_argument("--context-length", type=int, default=80, help="window length (default 80)")
    info.add_argument("--json", action="store_true", help="print JSON instead of a table")
    info.set_defaults(func=run, data_command="info")

    card = actions.add_parser("card", help="write docs/data_card.md (every feature and its formula)",
                              description="Regenerate the data card from the code and the data source.")
    common(card, tiers=False)
    card.add_argument("--output", metavar="PATH", help="where to write (default: docs/data_card.md)")
    card.set_defaults(func=run, data_command="card")
    parser.set_defaults(func=_usage(parser))


def _usage(parser):
    def show(args: argparse.Namespace) -> int:
        parser.print_help()
        return 2

    return show


def _config(args: argparse.Namespace):
    registry = registry_from_args(args)
    return registry, data_config_from_args(args, registry)


@guarded
def run(args: argparse.Namespace) -> int:
    from fembed_jax.data import DataError

    try:
        return {"build": _build, "info": _info, "card": _card}[args.data_command](args)
    except DataError as exc:
        raise UsageError(str(exc)) from exc


def _tiers(args: argparse.Namespace) -> tuple[str, ...]:
    chosen = getattr(args, "tier", None) or TIERS
    return tuple(t for t in TIERS if t in chosen)


def _build(args: argparse.Namespace) -> int:
    from fembed_jax.data.tierstore import build_and_cache

    _, cfg = _config(args)
    timings: dict[str, float] = {}
    start = time.perf_counter()
    frames = build_and_cache(cfg, _tiers(args), force=getattr(args, "force", False), timings=timings)
    elapsed = time.perf_counter() - start
    table = Table(header_style="bold", title=f"tiers ({escape(next(iter(frames.values())).source_id)})",
                  title_justify="left")
    for col in ("tier", "features", "rows", "first date", "last date", "state", "file"):
        table.add_column(col)
    for tier, tf in frames.items():
        dates = tf.frame["Date"]
        state = "built" if tf.built else ("read" if cfg.tier_dir else "cached")
        table.add_row(tier, str(len(tf.feature_names)), f"{len(tf.frame):,}", str(dates.iloc[0].date()),
                      str(dates.iloc[-1].date()), state, escape(str(tf.path)))
    console.print(table)
    console.print(f"done in {elapsed:.1f} s")
    for line in dict.fromkeys(n for tf in frames.values() for n in getattr(tf, "notes", ())):
        note(args, f"[yellow]note:[/] {escape(line)}")
    return 0


def tier_summary(tier: str, cfg, task: str, horizon: int, context_length: int) -> dict:
    """One row of `fembed data info` (also used by the data card)."""
    from fembed_jax.data import load_dataset

    ds = load_dataset(tier, cfg, task=task, horizon=horizon, context_length=context_length)
    return {
        "tier": tier,
        "features": ds.num_features,
        "rows": int(ds.matrix.shape[0]),
        "first_date": str(ds.dates[0]),
        "last_date": str(ds.dates[-1]),
        "val_start": ds.val_start,
        "test_start": ds.test_start,
        "splits": ds.split_info(),
        "source_id": ds.source_id,
        "notes": list(getattr(ds, "notes", ())),
    }


def _info(args: argparse.Namespace) -> int:
    _, cfg = _config(args)
    if args.horizon < 1 or args.context_length < 1:
        raise UsageError("--horizon and --context-length must be at least 1")
    rows = [tier_summary(t, cfg, args.task, args.horizon, args.context_length) for t in _tiers(args)]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    table = Table(header_style="bold", title_justify="left",
                  title=f"{args.task}, horizon {args.horizon}, context {args.context_length}; "
                        f"val from {rows[0]['val_start']}, test from {rows[0]['test_start']}")
    for col in ("tier", "features", "rows", "dates", "windows train/val/test", "base rate train/val/test"):
        table.add_column(col, justify="left" if col in ("tier", "dates") else "right")
    for row in rows:
        s = row["splits"]
        table.add_row(
            row["tier"], str(row["features"]), f"{row['rows']:,}", f"{row['first_date']}..{row['last_date']}",
            " / ".join(f"{s[k]['windows']:,}" for k in ("train", "val", "test")),
            " / ".join(f"{100 * s[k]['base_rate']:.1f}" for k in ("train", "val", "test")) + " %",
        )
    console.print(table)
    console.print(f"source: {escape(rows[0]['source_id'])}", highlight=False)
    for line in dict.fromkeys(n for row in rows for n in row["notes"]):
        note(args, f"[yellow]note:[/] {escape(line)}")
    return 0


def _card(args: argparse.Namespace) -> int:
    from fembed_jax.data.card import write_data_card

    registry, cfg = _config(args)
    output = Path(args.output) if args.output else project_root(registry.path) / "docs" / "data_card.md"
    path = write_data_card(cfg, output)
    console.print(f"wrote {escape(str(path))}")
    return 0
