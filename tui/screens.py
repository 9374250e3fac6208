"""Modal screens: the help text and the confirmation before starting a run."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.markup import escape
from textual.screen import ModalScreen
from textual.widgets import Button, Label, Static

HELP = """\
[b]fembed tui[/b] — live monitor of the run store (outputs/fembed.db)

[b]Views[/b]
  [b]1[/b] Queue     every experiment in scope: state, progress of the running one
                (epoch e/max, seeds still training, elapsed, ETA at the current
                epoch rate, assuming no early stop), the error of failed ones
  [b]2[/b] Results   one row per finished experiment; the best cell per metric
                column is green (collapsed models excluded)
  [b]3[/b] Detail    the highlighted experiment: per-seed metrics, training
                curves, config (* = differs from the registry defaults)
  [b]enter[/b]       open the highlighted experiment in Detail

[b]Sorting (Results)[/b]
  click a header, or [b]s[/b] / [b]S[/b] next / previous column, [b]r[/b] reverse

[b]Scope filter[/b]  [b]/[/b] edit, [b]enter[/b] or [b]escape[/b] back to the table, [b]x[/b] clear
  [b]p[/b] [b]t[/b] [b]l[/b] [b]e[/b] [b]a[/b]   cycle priority / tier / loss / embedding / state
  terms: priority:LF-P8  tier:a20,a50  loss:focal  emb:linear
         state:running,failed  id:FE-0 (prefix)  or any word (substring)
  all terms must match; commas separate alternatives

[b]Run[/b]  [b]R[/b] starts `fembed run` for the registry experiments in scope
     (a detached process, output in outputs/tui-run-*.log)

[b]Other[/b]  [b]f5[/b] refresh now  [b]?[/b] this help  [b]q[/b] quit
"""


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,q,question_mark,f1", "dismiss", "Close")]

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help-box"):
            yield Static(HELP)

    def action_dismiss(self, result: None = None) -> None:
        self.dismiss(None)


class ConfirmRunScreen(ModalScreen[bool]):
    """Shows the command and how many experiments it covers; y / enter runs, n / escape not."""

    BINDINGS = [Binding("y", "answer(True)", "Run"), Binding("n,escape", "answer(False)", "Cancel")]

    def __init__(self, command: str, count: int) -> None:
        super().__init__()
        self.command, self.count = command, count

    def compose(self) -> ComposeResult:
        with Vertical(id="confirm-box"):
            yield Label(f"Start training {self.count} experiment(s) of the current scope?")
            yield Static(f"[b]{escape(self.command)}[/b]", id="confirm-command")
            yield Label("[dim]It runs detached: quitting the monitor does not stop it.[/dim]")
            with Horizontal(id="confirm-buttons"):
                yield Button("Run (y)", variant="primary", id="confirm-yes")
                yield Button("Cancel (n)", id="confirm-no")

    def on_mount(self) -> None:
        self.query_one("#confirm-yes", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "confirm-yes")

    def action_answer(self, answer: bool) -> None:
        self.dismiss(answer)
