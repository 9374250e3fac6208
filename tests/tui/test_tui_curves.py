"""Issue 18's remaining items: curves on one scale (textual-plotext), the overlay of two
experiments, the run log tail, the machine header and an ETA that waits out compiling."""

from __future__ import annotations

import os
import socket
import time

import pytest
from textual.app import App, ComposeResult
from textual.widgets import DataTable, Label, Log, Static

from test_tui_pilot import app_for, column, copy_store, wait_polls

from fembed_jax.store import RunStore
from fembed_jax.tui.detail_view import DetailView
from fembed_jax.tui.logtail import LogTail, run_log_path
from fembed_jax.tui.overlay import OverlayScreen
from fembed_jax.tui.plots import CurvePlot

# LF-04's two recorded epochs (conftest.RUNNING_EPOCHS): val AUC 0.52/0.55 then 0.58/0.54.
LF04_AUC = (0.52, 0.55, 0.58, 0.54)
MAX_WAIT_STEPS = 400


def braille(text: str) -> int:
    return sum(1 for ch in text if 0x2801 <= ord(ch) <= 0x28FF)


async def open_detail(app, pilot, exp_id: str) -> DetailView:
    await pilot.pause()
    app.select(exp_id)
    app.action_view("detail")
    await pilot.pause()
    await pilot.pause()
    return app.query_one(DetailView)


async def test_the_plots_show_every_seed_on_one_scale(filled_store, registry, fixture_clock):
    app = app_for(registry, filled_store.store_path, static=True, clock=fixture_clock)
    async with app.run_test(size=(120, 40)) as pilot:
        await open_detail(app, pilot, "LF-04")
        auc = app.query_one("#plot-val_auc", CurvePlot)
        assert list(auc.series) == ["seed 42", "seed 43"]
        lo, hi = auc.y_range
        assert lo <= min(LF04_AUC) and hi >= max(LF04_AUC)  # one range for both seeds
        assert hi - lo < 2 * (max(LF04_AUC) - min(LF04_AUC))  # and not a loose one
        assert auc.best[1:] == (2, 0.58) and auc.best[0] == "seed 42"
        text = auc.render().plain
        assert "val AUC · best 0.580 (s42 ep 2)" in text and braille(text) > 4  # 3 plots across at 120
        for key in ("val_loss", "train_loss"):
            plot = app.query_one(f"#plot-{key}", CurvePlot)
            values = [v for series in plot.series.values() for v in series if v is not None]
            assert len(values) == 4 and plot.y_range[0] <= min(values) and plot.y_range[1] >= max(values)
        legend = str(app.query_one("#curves-legend", Static).render())
        assert "seed 42" in legend and "seed 43" in legend
        assert not app.query(".curve-line")  # the one-row sparklines are gone
        # A finished experiment: its curves from the store's epoch rows, both seeds.
        await open_detail(app, pilot, "LF-02")
        assert list(app.query_one("#plot-val_auc", CurvePlot).series) == ["seed 42", "seed 43"]


async def test_the_plots_fit_80_columns_and_use_200(filled_store, registry, fixture_clock):
    for width, side_by_side in ((80, False), (200, True)):
        app = app_for(registry, filled_store.store_path, static=True, clock=fixture_clock)
        async with app.run_test(size=(width, 50)) as pilot:
            await open_detail(app, pilot, "LF-04")
            plots = [app.query_one(f"#plot-{k}", CurvePlot) for k in ("val_auc", "val_loss", "train_loss")]
            regions = [p.region for p in plots]
            assert all(r.right <= width and r.width > 0 for r in regions), (width, regions)
            rows = {r.y for r in regions}
            if side_by_side:
                assert len(rows) == 1 and sum(r.width for r in regions) > 180  # 3 across, the full width
            else:
                assert len(rows) == 3 and all(r.width >= 74 for r in regions)  # stacked, full width
            text = plots[0].render().plain
            assert max(map(len, text.splitlines())) <= regions[0].width
            assert "val AUC · best 0.580 (seed 42, epoch 2)" in text  # room for the long title


class _PlotApp(App):
    def compose(self) -> ComposeResult:
        yield CurvePlot("val AUC", True, id="plot")


async def test_thousands_of_epochs_draw_in_a_cell_budget():
    epochs = 5000
    series = {f"seed {42 + s}": [0.5 + 0.1 * ((i * (s + 1)) % 97) / 97 for i in range(epochs)] for s in range(5)}
    app = _PlotApp()
    async with app.run_test(size=(80, 20)) as pilot:
        plot = app.query_one(CurvePlot)
        plot.show(series)
        await pilot.pause()
        start = time.perf_counter()
        plot.render()
        took = time.perf_counter() - start
        assert plot.drawn_points <= 5 * 2 * plot.size.width  # at most two points a cell per seed
        assert took < 1.0, took  # ~30 ms on a free core; a hang guard, not a benchmark
        lo, hi = plot.y_range
        assert lo <= min(min(v) for v in series.values()) and hi >= max(max(v) for v in series.values())
        # The same data again: no redraw asked for.
        key = plot._key
        plot.show(series)
        assert plot._key is key


