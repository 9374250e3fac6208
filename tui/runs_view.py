"""The Runs view: the `fembed run` processes started from this monitor, alive or how they ended."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Static

from . import fmt
from .runs import LaunchedRun
from .tables import RowTable, selected_key, sync_rows

COLUMNS = (("pid", "pid"), ("state", "state"), ("started", "started"), ("log", "log"), ("command", "command"))
STATE_STYLE = {"running": "bold yellow", "stopping": "yellow", "exit 0": "green"}


class RunsView(Vertical):
    """One row per run started with R, newest first; ``k`` stops the highlighted one."""

    def compose(self) -> ComposeResult:
        yield Static("No run started from this monitor yet: [b]R[/b] starts one for the scope.", id="runs-empty")
        table = RowTable(id="runs-table", cursor_type="row", zebra_stripes=True)
        for key, label in COLUMNS:
            table.add_column(label, key=key)
        yield table

    @property
    def table(self) -> RowTable:
        return self.query_one("#runs-table", RowTable)

    def selected_pid(self) -> int | None:
        key = selected_key(self.table)
        return int(key) if key else None

    def show(self, runs: Sequence[LaunchedRun], masked: bool) -> None:
        self.query_one("#runs-empty").display = not runs
        rows = []
        for run in reversed(runs):
            state = run.state
            style = STATE_STYLE.get(state, "bold red" if state.startswith("exit") else "magenta")
            started = fmt.MASK if masked else dt.datetime.fromtimestamp(run.started_at).strftime("%H:%M:%S")
            rows.append((str(run.pid), [str(run.pid), Text(state, style=style), started,
                                        run.log_path.name, run.command]))
        sync_rows(self.table, rows)
