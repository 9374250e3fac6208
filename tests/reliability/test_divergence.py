"""Divergence: an experiment whose loss turns NaN (learning rate 1e30) is marked failed
("diverged") and the queue goes on; running the queue again does not loop or crash on it."""

from __future__ import annotations

import json

import pytest

from reliability_harness import (comparable, fembed_inprocess, left_behind, make_project, report,
                                 results_path, store_rows)


@pytest.mark.slow
def test_a_diverging_experiment_fails_and_the_queue_continues(tmp_path, reference):
    make_project(tmp_path, extra_01="learning_rate = 1e30\n")
    code, out, err = fembed_inprocess(tmp_path, "run", "--all")
    assert code == 1, out + err
    assert "Traceback" not in out + err
    assert "TT-01 failed: diverged: every seed produced a non-finite loss" in err
    queue = {r["exp_id"]: r for r in store_rows(tmp_path)["queue"]}
    assert queue["TT-01"]["state"] == "failed" and queue["TT-01"]["error"].startswith("diverged")
    assert queue["TT-02"]["state"] == "done"
    assert comparable(json.loads(results_path(tmp_path, "TT-02").read_text())) == reference["results_json"]["TT-02"]
    rows = [r for r in store_rows(tmp_path)["epochs"] if r["exp_id"] == "TT-01"]
    assert rows and all(r["train_loss"] is None and not r["active"] for r in rows)  # NaN stored as NULL
    assert not results_path(tmp_path, "TT-01").exists()

    again = fembed_inprocess(tmp_path, "run", "--all")
    assert again[0] == 1 and "TT-01 failed: diverged" in again[2] and "1 skipped" in again[1]
    assert left_behind(tmp_path)["states"] == {"TT-01": "failed", "TT-02": "done"}
    report("divergence", case="learning_rate = 1e30 on TT-01",
           outcome="every seed's loss NaN at epoch 0: seeds stopped, TT-01 failed 'diverged: every seed "
                   "produced a non-finite loss', TT-02 trained (equal to the reference); a rerun retries "
                   "TT-01 from its checkpoint, fails the same way in seconds, exit 1")