async def test_mark_then_compare_opens_and_closes_the_overlay(filled_store, registry, fixture_clock):
    app = app_for(registry, filled_store.store_path, static=True, clock=fixture_clock)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("2")
        results = app.query_one("#results-table", DataTable)
        results.move_cursor(row=results.get_row_index("LF-01"))
        await pilot.pause()
        await pilot.press("m")
        assert app.marked == "LF-01"
        assert "◆" in column(results, "id")["LF-01"]
        assert "marked LF-01" in str(app.query_one("#status", Static).render())
        await pilot.press("c")  # the marked one is highlighted: nothing to compare with
        assert not isinstance(app.screen, OverlayScreen)
        results.move_cursor(row=results.get_row_index("LF-02"))
        await pilot.pause()
        await pilot.press("c")
        await pilot.pause()
        assert isinstance(app.screen, OverlayScreen)
        auc = app.screen.query_one("#overlay-val_auc", CurvePlot)
        assert list(auc.series) == ["LF-01", "LF-02"]  # each experiment one line (one colour)
        with RunStore(filled_store.store_path, readonly=True) as store:
            rows = {e: store.epochs(e) for e in ("LF-01", "LF-02")}
        means = {}
        for exp_id, epoch_rows in rows.items():
            n = max(r["epoch"] for r in epoch_rows) + 1
            per_epoch = [[r["val_auc"] for r in epoch_rows if r["epoch"] == k and r["val_auc"] is not None]
                         for k in range(n)]
            means[exp_id] = [sum(v) / len(v) for v in per_epoch]
            assert auc.series[exp_id] == pytest.approx(means[exp_id])
        lo, hi = auc.y_range
        assert lo <= min(min(m) for m in means.values()) and hi >= max(max(m) for m in means.values())
        loss = app.screen.query_one("#overlay-val_loss", CurvePlot)
        assert list(loss.series) == ["LF-01", "LF-02"] and loss.y_range is not None
        assert "2 seeds" in str(app.screen.query_one("#overlay-legend", Static).render())
        await pilot.press("escape")
        await pilot.pause()
        assert not isinstance(app.screen, OverlayScreen)
        # From Detail, c compares the marked one with the experiment shown.
        await pilot.press("enter")
        await pilot.pause()
        await pilot.press("c")
        await pilot.pause()
        assert isinstance(app.screen, OverlayScreen) and app.screen.ids == ("LF-01", "LF-02")
        await pilot.press("q")  # q closes the overlay, not the app
        await pilot.pause()
        assert not isinstance(app.screen, OverlayScreen) and app.is_running
        await pilot.press("2")
        await pilot.press("home")
        results.move_cursor(row=results.get_row_index("LF-01"))
        await pilot.pause()
        await pilot.press("m")  # again: unmarked
        assert app.marked is None and "◆" not in column(results, "id")["LF-01"]


async def test_overlay_fits_80x24(filled_store, registry, fixture_clock):
    app = app_for(registry, filled_store.store_path, static=True, clock=fixture_clock)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("2")
        results = app.query_one("#results-table", DataTable)
        results.move_cursor(row=results.get_row_index("LF-01"))
        await pilot.pause()
        await pilot.press("m")
        results.move_cursor(row=results.get_row_index("LF-02"))
        await pilot.pause()
        await pilot.press("c")
        await pilot.pause()
        await pilot.pause()
        box = app.screen.query_one("#overlay-box")
        assert box.region.right <= 80 and box.region.bottom <= 24
        for plot in app.screen.query(CurvePlot):
            assert plot.region.right <= 80 and plot.region.width >= 60


