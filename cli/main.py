"""`fembed` command line: parses arguments and hands each subcommand to its cli/cmd_*.py module.

Exit codes: 0 ok, 2 usage or invalid input (bad registry, unknown id, bad data), 1 failure.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from fembed_jax import __version__

# Subcommands in the order `fembed --help` lists them; each module has register(subparsers).
COMMANDS = ("list", "show", "run", "status", "tui", "data", "report", "compare", "import_legacy", "evaluate")

EPILOG = """\
examples:
  fembed list --priority AE-P5            experiments of one priority, with parameter counts
  fembed show FE-06                       resolved config, what differs from the defaults, results
  fembed run --priority LF-P8             train a priority (5 seeds each, resumable)
  fembed run --exp-id FE-06 --epochs 3 --seeds 2   a quick look
  fembed status                           queue and recent results from the run store
  fembed tui                              live monitor of the queue and results
  fembed data info                        rows, features, windows and base rates per tier
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fembed",
        description="Run the feature-embedding experiment registry: PatchTST classifiers on daily "
                    "market data, several seeds per experiment in one compiled JAX program.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"fembed {__version__}")
    parser.add_argument("--registry", metavar="PATH",
                        help="experiment registry TOML (default: registry/experiments.toml, "
                             "or $FEMBED_REGISTRY)")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"fembed_jax.cli.cmd_{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"fembed_jax.cli.cmd_{name}":
                raise
            continue  # a command still being built is simply not offered
        module.register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
