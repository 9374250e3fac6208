"""SVG snapshots of the TUI's views (pytest-textual-snapshot); update with --snapshot-update.

The app runs with static=True: one read of the store, no polling, every clock-dependent time
(elapsed, ETA, training time) masked, and the store shown by file name only, so a snapshot
depends on the store's contents alone. The metrics come from the real tiny run of the
session fixture: JAX on CPU gives the same numbers for the same seeds on a given jax version.
"""

from __future__ import annotations

from fembed_jax.tui.app import FembedMonitor

SIZE = (120, 40)


def test_queue_view(filled_store, registry, snap_compare):
    assert snap_compare(FembedMonitor(registry, filled_store.store_path, static=True), terminal_size=SIZE)


def test_queue_view_at_80x24(filled_store, registry, snap_compare):
    assert snap_compare(FembedMonitor(registry, filled_store.store_path, static=True), terminal_size=(80, 24))


def test_results_view_sorted_by_auc(filled_store, registry, snap_compare):
    async def sort_by_auc(pilot):
        await pilot.pause()  # let the tabs finish mounting before switching
        pilot.app.action_view("results")
        pilot.app.main_screen.query_one("ResultsView").sort_by("auc")

    assert snap_compare(FembedMonitor(registry, filled_store.store_path, static=True), terminal_size=SIZE,
                        run_before=sort_by_auc)


def test_detail_view(filled_store, registry, snap_compare):
    async def open_detail(pilot):
        await pilot.pause()
        pilot.app.select("LF-02")
        pilot.app.action_view("detail")

    assert snap_compare(FembedMonitor(registry, filled_store.store_path, static=True), terminal_size=SIZE,
                        run_before=open_detail)


def test_detail_view_of_the_running_experiment(filled_store, registry, snap_compare):
    async def open_detail(pilot):
        await pilot.pause()
        pilot.app.select("LF-04")
        pilot.app.action_view("detail")

    assert snap_compare(FembedMonitor(registry, filled_store.store_path, static=True), terminal_size=SIZE,
                        run_before=open_detail)


def test_empty_state(filled_store, registry, snap_compare, tmp_path):
    missing = tmp_path / "outputs" / "fembed.db"
    assert snap_compare(FembedMonitor(registry, missing, static=True), terminal_size=SIZE)
    assert not missing.exists()
