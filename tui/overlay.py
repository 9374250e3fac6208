"""Two experiments' curves in one chart: the mean over seeds per epoch, one colour each.

Opened with ``c`` after marking one experiment with ``m`` (the other is the highlighted one);
``esc``, ``q`` or ``c`` closes it. The app hands it new curves on every poll while it is open.
"""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid, VerticalScroll
from textual.events import Resize
from textual.markup import escape
from textual.screen import ModalScreen
from textual.widgets import Label, Static

from .model import Curves, mean_curve
from .plots import CurvePlot, legend

OVERLAY_PLOTS = (("val_auc", "mean val AUC", True), ("val_loss", "mean val loss", False))
WIDE = 120  # from this width on the two plots stand side by side


class OverlayScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,q,c", "dismiss", "Close")]

    def __init__(self, first: str, second: str, curves_first: Curves, curves_second: Curves) -> None:
        super().__init__()
        self.ids = (first, second)
        self._curves = (curves_first, curves_second)

    def compose(self) -> ComposeResult:
        first, second = self.ids
        with VerticalScroll(id="overlay-box"):
            yield Label(f"[b]{escape(first)}[/b] (marked) vs [b]{escape(second)}[/b]: the mean over "
                        "seeds per epoch, on one scale per metric", id="overlay-title")
            yield Static(id="overlay-legend")
            with Grid(id="overlay-plots"):
                for key, title, higher in OVERLAY_PLOTS:
                    yield CurvePlot(title, higher, id=f"overlay-{key}")
            yield Label("[dim]esc / q / c close[/dim]", id="overlay-note")

    def on_mount(self) -> None:
        self.show(*self._curves)

    def on_resize(self, event: Resize) -> None:
        self.query_one("#overlay-box").set_class(event.size.width >= WIDE, "-wide")

    def show(self, curves_first: Curves, curves_second: Curves) -> None:
        """Redraw with new curves (a no-op for a plot whose means did not change)."""
        self._curves = (curves_first, curves_second)
        suffix = {}
        for exp_id, data in zip(self.ids, self._curves):
            seeds = len(data.val_auc or data.val_loss)
            suffix[exp_id] = f" ({seeds} seed{'s' if seeds != 1 else ''})" if seeds else " (no epochs recorded)"
        self.query_one("#overlay-legend", Static).update(legend(list(self.ids), suffix))
        for key, _, _ in OVERLAY_PLOTS:
            self.query_one(f"#overlay-{key}", CurvePlot).show(
                {exp_id: mean_curve(data.metric(key)) for exp_id, data in zip(self.ids, self._curves)})

    def action_dismiss(self, result: None = None) -> None:
        self.dismiss(None)
