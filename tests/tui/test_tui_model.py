"""The TUI's pure parts: scope filter, sorting and best cells, progress/ETA, the run command."""

from __future__ import annotations

import dataclasses
import pathlib

import pytest

from fembed_jax.config import ExperimentConfig
from fembed_jax.tui import filters, fmt, launch, model, runs
from fembed_jax.tui.filters import Scope


def item(exp_id="LF-02", priority="LF-P8", tier="a20", loss="focal", embedding="linear", state="done"):
    return {"exp_id": exp_id, "priority": priority, "tier": tier, "loss": loss, "embedding": embedding,
            "state": state}


@pytest.mark.parametrize("text, expected", [
    ("", True), ("priority:LF-P8", True), ("p:lf-p8,LF-P9", True), ("priority:LF-P9", False),
    ("tier:a20 loss:focal", True), ("tier:a20 loss:bce", False), ("emb:linear", True),
    ("state:done", True), ("s:running,failed", False), ("id:LF-0", True), ("id:FE", False),
    ("focal", True), ("FOC", True), ("bottleneck", False), ("focal a20", True), ("focal a50", False),
    ("priority:", False),  # an unfinished term is a bare word, found in no field
])
def test_scope_matches(text, expected):
    assert Scope.parse(text).matches(item()) is expected


def test_scope_not_queued_state_and_repeated_field():
    assert Scope.parse("state:not-queued").matches(item(state="not queued"))
    assert Scope.parse("tier:a20,a50 tier:a50").fields == {"tier": ("a50",)}


def test_with_field_and_cycling():
    text = filters.with_field("focal tier:a20", "priority", "LF-P8")
    assert text == "focal tier:a20 priority:LF-P8"
    assert filters.with_field(text, "tier", None) == "focal priority:LF-P8"
    values = ["LF-P8", "LF-P9"]
    assert filters.next_value("", "priority", values) == "LF-P8"
    assert filters.next_value("p:LF-P8", "priority", values) == "LF-P9"
    assert filters.next_value("p:lf-p9", "priority", values) is None  # back to everything
    assert filters.with_field("", "state", "not queued") == "state:not-queued"


def test_run_filters_and_command(tmp_path):
    registry, outputs = pathlib.Path("/r/experiments.toml"), pathlib.Path("/o")
    command = launch.run_command(Scope.parse("priority:LF-P8 tier:a20"), ["LF-01"], registry, outputs, python="py")
    assert launch.display(command) == "fembed --registry /r/experiments.toml run --priority LF-P8 --tier a20 --outputs /o"
    assert "--all" in launch.run_command(Scope.parse(""), [], registry, outputs)
    by_id = launch.run_command(Scope.parse("focal state:pending"), ["LF-02", "LF-05"], registry, outputs)
    assert by_id[by_id.index("run") + 1:] == ["--exp-id", "LF-02", "--exp-id", "LF-05", "--outputs", "/o"]


def _exp(exp_id, epochs=10, seeds=2):
    cfg = ExperimentConfig(exp_id=exp_id, priority="P1", tier="a20", num_features=20, epochs=epochs, seeds=seeds)
    return model.Experiment(exp_id, "P1", "a20", None, "bce", "none", epochs, seeds, "", cfg, cfg)


def _result(exp_id, precision, auc, collapsed=False):
    return model.ResultRow(_exp(exp_id), 100, precision, None, 1, 2, 0.5, auc, None, collapsed, 2, 1.0,
                           False, True)


def test_sort_puts_missing_values_last_both_ways_and_best_skips_collapsed():
    rows = [_result("A", 0.3, None), _result("B", 0.9, 0.6, collapsed=True), _result("C", 0.5, 0.7)]
    assert [r.exp.exp_id for r in model.sort_results(rows, "auc", True)] == ["C", "B", "A"]
    assert [r.exp.exp_id for r in model.sort_results(rows, "auc", False)] == ["B", "C", "A"]
    assert [r.exp.exp_id for r in model.sort_results(rows, "precision", True)] == ["B", "C", "A"]
    assert model.best_ids(rows) == {"precision": {"C"}, "recall": {"A", "C"}, "auc": {"C"}}


