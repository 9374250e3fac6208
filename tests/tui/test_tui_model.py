"""The TUI's pure parts: scope filter, sorting and best cells, progress/ETA, the run command."""

from __future__ import annotations

import pathlib

import pytest

from fembed_jax.config import ExperimentConfig
from fembed_jax.tui import filters, fmt, launch, model
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
    one = model.progress(row, _exp("X", epochs=10), epochs[:4], now=1050.0)
    assert one.eta_s == pytest.approx(20.0 * 8)  # one epoch of this attempt: 20 s since the claim
    fresh = model.progress({"started_at": 1000.0, "attempts": 1}, _exp("X"), [], now=1003.0)
    assert (fresh.epochs_done, fresh.seeds_active, fresh.eta_s) == (0, 2, None)  # compiling


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
