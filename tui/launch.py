"""Starting `fembed run` for the TUI's current scope as a detached subprocess."""

from __future__ import annotations

import datetime as dt
import os
import pathlib
import subprocess
import sys
from collections.abc import Sequence

from .filters import RUN_FIELDS, Scope


def run_command(scope: Scope, exp_ids: Sequence[str], registry_path: pathlib.Path,
                outputs_dir: pathlib.Path, python: str = sys.executable) -> list[str]:
    """The `fembed run` command line for the registry experiments in scope.

    A scope of plain priority/tier/loss/embedding filters maps to those options (so the command
    reads like one a user would type); any other scope names its experiments with --exp-id.
    """
    command = [python, "-m", "fembed_jax.cli.main", "--registry", str(registry_path), "run"]
    filters = scope.run_filters()
    if filters == {}:
        command.append("--all")
    elif filters is not None:
        for field in RUN_FIELDS:
            for value in filters.get(field, ()):
                command += [f"--{field}", _registry_spelling(value, field)]
    else:
        for exp_id in exp_ids:
            command += ["--exp-id", exp_id]
    return command + ["--outputs", str(outputs_dir)]


def _registry_spelling(value: str, field: str) -> str:
    # The filter lower-cases values; priorities and ids are upper case in the registry.
    return value.upper() if field == "priority" else value


def display(command: Sequence[str]) -> str:
    """The command as the user would type it (`fembed ...` instead of `python -m ...`)."""
    args = list(command)
    if args[1:3] == ["-m", "fembed_jax.cli.main"]:
        args = ["fembed", *args[3:]]
    return " ".join(args)


def start(command: Sequence[str], outputs_dir: pathlib.Path) -> tuple[subprocess.Popen, pathlib.Path]:
    """Start ``command`` in its own session (it outlives the TUI, Ctrl-C in the TUI does not
    reach it), its output going to outputs/tui-run-<time>.log. Returns (process, log path)."""
    outputs_dir.mkdir(parents=True, exist_ok=True)
    log_path = outputs_dir / f"tui-run-{dt.datetime.now():%Y%m%d-%H%M%S}.log"
    with open(log_path, "ab") as log:
        process = subprocess.Popen(list(command), stdout=log, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, start_new_session=os.name == "posix",
                                   close_fds=True)
    return process, log_path
