"""Keys, sorting and layout of `fembed tui` (review /work/shared/reviews/tui.md items 8-13, issue 18)."""

from __future__ import annotations

from rich.text import Text
from textual import events
from textual.widgets import DataTable, Input, Static, TabbedContent
from textual.widgets._footer import FooterKey

from test_tui_pilot import app_for

from fembed_jax.tui.results_view import ResultsView
from fembed_jax.tui.screens import HELP, HELP_WIDTH, HelpScreen


def status(app) -> str:
    return str(app.query_one("#status", Static).render())


async def test_the_sort_arrow_moves_even_when_the_order_does_not(filled_store, registry, fixture_clock):
    app = app_for(registry, filled_store.store_path, static=True, clock=fixture_clock)
    async with app.run_test(size=(200, 40)) as pilot:
        await pilot.press("2")
        view = app.query_one(ResultsView)
        view.sort_by("id", descending=False)
        await pilot.pause()
        order = view.order
        assert "id ▲" in view.table.render_line(0).text
        # AE-P1 < LF-P8 = LF-P8, ties by id: the same order, so no row moves.
        view.sort_by("priority", descending=False)
        await pilot.pause()
        assert view.order == order
        header = view.table.render_line(0).text
        assert "priority ▲" in header and "id ▲" not in header
        # Columns off screen at 80 columns still show their sort in the status line.
        assert "sorted by priority ▲" in status(app)


async def test_a_sort_goes_to_the_top_and_home_end_move_by_rows(filled_store, registry, fixture_clock):
    app = app_for(registry, filled_store.store_path, static=True, clock=fixture_clock)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("2")
        table = app.query_one("#results-table", DataTable)
        table.move_cursor(row=table.row_count - 1)
        await pilot.press("s")
        assert table.cursor_row == 0 and table.scroll_y == 0  # the best row, not the old one
        queue = app.query_one("#queue-table", DataTable)
        await pilot.press("1")
        for key, row in (("end", queue.row_count - 1), ("home", 0), ("G", queue.row_count - 1), ("g", 0)):
            await pilot.press(key)
            assert (queue.cursor_row, queue.scroll_x) == (row, 0), key  # rows, never sideways


async def test_escape_in_detail_goes_back_to_the_view_it_came_from(filled_store, registry, fixture_clock):
    app = app_for(registry, filled_store.store_path, static=True, clock=fixture_clock)
    async with app.run_test(size=(120, 40)) as pilot:
        tabs = app.query_one(TabbedContent)
        await pilot.press("2", "enter")
        assert tabs.active == "detail"
        await pilot.press("escape")
        assert tabs.active == "results" and app.focused is app.query_one("#results-table")
        await pilot.press("1", "enter", "escape")
        assert tabs.active == "queue"


async def test_keys_typed_in_the_same_burst_as_slash_go_to_the_filter(filled_store, registry, fixture_clock):
    app = app_for(registry, filled_store.store_path, static=True, clock=fixture_clock)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        # A paste or a fast typist: every key is queued before the first is handled.
        for key, char in (("slash", "/"), ("L", "L"), ("F", "F"), ("minus", "-"), ("0", "0"), ("5", "5"),
                          ("enter", "\r")):
            event = events.Key(key, char)
            event.set_sender(app)
            app._driver.send_message(event)
        for _ in range(5):
            await pilot.pause()
        assert app.query_one("#filter", Input).value == "LF-05"
        assert app.query_one(TabbedContent).active == "queue"  # enter submitted the filter
        assert [r.key.value for r in app.query_one("#queue-table", DataTable).ordered_rows] == ["LF-05"]


async def test_cycles_stay_in_scope_and_come_back_to_all(filled_store, registry, fixture_clock):
    app = app_for(registry, filled_store.store_path, static=True, clock=fixture_clock)
    async with app.run_test(size=(120, 40)) as pilot:
        seen = []
        for _ in range(8):
            await pilot.press("a")
            seen.append(app.scope_text)
            if not app.scope_text:
                break
        assert seen == ["state:running", "state:failed", "state:pending", "state:done", "state:not-queued", ""]
        # p then t: t cycles over the tiers of LF-P9 only (a20), then back to all tiers.
        await pilot.press("p", "p")
        assert app.scope_text == "priority:LF-P9"
        await pilot.press("t")
        assert app.scope_text == "priority:LF-P9 tier:a20"
        await pilot.press("t")
        assert app.scope_text == "priority:LF-P9"


async def test_the_footer_fits_80_columns_in_every_view(filled_store, registry, fixture_clock):
    app = app_for(registry, filled_store.store_path, static=True, clock=fixture_clock)
    expected = {"queue": {"q", "?", "/", "R"}, "results": {"q", "?", "/", "R", "s", "r", "m"},
                "detail": {"q", "?", "/", "R", "esc"}, "runs": {"q", "?", "/", "R"}}
    async with app.run_test(size=(80, 24)) as pilot:
        for view, keys in expected.items():
            app.action_view(view)
            await pilot.pause()
            await pilot.pause()
            shown = [key for key in app.screen.query(FooterKey) if key.display]
            assert {key.key_display for key in shown} == keys, view
            assert all(0 < key.region.width and key.region.right <= 80 for key in shown), view
        # With an experiment marked (m), c compares it: shown in Results and Detail, still in 80 columns.
        app.action_view("results")
        await pilot.pause()
        await pilot.press("m")
        for view, keys in (("results", expected["results"] | {"c"}), ("detail", expected["detail"] | {"c"})):
            app.action_view(view)
            await pilot.pause()
            await pilot.pause()
            shown = [key for key in app.screen.query(FooterKey) if key.display]
            assert {key.key_display for key in shown} == keys, view
            assert all(0 < key.region.width and key.region.right <= 80 for key in shown), view


async def test_help_fits_80_columns_without_wrapping(filled_store, registry, fixture_clock):
    lines = Text.from_markup(HELP).plain.splitlines()
    assert max(map(len, lines)) <= HELP_WIDTH
    app = app_for(registry, filled_store.store_path, static=True, clock=fixture_clock)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        box = app.screen.query_one("#help-box")
        text = box.query_one(Static)
        assert box.region.right <= 80 and text.virtual_size.height == len(lines)  # one row a line
        await pilot.press("q")
        assert not isinstance(app.screen, HelpScreen)
