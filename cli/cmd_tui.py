"""`fembed tui`: the live Textual monitor of the run store (queue, results, detail)."""

from __future__ import annotations

import argparse

from .common import UsageError, add_filter_options, guarded, registry_from_args, select
from .paths import store_path


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "tui", help="live monitor of the queue and results (Textual)",
        description="Watch the run store while `fembed run` writes to it: the queue with the "
                    "running experiment's progress, the results table (sortable, filterable) and "
                    "one experiment's per-seed metrics and training curves. Works before any run "
                    "(it waits for the store) and after (it shows the history). Press ? for keys.",
        epilog="examples:\n  fembed tui\n  fembed tui --priority LF-P8\n"
               "  fembed tui --outputs /data/fembed-outputs --refresh 5",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    add_filter_options(parser)
    parser.add_argument("--outputs", metavar="DIR",
                        help="folder holding fembed.db (default: outputs/ beside registry/, or $FEMBED_OUTPUTS)")
    parser.add_argument("--refresh", type=float, default=1.0, metavar="SECONDS",
                        help="how often to poll the store (default 1)")
    parser.set_defaults(func=run)


def initial_scope(args: argparse.Namespace) -> str:
    """The command line filters written in the TUI's filter syntax."""
    terms = []
    for option, name in (("priority", "priority"), ("tier", "tier"), ("loss", "loss"),
                         ("embedding", "embedding"), ("exp_id", "id")):
        values = getattr(args, option, None) or []
        if values:
            terms.append(f"{name}:{','.join(values)}")
    return " ".join(terms)


@guarded
def run(args: argparse.Namespace) -> int:
    registry = registry_from_args(args)
    if not args.refresh > 0:
        raise UsageError(f"--refresh must be a positive number of seconds, got {args.refresh}")
    if not select(registry, args):  # validates ids and priorities too
        raise UsageError("no experiment matches the filters")
    from fembed_jax.tui.app import FembedMonitor

    app = FembedMonitor(registry, store_path(args, registry.path),
                        refresh_s=args.refresh, scope=initial_scope(args))
    app.run()
    return 0
