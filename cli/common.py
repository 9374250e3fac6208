"""Helpers shared by the subcommands: loading the registry with a clean error, a rich console."""

from __future__ import annotations

import argparse
import sys

from rich.console import Console
from rich.markup import escape

from fembed_jax.registry import Registry, RegistryError, load_registry

console = Console()
err_console = Console(stderr=True)


class UsageError(Exception):
    """Bad input from the user: printed without a traceback, exit code 2."""


def registry_from_args(args: argparse.Namespace) -> Registry:
    try:
        return load_registry(getattr(args, "registry", None))
    except RegistryError as exc:
        raise UsageError(str(exc)) from exc


def add_filter_options(parser: argparse.ArgumentParser) -> None:
    """--priority/--exp-id/--tier/--loss/--embedding, each repeatable; all must match."""
    parser.add_argument("--priority", "-p", action="append", default=[], metavar="P",
                        help="priority such as P1, LF-P8, AE-P5 (repeatable)")
    parser.add_argument("--exp-id", "-e", action="append", default=[], metavar="ID",
                        help="experiment id such as FE-06 (repeatable)")
    parser.add_argument("--tier", action="append", default=[], help="a20, a50, a100, a200, a500 (repeatable)")
    parser.add_argument("--loss", action="append", default=[], help="loss name, e.g. focal (repeatable)")
    parser.add_argument("--embedding", action="append", default=[],
                        help="none, linear, progressive, bottleneck, multihead, gated_residual, "
                             "attention (repeatable)")


def select(registry: Registry, args: argparse.Namespace):
    try:
        return registry.select(priorities=args.priority, exp_ids=args.exp_id, tiers=args.tier,
                               losses=args.loss, embeddings=args.embedding)
    except KeyError as exc:
        raise UsageError(exc.args[0]) from exc


def guarded(run):
    """Decorator for run(args): UsageError -> message on stderr and exit code 2."""

    def wrapper(args: argparse.Namespace) -> int:
        try:
            return run(args)
        except UsageError as exc:
            err_console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False)
            return 2

    wrapper.__name__ = run.__name__
    wrapper.__doc__ = run.__doc__
    return wrapper


def fail(message: str) -> int:
    err_console.print(f"[bold red]error:[/] {escape(message)}", highlight=False)
    return 1


def stdout_is_tty() -> bool:
    return sys.stdout.isatty()
