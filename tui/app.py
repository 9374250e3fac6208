"""`fembed tui`: a live monitor of the run store — queue, results, one experiment's detail.

The app polls the store every ``refresh_s`` seconds in a worker thread (StorePoller: a few
cheap read-only queries; WAL means a reader never blocks the runner) and redraws from the
snapshot it posts back. ``static=True`` is for snapshot tests: one synchronous read at start,
no polling, every clock-dependent time masked.
"""

from __future__ import annotations

import pathlib
import time
from collections.abc import Callable

from textual import work
from textual.css.query import NoMatches
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.markup import escape
from textual.message import Message
from textual.widgets import DataTable, Footer, Input, Label, Static, TabbedContent, TabPane

from fembed_jax.registry import Registry

from . import filters, launch, model
from .detail_view import DetailView
from .model import StoreSnapshot
from .poller import StorePoller
from .queue_view import QueueView
from .results_view import ResultsView
from .screens import ConfirmRunScreen, HelpScreen
from .tables import selected_key

VIEWS = ("queue", "results", "detail")


class SnapshotReady(Message):
    def __init__(self, snapshot: StoreSnapshot) -> None:
        super().__init__()
        self.snapshot = snapshot


class FembedMonitor(App):
    """The monitor. ``registry`` gives the experiments and defaults, ``store_path`` the store."""

    CSS_PATH = "fembed.tcss"
    TITLE = "fembed"
    ENABLE_COMMAND_PALETTE = False  # every action has a key; the footer needs the room at 80 columns
    BINDINGS = [
        Binding("q", "quit", "Quit"),
        Binding("question_mark,f1", "help", "Help", key_display="?"),
        Binding("slash", "focus_filter", "Filter", key_display="/"),
        Binding("1", "view('queue')", "Queue"),
        Binding("2", "view('results')", "Results"),
        Binding("3", "view('detail')", "Detail"),
        Binding("s", "sort(1)", "Sort"),
        Binding("S", "sort(-1)", "Sort back", show=False),
        Binding("r", "reverse", "Reverse"),
        Binding("R", "run_scope", "Run", key_display="R"),
        Binding("p", "cycle('priority')", "Priority", show=False),
        Binding("t", "cycle('tier')", "Tier", show=False),
        Binding("l", "cycle('loss')", "Loss", show=False),
        Binding("e", "cycle('embedding')", "Embedding", show=False),
        Binding("a", "cycle('state')", "State", show=False),
        Binding("x", "clear_filter", "Clear filter", show=False),
        Binding("f5", "refresh_now", "Refresh", show=False),
    ]

    def __init__(self, registry: Registry, store_path: str | pathlib.Path, *, refresh_s: float = 1.0,
                 scope: str = "", static: bool = False, clock: Callable[[], float] = time.time,
                 run_python: str | None = None) -> None:
        super().__init__()
        self.registry = registry
        self.store_path = pathlib.Path(store_path)
        self.refresh_s = refresh_s
        self.static = static
        self.clock = clock
        self.run_python = run_python
        self.poller = StorePoller(self.store_path)
        self.main_screen = None  # set on mount
        self.snapshot = StoreSnapshot(self.store_path, exists=False)
        self.scope_text = scope
        self.selected: str | None = None
        self.polls = 0  # snapshots applied (tests wait on it)
        self.runs: list = []  # processes started with R
        self._polling = False
        self._experiments: dict[str, model.Experiment] = {}
        self._queue_rows: list[model.QueueRow] = []
        self._result_rows: list[model.ResultRow] = []

    # -- layout ------------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield Static(id="status")
        with Horizontal(id="filter-bar"):
            yield Label("filter", id="filter-label")
            yield Input(self.scope_text, placeholder="all — type e.g. priority:LF-P8 tier:a20 focal  (? help)",
                        id="filter")
        with TabbedContent(initial="queue", id="views"):
            with TabPane("1 Queue", id="queue"):
                yield QueueView(id="queue-view")
            with TabPane("2 Results", id="results"):
                yield ResultsView(id="results-view")
            with TabPane("3 Detail", id="detail"):
                yield DetailView(id="detail-view")
        yield Footer()

    def on_mount(self) -> None:
        self.main_screen = self.screen  # App.query_one sees only the active (maybe modal) screen
        self.apply_snapshot(self.poller.poll())
        self.main_screen.query_one("#queue-table", DataTable).focus()
        if not self.static:
            self.set_interval(self.refresh_s, self.poll)

    def on_unmount(self) -> None:
        self.poller.close()

    # -- polling -----------------------------------------------------------------------------

    def poll(self) -> None:
        if not self._polling:  # a slow read (a big first load) must not pile up threads
            self._polling = True
            self._poll_thread([self.selected] if self.selected else [])

    @work(thread=True, group="poll", exit_on_error=False)
    def _poll_thread(self, watch: list[str]) -> None:
        try:
            snapshot = self.poller.poll(watch)
        except Exception as exc:  # never kill the monitor over one bad read
            snapshot = StoreSnapshot(self.store_path, self.store_path.exists(), error=str(exc))
        self.post_message(SnapshotReady(snapshot))

    def on_snapshot_ready(self, message: SnapshotReady) -> None:
        self._polling = False
        self.apply_snapshot(message.snapshot)

    def action_refresh_now(self) -> None:
        if self.static:  # no poll thread in snapshot mode: read here
            self.apply_snapshot(self.poller.poll([self.selected] if self.selected else []))
        else:
            self.poll()

    def apply_snapshot(self, snap: StoreSnapshot) -> None:
        if snap.error and self.snapshot.exists and not snap.experiments:
            snap = StoreSnapshot(snap.path, True, self.snapshot.experiments, self.snapshot.results,
                                 self.snapshot.records, self.snapshot.epochs, snap.error)
        if not self.main_screen.query(QueueView):  # tearing down: nothing left to draw on
            return
        self.snapshot = snap
        now = self.clock()
        self._experiments = model.experiments(self.registry.experiments, snap)
        self._queue_rows = model.queue_rows(self._experiments, snap, now)
        self._result_rows = model.result_rows(self._experiments, snap)
        try:
            self.redraw()
        except NoMatches:  # quitting while a poll landed: widgets went between check and draw
            return
        self.polls += 1

    # -- drawing -----------------------------------------------------------------------------

    @property
    def scope(self) -> filters.Scope:
        return filters.Scope.parse(self.scope_text)

    def queue_in_scope(self) -> list[model.QueueRow]:
        scope = self.scope
        return [row for row in self._queue_rows if scope.matches(model.queue_filter_item(row))]

    def results_in_scope(self) -> list[model.ResultRow]:
        scope = self.scope
        states = {row.exp.exp_id: row.state for row in self._queue_rows}
        return [row for row in self._result_rows
                if scope.matches(row.filter_item(states.get(row.exp.exp_id, model.NOT_QUEUED)))]

    def redraw(self) -> None:
        queue, results = self.queue_in_scope(), self.results_in_scope()
        queue_view = self.main_screen.query_one(QueueView)
        queue_view.show_empty(None if self.snapshot.exists else self._empty_message())
        queue_view.show(queue, self.static)
        self.main_screen.query_one(ResultsView).show(results, self.static)
        self._draw_status(queue, results)
        self._draw_detail()

    @property
    def shown_path(self) -> str:
        """The store path (snapshot mode: its name only, a temporary folder differs per run)."""
        return self.store_path.name if self.static else str(self.store_path)

    def _empty_message(self) -> str:
        example = f"fembed run --priority {self.registry.priorities[0]}" if self.registry.priorities else "fembed run --all"
        return (f"[b]No run store yet[/b] at {escape(self.shown_path)}.\n"
                f"Start a run in another terminal, e.g. [b]{escape(example)}[/b], or press "
                "[b]R[/b] to run the experiments in scope. This monitor picks the store up as soon "
                "as it appears.")

    def _draw_status(self, queue: list[model.QueueRow], results: list[model.ResultRow]) -> None:
        counts = {state: 0 for state in model.QUEUE_STATES}
        for row in queue:
            counts[row.state] = counts.get(row.state, 0) + 1
        styles = {"running": "b yellow", "failed": "b red", "done": "green"}
        parts = [f"[{styles[s]}]{n} {s}[/]" if s in styles else f"{n} {s}"
                 for s, n in counts.items() if n]
        where = "no store yet" if not self.snapshot.exists else escape(self.shown_path)
        line = f"[b]fembed[/b] · {' · '.join(parts) or 'nothing in scope'} · {len(results)} result(s) · {where}"
        if self.snapshot.error:
            line += f" · [red]{escape(self.snapshot.error)}[/red]"
        self.main_screen.query_one("#status", Static).update(line)

    def _draw_detail(self) -> None:
        exp = self._experiments.get(self.selected) if self.selected else None
        if exp is None or self.view != "detail":  # drawn when shown (tab activation)
            return
        queue = next((row for row in self._queue_rows if row.exp.exp_id == exp.exp_id), None)
        result = next((row for row in self._result_rows if row.exp.exp_id == exp.exp_id), None)
        self.main_screen.query_one(DetailView).show(
            exp, queue, result, self.snapshot.records.get(exp.exp_id),
            self.snapshot.epochs.get(exp.exp_id, ()), self.registry.defaults, self.static)

    # -- events ------------------------------------------------------------------------------

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        # Both tables re-highlight when refilled: only the visible one chooses the experiment.
        if event.data_table.id == f"{self.view}-table" and event.row_key.value:
            self.select(event.row_key.value)

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        if event.data_table.id in ("queue-table", "results-table"):
            self.select(event.row_key.value)
            self.action_view("detail")

    def select(self, exp_id: str) -> None:
        """Make ``exp_id`` the Detail view's experiment (its epochs are polled from now on)."""
        if exp_id == self.selected:
            return
        self.selected = exp_id
        if self.snapshot.exists and exp_id not in self.snapshot.epochs:
            if self.static:  # no poll thread: read its epochs here
                self.apply_snapshot(self.poller.poll([exp_id]))
                return
            self.poll()  # its curves arrive with the next snapshot
        self._draw_detail()

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id == "filter":
            self.scope_text = event.value
            self.redraw()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self._focus_table()

    def on_tabbed_content_tab_activated(self, event: TabbedContent.TabActivated) -> None:
        self.refresh_bindings()
        self._draw_detail()

    def on_key(self, event) -> None:
        if event.key == "escape" and self.focused is not None and self.focused.id == "filter":
            event.stop()
            self._focus_table()

    # -- actions -----------------------------------------------------------------------------

    @property
    def view(self) -> str:
        tabs = self.main_screen.query(TabbedContent) if self.main_screen else None
        return tabs.first().active if tabs else "queue"  # before mount and while tearing down

    def check_action(self, action: str, parameters: tuple) -> bool | None:
        if self.main_screen is not None and self.screen is not self.main_screen:
            return action == "quit"  # a modal screen has the keys
        if action in ("sort", "reverse"):
            return self.view == "results"
        return True

    def action_view(self, view: str) -> None:
        self.main_screen.query_one(TabbedContent).active = view
        self._focus_table()
        if view in ("queue", "results"):
            key = selected_key(self.main_screen.query_one(f"#{view}-table", DataTable))
            if key:
                self.select(key)

    def _focus_table(self) -> None:
        target = {"queue": "#queue-table", "results": "#results-table"}.get(self.view)
        if target:
            self.main_screen.query_one(target, DataTable).focus()
        else:
            self.main_screen.query_one(DetailView).focus()

    def action_help(self) -> None:
        self.push_screen(HelpScreen())

    def action_focus_filter(self) -> None:
        self.main_screen.query_one("#filter", Input).focus()

    def set_scope(self, text: str) -> None:
        self.main_screen.query_one("#filter", Input).value = text  # Input.Changed redraws
        self.scope_text = text
        self.redraw()

    def action_clear_filter(self) -> None:
        self.set_scope("")

    def action_cycle(self, field: str) -> None:
        items = [model.queue_filter_item(row) for row in self._queue_rows]
        values = filters.distinct(items, "state" if field == "state" else field)
        if field == "state":
            values = [s for s in model.QUEUE_STATES if s in values]
        value = filters.next_value(self.scope_text, field, values)
        self.set_scope(filters.with_field(self.scope_text, field, value))

    def action_sort(self, step: int) -> None:
        self.main_screen.query_one(ResultsView).cycle_sort(step)

    def action_reverse(self) -> None:
        self.main_screen.query_one(ResultsView).reverse()

    def action_run_scope(self) -> None:
        exp_ids = [row.exp.exp_id for row in self.queue_in_scope() if row.exp.registered is not None]
        if not exp_ids:
            self.notify("No registry experiment in scope to run.", severity="warning")
            return
        command = launch.run_command(self.scope, exp_ids, self.registry.path, self.store_path.parent,
                                     **({"python": self.run_python} if self.run_python else {}))

        def answered(go: bool | None) -> None:
            if go:
                self.start_run(command)

        self.push_screen(ConfirmRunScreen(launch.display(command), len(exp_ids)), answered)

    def start_run(self, command: list[str]) -> None:
        try:
            process, log_path = launch.start(command, self.store_path.parent)
        except OSError as exc:
            self.notify(f"Could not start fembed run: {exc}", severity="error")
            return
        self.runs.append(process)
        self.notify(f"Started fembed run (pid {process.pid}); output in {log_path}", timeout=8)