def test_progress_counts_active_seeds_and_extrapolates_the_current_attempt():
    row = {"started_at": 1000.0, "attempts": 2, "epochs_run": 3}
    epochs = [
        {"epoch": 0, "seed": 0, "attempt": 1, "active": True, "recorded_at": 10.0},  # earlier attempt
        {"epoch": 0, "seed": 1, "attempt": 1, "active": True, "recorded_at": 10.0},
        {"epoch": 1, "seed": 0, "attempt": 2, "active": True, "recorded_at": 1020.0},
        {"epoch": 1, "seed": 1, "attempt": 2, "active": True, "recorded_at": 1020.0},
        {"epoch": 2, "seed": 0, "attempt": 2, "active": True, "recorded_at": 1040.0},
        {"epoch": 2, "seed": 1, "attempt": 2, "active": False, "recorded_at": 1040.0},
    ]
    p = model.progress(row, _exp("X", epochs=10), epochs, now=1050.0)
    assert (p.epochs_done, p.epochs_max, p.seeds_active, p.seeds_total) == (3, 10, 1, 2)
    assert p.elapsed_s == 50.0
    assert p.eta_s == pytest.approx(20.0 * 7)  # epochs 1 -> 2 took 20 s this attempt, 7 to go
    assert p.eta_note == "" and not p.compiling
    # One epoch of this attempt: its 20 s since the claim include compiling; no pace yet.
    one = model.progress(row, _exp("X", epochs=10), epochs[:4], now=1050.0)
    assert (one.eta_s, one.eta_note) == (None, "timing")
    fresh = model.progress({"started_at": 1000.0, "attempts": 1}, _exp("X"), [], now=1003.0)
    assert (fresh.epochs_done, fresh.seeds_active, fresh.eta_s) == (0, 2, None)
    assert fresh.compiling and fmt.eta(fresh.eta_s, fresh.eta_note) == "(compiling)"
    # A resumed attempt compiles again: the earlier attempt's epochs give no pace.
    resumed = model.progress(row, _exp("X", epochs=10), epochs[:2], now=1050.0)
    assert resumed.compiling and resumed.eta_s is None


def test_eta_ignores_the_first_epochs_compile_time():
    """Epoch 1 took 100 s (90 of them compiling), epochs 2-4 took 10 s each: the pace is 10 s."""
    row = {"started_at": 0.0, "attempts": 1}
    stamps = {0: 100.0, 1: 110.0, 2: 120.0, 3: 130.0}
    epochs = [{"epoch": e, "seed": s, "attempt": 1, "active": True, "recorded_at": t}
              for e, t in stamps.items() for s in (0, 1)]
    p = model.progress(row, _exp("X", epochs=10), epochs, now=135.0)
    assert p.eta_s == pytest.approx(10.0 * 6)  # not (130 / 4) * 6 = 195 s
    two = model.progress(row, _exp("X", epochs=10), epochs[:4], now=111.0)
    assert two.eta_s == pytest.approx(10.0 * 8)
    # The queue line says why there is no ETA while a first epoch runs.
    compiling = model.progress(row, _exp("X", epochs=10), [], now=50.0)
    summary = model.queue_summary([_row("X", "running", compiling), _row("Y", "pending")], [])
    assert summary.eta_s is None and summary.eta_note == "compiling"


def test_curves_from_epoch_rows_and_from_history():
    rows = [{"epoch": 0, "seed": 0, "val_auc": 0.5, "val_loss": 0.7},
            {"epoch": 1, "seed": 0, "val_auc": 0.6, "val_loss": 0.6},
            {"epoch": 0, "seed": 1, "val_auc": 0.4, "val_loss": 0.8}]
    got = model.curves(rows, {"seeds": [42, 43]})
    assert got.val_auc == {"seed 42": [0.5, 0.6], "seed 43": [0.4, None]}
    history = [{"trained": [True, True], "val_auc": [0.5, 0.4], "val_loss": [0.7, 0.8]},
               {"trained": [True, False], "val_auc": [0.6, 0.1], "val_loss": [0.6, 0.1]}]
    assert model.curves([], {"history": history}).val_loss == {"seed 42": [0.7, 0.6], "seed 43": [0.8, None]}


def test_formats():
    assert fmt.duration(3725) == "1:02:05" and fmt.duration(65) == "1:05"
    assert fmt.duration(65, masked=True) == fmt.MASK and fmt.duration(None) == fmt.MASK
    assert fmt.mean_std(0.5, 0.01) == "0.500 ± 0.010" and fmt.mean_std(0.5, None) == "0.500"
    assert fmt.bar(3, 10) == "███░░░░░░░"


# -- fixes from the review (docs: /work/shared/reviews/tui.md) and issue 18 ---------------------

