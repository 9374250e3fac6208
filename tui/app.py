"""`fembed tui`: a live monitor of the run store — queue, results, one experiment's detail.

The app polls the store every ``refresh_s`` seconds in a worker thread (StorePoller: a few
cheap read-only queries; WAL means a reader never blocks the runner) and redraws from the
snapshot it posts back. ``static=True`` is for snapshot tests: one synchronous read at start,
no polling, every clock-dependent time masked.
"""

from __future__ import annotations

import dataclasses
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
from .logtail import RUN_LOG
from .model import StoreSnapshot
from .overlay import OverlayScreen
from .poller import StorePoller
from .queue_view import QueueView
from .results_view import ResultsView
from .runs import LaunchedRun
from .runs_view import RunsView
from .screens import ConfirmRunScreen, ConfirmStopScreen, HelpScreen
from .tables import selected_key

VIEWS = ("queue", "results", "detail", "runs")
TABLES = {"queue": "#queue-table", "results": "#results-table", "runs": "#runs-table"}


class SnapshotReady(Message):
    def __init__(self, snapshot: StoreSnapshot) -> None:
        super().__init__()
        self.snapshot = snapshot


class FembedMonitor(App):
    """The monitor. ``registry`` gives the experiments and defaults, ``store_path`` the store."""

    CSS_PATH = "fembed.tcss"
    TITLE = "fembed"
    ENABLE_COMMAND_PALETTE = False  # every action has a key; the footer needs the room at 80 columns
    # The footer shows the keys of the view at hand (check_action hides the others): at 80
    # columns all of them fit. 1-4 are on the tabs themselves, so the footer leaves them out.
    BINDINGS = [
        Binding("q", "quit", "Quit"),
        Binding("question_mark,f1", "help", "Help", key_display="?"),
        # priority: handled as the app reads the key, before the keys queued behind it are
        # handed to the focused table (a burst "/FE-6⏎" must all land in the filter). The
        # filter syntax has no "/", so the Input never needs the key itself.
        Binding("slash", "focus_filter", "Filter", key_display="/", priority=True),
        Binding("1", "view('queue')", "Queue", show=False),
        Binding("2", "view('results')", "Results", show=False),
        Binding("3", "view('detail')", "Detail", show=False),
        Binding("4", "view('runs')", "Runs", show=False),
        Binding("escape", "back", "Back", key_display="esc"),
        Binding("s", "sort(1)", "Sort"),
        Binding("S", "sort(-1)", "Sort back", show=False),
        Binding("r", "reverse", "Reverse"),
        Binding("R", "run_scope", "Run", key_display="R"),
        Binding("k", "stop_run", "Stop run"),
        Binding("m", "mark", "Mark"),
        Binding("c", "compare", "Compare"),
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
        # One read in static mode: it scores every result, so a snapshot has all the figures.
        self.poller = StorePoller(self.store_path, report_budget_s=None) if static else StorePoller(self.store_path)
        self.main_screen = None  # set on mount
        self.snapshot = StoreSnapshot(self.store_path, exists=False)
        self.scope_text = scope
        self.selected: str | None = None
        self.marked: str | None = None  # m marks it; c overlays its curves with the selected one's
        self.polls = 0  # snapshots applied (tests wait on it)
        self.runs: list[LaunchedRun] = []  # processes started with R
        self._came_from = "queue"  # the view Detail was opened from (esc goes back there)
        self._polling = False
        self._experiments: dict[str, model.Experiment] = {}
        self._queue_rows: list[model.QueueRow] = []
        self._result_rows: list[model.ResultRow] = []

    # -- layout ------------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield Static(id="status")
        yield Static(id="machine")
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
            with TabPane("4 Runs", id="runs"):
                yield RunsView(id="runs-view")
        yield Footer(compact=True)

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
            self._poll_thread(self._watched())

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
            self.apply_snapshot(self.poller.poll(self._watched()))
        else:
            self.poll()

    def _watched(self) -> list[str]:
        """The experiments whose epoch rows (and run log) each poll reads besides the running ones."""
        return [e for e in dict.fromkeys((self.selected, self.marked)) if e]

    def apply_snapshot(self, snap: StoreSnapshot) -> None:
        if snap.error and self.snapshot.exists and not snap.experiments:
            snap = dataclasses.replace(self.snapshot, path=snap.path, exists=True, error=snap.error)
        if not self.main_screen.query(QueueView):  # tearing down: nothing left to draw on
            return
        self.snapshot = snap
        now = self.clock()
        self._experiments = model.experiments(self.registry.experiments, snap)
        self._queue_rows = model.queue_rows(self._experiments, snap, now)
        self._result_rows = model.result_rows(self._experiments, snap)
        self._poll_runs()
        try:
            self.redraw()
            if isinstance(self.screen, OverlayScreen):
                self.screen.show(*(self._curves_of(exp_id) for exp_id in self.screen.ids))
        except NoMatches:  # quitting while a poll landed: widgets went between check and draw
            return
        self.polls += 1

    def _poll_runs(self) -> None:
        """Reap the runs started here that ended (no zombie stays behind) and say how."""
        ended = [run for run in self.runs if run.poll()]
        for run in ended:
            ok = run.returncode == 0 or run.stop_requested
            self.notify(f"fembed run (pid {run.pid}) ended: {run.state}; output in {run.log_path}",
                        severity="information" if ok else "error", timeout=10)
        if ended:
            self.refresh_bindings()  # k has nothing left to stop

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
        queue_view.show(queue, self.static, model.queue_summary(queue, results), self._runs_line())
        self.main_screen.query_one(ResultsView).show(results, self.static, self.marked)
        self.main_screen.query_one(RunsView).show(self.runs, self.static)
        self._draw_status(queue, results)
        self._draw_machine(queue)
        self._draw_detail()

    def _draw_machine(self, queue: list[model.QueueRow]) -> None:
        """The runners' CPU/RSS/GPU line under the status line, while something runs."""
        line = model.machine_line(queue, self.snapshot, self.clock(), self.static)
        machine = self.main_screen.query_one("#machine", Static)
        machine.display = bool(line)
        machine.update(line)

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

    def _runs_line(self) -> str:
        """The runs started here that are still going, for the Queue's running panel."""
        alive = [run for run in self.runs if run.alive]
        if not alive:
            return ""
        pids = ", ".join(f"{run.pid} {run.state}" for run in alive)
        return f"[b]started here[/b]: pid {pids} · [b]k[/b] stops · [b]4[/b] Runs lists them"

    def _draw_status(self, queue: list[model.QueueRow] | None = None,
                     results: list[model.ResultRow] | None = None) -> None:
        queue = self.queue_in_scope() if queue is None else queue
        results = self.results_in_scope() if results is None else results
        counts = {state: 0 for state in model.QUEUE_STATES}
        for row in queue:
            counts[row.state] = counts.get(row.state, 0) + 1
        styles = {"running": "b yellow", "failed": "b red", "done": "green", "interrupted": "magenta"}
        parts = [f"[{styles[s]}]{n} {s}[/]" if s in styles else f"{n} {s}"
                 for s, n in counts.items() if n]
        where = "no store yet" if not self.snapshot.exists else escape(self.shown_path)
        line = f"[b]fembed[/b] · {' · '.join(parts) or 'nothing in scope'} · {len(results)} result(s)"
        sort = self.main_screen.query_one(ResultsView).sort_text if self.view == "results" else ""
        if sort:  # the sorted column may be scrolled off screen: say it here too
            line += f" · {escape(sort)}"
        if self.marked:
            line += f" · marked [b]{escape(self.marked)}[/b] (c compares)"
        line += f" · {where}"
        if self.snapshot.error:
            line += f" · [red]{escape(self.snapshot.error)}[/red]"
        self.main_screen.query_one("#status", Static).update(line)

    def _draw_detail(self) -> None:
        exp = self._experiments.get(self.selected) if self.selected else None
        if exp is None or self.view != "detail":  # drawn when shown (tab activation)
            return
        queue = next((row for row in self._queue_rows if row.exp.exp_id == exp.exp_id), None)
        result = next((row for row in self._result_rows if row.exp.exp_id == exp.exp_id and not row.copy), None)
        log = self.snapshot.logs.get(exp.exp_id)
        log_name = None
        if self.static:  # the outputs folder is a temporary one: name it by its last part
            log_name = f"{self.store_path.parent.name}/{exp.exp_id}/{RUN_LOG}"
        self.main_screen.query_one(DetailView).show(
            exp, queue, result, self.snapshot.records.get(exp.exp_id),
            self.snapshot.epochs.get(exp.exp_id, ()), self.registry.defaults, self.static,
            self.snapshot.legacy_copies.get(exp.exp_id), log, log_name)

    def _curves_of(self, exp_id: str) -> model.Curves:
        return model.curves(self.snapshot.epochs.get(exp_id, ()), self.snapshot.records.get(exp_id))

    # -- events ------------------------------------------------------------------------------

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        # Both tables re-highlight when refilled: only the visible one chooses the experiment.
        table = event.data_table.id
        if table in ("queue-table", "results-table") and table == f"{self.view}-table" and event.row_key.value:
            self.select(model.exp_id_of(event.row_key.value))

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        if event.data_table.id in ("queue-table", "results-table"):
            self.select(model.exp_id_of(event.row_key.value))
            self.action_view("detail")

    def on_results_view_sorted(self, event: ResultsView.Sorted) -> None:
        self._draw_status()

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
        if not self.screen_stack:  # delivered while the app shuts down: no screen to draw on
            return
        self.refresh_bindings()
        self._draw_status()
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
        if action == "back":
            return self.view == "detail"
        if action == "stop_run":
            return any(run.alive for run in self.runs)
        if action == "mark":  # two experiments are picked from the results table
            return self.view == "results"
        if action == "compare":  # with the highlighted row, or the experiment Detail shows
            return bool(self.marked) and self.view in ("results", "detail")
        return True

    def action_view(self, view: str) -> None:
        if view == "detail" and self.view != "detail":
            self._came_from = self.view
        self.main_screen.query_one(TabbedContent).active = view
        self._focus_table()
        if view in ("queue", "results"):
            key = selected_key(self.main_screen.query_one(f"#{view}-table", DataTable))
            if key:
                self.select(model.exp_id_of(key))

    def action_back(self) -> None:
        """Detail -> the view it was opened from."""
        self.action_view(self._came_from if self._came_from != "detail" else "queue")

    def _focus_table(self) -> None:
        target = TABLES.get(self.view)
        if target:
            self.main_screen.query_one(target, DataTable).focus()
        else:
            self.main_screen.query_one(DetailView).focus()

    def action_help(self) -> None:
        self.push_screen(HelpScreen())

    def action_focus_filter(self) -> None:
        # At once, not with Widget.focus (deferred until after the queued events): keys typed
        # or pasted in the same burst as / must land in the filter, not open Detail.
        self.main_screen.set_focus(self.main_screen.query_one("#filter", Input))

    def set_scope(self, text: str) -> None:
        self.main_screen.query_one("#filter", Input).value = text  # Input.Changed redraws
        self.scope_text = text
        self.redraw()

    def action_clear_filter(self) -> None:
        self.set_scope("")

    def action_cycle(self, field: str) -> None:
        """The next value of ``field`` among the experiments the rest of the filter keeps (so
        p then t never lands on a tier with nothing in scope), then back to all."""
        rest = filters.Scope.parse(filters.with_field(self.scope_text, field, None))
        order = {exp_id: i for i, exp_id in enumerate(self._experiments)}  # registry order, not the Queue's
        rows = sorted(self._queue_rows, key=lambda row: order.get(row.exp.exp_id, len(order)))
        items = [item for item in map(model.queue_filter_item, rows) if rest.matches(item)]
        values = filters.distinct(items, field)
        if field == "state":
            values = [s for s in model.QUEUE_STATES if s in values]
        value = filters.next_value(self.scope_text, field, values)
        self.set_scope(filters.with_field(self.scope_text, field, value))

    def action_sort(self, step: int) -> None:
        self.main_screen.query_one(ResultsView).cycle_sort(step)

    def action_reverse(self) -> None:
        self.main_screen.query_one(ResultsView).reverse()

    def action_run_scope(self) -> None:
        in_scope = [row for row in self.queue_in_scope() if row.exp.registered is not None]
        if not in_scope:
            self.notify("No registry experiment in scope to run.", severity="warning")
            return
        settings = launch.queued_settings(in_scope)
        rows = [row for row in in_scope if row.exp.exp_id in settings.only] if settings.only else in_scope
        items = [model.queue_filter_item(row) for row in self._queue_rows if row.exp.registered is not None]
        command = launch.run_command(self.scope, [row.exp.exp_id for row in rows], self.registry.path,
                                     self.store_path.parent, items=items, seeds=settings.seeds,
                                     epochs=settings.epochs, by_id=bool(settings.only),
                                     **({"python": self.run_python} if self.run_python else {}))
        shown = launch.display(command)

        def answered(go: bool | None) -> None:
            if go:
                self.start_run(command, shown)

        self.push_screen(ConfirmRunScreen(shown, len(rows), self._breakdown(rows), settings.note), answered)

    def _breakdown(self, rows: list[model.QueueRow]) -> str:
        """What the experiments of a run are now, e.g. "1 interrupted · 2 pending · 180 not
        queued", and how many hold a result that `fembed run` will refuse to replace."""
        counts: dict[str, int] = {}
        for row in rows:
            counts[row.state] = counts.get(row.state, 0) + 1
        text = " · ".join(f"{counts[s]} {s}" for s in model.QUEUE_STATES if s in counts)
        ids = {row.exp.exp_id for row in rows}
        older = sum(1 for r in self._result_rows if r.exp.exp_id in ids and not r.legacy and r.current is False)
        if older:
            text += (f". {older} hold a result of an older config: `fembed run` refuses to replace a "
                     "finished result without --force (it then trains nothing; see the log)")
        return text

    def start_run(self, command: list[str], shown: str | None = None) -> None:
        try:
            process, log_path = launch.start(command, self.store_path.parent)
        except OSError as exc:
            self.notify(f"Could not start fembed run: {exc}", severity="error")
            return
        self.runs.append(LaunchedRun(process, shown or launch.display(command), log_path, time.time()))
        self.notify(f"Started fembed run (pid {process.pid}); output in {log_path}", timeout=8)
        self.refresh_bindings()
        self.redraw()

    def action_mark(self) -> None:
        """Mark the highlighted experiment (again: unmark it) for ``c``."""
        exp_id = self.selected
        if exp_id is None:
            self.notify("Highlight an experiment first.", severity="warning")
            return
        self.marked = None if self.marked == exp_id else exp_id
        if self.marked:
            self.notify(f"Marked {exp_id}: highlight another experiment and press c to compare their curves.")
            if not self.static:
                self.poll()  # its epoch rows come with the next snapshot
        self.refresh_bindings()
        self.redraw()

    def action_compare(self) -> None:
        """The marked and the highlighted experiment's mean curves in one chart."""
        if not self.marked:
            self.notify("Press m on an experiment first, then c on another.", severity="warning")
            return
        if self.selected is None or self.selected == self.marked:
            self.notify(f"{self.marked} is marked: highlight another experiment to compare with.",
                        severity="warning")
            return
        ids = [self.marked, self.selected]
        if self.static and any(e not in self.snapshot.epochs for e in ids):
            self.apply_snapshot(self.poller.poll(ids))
        self.push_screen(OverlayScreen(*ids, *(self._curves_of(e) for e in ids)))

    def action_stop_run(self) -> None:
        """SIGINT (after a confirm) to a run started here: the highlighted one in Runs, else
        the only one still going."""
        alive = [run for run in self.runs if run.alive]
        run = None
        if self.view == "runs":
            pid = self.main_screen.query_one(RunsView).selected_pid()
            run = next((r for r in alive if r.pid == pid), None)
            if run is None:
                self.notify("The highlighted run has ended; pick a running one.", severity="warning")
                return
        elif len(alive) == 1:
            run = alive[0]
        elif not alive:
            self.notify("No run started from this monitor is running.", severity="warning")
            return
        else:
            self.action_view("runs")
            self.notify(f"{len(alive)} runs are going: highlight one here and press k.")
            return

        def answered(go: bool | None) -> None:
            if go and run.alive:
                launch.interrupt(run.process)
                run.stop_requested = True
                self.notify(f"Sent SIGINT to fembed run (pid {run.pid}): it stops after the current epoch.")
                self.redraw()

        self.push_screen(ConfirmStopScreen(run.pid, run.command, run.stop_requested), answered)
