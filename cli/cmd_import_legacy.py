"""`fembed import-legacy DIR`: the original system's results.json files as legacy records."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.markup import escape

from .common import UsageError, console, err_console, guarded, registry_from_args
from .paths import add_path_options, outputs_dir, store_path


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "import-legacy", help="import the original's outputs/feature_embedding/*/results.json",
        description="Read the original PyTorch system's results.json files (one per (tier, d_embed) "
                    "folder) into the run store as legacy records: one seed, final-epoch weights, "
                    "marked as such everywhere they are shown. Malformed files are reported and "
                    "skipped. Importing again changes nothing; a fembed result of the same id is never "
                    "replaced (the legacy record is kept beside it in outputs/legacy/).",
        epilog="example:\n  fembed import-legacy ../financial_ts_scaling/outputs/feature_embedding",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("directory", metavar="DIR",
                        help="the original's outputs/feature_embedding folder (or one results.json)")
    add_path_options(parser, data=False)
    parser.set_defaults(func=run)


@guarded
def run(args: argparse.Namespace) -> int:
    from fembed_jax.legacy import find_legacy_files, import_legacy
    from fembed_jax.store import RunStore

    directory = Path(args.directory).expanduser()
    if not directory.exists():
        raise UsageError(f"{directory}: no such file or folder")
    if not find_legacy_files(directory):
        raise UsageError(f"{directory}: no results.json in it or in its sub-folders")
    registry = registry_from_args(args)
    outputs = outputs_dir(args, registry.path)
    with RunStore(store_path(args, registry.path)) as store:
        report = import_legacy(store, directory, outputs, registry)
    for path, reason in report.skipped:
        err_console.print(f"[yellow]skipped[/] {escape(path)}: {escape(reason)}", highlight=False)
    for message in report.duplicates:
        err_console.print(f"[yellow]duplicate[/] {escape(message)}", highlight=False)
    parts = [f"{len(report.imported)} imported", f"{len(report.unchanged)} unchanged"]
    if report.beside_fembed:
        parts.append(f"{len(report.beside_fembed)} kept beside a fembed result "
                     f"({', '.join(report.beside_fembed)})")
    if report.skipped:
        parts.append(f"{len(report.skipped)} skipped")
    console.print(f"legacy records from {escape(str(directory))}: " + ", ".join(parts), highlight=False)
    if report.warnings:
        err_console.print(f"[yellow]{report.warnings} warning(s)[/]", highlight=False)
    return 0 if report.accepted else 1
