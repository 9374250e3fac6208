"""`fembed` command line: parses arguments and hands each subcommand to its cli/cmd_*.py module.

Exit codes: 0 ok, 2 usage or invalid input (bad registry, unknown id, bad data), 1 failure.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from rich.markup import escape

from fembed_jax import __version__

from .common import add_common_options, debug_enabled, err_console

# Subcommands in the order `fembed --help` lists them; each module has register(subparsers).
COMMANDS = ("init", "list", "show", "run", "status", "reset", "clean", "tui", "data", "report",
            "compare", "import_legacy", "evaluate", "export", "completion")

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
    add_common_options(parser, top_level=True)
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"fembed_jax.cli.cmd_{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"fembed_jax.cli.cmd_{name}":
                raise
            continue  # a command still being built is simply not offered
        module.register(subparsers)
    for command in _all_subparsers(subparsers):
        add_common_options(command)
    return parser


def _all_subparsers(action: argparse._SubParsersAction):
    """Every (sub)command parser, nested ones (`data build`) included."""
    for parser in dict.fromkeys(action.choices.values()):
        yield parser
        for nested in parser._actions:
            if isinstance(nested, argparse._SubParsersAction):
                yield from _all_subparsers(nested)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_usage(sys.stderr)
        print("fembed: say which command to run; fembed --help lists them", file=sys.stderr)
        return 2
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (`fembed list --json | head`): that is not our error. Point
        # stdout at /dev/null so the interpreter's final flush does not fail again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    except Exception as exc:  # a bug: one line unless asked for the traceback
        if debug_enabled(args):
            raise
        err_console.print(f"[bold red]error:[/] internal error ({type(exc).__name__}: "
                          f"{escape(str(exc))}); run again with --debug for the traceback",
                          highlight=False)
        return 1


if __name__ == "__main__":
    sys.exit(main())
