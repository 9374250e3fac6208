"""Starting `fembed run` for the TUI's current scope as a detached subprocess, and stopping it."""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import pathlib
import signal
import subprocess
import sys
from collections.abc import Mapping, Sequence

from .filters import RUN_FIELDS, Scope
from .model import UNFINISHED, QueueRow

SHOWN_IDS = 6  # a command naming more experiments shows this many --exp-id and a count


def run_command(scope: Scope, exp_ids: Sequence[str], registry_path: pathlib.Path,
                outputs_dir: pathlib.Path, python: str = sys.executable, *,
                items: Sequence[Mapping[str, object]] = (), seeds: int | None = None,
                epochs: int | None = None, by_id: bool = False) -> list[str]:
    """The `fembed run` command line for the registry experiments in scope.

    A scope of priority/tier/loss/embedding filters (a bare word counts when it is exactly one
    field's value over ``items``, see Scope.run_filters) maps to those options, so the command
    reads like one a user would type; any other scope, or ``by_id``, names its experiments
    with --exp-id. ``seeds``/``epochs`` add --seeds/--epochs.
    """
    command = [python, "-m", "fembed_jax.cli.main", "--registry", str(registry_path), "run"]
    filters = None if by_id else scope.run_filters(items)
    if filters == {}:
        command.append("--all")
    elif filters is not None:
        for field in RUN_FIELDS:
            for value in filters.get(field, ()):
                command += [f"--{field}", _registry_spelling(value, field)]
    else:
        for exp_id in exp_ids:
            command += ["--exp-id", exp_id]
    if seeds is not None:
        command += ["--seeds", str(seeds)]
    if epochs is not None:
        command += ["--epochs", str(epochs)]
    return command + ["--outputs", str(outputs_dir)]


def _registry_spelling(value: str, field: str) -> str:
    # The filter lower-cases values; priorities and ids are upper case in the registry.
    return value.upper() if field == "priority" else value


def display(command: Sequence[str], shown_ids: int = SHOWN_IDS) -> str:
    """The command as the user would type it (`fembed ...` instead of `python -m ...`), a
    long --exp-id list cut to ``shown_ids`` of them and how many more (the dialog must keep
    its first line, the count, on screen)."""
    args = list(command)
    if args[1:3] == ["-m", "fembed_jax.cli.main"]:
        args = ["fembed", *args[3:]]
    ids = [i for i, arg in enumerate(args) if arg == "--exp-id"]
    if len(ids) > shown_ids:
        hidden = ids[shown_ids:]
        tail = args[hidden[-1] + 2:]
        args = args[: hidden[0]] + [f"… (+{len(hidden)} more --exp-id, {len(ids)} in all)"] + tail
    return " ".join(args)


@dataclasses.dataclass(frozen=True)
class RunSettings:
    """How to relaunch the scope: --seeds/--epochs (None: the registry's) and, when those
    apply only to the unfinished experiments, just those ids. ``note`` says why, for the dialog."""

    seeds: int | None = None
    epochs: int | None = None
    only: tuple[str, ...] = ()  # non-empty: run just these (the unfinished ones)
    note: str = ""


def queued_settings(rows: Sequence[QueueRow]) -> RunSettings:
    """The --seeds/--epochs that re-create the config the unfinished experiments of ``rows``
    were queued with (an interrupted `--epochs 30 --seeds 2` run resumes from its checkpoint
    instead of restarting at the registry's 50 x 5).

    `fembed run` takes one --seeds and one --epochs (a cap) for all: they must fit every
    unfinished experiment, else the registry's values are used and the note says so. Other
    experiments in scope would get the same flags and so another config (a done one's result
    would be refused as a replace), so the command is then cut to the unfinished ones.
    """
    unfinished = [r for r in rows if r.state in UNFINISHED and r.exp.config and r.exp.registered]
    changed = [r for r in unfinished
               if (r.exp.config.seeds, r.exp.config.epochs) != (r.exp.registered.seeds, r.exp.registered.epochs)]
    if not changed:
        return RunSettings()
    names = ", ".join(f"{r.exp.exp_id} ({r.exp.config.seeds} seeds x {r.exp.config.epochs} epochs)"
                      for r in changed[:3]) + (f" and {len(changed) - 3} more" if len(changed) > 3 else "")
    seeds_values = {r.exp.config.seeds for r in unfinished}
    caps = {r.exp.config.epochs for r in unfinished if r.exp.config.epochs < r.exp.registered.epochs}
    cap = next(iter(caps)) if len(caps) == 1 else None
    fits = len(seeds_values) == 1 and len(caps) <= 1 and all(
        (min(r.exp.registered.epochs, cap) if cap else r.exp.registered.epochs) == r.exp.config.epochs
        for r in unfinished)
    if not fits:
        return RunSettings(note=f"The unfinished experiments were queued with different seeds/epochs "
                                f"({names}); one `fembed run` cannot give each its own, so this runs the "
                                "registry's values (run them one by one with `fembed run` to resume).")
    seeds = next(iter(seeds_values))
    seeds_flag = seeds if any(r.exp.config.seeds != r.exp.registered.seeds for r in unfinished) else None
    others = len(rows) - len(unfinished)
    only = tuple(r.exp.exp_id for r in unfinished) if others else ()
    flags = " ".join(f for f in (f"--seeds {seeds_flag}" if seeds_flag is not None else "",
                                 f"--epochs {cap}" if cap else "") if f)
    note = f"{flags}: as queued ({names}), so it resumes from its checkpoint."
    if only:
        note += (f" Only the {len(only)} unfinished experiment(s) are run: the other {others} in scope "
                 "would get another config with these flags.")
    return RunSettings(seeds_flag, cap, only, note)


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


def interrupt(process: subprocess.Popen) -> None:
    """SIGINT, what Ctrl-C in its terminal would send: `fembed run` stops after the current
    epoch's checkpoint and leaves the experiment resumable. Sent to its whole session (start
    made it a group leader) so workers it started stop too."""
    if os.name == "posix":
        try:
            os.killpg(process.pid, signal.SIGINT)
            return
        except (ProcessLookupError, PermissionError):
            pass
    process.send_signal(signal.SIGINT)
