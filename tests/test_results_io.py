"""results.json: atomic replacement, sealed records, strict reading, numpy-aware JSON."""

from __future__ import annotations

import json
import os
import types

import numpy as np
import pytest

from fembed_jax import results_io
from fembed_jax.results_io import (ResultsFileError, read_results, record_verified, results_path, to_jsonable,
                                   write_results)


def content(record: dict) -> dict:
    """A record read back, without the seal write_results adds."""
    return {k: v for k, v in record.items() if k not in results_io.SEAL_KEYS}


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
    assert content(read_results(path)) == {"exp_id": "FE-01", "version": 1}
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
    assert content(read_results(path)) == {"version": 1}
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


# -- the seal (R4: a record edited after it was written, still valid JSON) ---------------------

RECORD = {"exp_id": "FE-01", "run_hash": "abc123", "val_metrics": {"auc": 0.5812345678901234, "precision": 0.25},
          "history": [{"epoch": 0, "val_loss": [0.7, None]}], "note": "naïve ✓", "big": 2**62}


def test_a_written_record_is_sealed_and_verifies(tmp_path):
    path = write_results(tmp_path / "FE-01" / "results.json", RECORD)
    on_disk = json.loads(path.read_text())
    assert list(on_disk)[-1] == "record_sha256"  # appended: the record's own order is kept
    assert on_disk["record_sha256"] == results_io.content_digest(RECORD)
    got = read_results(path)
    assert record_verified(got) and content(got) == RECORD
    assert "record_sha256" not in RECORD  # the caller's dict is not modified


@pytest.mark.parametrize("edit", [
    lambda r: r["val_metrics"].__setitem__("auc", r["val_metrics"]["auc"] + 0.05),  # the review's R4
    lambda r: r["history"][0]["val_loss"].__setitem__(0, 0.71),
    lambda r: r.__setitem__("extra", 1),
    lambda r: r.pop("note"),
    lambda r: r.__setitem__("record_sha256", "0" * 64),
], ids=["auc raised", "one loss", "field added", "field removed", "digest replaced"])
def test_an_edited_record_is_damaged(tmp_path, edit):
    path = write_results(tmp_path / "results.json", RECORD)
    record = json.loads(path.read_text())
    edit(record)
    path.write_text(json.dumps(record, indent=2))  # valid JSON, same run hash
    with pytest.raises(ResultsFileError, match="does not match its record_sha256") as info:
        read_results(path)
    assert str(path) in str(info.value)
    assert read_results(path, verify=False) == record  # still readable on purpose


def test_reformatting_a_record_keeps_it_intact(tmp_path):
    """The seal is over the content (canonical JSON), not the bytes: indentation, key order."""
    path = write_results(tmp_path / "results.json", RECORD)
    record = json.loads(path.read_text())
    path.write_text(json.dumps(dict(reversed(list(record.items()))), separators=(",", ":")))
    assert record_verified(read_results(path))


def test_a_record_of_the_previous_release_loads_unverified(tmp_path):
    path = tmp_path / "results.json"
    path.write_text(json.dumps(RECORD, indent=2))  # what fembed wrote before records were sealed
    got = read_results(path)
    assert got == RECORD and record_verified(got) is False


def test_rewriting_a_record_read_back_gives_the_same_bytes(tmp_path):
    """The runner rebuilds a damaged results.json from the store's copy of the record, which
    has no seal: the file must come back byte-identical."""
    path = write_results(tmp_path / "results.json", RECORD)
    original = path.read_bytes()
    stored = json.loads(results_io.dumps(RECORD, indent=None))  # the store's copy
    write_results(path, stored)
    assert path.read_bytes() == original
    write_results(path, read_results(path))  # sealed input: the old seal is replaced, not nested
    assert path.read_bytes() == original


class _Store:
    """What queue._ensure_results_file asks of the run store."""

    def __init__(self, record):
        self.record = record

    def result(self, exp_id):
        return {"record": self.record}


def test_the_runner_rebuilds_an_edited_results_json_from_the_store(tmp_path):
    from fembed_jax.train import queue

    path = results_path(tmp_path, "FE-01")
    write_results(path, RECORD)
    original = path.read_bytes()
    record = json.loads(original)
    record["val_metrics"]["auc"] += 0.05
    path.write_text(json.dumps(record, indent=2))
    item = types.SimpleNamespace(cfg=types.SimpleNamespace(exp_id="FE-01"), run_hash="abc123")
    options = types.SimpleNamespace(outputs_dir=tmp_path)
    with pytest.warns(queue.RecoveryWarning, match=r"FE-01/results.json is damaged .*record_sha256.*; "
                                                     "rewritten from the run store"):
        queue._ensure_results_file(_Store(json.loads(results_io.dumps(RECORD))), options, item)
    assert path.read_bytes() == original
