"""`fembed reset ID ...`: put failed, skipped or interrupted experiments back in the queue."""

from __future__ import annotations

import argparse

from .common import UsageError, console, err_console, guarded, registry_from_args
from .paths import add_path_options, outputs_dir


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "reset", help="re-queue failed, skipped or interrupted experiments (keeps their checkpoints)",
        description="Put experiments back to pending: a failed or skipped one, or a running one whose "
                    "runner is dead. Epoch rows and checkpoints are kept, so the next `fembed run` of "
                    "them resumes where they stopped. Done experiments are left alone (retrain them "
                    "with fembed run --force).",
        epilog="example:\n  fembed reset FE-06 LF-40 && fembed run -e FE-06 -e LF-40",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("ids", nargs="+", metavar="ID", help="experiment ids")
    add_path_options(parser, data=False)
    parser.set_defaults(func=run)


@guarded
def run(args: argparse.Namespace) -> int:
    from fembed_jax.store import DB_FILENAME, RunStore, StoreError

    registry = registry_from_args(args)
    path = outputs_dir(args, registry.path) / DB_FILENAME
    if not path.exists():
        raise UsageError(f"no run store at {path}: nothing to reset")
    refused = 0
    with RunStore(path) as store:
        for exp_id in args.ids:
            try:
                was = store.requeue(exp_id)
            except StoreError as exc:
                err_console.print(f"[yellow]not reset[/] {exc}", highlight=False)
                refused += 1
                continue
            console.print(f"{exp_id}: {was} -> pending (resumes from its last checkpoint)", highlight=False)
    return 1 if refused else 0