def _row(exp_id, state, progress=None, cfg_seeds=None, cfg_epochs=None, reg_seeds=5, reg_epochs=50):
    registered = ExperimentConfig(exp_id=exp_id, priority="P1", tier="a20", num_features=20,
                                  epochs=reg_epochs, seeds=reg_seeds)
    queued = registered.replace(seeds=cfg_seeds or reg_seeds, epochs=cfg_epochs or reg_epochs)
    exp = model.Experiment(exp_id, "P1", "a20", None, "bce", "none", queued.epochs, queued.seeds, "",
                           queued, registered)
    return model.QueueRow(exp, state, 1, 0, progress, "", False)


def test_queue_rows_put_what_needs_a_look_first_registry_order_within_a_state():
    exps = {e: _exp(e) for e in ("A", "B", "C", "D", "E")}
    snap = model.StoreSnapshot(pathlib.Path("x.db"), True, experiments=(
        {"exp_id": "A", "state": "done"}, {"exp_id": "B", "state": "pending"},
        {"exp_id": "C", "state": "failed", "error": "boom"}, {"exp_id": "E", "state": "pending"}))
    rows = model.queue_rows(exps, snap, now=0.0)
    assert [(r.exp.exp_id, r.state) for r in rows] == [
        ("C", "failed"), ("B", "pending"), ("E", "pending"), ("A", "done"), ("D", model.NOT_QUEUED)]


def test_queue_summary_counts_and_extrapolates_the_rest_of_the_queue():
    running = model.Progress(3, 10, 2, 2, 50.0, 100.0, 0.61)
    rows = [_row("A", "done"), _row("B", "done"), _row("C", "running", running), _row("D", "pending"),
            _row("E", "interrupted"), _row("F", "failed"), _row("G", model.NOT_QUEUED)]
    timed = [dataclasses.replace(_result("A", 0.5, 0.6), seconds=300.0),
             dataclasses.replace(_result("B", 0.5, 0.6), seconds=500.0),
             dataclasses.replace(_result("Z", 0.5, 0.6), seconds=9999.0, legacy=True)]
    summary = model.queue_summary(rows, timed)
    assert (summary.done, summary.failed, summary.queued, summary.left, summary.running) == (2, 1, 6, 3, 1)
    assert summary.eta_s == pytest.approx(100.0 + 2 * 400.0)  # C's own ETA + D, E at the mean of A, B
    # Nothing finished yet: the running one's projected total (50 s + 100 s) stands in.
    assert model.queue_summary(rows, []).eta_s == pytest.approx(100.0 + 2 * 150.0)
    idle = model.queue_summary([r for r in rows if r.state != "running"], timed)
    assert idle.eta_s is None and idle.running == 0 and idle.left == 2


def test_the_queue_eta_uses_the_estimates_remembered_for_each_run():
    exps = {e: _exp(e) for e in ("A", "B", "C")}
    # B and C have an estimate (a dry run or an earlier run remembered it); C is interrupted.
    estimates = {"hB": {"seconds_per_epoch": 10.0, "compile_seconds": 5.0, "epochs": 4},
                 "hC": {"seconds_per_epoch": 20.0, "compile_seconds": 8.0, "epochs": 3}}
    snap = model.StoreSnapshot(pathlib.Path("x.db"), True, experiments=(
        {"exp_id": "A", "state": "done", "run_hash": "hA"},
        {"exp_id": "B", "state": "pending", "run_hash": "hB", "epochs_run": 0},
        {"exp_id": "C", "state": "running", "run_hash": "hC", "epochs_run": 1, "heartbeat_at": 0.0,
         "claimed_by": "elsewhere:1:dead"}), estimates=estimates)
    rows = {r.exp.exp_id: r for r in model.queue_rows(exps, snap, now=10_000.0)}
    assert rows["C"].state in ("interrupted", "stalled")
    assert rows["A"].estimate_s is None  # done: nothing left
    assert rows["B"].estimate_s == pytest.approx(4 * 10 + 5)
    assert rows["C"].estimate_s == pytest.approx(2 * 20)  # resumes after its epoch: no compile
    # A running experiment without a pace yet (compiling) is timed by its estimate.
    compiling = model.Progress(0, 4, 2, 2, 3.0, None, None, "compiling")
    left = [dataclasses.replace(_row("R", "running", compiling), estimate_s=50.0),
            dataclasses.replace(_row("P", "pending"), estimate_s=45.0),
            _row("Q", "pending")]  # no estimate: the projected total of the running one stands in
    summary = model.queue_summary(left, [])
    assert summary.eta_s == pytest.approx(50.0 + 45.0 + (3.0 + 50.0)) and summary.eta_note == ""
    assert summary.estimated_s is None  # Q has no estimate
    idle = model.queue_summary([dataclasses.replace(_row("P", "pending"), estimate_s=45.0)], [])
    assert idle.eta_s is None and idle.estimated_s == pytest.approx(45.0)


