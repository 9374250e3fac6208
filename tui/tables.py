"""Live DataTable updates that keep the user's place.

A poll rebuilds the rows every second; clearing and refilling the table would reset the
cursor and the scroll position each time. ``sync_rows`` updates only the cells that changed
when the row keys are the same as before, and otherwise refills the table and puts the cursor
back on the row it was on.
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.text import Text
from textual.binding import Binding
from textual.widgets import DataTable

Cell = str | Text


class RowTable(DataTable):
    """A DataTable of rows: Home/End (and g/G) go to the first/last row, as in a list, instead
    of DataTable's sideways scroll (still on the arrows); ``relabel`` redraws the header."""

    BINDINGS = [
        Binding("home,g", "first_row", "First row", show=False),
        Binding("end,G", "last_row", "Last row", show=False),
    ]

    def action_first_row(self) -> None:
        if self.row_count:
            self.move_cursor(row=0, animate=False)
            self.scroll_to(y=0, animate=False)

    def action_last_row(self) -> None:
        if self.row_count:
            self.move_cursor(row=self.row_count - 1, animate=False)

    def relabel(self, labels: dict[str, Text]) -> None:
        """New header labels by column key. DataTable caches rendered lines by its update
        count, which a label change does not bump: without clearing them the header keeps
        the old sort arrow whenever no row moved (Textual 8.2)."""
        for key, label in labels.items():
            self.columns[key].label = label
        self._clear_caches()  # private, but the only way short of rebuilding every column
        self.refresh()


def _signature(cell: object) -> object:
    if isinstance(cell, Text):  # Text equality ignores the base style: compare it too
        return (cell.plain, str(cell.style), tuple(cell.spans))
    return cell


def selected_key(table: DataTable) -> str | None:
    if table.row_count == 0:
        return None
    try:
        return table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
    except Exception:  # an empty or just-cleared table has no cell under the cursor
        return None


def sync_rows(table: DataTable, rows: Sequence[tuple[str, Sequence[Cell]]]) -> bool:
    """Make ``table`` show ``rows`` (key, cells) in order; True if it was refilled."""
    current = [row.key.value for row in table.ordered_rows]
    if current == [key for key, _ in rows]:
        columns = [column.key for column in table.ordered_columns]
        for key, cells in rows:
            old = table.get_row(key)
            for column, before, after in zip(columns, old, cells):
                if _signature(before) != _signature(after):
                    table.update_cell(key, column, after, update_width=True)
        return False
    keep = selected_key(table)
    table.clear()
    for key, cells in rows:
        table.add_row(*cells, key=key)
    if keep is not None and keep in table.rows:
        table.move_cursor(row=table.get_row_index(keep), animate=False)
    return True
