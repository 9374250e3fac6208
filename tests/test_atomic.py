"""fembed_jax.atomic: the one atomic writer, and the permissions of every file fembed writes."""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path

import numpy as np
import pytest

from fembed_jax import atomic


@contextlib.contextmanager
def umask(value: int):
    old = os.umask(value)
    try:
        yield
    finally:
        os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_bytes_and_writer_functions_replace_the_file(tmp_path):
    path = tmp_path / "deep" / "er" / "f.bin"  # missing folders are made
    assert atomic.atomic_write(path, b"one") == path
    assert path.read_bytes() == b"one"
    atomic.atomic_write(path, lambda fh: fh.write(b"two"))
    assert path.read_bytes() == b"two"
    assert os.listdir(path.parent) == ["f.bin"]


def test_a_failing_writer_keeps_the_old_file_and_leaves_no_temp_file(tmp_path):
    path = tmp_path / "f.bin"
    atomic.atomic_write(path, b"old")

    def fail(fh):
        fh.write(b"half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        atomic.atomic_write(path, fail)
    assert path.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["f.bin"]


def test_the_temporary_file_is_hidden_and_swept_by_the_runner_after_a_crash(tmp_path):
    """queue._remove_interrupted_writes removes .*.tmp after a crash: the names must match."""
    seen = []
    atomic.atomic_write(tmp_path / "results.json", lambda fh: seen.extend(tmp_path.glob(".*.tmp")))
    assert len(seen) == 1 and seen[0].name.startswith(".results.json.")


def test_fault_points_are_named_by_the_caller(tmp_path, monkeypatch):
    hits = []
    monkeypatch.setattr(atomic.faults, "hit", hits.append)
    atomic.atomic_write(tmp_path / "a", b"")
    atomic.atomic_write(tmp_path / "b", b"", fault="results_io")
    assert hits == ["results_io.before_replace", "results_io.replaced"]


def _write_everything(folder: Path, monkeypatch) -> list[Path]:
    """One file from every writer of fembed (tierfiles' parquet writer aside: not ours)."""
    from fembed_jax import catalog, predictions, results_io
    from fembed_jax.data import card
    from fembed_jax.predictions import predictions_path, write_predictions
    from fembed_jax.report import write_report

    out = folder / "outputs"
    written = [
        atomic.atomic_write(folder / "plain.bin", b"x"),
        results_io.atomic_write_text(folder / "error.log", "text"),
        write_predictions(predictions_path(out, "FE-01"), np.full((2, 3), 0.5), [0, 1, 0], [1, 2, 3], [42, 43]),
        predictions.write_results(results_io.results_path(out, "FE-01"), {"exp_id": "FE-01"}),
    ]
    files = write_report(out, out / "report" / "tracker.md", reference=False, plots=True)
    written += [files.markdown, files.csv, files.parquet, *files.plots]

    monkeypatch.setattr(card, "render_data_card", lambda cfg: "# card\n")  # the data is not the point
    written.append(card.write_data_card(None, folder / "docs" / "data_card.md"))

    import fembed_jax.models
    from helpers import tiny_config

    monkeypatch.setenv("FEMBED_CACHE", str(folder / "cache"))
    monkeypatch.setattr(fembed_jax.models, "count_params", lambda cfg: 123)
    assert catalog.param_counts([tiny_config()]) == {"T-01": 123}
    written.append(folder / "cache" / "param_counts.json")
    return written


@pytest.mark.parametrize("mask, expected", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_every_file_gets_the_mode_of_a_file_the_user_creates(tmp_path, monkeypatch, mask, expected):
    """Collaborators on a shared cluster read the results (mkstemp alone makes them 0600), and
    a private umask keeps them private."""
    with umask(mask):
        written = _write_everything(tmp_path, monkeypatch)
        with open(tmp_path / "reference", "w"):
            pass
    assert mode(tmp_path / "reference") == expected
    assert {p.name: oct(mode(p)) for p in written} == {p.name: oct(expected) for p in written}
    assert len(written) == 12  # 11 writers; the report writes two plots and a reliability diagram
    assert not list(tmp_path.rglob("*.tmp"))