def test_best_skips_one_seed_and_legacy_rows():
    rows = [dataclasses.replace(_result("A", 0.6, 0.7), seeds=1),  # one seed: one draw
            dataclasses.replace(_result("B", 0.9, 0.9), legacy=True, seeds=1),
            dataclasses.replace(_result("C", 0.4, 0.6), seeds=3), _result("D", 0.3, 0.5)]
    assert model.best_ids(rows)["precision"] == {"C"} and model.best_ids(rows)["auc"] == {"C"}
    copy = model.legacy_copy_row(_exp("C"), {"summary": {"precision_mean": 0.99, "auc_mean": 0.99}})
    assert copy.key == "C#legacy" and model.exp_id_of(copy.key) == "C"
    assert model.best_ids([*rows, copy])["precision"] == {"C"}


def test_a_bare_word_maps_to_a_run_filter_when_it_is_one_fields_value():
    items = [item("FE-01", loss="bce", embedding="linear"), item("FE-02", loss="focal", embedding="linear"),
             item("FE-03", loss="bce", embedding="nonlinear_mlp"), item("FE-04", loss="bce", embedding="none")]
    assert Scope.parse("focal").run_filters(items) == {"loss": ("focal",)}
    assert Scope.parse("focal tier:a20").run_filters(items) == {"tier": ("a20",), "loss": ("focal",)}
    assert Scope.parse("none").run_filters(items) == {"embedding": ("none",)}
    # "linear" is also inside nonlinear_mlp: --embedding linear would run fewer experiments.
    assert Scope.parse("linear").run_filters(items) is None
    assert Scope.parse("FE-0").run_filters(items) is None  # an id fragment: the ids are listed
    command = launch.run_command(Scope.parse("focal"), ["FE-02"], pathlib.Path("/r"), pathlib.Path("/o"),
                                 python="py", items=items)
    assert command[command.index("run") + 1:] == ["--loss", "focal", "--outputs", "/o"]


def test_a_long_id_list_is_shown_cut_with_its_count():
    ids = [f"FE-{i:02d}" for i in range(1, 121)]
    command = launch.run_command(Scope.parse("FE-"), ids, pathlib.Path("/r"), pathlib.Path("/o"), python="py")
    assert command.count("--exp-id") == 120  # the process still gets every id
    shown = launch.display(command)
    assert "--exp-id FE-06 … (+114 more --exp-id, 120 in all) --outputs /o" in shown
    assert "FE-07" not in shown


def test_relaunch_uses_the_seeds_and_epochs_the_unfinished_experiments_were_queued_with():
    interrupted = _row("FE-47", "interrupted", cfg_seeds=2, cfg_epochs=30)
    done = _row("FE-46", "done")
    settings = launch.queued_settings([done, interrupted])
    assert (settings.seeds, settings.epochs, settings.only) == (2, 30, ("FE-47",))
    assert "--seeds 2 --epochs 30" in settings.note and "Only the 1 unfinished" in settings.note
    # Only unfinished ones in scope: the scope's own filters stay, with the flags.
    assert launch.queued_settings([interrupted]).only == ()
    # A cap of 30 fits an experiment whose registry epochs (10) are under it.
    short = _row("FE-48", "pending", cfg_seeds=2, reg_epochs=10)
    assert (launch.queued_settings([interrupted, short]).epochs,
            launch.queued_settings([interrupted, short]).seeds) == (30, 2)
    # Different seeds cannot be given by one command: the registry's values, and a note.
    other = _row("FE-49", "pending", cfg_seeds=3, cfg_epochs=30)
    mixed = launch.queued_settings([interrupted, other])
    assert (mixed.seeds, mixed.epochs, mixed.only) == (None, None, ()) and "different" in mixed.note
    assert launch.queued_settings([done, _row("FE-50", "pending")]) == launch.RunSettings()
    command = launch.run_command(Scope.parse(""), ["FE-47"], pathlib.Path("/r"), pathlib.Path("/o"),
                                 python="py", seeds=2, epochs=30, by_id=True)
    assert command[command.index("run") + 1:] == ["--exp-id", "FE-47", "--seeds", "2", "--epochs", "30",
                                                   "--outputs", "/o"]


