"""SVG snapshots of the TUI's views (pytest-textual-snapshot); update with --snapshot-update.

The app runs with static=True: one read of the store, no polling, every clock-dependent time
(elapsed, ETA, training time) masked, and the store shown by file name only, so a snapshot
depends on the store's contents alone. The metrics come from the real tiny run of the
session fixture: JAX on CPU gives the same numbers for the same seeds on a given jax version.
"""

from __future__ import annotations

import pytest

from fembed_jax.tui.app import FembedMonitor

SIZE = (120, 40)


@pytest.fixture
def monitor(registry, filled_store, fixture_clock):
    """The app at the fixture's own time (LF-04's heartbeat is fresh, so it reads running)."""
    return lambda path=None: FembedMonitor(registry, path or filled_store.store_path, static=True,
                                           clock=fixture_clock)


def test_queue_view(monitor, snap_compare):
    assert snap_compare(monitor(), terminal_size=SIZE)


def test_queue_view_at_80x24(monitor, snap_compare):
    assert snap_compare(monitor(), terminal_size=(80, 24))


def test_results_view_sorted_by_auc(monitor, snap_compare):
    async def sort_by_auc(pilot):
        await pilot.pause()  # let the tabs finish mounting before switching
        pilot.app.action_view("results")
        pilot.app.main_screen.query_one("ResultsView").sort_by("auc")

    assert snap_compare(monitor(), terminal_size=SIZE,
                        run_before=sort_by_auc)


def test_results_view_at_160x48(monitor, snap_compare):
    """At 160 columns the seed ensemble's AUC and PR-AUC intervals (issue 18) are in sight."""
    async def results(pilot):
        await pilot.pause()
        pilot.app.action_view("results")

    assert snap_compare(monitor(), terminal_size=(160, 48), run_before=results)


def test_detail_view(monitor, snap_compare):
    async def open_detail(pilot):
        await pilot.pause()
        pilot.app.select("LF-02")
        pilot.app.action_view("detail")

    assert snap_compare(monitor(), terminal_size=SIZE,
                        run_before=open_detail)


def test_detail_view_of_the_running_experiment(monitor, snap_compare):
    async def open_detail(pilot):
        await pilot.pause()
        pilot.app.select("LF-04")
        pilot.app.action_view("detail")

    assert snap_compare(monitor(), terminal_size=SIZE,
                        run_before=open_detail)


def test_empty_state(monitor, snap_compare, tmp_path):
    missing = tmp_path / "outputs" / "fembed.db"
    assert snap_compare(monitor(missing), terminal_size=SIZE)
    assert not missing.exists()


def test_detail_curves_at_80x24(monitor, snap_compare):
    """The plots stacked at 80 columns, each the full width (scrolled to them)."""
    async def open_curves(pilot):
        await pilot.pause()
        pilot.app.select("LF-04")
        pilot.app.action_view("detail")
        await pilot.pause()
        detail = pilot.app.main_screen.query_one("DetailView")
        detail.scroll_to_widget(detail.query_one("#curves-heading"), top=True, animate=False)

    assert snap_compare(monitor(), terminal_size=(80, 24), run_before=open_curves)


def test_detail_view_at_200x50(monitor, snap_compare):
    """At 200 columns the three plots stand side by side."""
    async def open_detail(pilot):
        await pilot.pause()
        pilot.app.select("LF-02")
        pilot.app.action_view("detail")

    assert snap_compare(monitor(), terminal_size=(200, 50), run_before=open_detail)


def test_overlay_of_two_experiments(monitor, snap_compare):
    async def overlay(pilot):
        await pilot.pause()
        app = pilot.app
        app.action_view("results")
        await pilot.pause()
        table = app.main_screen.query_one("#results-table")
        app.marked = "LF-01"  # what m does, without its toast (a timed widget in a snapshot)
        app.redraw()
        table.move_cursor(row=table.get_row_index("LF-02"))
        await pilot.pause()
        app.action_compare()

    assert snap_compare(monitor(), terminal_size=SIZE, run_before=overlay)
