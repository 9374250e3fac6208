"""results.json: atomic replacement, strict reading, numpy-aware JSON."""

from __future__ import annotations

import json
import os
import types

import numpy as np
import pytest

from fembed_jax import results_io
from fembed_jax.results_io import ResultsFileError, read_results, results_path, to_jsonable, write_results


def test_round_trip_converts_numpy_and_readonly_mappings(tmp_path):
    path = results_path(tmp_path / "outputs", "FE-06")
    record = {
        "exp_id": "FE-06",
        "val_metrics": {"precision": np.float32(0.5), "n_positive_preds": np.int64(11), "ok": np.bool_(True)},
        "per_seed": np.array([[1, 2], [3, 4]], dtype=np.int32),
        "loss_params": types.MappingProxyType({"gamma": 2.0}),
        "seeds": (0, 1),
        "val_loss": float("nan"),
        "auc": np.float64(np.inf),
    }
    assert write_results(path, record) == path
    assert path == tmp_path / "outputs" / "FE-06" / "results.json"
    got = read_results(path)
    assert got["val_metrics"] == {"precision": 0.5, "n_positive_preds": 11, "ok": True}
    assert got["per_seed"] == [[1, 2], [3, 4]]
    assert got["loss_params"] == {"gamma": 2.0} and got["seeds"] == [0, 1]
    assert got["val_loss"] is None and got["auc"] is None  # strict JSON: non-finite -> null
    text = path.read_text()
    assert text.startswith('{\n  "exp_id": "FE-06"')  # indent 2, like the original
    json.loads(text)  # plain json can read it (no NaN literals)
    assert [p.name for p in path.parent.iterdir()] == ["results.json"]  # no temp files left


def test_jax_arrays_are_encoded():
    jnp = pytest.importorskip("jax.numpy")
    assert to_jsonable({"a": jnp.arange(3), "b": jnp.float32(1.5)}) == {"a": [0, 1, 2], "b": 1.5}


def test_unencodable_object_names_its_type():
    with pytest.raises(TypeError, match="cannot encode object"):
        results_io.dumps({"x": object()})


def test_crash_before_rename_keeps_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "FE-01" / "results.json"
    write_results(path, {"exp_id": "FE-01", "version": 1})

    def crash(src, dst):
        raise OSError("simulated crash during rename")

    monkeypatch.setattr(results_io.os, "replace", crash)
    with pytest.raises(OSError, match="simulated crash"):
        write_results(path, {"exp_id": "FE-01", "version": 2})
    monkeypatch.undo()
    assert read_results(path) == {"exp_id": "FE-01", "version": 1}
    assert os.listdir(path.parent) == ["results.json"]  # the temporary file was removed


def test_crash_while_writing_keeps_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "results.json"
    write_results(path, {"version": 1})

    def crash(fd):
        raise OSError("disk full")

    monkeypatch.setattr(results_io.os, "fsync", crash)
    with pytest.raises(OSError, match="disk full"):
        write_results(path, {"version": 2})
    monkeypatch.undo()
    assert read_results(path) == {"version": 1}
    assert os.listdir(tmp_path) == ["results.json"]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "empty"),
        (b'{\n  "exp_id": "FE-01",\n  "val_metrics": {"prec', "truncated"),
        (b'{"exp_id": "FE-01",, }', "invalid JSON at line 1"),
        (b'{"exp_id": "\xff\xfe"}', "not UTF-8"),
        (b"[1, 2]", "expected a JSON object"),
    ],
)
def test_damaged_files_raise_a_clear_error(tmp_path, content, message):
    path = tmp_path / "results.json"
    path.write_bytes(content)
    with pytest.raises(ResultsFileError, match=message) as info:
        read_results(path)
    assert str(path) in str(info.value)
    assert isinstance(info.value, ValueError)


def test_missing_file_is_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_results(tmp_path / "nope.json")


@pytest.mark.parametrize("bad_id", ["../x", "a/b", "", ".", "..", "-x"])
def test_results_path_rejects_unsafe_experiment_ids(tmp_path, bad_id):
    with pytest.raises(ValueError, match="not usable as a directory name"):
        results_path(tmp_path, bad_id)
