"""Modal screens: the help text, and the confirmations before starting or stopping a run."""

from __future__ import annotations

from collections.abc import Sequence

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.markup import escape
from textual.screen import ModalScreen
from textual.widgets import Button, Label, Static

# At most HELP_WIDTH columns a line (a test checks): the box is HELP_WIDTH + 6 wide (border,
# padding, the scrollbar of a 24-row terminal), so it fits 80 columns without wrapping a line.
HELP_WIDTH = 74
HELP = """\
[b]fembed tui[/b] — live monitor of the run store (outputs/fembed.db)

[b]Views[/b] (the tabs; [b]1[/b]–[b]4[/b] or a click switch)
  [b]1[/b] Queue    experiments in scope: running, stalled, interrupted first,
              then failed, pending, done, not queued; the running ones'
              epoch, seeds training, best val AUC, elapsed and ETA; the
              queue's done/total and ETA; a failed one's error
  [b]2[/b] Results  one row per result; the best cell per metric is green
              (collapsed, one-seed and legacy rows are not ranked, nor
              other-protocol rows or rows on other data than most)
              AUC/PR-AUC (95% CI): the seed ensemble as in `fembed report`
  [b]3[/b] Detail   the highlighted experiment: per-seed metrics, every
              seed's curves on one scale, the run log (outputs/<ID>/
              run.log), config (* = differs from the registry defaults)
  [b]4[/b] Runs     the `fembed run` processes started here, with their state
  [b]enter[/b]      open the highlighted experiment in Detail
  [b]esc[/b]        (in Detail) back to the view you came from

[b]Moving[/b]  arrows, pgup/pgdn; [b]home[/b]/[b]g[/b] first row, [b]end[/b]/[b]G[/b] last row

[b]Sorting (Results)[/b]  click a header, or [b]s[/b] / [b]S[/b] next / previous
  column, [b]r[/b] reverse; the status line names the sort

[b]Compare (Results)[/b]  [b]m[/b] marks the highlighted row (◆; again: unmark),
  [b]c[/b] on another row (or in Detail) overlays the two experiments' mean
  val AUC and val loss per epoch; esc closes it

[b]Scope filter[/b]  [b]/[/b] edit, [b]enter[/b] or [b]esc[/b] back to the table, [b]x[/b] clear
  [b]p t l e a[/b]  cycle priority / tier / loss / embedding / state over the
             values still in scope, then back to all
  terms: priority:LF-P8  tier:a20,a50  loss:focal  emb:linear
         state:running,failed  id:FE-0 (prefix)  or any word (substring)
  all terms must match; commas separate alternatives

[b]Run[/b]  [b]R[/b] starts `fembed run` for the experiments in scope, after a
  confirm ([b]y[/b] runs; enter and [b]n[/b] cancel). An interrupted experiment is
  rerun with the seeds/epochs it was queued with, so it resumes. Detached:
  output in outputs/tui-run-*.log; quitting the monitor does not stop it.
  [b]k[/b] stops a run started here (SIGINT, like Ctrl-C: it resumes later)

[b]Header[/b]  while a run goes, the line under the status: its runner's CPU,
  memory (RSS) and GPU use, and "compiling" while a first epoch runs
  (the ETA waits for the second epoch: the first also compiles)

[b]Other[/b]  [b]f5[/b] refresh now  [b]?[/b] this help  [b]q[/b] quit
"""


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,q,question_mark,f1", "dismiss", "Close")]

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help-box"):
            yield Static(HELP.rstrip())
            yield Label("[dim]esc / q close · arrows scroll[/dim]", id="help-close")

    def action_dismiss(self, result: None = None) -> None:
        self.dismiss(None)


class ConfirmScreen(ModalScreen[bool]):
    """A question with details; only ``y`` (or clicking the action button) answers yes.

    Cancel has the focus, so a stray enter (R then enter was the way 183 experiments x 50
    epochs got started) cancels.
    """

    BINDINGS = [Binding("y", "answer(True)", "Yes"), Binding("n,escape", "answer(False)", "Cancel")]

    def __init__(self, question: str, details: Sequence[str], yes_label: str) -> None:
        super().__init__()
        self.question, self.details, self.yes_label = question, list(details), yes_label

    def compose(self) -> ComposeResult:
        with Vertical(id="confirm-box"):
            yield Label(f"[b]{escape(self.question)}[/b]", id="confirm-question")
            with VerticalScroll(id="confirm-details"):
                for text in self.details:
                    yield Static(text, classes="confirm-detail")
            with Horizontal(id="confirm-buttons"):
                yield Button(f"{self.yes_label} (y)", variant="warning", id="confirm-yes")
                yield Button("Cancel (n)", variant="primary", id="confirm-no")

    def on_mount(self) -> None:
        self.query_one("#confirm-no", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "confirm-yes")

    def action_answer(self, answer: bool) -> None:
        self.dismiss(answer)


class ConfirmRunScreen(ConfirmScreen):
    """Before R starts `fembed run`: the count first (it must stay on screen), then what the
    experiments are, how seeds/epochs were chosen, and the command."""

    def __init__(self, command: str, count: int, breakdown: str = "", note: str = "") -> None:
        details = [text for text in (escape(breakdown), escape(note)) if text]
        details += [f"[b]{escape(command)}[/b]",
                    "[dim]It runs detached: quitting the monitor does not stop it ([b]k[/b] does).[/dim]"]
        super().__init__(f"Start training {count} experiment(s) of the current scope?", details, "Run")
        self.command, self.count = command, count


class ConfirmStopScreen(ConfirmScreen):
    """Before k sends SIGINT to a run started from this monitor."""

    def __init__(self, pid: int, command: str, again: bool) -> None:
        what = ("It was already asked to stop: a second SIGINT aborts the current epoch at once "
                "(the experiment still resumes from its last checkpoint)." if again else
                "SIGINT is what Ctrl-C sends: it stops after the current epoch's checkpoint and "
                "the experiment resumes on the next `fembed run` of it.")
        super().__init__(f"Stop fembed run (pid {pid})?", [f"[b]{escape(command)}[/b]", what], "Stop")
        self.pid = pid
