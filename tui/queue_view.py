"""The Queue view: every experiment in scope with its state, the running ones with progress."""

from __future__ import annotations

from collections.abc import Sequence

from rich.text import Text
from textual.app import ComposeResult
from textual.markup import escape
from textual.containers import Horizontal, Vertical
from textual.widgets import DataTable, Label, ProgressBar, Static

from . import fmt
from .model import NOT_QUEUED, QueueRow, QueueSummary
from .tables import RowTable, selected_key, sync_rows

STATE_STYLE = {"pending": "", "running": "bold yellow", "stalled": "yellow", "interrupted": "magenta",
               "done": "green", "failed": "bold red",
               "skipped": "dim", NOT_QUEUED: "dim"}
COLUMNS = (("id", "id"), ("state", "state"), ("progress", "progress"), ("seeds", "seeds"),
           ("elapsed", "elapsed"), ("eta", "ETA"), ("note", "error / runner"), ("priority", "priority"),
           ("tier", "tier"), ("loss", "loss"), ("embedding", "embedding"))
NOTE_WIDTH = 40  # the whole note is shown under the table for the highlighted row
MAX_RUNNING_SHOWN = 3


def state_text(state: str) -> Text:
    return Text(state, style=STATE_STYLE.get(state, ""))


class RunningBar(Horizontal):
    """One running experiment: id, epoch e/max, seeds still training, its best val AUC so far,
    a bar, elapsed, ETA (at 80 columns the bar takes what the words leave)."""

    def compose(self) -> ComposeResult:
        yield Label(classes="running-label")
        yield ProgressBar(show_eta=False, classes="running-bar")
        yield Label(classes="running-time")

    def show(self, row: QueueRow, masked: bool) -> None:
        p = row.progress
        assert p is not None
        best = f" · best AUC {p.best_auc:.3f}" if p.best_auc is not None else ""
        self.query_one(".running-label", Label).update(
            f"[b]{row.exp.exp_id}[/b] epoch {p.epochs_done}/{p.epochs_max} · "
            f"seeds {p.seeds_active}/{p.seeds_total}{best}")
        self.query_one(ProgressBar).update(total=max(p.epochs_max, 1), progress=p.epochs_done)
        self.query_one(".running-time", Label).update(
            f"elapsed {fmt.duration(p.elapsed_s, masked)} · "
            f"ETA {fmt.eta(p.eta_s, p.eta_note, masked, row.estimate_s)}")


class QueueView(Vertical):
    """Running panel, queue table, and the full error / runner of the highlighted row."""

    def compose(self) -> ComposeResult:
        yield Static(id="empty-notice")
        with Vertical(id="running"):
            yield Label(id="queue-summary")
            yield Label(id="tui-runs")
            yield Label(id="running-none")
            for _ in range(MAX_RUNNING_SHOWN):
                yield RunningBar()
        table = RowTable(id="queue-table", cursor_type="row", zebra_stripes=True, fixed_columns=1)
        for key, label in COLUMNS:
            table.add_column(label, key=key)
        yield table
        yield Static(id="queue-note")

    def on_mount(self) -> None:
        self.query_one("#empty-notice").display = False
        for bar in self.query(RunningBar):
            bar.display = False
        self._rows: dict[str, QueueRow] = {}

    @property
    def table(self) -> DataTable:
        return self.query_one("#queue-table", DataTable)

    def show_empty(self, message: str | None) -> None:
        notice = self.query_one("#empty-notice", Static)
        notice.display = message is not None
        self.query_one("#running").display = message is None  # no store: nothing can be running
        if message is not None:
            notice.update(message)

    def show(self, rows: Sequence[QueueRow], masked: bool, summary: QueueSummary | None = None,
             runs_line: str = "") -> None:
        self._rows = {row.exp.exp_id: row for row in rows}
        self._show_summary(summary, masked)
        tui_runs = self.query_one("#tui-runs", Label)
        tui_runs.display = bool(runs_line)
        tui_runs.update(runs_line)
        running = [row for row in rows if row.state in ("running", "stalled") and row.progress is not None]
        bars = list(self.query(RunningBar))
        for bar, row in zip(bars, running):
            bar.show(row, masked)
        for i, bar in enumerate(bars):
            bar.display = i < len(running)
        none = self.query_one("#running-none", Label)
        none.display = not running or len(running) > len(bars)
        if len(running) > len(bars):
            none.update(f"… and {len(running) - len(bars)} more running")
        elif not running:
            none.update("[dim]No experiment in scope is running.[/dim]")
        sync_rows(self.table, [(row.exp.exp_id, self._cells(row, masked)) for row in rows])
        self.update_note()

    def _show_summary(self, summary: QueueSummary | None, masked: bool) -> None:
        label = self.query_one("#queue-summary", Label)
        label.display = bool(summary and summary.queued)
        if not label.display:
            return
        assert summary is not None
        parts = [f"[b]queue[/b] {summary.done}/{summary.queued} done"]
        if summary.failed:
            parts.append(f"[red]{summary.failed} failed[/red]")
        parts.append(f"{summary.left} left")
        if summary.left and summary.running and summary.eta_s is None and summary.eta_note:
            parts.append(f"ETA {fmt.eta(None, summary.eta_note)}")  # no pace before epoch 2
        elif summary.left and summary.running:
            parts.append(f"ETA ~{fmt.duration(summary.eta_s, masked)}")
        elif summary.left:
            estimated = ("" if summary.estimated_s is None
                         else f"; ~{fmt.duration(summary.estimated_s, masked)} by the estimates")
            parts.append(f"[dim]nothing running (R runs the scope{estimated})[/dim]")
        label.update(" · ".join(parts))

    def _cells(self, row: QueueRow, masked: bool) -> list:
        exp, p = row.exp, row.progress
        if p is not None:
            progress = f"{fmt.bar(p.epochs_done, p.epochs_max)} {p.epochs_done}/{p.epochs_max}"
            seeds = f"{p.seeds_active}/{p.seeds_total}"
            elapsed, eta = fmt.duration(p.elapsed_s, masked), fmt.eta(p.eta_s, p.eta_note, masked, row.estimate_s)
        else:
            done = row.state == "done"
            progress = f"{row.epochs_run} epochs" if row.epochs_run and row.state != NOT_QUEUED else ""
            seeds = str(exp.seeds or "") if done else ""
            elapsed = ""
            # what has not started: the estimate remembered for its run, if any
            eta = "" if row.estimate_s is None else "~" + fmt.duration(row.estimate_s, masked)
        state = state_text(row.state)
        note = row.note.splitlines()[0] if row.note else ("has a legacy result" if row.legacy_result else "")
        if len(note) > NOTE_WIDTH:
            note = note[: NOTE_WIDTH - 1] + "…"
        return [exp.exp_id, state, progress, seeds, elapsed, eta,
                Text(note, style="red" if row.state == "failed" else "dim"),
                exp.priority or "", exp.tier or "", exp.loss or "", exp.embedding or ""]

    def update_note(self) -> None:
        """The whole error (or runner id) of the highlighted row under the table."""
        key = selected_key(self.table)
        row = self._rows.get(key) if key else None
        note = self.query_one("#queue-note", Static)
        if row is None or not row.note:
            note.display = False
            return
        note.display = True
        note.set_class(row.state == "failed", "-error")
        label = "error" if row.state == "failed" else "runner"
        note.update(f"[b]{row.exp.exp_id}[/b] {label}: {escape(row.note)}")

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self.update_note()
