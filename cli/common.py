"""Helpers shared by the subcommands: the consoles, the options every command takes, loading the
registry with a clean error, and `guarded`, which turns every expected failure into one line."""

from __future__ import annotations

import argparse
import difflib
import os
import sqlite3
import sys
import warnings

from rich.console import Console
from rich.markup import escape

from fembed_jax.registry import Registry, RegistryError, load_registry

from .errors import UsageError  # the commands import it from here
from .paths import registry_path

# Piped or captured output is never hard-wrapped: a wrapped path or message is unreadable and
# unsearchable (rich would wrap at 80 columns). Tables render at their natural width there;
# scripts read --json.
_PIPED_WIDTH = 10_000


def _console(stderr: bool) -> Console:
    stream = sys.stderr if stderr else sys.stdout
    if stream.isatty():
        return Console(stderr=stderr)
    return Console(stderr=stderr, soft_wrap=True, width=_PIPED_WIDTH)


console = _console(stderr=False)
err_console = _console(stderr=True)


def add_common_options(parser: argparse.ArgumentParser, top_level: bool = False) -> None:
    """--registry, -q, -v and --debug, accepted before or after the subcommand. On a subcommand
    the defaults are SUPPRESS so a value given before the subcommand is not overwritten."""
    default = None if top_level else argparse.SUPPRESS
    parser.add_argument("--registry", metavar="PATH", default=default,
                        help="experiment registry TOML (default: registry/experiments.toml of "
                             "the project containing the working folder, or $FEMBED_REGISTRY)")
    parser.add_argument("-q", "--quiet", action="store_true", default=False if top_level else default,
                        help="no progress bars or notes, only results and errors")
    parser.add_argument("-v", "--verbose", action="store_true", default=False if top_level else default,
                        help="more detail (e.g. every warning in full)")
    parser.add_argument("--debug", action="store_true", default=False if top_level else default,
                        help="show the traceback of an error (also FEMBED_DEBUG=1)")


def debug_enabled(args: argparse.Namespace | None = None) -> bool:
    return bool(getattr(args, "debug", False)) or os.environ.get("FEMBED_DEBUG", "") not in ("", "0")


def registry_from_args(args: argparse.Namespace) -> Registry:
    try:
        return load_registry(registry_path(args))
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


LEGACY_SUFFIX = "@legacy"  # ID@legacy names an experiment's imported legacy record (show, compare)


def split_legacy(name: str) -> tuple[str, bool]:
    """``"FE-05@legacy"`` -> ``("FE-05", True)``; ``"FE-05"`` -> ``("FE-05", False)``."""
    return (name[: -len(LEGACY_SUFFIX)], True) if name.endswith(LEGACY_SUFFIX) else (name, False)


def experiment_or_usage_error(registry: Registry, exp_id: str):
    """The registry's config of ``exp_id``, or a UsageError with the closest ids as a hint."""
    try:
        return registry.get(exp_id)
    except KeyError as exc:
        ids = [cfg.exp_id for cfg in registry.experiments]
        close = difflib.get_close_matches(exp_id.upper(), ids, n=3)
        hint = f"; did you mean {' or '.join(close)}?" if close else ""
        raise UsageError(f"{exc.args[0]}{hint}") from exc


def _error_line(exc: BaseException) -> tuple[str, int]:
    """The one line and exit code for an expected failure (None: not an expected one)."""
    from fembed_jax.data.errors import DataError
    from fembed_jax.stats import BlockLengthError
    from fembed_jax.store import StoreError

    if isinstance(exc, UsageError | DataError):
        return str(exc), 2
    if isinstance(exc, BlockLengthError):
        return f"--block: {exc}", 2
    if isinstance(exc, StoreError):
        return str(exc), 1
    if isinstance(exc, sqlite3.Error):
        return f"run store: {exc}", 1
    if isinstance(exc, OSError):
        where = f"{exc.filename}: " if exc.filename else ""
        return f"{where}{exc.strerror or exc}", 1
    raise exc


def guarded(run):
    """Decorator for run(args): bad input (UsageError, DataError) -> one line on stderr, exit 2;
    a store or OS failure -> one line, exit 1. --debug shows the traceback instead."""
    def wrapper(args: argparse.Namespace) -> int:
        with warnings.catch_warnings():
            if not getattr(args, "verbose", False):
                warnings.showwarning = _warning_line
            try:
                return run(args)
            except BrokenPipeError:
                raise
            except Exception as exc:
                if debug_enabled(args):
                    raise
                message, code = _error_line(exc)
                err_console.print(f"[bold red]error:[/] {escape(message)}", highlight=False)
                return code

    wrapper.__name__ = run.__name__
    wrapper.__doc__ = run.__doc__
    return wrapper


def _warning_line(message, category, filename, lineno, file=None, line=None) -> None:
    """A library warning as one line on stderr (-v shows Python's full form)."""
    err_console.print(f"[yellow]warning:[/] {escape(str(message).splitlines()[0])}", highlight=False)


def fail(message: str) -> int:
    err_console.print(f"[bold red]error:[/] {escape(message)}", highlight=False)
    return 1


def note(args: argparse.Namespace, message: str) -> None:
    """A remark for a person (not a result): on stderr, silenced by -q."""
    if not getattr(args, "quiet", False):
        err_console.print(message, highlight=False)


def stdout_is_tty() -> bool:
    return sys.stdout.isatty()
