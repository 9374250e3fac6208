"""val_predictions.npz against the digest results.json records (R5: overwritten, R6: deleted),
and what the report makes of damaged files (R4, R5, R6)."""

from __future__ import annotations

import json
import os
import types

import numpy as np
import pytest

from fembed_jax import predictions, results_io
from fembed_jax.metrics import classification_metrics
from fembed_jax.predictions import (PredictionsDamagedError, PredictionsError, load_predictions,
                                    predictions_path, save_predictions, write_predictions)

RNG = np.random.default_rng(0)
LABELS = (RNG.random(60) < 0.3).astype(np.float32)
PROBS = np.clip(RNG.normal(0.3, 0.2, (2, LABELS.size)) + 0.2 * LABELS, 0, 1).astype(np.float32)
SEEDS = [42, 43]


def a_record(exp_id: str = "FE-01") -> dict:
    per_seed = [dict(classification_metrics(p, LABELS), seed=s, diverged=False) for s, p in zip(SEEDS, PROBS)]
    return {"exp_id": exp_id, "run_hash": f"hash-{exp_id}", "seeds": SEEDS, "val_metrics_per_seed": per_seed,
            "config": {"exp_id": exp_id, "priority": "P1", "tier": "a20"}, "selection": "best"}


def finished_run(outputs, exp_id: str = "FE-01") -> dict:
    """What the runner leaves: predictions first (save_predictions), then results.json."""
    fit = types.SimpleNamespace(val_probs=PROBS, seeds=SEEDS)
    dataset = types.SimpleNamespace(labels={"val": LABELS}, starts={"val": np.arange(LABELS.size)})
    save_predictions(outputs, exp_id, fit, dataset)
    record = a_record(exp_id)
    predictions.write_results(results_io.results_path(outputs, exp_id), record)
    return record


def random_bytes(path):
    path.write_bytes(os.urandom(path.stat().st_size))


def other_valid_predictions(path):
    """A valid npz, other numbers: only the digest tells."""
    write_predictions_unsealed(path, PROBS[:, ::-1])


def write_predictions_unsealed(path, probs):
    from fembed_jax.predictions import _write

    _write(path, probs, LABELS, np.arange(LABELS.size), SEEDS, None)


DAMAGE = {"random bytes (R5)": random_bytes, "deleted (R6)": os.remove, "cut short": lambda p: p.write_bytes(p.read_bytes()[:100]),
          "other valid predictions": other_valid_predictions}


def test_results_json_records_the_digest_of_the_predictions_beside_it(tmp_path):
    finished_run(tmp_path)
    record = results_io.read_results(results_io.results_path(tmp_path, "FE-01"))
    path = predictions_path(tmp_path, "FE-01")
    assert record["predictions_sha256"] == {"val_predictions.npz": results_io.file_sha256(path)}
    got = load_predictions(tmp_path, "FE-01")
    np.testing.assert_array_equal(got.probs, PROBS)


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_damaged_or_missing_predictions_are_reported_not_used(tmp_path, damage):
    finished_run(tmp_path)
    DAMAGE[damage](predictions_path(tmp_path, "FE-01"))
    with pytest.raises(PredictionsDamagedError, match=r"val_predictions.npz: predictions missing \(damaged\)") as info:
        load_predictions(tmp_path, "FE-01")
    assert "fembed evaluate FE-01 --split val" in str(info.value)
    assert isinstance(info.value, PredictionsError)  # what compare and report already catch


def test_predictions_of_the_previous_release_stay_unverified(tmp_path):
    """results.json without predictions_sha256: a missing file is no damage, an unreadable one
    the old error."""
    path = predictions_path(tmp_path, "FE-01")
    write_predictions(path, PROBS, LABELS, np.arange(LABELS.size), SEEDS)
    results_io.results_path(tmp_path, "FE-01").write_text(json.dumps(a_record()))
    assert load_predictions(tmp_path, "FE-01") is not None
    random_bytes(path)
    with pytest.raises(PredictionsError, match="cannot read") as info:
        load_predictions(tmp_path, "FE-01")
    assert not isinstance(info.value, PredictionsDamagedError)
    path.unlink()
    assert load_predictions(tmp_path, "FE-01") is None


