"""`fembed report`: regenerate the experiment tracker (markdown, CSV, parquet, PNG) from the run store."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.markup import escape

from .common import UsageError, console, err_console, guarded, registry_from_args
from .paths import add_path_options, data_config_from_args, outputs_dir

DEFAULT_NAME = "experiment_tracker.md"


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "report", help="write the experiment tracker (markdown + CSV/parquet + plots) from the run store",
        description="Regenerate the experiment tracker from the run store: overview, run status per "
                    "priority, pending commands, fembed results ranked by the seed ensemble's PR-AUC with "
                    "precision at fixed alert rates and calibration, paired and corrected comparisons "
                    "against the volatility-only reference and a logistic regression on the tier's "
                    "features, probability collapse, legacy records (kept apart) and held-out test "
                    "results. Quick runs and results on other data are marked and not ranked. Also writes "
                    "every result as CSV and parquet, and PNG plots, next to the markdown file.",
        epilog="examples:\n"
               "  fembed report                               outputs/report/experiment_tracker.md\n"
               "  fembed report --out docs/tracker.md --top 25\n"
               "  fembed report --include-quick               rank runs made with --epochs/--seeds too\n"
               "  fembed report --no-reference --no-plots     quick, no data or matplotlib needed",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", metavar="PATH",
                        help=f"markdown file to write (default: <outputs>/report/{DEFAULT_NAME}); the CSV, "
                             "parquet and plots go beside it")
    parser.add_argument("--top", type=int, default=15, metavar="N", help="rows in the top-results table (default 15)")
    parser.add_argument("--bootstrap", type=int, default=2000, metavar="N",
                        help="bootstrap resamples for AUC intervals and paired tests (default 2000)")
    parser.add_argument("--block", type=int, default=1, metavar="L",
                        help="bootstrap block length in windows (default 1: windows drawn independently; "
                             "e.g. 5 keeps a week of serial dependence)")
    parser.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    parser.add_argument("--no-reference", action="store_true",
                        help="skip the baselines: the volatility-only reference (it loads the a20 data) and "
                             "the logistic regression on each ranked tier's features")
    parser.add_argument("--include-quick", action="store_true",
                        help="rank and count runs with fewer epochs or seeds than the registry says "
                             "(`fembed run --epochs/--seeds`); they are marked [quick] either way")
    parser.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    add_path_options(parser, data=True)
    parser.set_defaults(func=run)


@guarded
def run(args: argparse.Namespace) -> int:
    from fembed_jax.report import write_report

    for name in ("top", "bootstrap", "block"):
        if getattr(args, name) < 1:
            raise UsageError(f"--{name} must be at least 1, got {getattr(args, name)}")
    if not args.no_plots:
        try:
            import matplotlib  # noqa: F401
        except ImportError as exc:
            raise UsageError("the plots need matplotlib (pip install 'matplotlib>=3.8'); "
                             "or leave them out with --no-plots") from exc
    registry = registry_from_args(args)
    outputs = outputs_dir(args, registry.path)
    out = Path(args.out).expanduser() if args.out else outputs / "report" / DEFAULT_NAME
    data_config = None if args.no_reference else data_config_from_args(args, registry)
    files = write_report(outputs, out, registry, data_config=data_config, reference=not args.no_reference,
                         plots=not args.no_plots, top=args.top, n_boot=args.bootstrap, seed=args.seed,
                         block_length=args.block, include_quick=args.include_quick)
    data = files.data
    console.print(f"report: {len(data.fembed)} fembed result(s), {len(data.legacy)} legacy record(s)",
                  highlight=False)
    for path in (files.markdown, files.csv, files.parquet, *files.plots):
        console.print(f"  wrote {escape(str(path))}", highlight=False)
    for base in ([data.reference] if data.reference is not None else []) + list(data.baselines.values()):
        if base.error:
            err_console.print(f"[yellow]warning:[/] {escape(base.name)} not available: {escape(base.error)}",
                              highlight=False)
    for warning in data.warnings:
        err_console.print(f"[yellow]warning:[/] {escape(warning)}", highlight=False)
    return 0
