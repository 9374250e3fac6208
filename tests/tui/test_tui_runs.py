"""R and k: what `fembed run` the TUI starts, the runs it keeps track of, and stopping one."""

from __future__ import annotations

import os
import sys

from textual.widgets import Button, DataTable, Label

from test_tui_pilot import MAX_WAIT_STEPS, app_for, column, copy_store

from fembed_jax.store import RunStore
from fembed_jax.tui import launch
from fembed_jax.tui.screens import ConfirmRunScreen, ConfirmStopScreen


def fake_start(monkeypatch, started: list):
    class FakeProcess:
        pid = 4321

        def poll(self):
            return None

    monkeypatch.setattr(launch, "start", lambda command, outputs: started.append(command)
                        or (FakeProcess(), outputs / "tui-run.log"))


async def test_enter_in_the_run_dialog_cancels(filled_store, registry, fixture_clock, monkeypatch):
    started: list = []
    fake_start(monkeypatch, started)
    app = app_for(registry, filled_store.store_path, static=True, clock=fixture_clock)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("R")
        assert isinstance(app.screen, ConfirmRunScreen)
        assert app.focused is app.screen.query_one("#confirm-no", Button)
        # The count stays on screen however long the command is.
        question = app.screen.query_one("#confirm-question", Label)
        assert "Start training 6 experiment(s)" in str(question.render()) and question.region.height == 1
        await pilot.press("enter")
        assert not isinstance(app.screen, ConfirmRunScreen) and not started


async def test_a_bare_word_runs_as_a_filter_option(filled_store, registry, fixture_clock, monkeypatch):
    started: list = []
    fake_start(monkeypatch, started)
    app = app_for(registry, filled_store.store_path, static=True, clock=fixture_clock, scope="focal")
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("R", "y")
        await pilot.pause()
    assert started[0][started[0].index("run"):] == ["run", "--loss", "focal", "--outputs", str(filled_store.outputs)]


async def test_an_unfinished_experiment_reruns_with_its_queued_seeds_and_epochs(
        filled_store, registry, fixture_clock, monkeypatch, tmp_path):
    path = tmp_path / "outputs" / "fembed.db"
    copy_store(filled_store.store_path, path)
    with RunStore(path) as writer:  # LF-05 was queued by `fembed run --seeds 1 --epochs 1`
        writer.sync_queue([{**registry.get("LF-05").replace(seeds=1, epochs=1).to_dict(), "run_hash": "quick"}])
    started: list = []
    fake_start(monkeypatch, started)
    app = app_for(registry, path, static=True, clock=fixture_clock, scope="priority:LF-P9")
    async with app.run_test(size=(120, 40)) as pilot:
        app.scope_text = "id:LF-05"
        await pilot.press("R")
        assert "--exp-id LF-05 --seeds 1 --epochs 1" in app.screen.command
        assert "as queued" in " ".join(app.screen.details)
        await pilot.press("y")
        await pilot.pause()
        # LF-04 (registry: 2 seeds x 10) and LF-05 (1 x 1) cannot share one --seeds: the
        # registry's values, and the dialog says why.
        app.scope_text = "priority:LF-P9"
        await pilot.press("R")
        assert "--seeds" not in app.screen.command
        assert "different seeds/epochs" in " ".join(app.screen.details)
    assert started[0][started[0].index("run"):] == ["run", "--exp-id", "LF-05", "--seeds", "1", "--epochs", "1",
                                                    "--outputs", str(path.parent)]


async def test_runs_started_here_are_listed_reaped_and_stopped_with_k(
        filled_store, registry, fixture_clock, monkeypatch, tmp_path):
    real_start = launch.start
    # A stand-in for `fembed run`: it waits to be stopped. Like fembed run it installs its own
    # SIGINT handler: a child inherits an ignored SIGINT (a test suite started in the background
    # by a shell), and the default handler is then never set.
    monkeypatch.setattr(launch, "start", lambda command, outputs: real_start(
        [sys.executable, "-c", "import signal, time; signal.signal(signal.SIGINT, signal.default_int_handler); "
         "time.sleep(120)"], tmp_path))
    app = app_for(registry, filled_store.store_path, static=True, clock=fixture_clock, scope="id:LF-05")
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("R", "y")
        await pilot.pause()
        [run] = app.runs
        assert run.alive and f"pid {run.pid} running" in str(app.query_one("#tui-runs", Label).render())
        await pilot.press("4")
        runs = app.query_one("#runs-table", DataTable)
        assert column(runs, "state") == {str(run.pid): "running"}
        assert column(runs, "log")[str(run.pid)].startswith("tui-run-")
        await pilot.press("k")
        assert isinstance(app.screen, ConfirmStopScreen) and app.screen.pid == run.pid
        assert app.focused is app.screen.query_one("#confirm-no", Button)  # enter would not stop it
        await pilot.press("y")
        for _ in range(MAX_WAIT_STEPS):
            app.action_refresh_now()  # each refresh polls (and so reaps) the runs
            if not run.alive:
                break
            await pilot.pause(0.05)
        assert run.state == "stopped (SIGINT)"
        assert run.process.returncode == -2
        try:
            os.waitpid(run.pid, os.WNOHANG)  # already reaped by the monitor: no zombie left
            reaped = False
        except ChildProcessError:
            reaped = True
        assert reaped
        await pilot.pause()
        assert column(runs, "state") == {str(run.pid): "stopped (SIGINT)"}
        assert not app.query_one("#tui-runs", Label).display
        assert any("ended: stopped (SIGINT)" in n.message for n in app._notifications)
