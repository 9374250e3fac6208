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
