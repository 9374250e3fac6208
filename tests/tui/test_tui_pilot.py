"""Pilot tests of `fembed tui` against a store filled by a real tiny run (conftest.filled_store)."""

from __future__ import annotations

import os
import sqlite3

from textual.widgets import DataTable, Input, Label, Static, TabbedContent

from fembed_jax.store import RunStore
from fembed_jax.tui.app import FembedMonitor
from fembed_jax.tui.plots import CurvePlot
from fembed_jax.tui.queue_view import RunningBar
from fembed_jax.tui.results_view import ResultsView
from fembed_jax.tui.screens import ConfirmRunScreen, HelpScreen

EXPECTED_STATES = {"LF-01": "done", "LF-02": "done", "LF-03": "failed", "LF-04": "running",
                   "LF-05": "pending", "AE-01": "not queued"}
MAX_WAIT_STEPS = 400  # a hang guard (steps of 50 ms), not a timing requirement


def plain(cell) -> str:
    return getattr(cell, "plain", str(cell))


def column(table: DataTable, key: str) -> dict[str, str]:
    """Row key -> plain text of column ``key``, in displayed order."""
    index = [c.key.value for c in table.ordered_columns].index(key)
    return {row.key.value: plain(table.get_row(row.key)[index]) for row in table.ordered_rows}