def test_the_state_cycle_comes_back_to_all_through_not_queued():
    values = ["running", "done", "not queued"]
    assert filters.next_value("state:done", "state", values) == "not queued"
    assert filters.next_value("state:not-queued", "state", values) is None


def test_run_end_in_words():
    assert runs.ended_text(0) == "exit 0" and runs.ended_text(2) == "exit 2"
    assert runs.ended_text(-2) == "stopped (SIGINT)" and runs.ended_text(130) == "stopped (SIGINT)"
    assert runs.ended_text(143) == "stopped (SIGTERM)"


def test_the_monitor_does_not_import_the_trainer_and_its_copies_match():
    import subprocess
    import sys

    from fembed_jax.legacy import LEGACY_DIRNAME
    from fembed_jax.config import SEED_BASE
    from fembed_jax.tui import poller

    assert model.SEED_BASE == SEED_BASE and poller.LEGACY_DIRNAME == LEGACY_DIRNAME
    code = ("import sys, fembed_jax.tui.app; "
            "print(sorted(m for m in sys.modules if m.startswith(('fembed_jax.train', 'jax'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_curves_carry_train_loss_and_overlay_means():
    rows = [{"epoch": 0, "seed": 0, "val_auc": 0.5, "val_loss": 0.7, "train_loss": 0.9},
            {"epoch": 1, "seed": 0, "val_auc": 0.7, "val_loss": 0.6, "train_loss": 0.8},
            {"epoch": 0, "seed": 1, "val_auc": 0.6, "val_loss": 0.8, "train_loss": 1.0}]
    got = model.curves(rows, {"seeds": [42, 43]})
    assert got.train_loss == {"seed 42": [0.9, 0.8], "seed 43": [1.0, None]}
    assert model.mean_curve(got.val_auc) == pytest.approx([0.55, 0.7])  # epoch 2: seed 42 alone
    history = [{"trained": [True], "val_auc": [0.5], "val_loss": [0.7], "train_loss": [0.95]}]
    assert model.curves([], {"history": history}).train_loss == {"seed 42": [0.95]}


def test_shared_range_covers_every_series_and_downsample_bounds_the_points():
    lo, hi = model.shared_range({"a": [0.5, None, 0.6], "b": [0.4, 0.9]})
    assert lo < 0.4 and hi > 0.9 and hi - lo < 0.6
    flat = model.shared_range({"a": [0.5, 0.5]})
    assert flat[0] < 0.5 < flat[1]
    assert model.shared_range({"a": [None]}) is None
    xs, ys = model.downsample([float(i) for i in range(5000)], 100)
    assert len(xs) == 100 and xs[0] == pytest.approx(25.5) and ys[-1] == pytest.approx(4974.5)
    xs, ys = model.downsample([0.1, None, 0.3], 100)
    assert (xs, ys) == ([1.0, 3.0], [0.1, 0.3])  # 1-based epochs, gaps left out
    assert model.best_point({"a": [0.5, 0.7], "b": [0.6]}, True) == ("a", 2, 0.7)
    assert model.best_point({"a": [0.5, 0.7], "b": [0.4]}, False) == ("b", 1, 0.4)


class _StoreWithSamples:
    def __init__(self, samples):
        self.samples = samples

    def machine_samples(self, exp_id, last=None):
        return self.samples.get(exp_id, [])[-last if last else 0:]


def test_machine_line_reads_samples_when_the_store_has_them_and_says_compiling():
    assert model.machine_samples_of(object(), "X") == []  # a store that cannot say: nothing, no error
    store = _StoreWithSamples({"X": [{"epoch": 0, "recorded_at": 10.0, "cpu_percent": 150.0, "rss_mb": 900.0,
                                      "gpu_util_percent": None, "gpu_mem_mb": None},
                                     {"epoch": 1, "recorded_at": 20.0, "cpu_percent": 187.4, "rss_mb": 1536.0,
                                      "gpu_util_percent": 43.0, "gpu_mem_mb": 10240.0}]})
    latest = model.latest_machine_sample(store, ["X", "Y"])
    assert latest["epoch"] == 1 and latest["source"] == "store" and latest["exp_id"] == "X"
    assert model.machine_text(latest) == "CPU 187% · RSS 1.5 GB · GPU 43% 10.0 GB"
    owner = "elsewhere:77:beef"
    snap = model.StoreSnapshot(pathlib.Path("x.db"), True, experiments=(
        {"exp_id": "X", "state": "running", "claimed_by": owner},
        {"exp_id": "Y", "state": "running", "claimed_by": "elsewhere:78:cafe"}), machine={owner: latest})
    ticking = model.Progress(2, 10, 2, 2, 30.0, 80.0, 0.6)
    compiling = model.Progress(0, 10, 2, 2, 5.0, None, None, "compiling")
    rows = [_row("X", "running", ticking), _row("Y", "running", compiling), _row("Z", "pending")]
    line = model.machine_line(rows, snap, now=24.0, masked=False)
    assert "X[/b] · runner elsewhere:77: CPU 187% · RSS 1.5 GB · GPU 43% 10.0 GB (epoch 2, 4s ago)" in line
    assert "Y[/b] · [b yellow]compiling[/]" in line
    assert model.machine_line([rows[2]], snap, now=24.0, masked=False) == ""  # nothing runs


# -- issue 18: the report's intervals, and "best" only among comparable rows ----------------------

def _reported(auc=None, pr_auc=None, protocol=None, data=("src", "2015-01-02", "2016-12-30"), scored=True):
    return model.Reported(protocol, data, scored,
                          None if auc is None else {"auc": auc, "low": auc - 0.05, "high": auc + 0.04},
                          None if pr_auc is None else {"pr_auc": pr_auc, "low": pr_auc - 0.1, "high": pr_auc + 0.1})


def test_result_rows_carry_the_reported_intervals_and_their_cells():
    from fembed_jax.tui.results_view import ensemble_text

    snap = model.StoreSnapshot(pathlib.Path("/o/fembed.db"), True, results=(
        {"exp_id": "A", "legacy": False}, {"exp_id": "B", "legacy": False}, {"exp_id": "L", "legacy": True},
        {"exp_id": "P", "legacy": False}, {"exp_id": "N", "legacy": False}),
        reported={"A": _reported(0.5342, 0.3123), "B": _reported(), "L": _reported(0.9, 0.9),
                  "P": _reported(scored=False)})
    rows = {r.key: r for r in model.result_rows({}, snap)}
    assert rows["A"].ensemble_auc == 0.5342 and rows["A"].ensemble_pr_auc == 0.3123
    assert rows["L"].reported is None  # a legacy record has no predictions the report scores
    shown = {key: (ensemble_text(row, "auc"), ensemble_text(row, "pr_auc")) for key, row in rows.items()}
    assert shown == {"A": ("0.534 [0.48, 0.57]", "0.312 [0.21, 0.41]"), "B": ("-", "-"), "L": ("-", "-"),
                     "P": (fmt.PENDING, fmt.PENDING), "N": ("-", "-")}
    assert [r.key for r in model.sort_results(list(rows.values()), "auc_ci", True)][0] == "A"
    assert fmt.interval(0.5, None, None) == "0.500" and fmt.interval(None, 0.1, 0.2) == "-"


def test_best_is_only_among_rows_of_the_reports_protocol_and_the_data_most_share():
    other_data = ("other", "2015-01-02", "2016-12-30")
    rows = [dataclasses.replace(_result("A", 0.5, 0.6), reported=_reported(0.60, 0.30)),
            dataclasses.replace(_result("B", 0.4, 0.7), reported=_reported(0.55, 0.35)),
            dataclasses.replace(_result("C", 0.9, 0.9), reported=_reported(0.9, 0.9, data=other_data)),
            dataclasses.replace(_result("D", 0.8, 0.8), reported=_reported(0.8, 0.8, protocol="other protocol: 'all'")),
            dataclasses.replace(_result("E", 0.3, 0.5), reported=_reported(0.50, 0.20, data=None)),  # data unknown
            _result("F", 0.2, 0.4)]  # not judged yet (no Reported): counted in
    assert [r.exp.exp_id for r in model.comparable(rows)] == ["A", "B", "E", "F"]
    best = model.best_ids(rows)
    assert best["precision"] == {"A"} and best["auc"] == {"B"}
    assert best["auc_ci"] == {"A"} and best["pr_auc"] == {"B"}
    # As in the report, only the report's protocol ranks: rows all of another protocol have no best.
    assert model.comparable([rows[3]]) == [] and model.best_ids([rows[3]]) == {}