def test_a_rebuilt_results_json_does_not_vouch_for_damaged_predictions(tmp_path):
    """The runner rebuilds results.json from the store; predictions that no longer load get no
    digest (and so keep failing to load) instead of one that blesses them."""
    record = finished_run(tmp_path)
    random_bytes(predictions_path(tmp_path, "FE-01"))
    results = results_io.results_path(tmp_path, "FE-01")
    results.unlink()
    predictions.write_results(results, record)
    assert "predictions_sha256" not in results_io.read_results(results)
    with pytest.raises(PredictionsError):
        load_predictions(tmp_path, "FE-01")


def test_predictions_written_again_after_the_result_keep_results_json_in_step(tmp_path):
    """`fembed evaluate ID --split val` writes the predictions of a finished run again (after
    checking they reproduce it): results.json must then record the new file."""
    finished_run(tmp_path)
    path = predictions_path(tmp_path, "FE-01")
    os.remove(path)
    results = results_io.results_path(tmp_path, "FE-01")
    before = results_io.read_results(results)
    write_predictions(path, PROBS, LABELS, np.arange(LABELS.size), SEEDS)
    after = results_io.read_results(results)  # still sealed, and the seal verifies
    assert after["predictions_sha256"] == {"val_predictions.npz": results_io.file_sha256(path)}
    assert {k: v for k, v in after.items() if k not in results_io.SEAL_KEYS} == \
        {k: v for k, v in before.items() if k not in results_io.SEAL_KEYS}
    assert load_predictions(tmp_path, "FE-01") is not None


def test_writing_predictions_leaves_a_damaged_or_unsealed_results_json_alone(tmp_path):
    finished_run(tmp_path)
    results = results_io.results_path(tmp_path, "FE-01")
    record = json.loads(results.read_text())
    record["seeds"] = [1, 2]
    results.write_text(json.dumps(record))  # fails its seal: the runner rebuilds it, not us
    damaged = results.read_bytes()
    write_predictions(predictions_path(tmp_path, "FE-01"), PROBS, LABELS, np.arange(LABELS.size), SEEDS)
    assert results.read_bytes() == damaged


# -- the report -------------------------------------------------------------------------------

def stored_run(outputs, exp_id: str = "FE-01") -> None:
    from fembed_jax.store import RunStore

    record = finished_run(outputs, exp_id)
    with RunStore(outputs / "fembed.db") as store:
        store.record_result(exp_id, record["run_hash"], record)


def test_the_report_uses_intact_files_without_a_word(tmp_path):
    from fembed_jax.report import collect

    stored_run(tmp_path)
    data = collect(tmp_path, n_boot=20)
    assert data.warnings == []
    assert data.fembed[0].predictions is not None


@pytest.mark.parametrize("damage", ["random bytes (R5)", "deleted (R6)"])
def test_the_report_flags_damaged_predictions(tmp_path, damage):
    from fembed_jax.report import collect

    stored_run(tmp_path)
    DAMAGE[damage](predictions_path(tmp_path, "FE-01"))
    data = collect(tmp_path, n_boot=20)
    assert data.fembed[0].predictions is None and data.fembed[0].stats["ensemble"] is None
    assert any(w.startswith("FE-01: val_predictions.npz not used") and "predictions missing (damaged)" in w
               for w in data.warnings), data.warnings


def test_the_report_flags_an_edited_results_json_and_shows_the_stores_record(tmp_path):
    """R4: the val AUC raised by 0.05 in results.json (valid JSON, same run hash)."""
    from fembed_jax.report import collect

    stored_run(tmp_path)
    results = results_io.results_path(tmp_path, "FE-01")
    record = json.loads(results.read_text())
    record["val_metrics_per_seed"][0]["auc"] += 0.05
    results.write_text(json.dumps(record, indent=2))
    data = collect(tmp_path, n_boot=20)
    assert any(w.startswith("FE-01: results.json is damaged") and "does not match its record_sha256" in w
               for w in data.warnings), data.warnings
    assert data.fembed[0].record["val_metrics_per_seed"][0]["auc"] == a_record()["val_metrics_per_seed"][0]["auc"]


def test_the_report_flags_an_unsealed_results_json_that_disagrees_with_the_store(tmp_path):
    from fembed_jax.report import collect

    stored_run(tmp_path)
    results = results_io.results_path(tmp_path, "FE-01")
    record = {k: v for k, v in json.loads(results.read_text()).items() if k not in results_io.SEAL_KEYS}
    record["selection"] = "last"
    results.write_text(json.dumps(record))  # as the previous release wrote it: unverified
    data = collect(tmp_path, n_boot=20)
    assert any("results.json differs from the run store's record" in w for w in data.warnings), data.warnings
