"""`fembed evaluate`: the selected weights restored from the checkpoint, scored on a split."""

from __future__ import annotations

import json

import numpy as np
import pytest

from fembed_jax.cli.main import main
from fembed_jax.predictions import load_predictions
from fembed_jax.store import RunStore
from test_report import make_tiny_project


pytestmark = pytest.mark.usefixtures("shared_cache")  # tests/conftest.py

@pytest.fixture(scope="module")
def tiny_project(tmp_path_factory):
    """The session's tiny runs (FE-01, FE-02 done; LF-01, AE-01 pending): see test_report.py."""
    return make_tiny_project(tmp_path_factory)


def _evaluate(project, capsys, *args):
    code = main(["--registry", str(project / "registry" / "experiments.toml"), "evaluate", *args])
    captured = capsys.readouterr()
    return code, " ".join(captured.out.split()), " ".join(captured.err.split())


def _store_results(project):
    with RunStore(project / "outputs" / "fembed.db", readonly=True) as store:
        return [(r["exp_id"], r["legacy"], r["precision_mean"], r["auc_mean"]) for r in store.results()]


def test_val_rescoring_reproduces_the_run_exactly(tiny_project, capsys):
    outputs = tiny_project / "outputs"
    saved = load_predictions(outputs, "FE-02")  # written at training time
    code, out, err = _evaluate(tiny_project, capsys, "FE-02", "--split", "val")
    assert code == 0, err
    assert "matches results.json" in out
    again = load_predictions(outputs, "FE-02")
    # FE-02 trained in one program with FE-01 (4 members); re-scoring uses a 2-member program,
    # whose kernels may round differently in the last bits.
    np.testing.assert_allclose(again.probs, saved.probs, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(again.labels, saved.labels)
    np.testing.assert_array_equal(again.dates, saved.dates)


def test_test_split_is_recorded_separately_and_never_in_the_store(tiny_project, capsys):
    outputs = tiny_project / "outputs"
    before = _store_results(tiny_project)
    code, out, err = _evaluate(tiny_project, capsys, "FE-01", "--split", "test", "--bootstrap", "200")
    assert code == 0, err
    assert "test split" in out and "never used for ranking" in out
    result = json.loads((outputs / "FE-01" / "test_results.json").read_text())
    record = json.loads((outputs / "FE-01" / "results.json").read_text())
    assert result["split"] == "test" and result["seeds"] == record["seeds"] == [42, 43]
    assert result["n_windows"] == record["splits"]["test"] and len(result["metrics_per_seed"]) == 2
    assert result["run_hash"] == record["run_hash"] and result["checkpoint_epoch"] == 1
    assert result["aggregate"]["auc"]["n"] == 2 and result["ensemble"]["n_samples"] == result["n_windows"]
    test_probs = load_predictions(outputs, "FE-01", "test_predictions.npz")
    assert test_probs.probs.shape == (2, result["n_windows"])
    assert result["data"]["first_decision"] >= "2017-01-01"
    assert _store_results(tiny_project) == before  # nothing ranked, nothing stored


def test_evaluate_refuses_what_it_cannot_score(tiny_project, capsys):
    code, _, err = _evaluate(tiny_project, capsys, "LF-01")
    assert code == 2 and "never run" in err
    code, _, err = _evaluate(tiny_project, capsys, "NO-01")
    assert code == 2 and "NO-01" in err
    with pytest.raises(SystemExit) as exc:  # argparse: train is no split to evaluate
        _evaluate(tiny_project, capsys, "FE-01", "--split", "train")
    assert exc.value.code == 2
