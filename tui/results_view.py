"""The Results view: one row per finished experiment, sortable, the best cell per column marked."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.message import Message
from textual.widgets import DataTable, Static

from . import fmt
from .model import BEST, RESULT_COLUMNS, ResultRow, best_ids, sort_results
from .tables import RowTable, sync_rows

BEST_STYLE = "bold green"
NUMERIC = {"d_embed", "params", "precision", "tp", "recall", "auc", "auc_ci", "pr_auc", "epochs", "time"}


class ResultsView(Vertical):
    """Results table; ``sort_column``/``descending`` say how rows are ordered."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.sort_column: str | None = None
        self.descending = True
        self._rows: list[ResultRow] = []
        self._masked = False
        self._marked: str | None = None  # the experiment marked with m (its rows show ◆)

    def compose(self) -> ComposeResult:
        table = RowTable(id="results-table", cursor_type="row", zebra_stripes=True, fixed_columns=1)
        for key, label, _, _ in RESULT_COLUMNS:
            table.add_column(self._label(key, label), key=key)
        yield table
        yield Static("No finished experiment in scope yet.", id="results-empty")

    @property
    def table(self) -> RowTable:
        return self.query_one("#results-table", RowTable)

    @property
    def order(self) -> list[str]:
        """Row keys (experiment ids; id#legacy for a kept legacy copy) in displayed order."""
        return [row.key.value for row in self.table.ordered_rows]

    def _label(self, key: str, label: str) -> Text:
        # Two spare cells keep the column as wide with and without the sort arrow.
        arrow = ("▼" if self.descending else "▲") if key == self.sort_column else " "
        return Text(f"{label} {arrow}", justify="right" if key in NUMERIC else "left")

    @property
    def sort_text(self) -> str:
        """The sort in words for the status line (the column may be scrolled out of sight)."""
        if self.sort_column is None:
            return ""
        header = next(label for key, label, _, _ in RESULT_COLUMNS if key == self.sort_column)
        return f"sorted by {header} {'▼' if self.descending else '▲'}"

    def sort_by(self, column: str | None, descending: bool | None = None) -> None:
        """Order by ``column``; metrics start best-first (descending), names ascending. The
        cursor goes to the first row: after "sort by precision" the top is what one looks at."""
        if descending is None:
            descending = column in BEST or column in ("params", "epochs", "time", "d_embed", "tp")
        self.sort_column, self.descending = column, descending
        self.table.relabel({key: self._label(key, label) for key, label, _, _ in RESULT_COLUMNS})
        self._render_rows()
        self.table.action_first_row()
        self.post_message(self.Sorted())

    class Sorted(Message):
        """The order changed (the app redraws the status line)."""

    def cycle_sort(self, step: int = 1) -> None:
        keys = [c[0] for c in RESULT_COLUMNS]
        index = keys.index(self.sort_column) + step if self.sort_column in keys else (0 if step > 0 else -1)
        self.sort_by(keys[index % len(keys)])

    def reverse(self) -> None:
        if self.sort_column is not None:
            self.sort_by(self.sort_column, not self.descending)

    def on_data_table_header_selected(self, event: DataTable.HeaderSelected) -> None:
        event.stop()
        column = event.column_key.value
        if column == self.sort_column:
            self.sort_by(column, not self.descending)
        else:
            self.sort_by(column)

    def show(self, rows: Sequence[ResultRow], masked: bool, marked: str | None = None) -> None:
        self._rows, self._masked, self._marked = list(rows), masked, marked
        self._render_rows()

    def _render_rows(self) -> None:
        best = best_ids(self._rows)
        ordered = sort_results(self._rows, self.sort_column, self.descending)
        sync_rows(self.table, [(row.key, self._cells(row, best)) for row in ordered])
        self.query_one("#results-empty").display = not self._rows

    def _cells(self, row: ResultRow, best: dict[str, set[str]]) -> list:
        exp = row.exp
        exp_id = Text(exp.exp_id)
        if row.legacy:
            exp_id.append(" legacy", style="dim italic")
        elif row.current is False:
            exp_id.append(" old cfg", style="dim italic")
        if self._marked is not None and exp.exp_id == self._marked and not row.copy:
            exp_id.append(" ◆", style="bold magenta")
        cells = {
            "id": exp_id, "priority": exp.priority or "", "tier": exp.tier or "",
            "d_embed": "-" if exp.d_embed is None else str(exp.d_embed), "loss": exp.loss or "",
            "embedding": exp.embedding or "", "params": fmt.count(row.params),
            "precision": fmt.mean_std(row.precision_mean, row.precision_std),
            "tp": fmt.ratio(row.tp_total, row.pred_pos_total), "recall": fmt.number(row.recall_mean),
            "auc": fmt.mean_std(row.auc_mean, row.auc_std),
            "auc_ci": ensemble_text(row, "auc"), "pr_auc": ensemble_text(row, "pr_auc"),
            "collapse": Text("collapsed", style="bold red") if row.collapsed else "",
            "epochs": "-" if row.epochs is None else str(row.epochs),
            "time": fmt.duration(row.seconds, self._masked),
        }
        out = []
        for key, *_ in RESULT_COLUMNS:
            cell = cells[key]
            style = BEST_STYLE if row.key in best.get(key, ()) else ""
            if not isinstance(cell, Text):
                cell = Text(cell, style=style)
            elif style:
                cell.stylize(style)
            cell.justify = "right" if key in NUMERIC else "left"
            out.append(cell)
        return out


def ensemble_text(row: ResultRow, metric: str) -> str:
    """The ensemble's ``metric`` ("auc" or "pr_auc") and its interval; "…" while the poll thread
    is still computing it, "-" for a legacy row or a result without saved predictions."""
    reported = row.reported
    if reported is not None and not reported.scored:
        return fmt.PENDING
    figure: Mapping[str, Any] = (getattr(reported, metric) if reported is not None else None) or {}
    return fmt.interval(figure.get(metric), figure.get("low"), figure.get("high"))