async def test_the_log_tail_follows_a_file_appended_while_the_app_runs(filled_store, registry, fixture_clock,
                                                                       tmp_path):
    path = tmp_path / "outputs" / "fembed.db"
    copy_store(filled_store.store_path, path)
    app = app_for(registry, path, refresh_s=0.1, clock=fixture_clock)
    log_path = run_log_path(path.parent, "LF-04")
    async with app.run_test(size=(120, 40)) as pilot:
        await open_detail(app, pilot, "LF-04")
        await wait_polls(app, pilot)
        note = app.query_one("#log-none", Label)
        widget = app.query_one("#run-log", Log)
        assert note.display and not widget.display and "No run log yet" in str(note.render())
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with log_path.open("a", encoding="utf-8") as f:
            f.write("".join(f"epoch {i} val_auc 0.5{i} ✓\n" for i in range(250)))
            f.write("half a line")  # not shown until its newline arrives
            f.flush()
            await wait_polls(app, pilot)
            assert widget.display and not note.display
            assert widget.line_count == 200
            assert widget.lines[0] == "epoch 50 val_auc 0.550 ✓" and widget.lines[-1] == "epoch 249 val_auc 0.5249 ✓"
            f.write(" done\nCheckpointWarning: resumed at epoch 6\n")
            f.flush()
            await wait_polls(app, pilot)
            assert list(widget.lines[-2:]) == ["half a line done", "CheckpointWarning: resumed at epoch 6"]
            assert widget.line_count == 200
        # Another experiment without a log: a note, no error; back to LF-04: its lines again.
        await open_detail(app, pilot, "LF-01")
        await wait_polls(app, pilot)
        assert note.display and "LF-01" in str(note.render())
        await open_detail(app, pilot, "LF-04")
        await wait_polls(app, pilot)
        assert widget.display and widget.lines[-1] == "CheckpointWarning: resumed at epoch 6"


def test_a_large_log_is_read_from_its_end_only(tmp_path, monkeypatch):
    path = tmp_path / "run.log"
    line = "x" * 99 + "\n"
    path.write_text(line * 200_000 + "last line\n")  # 20 MB
    reads = []
    real_open = open

    def counting_open(file, mode="r", *args, **kwargs):
        handle = real_open(file, mode, *args, **kwargs)
        if str(file) == str(path):
            real_read = handle.read
            handle.read = lambda n=-1: reads.append(n) or real_read(n)  # type: ignore[method-assign]
        return handle

    import builtins

    monkeypatch.setattr(builtins, "open", counting_open)
    tail = LogTail(path)
    got = tail.read()
    assert got.exists and len(got.lines) == 200 and got.lines[-1] == "last line"
    assert sum(reads) <= 256 * 1024 + 1
    reads.clear()
    assert tail.read() is got and not reads  # unchanged: nothing read
    with path.open("a") as f:
        f.write("one more\n")
    again = tail.read()
    assert again.lines[-1] == "one more" and again.total == got.total + 1 and sum(reads) == len("one more\n")
    path.write_text("replaced\n")  # truncated: start over
    fresh = tail.read()
    assert fresh.lines == ("replaced",) and fresh.generation > got.generation


async def test_eta_waits_out_compiling_and_the_header_says_so(filled_store, registry, fixture_clock, tmp_path):
    path = tmp_path / "outputs" / "fembed.db"
    copy_store(filled_store.store_path, path)
    with RunStore(path) as writer:  # a runner on this host starts LF-05: no epoch yet
        assert writer.claim("LF-05", f"{socket.gethostname()}:{os.getpid()}:feed0001")
    app = app_for(registry, path, refresh_s=0.1, clock=fixture_clock)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_polls(app, pilot)
        queue = app.query_one("#queue-table", DataTable)
        assert column(queue, "eta")["LF-05"] == "(compiling)"
        assert column(queue, "eta")["LF-04"] not in ("(compiling)", "(timing)")  # two epochs: a pace
        summary = str(app.query_one("#queue-summary", Label).render())
        assert "ETA (compiling)" in summary
        header = app.query_one("#machine", Static)
        text = str(header.render())
        # This process stands in for the runner: sampled live, as it runs on this host.
        assert header.display and "LF-05" in text and "compiling" in text
        assert f"pid {os.getpid()}" in text and "RSS" in text and "CPU" in text


async def test_the_header_reads_the_stores_samples_once_it_records_them(filled_store, registry, fixture_clock,
                                                                        monkeypatch):
    """Without machine samples of a running experiment the header stays hidden (no error); the
    samples RunStore.machine_samples gives are shown."""
    app = app_for(registry, filled_store.store_path, static=True, clock=fixture_clock)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        assert not app.query_one("#machine", Static).display  # no samples, nothing compiling
    samples = {"LF-04": [{"epoch": 1, "recorded_at": fixture_clock.now - 3, "cpu_percent": 187.0,
                          "rss_mb": 1536.0, "gpu_util_percent": 43.0, "gpu_mem_mb": 10240.0}]}
    monkeypatch.setattr(RunStore, "machine_samples", lambda self, exp_id, last=None: samples.get(exp_id, []))
    app = app_for(registry, filled_store.store_path, static=True, clock=fixture_clock)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        header = app.query_one("#machine", Static)
        text = str(header.render())
        assert header.display and "LF-04" in text and "CPU 187% · RSS 1.5 GB · GPU 43% 10.0 GB" in text
        assert "ago" not in text  # static mode: nothing clock-dependent
        assert header.region.height == 1