def copy_store(source, target) -> None:
    """A consistent copy of a WAL store, swapped in atomically (a reader never sees half of it)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".partial")
    with sqlite3.connect(source) as src, sqlite3.connect(partial) as dst:
        src.backup(dst)
    src.close()
    dst.close()
    os.replace(partial, target)


async def wait_polls(app: FembedMonitor, pilot, polls: int = 2) -> None:
    """Wait until ``polls`` more snapshots have been applied (a poll already reading when the
    caller wrote may miss the write; the one after cannot)."""
    target = app.polls + polls
    for _ in range(MAX_WAIT_STEPS):
        if app.polls >= target:
            return
        await pilot.pause(0.05)
    raise AssertionError(f"the app applied {app.polls} snapshots, expected {target}")


def app_for(registry, path, **kwargs) -> FembedMonitor:
    return FembedMonitor(registry, path, **kwargs)


QUEUE_ORDER = ["LF-04", "LF-03", "LF-05", "LF-01", "LF-02", "AE-01"]  # running, failed, pending, done, not queued


async def test_queue_lists_every_experiment_with_its_state(filled_store, registry, fixture_clock):
    app = app_for(registry, filled_store.store_path, static=True, clock=fixture_clock)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        table = app.query_one("#queue-table", DataTable)
        states = column(table, "state")
        assert states == EXPECTED_STATES
        # By state (running first, not queued last), registry order within a state.
        assert list(states) == QUEUE_ORDER
        assert column(table, "note")["AE-01"] == "has a legacy result"
        assert column(table, "note")["LF-03"].startswith("ValueError: LF-03: tier a50")
        assert column(table, "progress")["LF-04"].endswith("2/10")
        assert column(table, "seeds")["LF-04"] == "1/2"
        bars = [bar for bar in app.query(RunningBar) if bar.display]
        assert len(bars) == 1
        label = str(bars[0].query_one("Label").render())
        assert "LF-04" in label and "epoch 2/10" in label and "seeds 1/2" in label
        assert "best AUC 0.580" in label  # the best val AUC of any seed so far (seed 0, epoch 1)
        # The whole queue in one line: 5 queued in scope, 2 done, LF-04 and LF-05 left.
        summary = str(app.query_one("#queue-summary", Label).render())
        assert summary.startswith("queue 2/5 done · 1 failed · 2 left · ETA ~")
        # The failed row's whole error shows under the table when highlighted.
        table.move_cursor(row=list(states).index("LF-03"))
        await pilot.pause()
        note = app.query_one("#queue-note", Static)
        assert note.display and "tier a50 data has 20 features" in str(note.render())


async def test_sorting_by_precision_and_auc(filled_store, registry, fixture_clock):
    with RunStore(filled_store.store_path, readonly=True) as store:
        stored = {r["exp_id"]: r for r in store.results(with_record=False)}
    by = lambda key: sorted(stored, key=lambda e: stored[e][key], reverse=True)  # noqa: E731
    app = app_for(registry, filled_store.store_path, static=True, clock=fixture_clock)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("2")
        view = app.query_one(ResultsView)
        table = view.table
        # Click the "precision" header.
        x = sum(c.get_render_width(table) for c in table.ordered_columns[:1]) + 2
        await pilot.click("#results-table", offset=(x, 0))
        await pilot.pause()
        assert view.sort_column == "precision" and view.descending
        assert view.order == by("precision_mean")
        await pilot.press("r")
        assert view.order == by("precision_mean")[::-1]
        # Keys: s moves the sort to the next columns: TP/pred+, recall, AUC.
        for _ in range(3):
            await pilot.press("s")
        assert view.sort_column == "auc"
        assert view.order == by("auc_mean")
        await pilot.press("S")
        assert view.sort_column == "recall"
        # The best AUC cell is highlighted, the others are not; a one-seed legacy result is
        # never ranked (AE-01's single draw is not a mean over seeds). Equal means all count as best
        # (the tiny runs can tie: their AUC on a few report windows is coarse).
        ranked = [e for e in stored if not stored[e]["legacy"]]
        top = max(stored[e]["auc_mean"] for e in ranked)
        best = {e for e in ranked if stored[e]["auc_mean"] == top}
        assert stored["AE-01"]["auc_mean"] > top  # the legacy draw is higher and still not green
        auc_index = [c.key.value for c in table.ordered_columns].index("auc")
        for key in view.order:
            cell = table.get_row(key)[auc_index]
            assert ("green" in str(cell.style)) == (key in best)


async def test_filter_narrows_queue_and_results(filled_store, registry, fixture_clock):
    app = app_for(registry, filled_store.store_path, static=True, clock=fixture_clock)
    async with app.run_test(size=(120, 40)) as pilot:
        queue = app.query_one("#queue-table", DataTable)
        results = app.query_one("#results-table", DataTable)
        await pilot.press("slash", *"p:LF-P8", "enter")
        assert [r.key.value for r in queue.ordered_rows] == ["LF-03", "LF-01", "LF-02"]
        assert sorted(r.key.value for r in results.ordered_rows) == ["LF-01", "LF-02"]
        assert app.focused is queue  # enter hands the keys back to the table
        await pilot.press("slash", "ctrl+u", *"focal", "escape")
        assert [r.key.value for r in queue.ordered_rows] == ["LF-02"]
        await pilot.press("x")
        assert queue.row_count == len(EXPECTED_STATES)
        # Key bindings cycle a field through the values present: p -> first priority, then next.
        await pilot.press("p")
        assert app.query_one("#filter", Input).value == "priority:LF-P8"
        await pilot.press("p")
        assert [r.key.value for r in queue.ordered_rows] == ["LF-04", "LF-05"]
        await pilot.press("x", "a")
        assert app.scope_text == "state:running"
        assert [r.key.value for r in queue.ordered_rows] == ["LF-04"]


async def test_detail_shows_the_selected_experiments_seeds(filled_store, registry, fixture_clock):
    with RunStore(filled_store.store_path, readonly=True) as store:
        record = store.result("LF-02")["record"]
    app = app_for(registry, filled_store.store_path, static=True, clock=fixture_clock)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("2")
        results = app.query_one("#results-table", DataTable)
        results.move_cursor(row=results.get_row_index("LF-02"))
        await pilot.press("enter")
        await pilot.pause()
        assert app.query_one(TabbedContent).active == "detail"
        assert "LF-02" in str(app.query_one("#detail-title", Static).render())
        seeds = app.query_one("#seeds-table", DataTable)
        assert column(seeds, "seed") == {"0": "42", "1": "43"}
        assert list(column(seeds, "precision").values()) == [
            f"{m['precision']:.3f}" for m in record["val_metrics_per_seed"]]
        plots = {plot.id: list(plot.series) for plot in app.query(CurvePlot)}
        assert plots == {f"plot-{m}": ["seed 42", "seed 43"] for m in ("val_auc", "val_loss", "train_loss")}
        # The running experiment: live per-seed progress from the store's epoch rows.
        await pilot.press("1")
        queue = app.query_one("#queue-table", DataTable)
        queue.move_cursor(row=queue.get_row_index("LF-04"))
        await pilot.press("enter")
        await pilot.pause()
        assert column(seeds, "state") == {"0": "training", "1": "stopped"}
        assert column(seeds, "epochs") == {"0": "2", "1": "2"}


async def test_a_state_change_appears_within_the_refresh(filled_store, registry, fixture_clock, tmp_path):
    path = tmp_path / "outputs" / "fembed.db"
    copy_store(filled_store.store_path, path)
    app = app_for(registry, path, refresh_s=0.1, clock=fixture_clock)
    async with app.run_test(size=(120, 40)) as pilot:
        queue = app.query_one("#queue-table", DataTable)
        assert column(queue, "state")["LF-05"] == "pending"
        with RunStore(path) as writer:
            assert writer.claim("LF-05", "elsewhere:1:beef")
            writer.mark_failed("LF-04", "testhost:4242:cafe0001", "RuntimeError: out of memory")
        await wait_polls(app, pilot)
        states = column(queue, "state")
        assert states["LF-05"] == "running" and states["LF-04"] == "failed"
        assert "out of memory" in column(queue, "note")["LF-04"]
        with RunStore(path) as writer:
            record = writer.result("LF-01")["record"]
            writer.record_result("LF-05", writer.experiment("LF-05")["run_hash"],
                                 dict(record, exp_id="LF-05"))
        await wait_polls(app, pilot)
        assert column(queue, "state")["LF-05"] == "done"
        assert "LF-05" in [r.key.value for r in app.query_one("#results-table", DataTable).ordered_rows]


async def test_no_store_yet_then_the_store_appears(filled_store, registry, fixture_clock, tmp_path):
    path = tmp_path / "outputs" / "fembed.db"
    app = app_for(registry, path, refresh_s=0.1, clock=fixture_clock)
    async with app.run_test(size=(80, 24)) as pilot:
        notice = app.query_one("#empty-notice", Static)
        assert notice.display and "fembed run" in str(notice.render())
        queue = app.query_one("#queue-table", DataTable)
        assert set(column(queue, "state").values()) == {"not queued"}
        assert not path.exists()  # the monitor never creates the store
        copy_store(filled_store.store_path, path)
        await wait_polls(app, pilot)
        assert not notice.display
        assert column(queue, "state") == EXPECTED_STATES


async def test_help_screen_footer_and_quit(filled_store, registry, fixture_clock):
    app = app_for(registry, filled_store.store_path, static=True, clock=fixture_clock)
    async with app.run_test(size=(80, 24)) as pilot:
        footer_keys = {b.key for _, b, enabled, _ in app.active_bindings.values() if b.show and enabled}
        assert {"q", "question_mark", "slash", "R"} <= footer_keys
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        await pilot.press("escape")
        assert not isinstance(app.screen, HelpScreen)
        await pilot.press("q")
    assert app.return_code == 0


async def test_run_scope_asks_then_starts_fembed_run(filled_store, registry, fixture_clock, monkeypatch):
    from fembed_jax.tui import launch

    started = []

    class FakeProcess:
        pid = 4321

        def poll(self):
            return None

    monkeypatch.setattr(launch, "start", lambda command, outputs: started.append(command)
                        or (FakeProcess(), outputs / "tui-run.log"))
    app = app_for(registry, filled_store.store_path, static=True, clock=fixture_clock, scope="priority:LF-P8")
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("R")
        assert isinstance(app.screen, ConfirmRunScreen)
        assert "run --priority LF-P8 --outputs" in app.screen.command
        await pilot.press("n")
        assert not started
        await pilot.press("R", "y")
        await pilot.pause()
    assert len(started) == 1
    assert started[0][started[0].index("run"):] == ["run", "--priority", "LF-P8", "--outputs",
                                                    str(filled_store.outputs)]


def test_cli_tui_validates_its_options(filled_store, monkeypatch):
    from fembed_jax.cli import cmd_tui
    from fembed_jax.cli.main import main
    from fembed_jax.tui import app as app_module

    registry = str(filled_store.registry_path)
    assert main(["--registry", registry, "tui", "--priority", "XX-P1"]) == 2
    assert main(["--registry", registry, "tui", "--refresh", "0"]) == 2
    seen = {}
    monkeypatch.setattr(app_module.FembedMonitor, "run", lambda self: seen.update(
        path=self.store_path, scope=self.scope_text, refresh=self.refresh_s))
    assert main(["--registry", registry, "tui", "-p", "LF-P8", "--tier", "a20", "--refresh", "2"]) == 0
    assert seen == {"path": filled_store.store_path, "scope": "priority:LF-P8 tier:a20", "refresh": 2.0}
    assert cmd_tui.initial_scope(type("A", (), {"exp_id": ["LF-01", "LF-02"]})()) == "id:LF-01,LF-02"


async def test_a_tab_event_delivered_after_the_screens_are_gone_is_ignored(filled_store, registry, fixture_clock):
    """A TabActivated still queued when the app shuts down (seen once in a suite run: the
    handler's refresh_bindings raised ScreenStackError and failed the test that closed it)."""
    app = app_for(registry, filled_store.store_path, static=True, clock=fixture_clock)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
    assert not app.screen_stack
    app.on_tabbed_content_tab_activated(None)


async def test_detail_labels_a_result_of_an_older_config(filled_store, registry, fixture_clock, tmp_path):
    path = tmp_path / "outputs" / "fembed.db"
    copy_store(filled_store.store_path, path)
    with RunStore(path) as writer:  # LF-01 requeued with 5 epochs: its 2-epoch result is of another config
        writer.sync_queue([{**registry.get("LF-01").replace(epochs=5).to_dict(), "run_hash": "five-epochs"}])
    app = app_for(registry, path, static=True, clock=fixture_clock)
    async with app.run_test(size=(120, 40)) as pilot:
        app.select("LF-01")
        app.action_view("detail")
        await pilot.pause()
        summary = str(app.query_one("#detail-summary", Static).render())
        assert summary.startswith("result of an older config (epochs 2; queued now: epochs 5)")
        assert "of the older config's result" in str(app.query_one("#seeds-heading", Label).render())
        # LF-02 is current: no label.
        app.select("LF-02")
        await pilot.pause()
        assert "older config" not in str(app.query_one("#detail-summary", Static).render())


def _legacy_copy(exp_id: str, precision: float) -> dict:
    from fembed_jax.legacy import normalise

    raw = {"exp_id": exp_id, "priority": "LF-P8", "description": "original", "tier": "a20", "num_features": 20,
           "d_embed": 8, "parameters": {"estimated": 20_000, "actual": 20_961},
           "training": {"training_time_min": 0.5},
           "val_metrics": {"precision": precision, "recall": 0.125, "auc": 0.9, "n_positive_preds": 10,
                           "pred_range": 0.8, "n_samples": 78},
           "timestamp": "2026-02-07T00:47:14"}
    return normalise(raw, f"/legacy/{exp_id}/results.json", sha256="0" * 64)


async def test_legacy_copies_beside_a_fembed_result_are_listed_and_never_best(
        filled_store, registry, fixture_clock, tmp_path):
    import json

    path = tmp_path / "outputs" / "fembed.db"
    copy_store(filled_store.store_path, path)
    copies = path.parent / "legacy"
    copies.mkdir()
    # import-legacy kept LF-01's original here (the store holds LF-01's fembed result), and
    # AE-01's (the store holds that one too: it must not be listed twice).
    (copies / "LF-01.json").write_text(json.dumps(_legacy_copy("LF-01", 0.9)))
    (copies / "AE-01.json").write_text(json.dumps(_legacy_copy("AE-01", 0.4)))
    app = app_for(registry, path, static=True, clock=fixture_clock)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("2")
        view = app.query_one(ResultsView)
        view.sort_by("precision")
        await pilot.pause()
        assert sorted(view.order) == ["AE-01", "LF-01", "LF-01#legacy", "LF-02"]
        assert view.order[0] == "LF-01#legacy"  # the highest precision: 9/10 of one seed
        ids = column(view.table, "id")
        assert ids["LF-01#legacy"] == "LF-01 legacy" and ids["LF-01"] == "LF-01"
        index = [c.key.value for c in view.table.ordered_columns].index("precision")
        green = [key for key in view.order if "green" in str(view.table.get_row(key)[index].style)]
        assert green and not [key for key in green if "legacy" in key or key == "AE-01"]
        # Enter on the copy opens LF-01, whose Detail shows both for comparison.
        await pilot.press("enter")
        await pilot.pause()
        assert app.selected == "LF-01"
        summary = str(app.query_one("#detail-summary", Static).render())
        assert "legacy result (original system, one seed), kept in outputs/legacy/: precision 0.900" in summary
        # The Queue notes the legacy result too.
        assert column(app.query_one("#queue-table", DataTable), "note")["LF-01"] == "has a legacy result"


def test_the_poller_scores_each_result_as_the_report_does(filled_store):
    """Issue 18: the Results table's ensemble intervals are the report's own figures, a bounded
    amount a poll (here: one result a poll), and polling loads neither jax nor the trainer."""
    import subprocess
    import sys

    from fembed_jax import stats
    from fembed_jax.predictions import load_predictions
    from fembed_jax.report import collect
    from fembed_jax.report.collect import scored_predictions
    from fembed_jax.tui.poller import StorePoller

    poller = StorePoller(filled_store.store_path, report_budget_s=0.0)
    try:
        first = poller.poll().reported
        assert sorted(first) == ["LF-01", "LF-02"]  # fembed results only: AE-01 is legacy
        assert [e for e, r in first.items() if r.scored] == ["LF-01"]  # the budget: one a poll
        second = poller.poll().reported
    finally:
        poller.close()
    assert all(r.scored for r in second.values()) and second["LF-01"] is first["LF-01"]  # scored once
    with RunStore(filled_store.store_path, readonly=True) as store:
        records = {e: store.result(e)["record"] for e in second}
    report = {e.exp_id: e for e in collect(filled_store.outputs).fembed}
    for exp_id, reported in second.items():
        record = records[exp_id]
        expected = stats.experiment_stats(
            record, scored_predictions(load_predictions(filled_store.outputs, exp_id), record))
        assert expected["ensemble_auc"] is not None
        assert reported.auc == expected["ensemble_auc"] == report[exp_id].stats["ensemble_auc"]
        assert reported.pr_auc == expected["ensemble_pr_auc"] == report[exp_id].stats["ensemble_pr_auc"]
        assert reported.protocol is None and not report[exp_id].other_protocol
    code = ("import sys; from fembed_jax.tui.poller import StorePoller; "
            f"snap = StorePoller({str(filled_store.store_path)!r}, report_budget_s=None).poll(); "
            "assert all(r.scored and r.auc for r in snap.reported.values()), snap.reported; "
            "print(sorted(m for m in sys.modules if m.startswith(('fembed_jax.train', 'jax'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


async def test_the_results_table_shows_the_ensemble_intervals(filled_store, registry, fixture_clock):
    from fembed_jax.tui import fmt

    app = app_for(registry, filled_store.store_path, static=True, clock=fixture_clock)
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.press("2")
        table = app.query_one(ResultsView).table
        auc, pr_auc = column(table, "auc_ci"), column(table, "pr_auc")
        reported = app.snapshot.reported
        for exp_id in ("LF-01", "LF-02"):
            figure = reported[exp_id].auc
            assert auc[exp_id] == fmt.interval(figure["auc"], figure["low"], figure["high"])
            assert pr_auc[exp_id].startswith(f"{reported[exp_id].pr_auc['pr_auc']:.3f} [")
        assert auc["AE-01"] == pr_auc["AE-01"] == "-"  # legacy: no predictions
