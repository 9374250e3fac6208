"""Crash anywhere: `fembed run` as a subprocess, SIGKILLed at a fault point, then restarted.

Each kill point is a `faults.hit(name)` line in the library; FEMBED_FAULT="name:N" makes the
N-th hit of that line SIGKILL the process (fembed_jax/faults.py). After the kill: no
results.json or stored result that exists may differ from the uninterrupted run's (a
half-written one would not even parse). The restart (in this process, like a user typing the
same command again) must exit 0 and end with exactly the uninterrupted run's results.json files,
stored results and per-epoch rows, every experiment done.

The tiny queue is TT-01 then TT-02, 3 epochs each. Hits per clean run: store.claim,
runner.claimed, runner.trained, results_io.*, runner.results_written, store.record_result and
runner.recorded once per experiment; fit.epoch_trained, store.record_epoch,
fit.before_checkpoint, checkpoint.save_begin, checkpoint.step_written, checkpoint.renamed and
fit.epoch_done once per epoch (TT-01: hits 1-3, TT-02: 4-6); checkpoint.item_written twice per
epoch (the state item, then the meta item).
"""

from __future__ import annotations

import signal
import sqlite3
import time

import pytest

from reliability_harness import (assert_nothing_half_written_is_valid, assert_same_outcome, fembed,
                                 fembed_inprocess, left_behind, make_project, report, store_path)

# (FEMBED_FAULT spec, where the process dies, run in CI?)
KILL_POINTS = [
    ("store.claim:1", "inside the transaction claiming TT-01 (not committed)", False),
    ("runner.claimed:1", "TT-01 claimed, nothing trained yet", False),
    ("fit.epoch_trained:1", "during TT-01 epoch 0: weights updated in memory only", False),
    ("store.record_epoch:1", "inside the transaction recording TT-01 epoch 0", False),
    ("fit.before_checkpoint:1", "TT-01 epoch 0 in the store, its checkpoint not written", False),
    ("checkpoint.save_begin:1", "checkpoint of TT-01 epoch 0 about to be written", False),
    ("checkpoint.item_written:1", "mid checkpoint write: state item done, meta item not, step in tmp dir", True),
    ("checkpoint.step_written:1", "checkpoint fully written in its tmp dir, not renamed", False),
    ("checkpoint.renamed:1", "checkpoint renamed into place, not fsynced", False),
    ("fit.epoch_done:1", "TT-01 epoch 0 complete (store + checkpoint)", False),
    ("fit.epoch_trained:2", "during TT-01 epoch 1, checkpoint of epoch 0 on disk", True),
    ("checkpoint.item_written:4", "mid write of TT-01 epoch 1's checkpoint (meta item), epoch 0 on disk", False),
    ("checkpoint.step_written:3", "TT-01 epoch 2's checkpoint written, not renamed (steps 0, 1 on disk)", False),
    ("fit.epoch_done:3", "all TT-01 epochs done, before the final evaluation", False),
    ("runner.trained:1", "TT-01 evaluated, record built, results.json not written", False),
    ("results_io.before_replace:1", "TT-01 results.json temp file written, not renamed", True),
    ("results_io.replaced:1", "TT-01 results.json renamed, directory not fsynced", False),
    ("runner.results_written:1", "TT-01 results.json written, the store not told", False),
    ("store.record_result:1", "inside the transaction marking TT-01 done", True),
    ("runner.recorded:1", "between experiments: TT-01 done, TT-02 not claimed", True),
    ("store.claim:2", "inside the transaction claiming TT-02", False),
    ("fit.epoch_trained:4", "during TT-02 epoch 0", False),
    ("checkpoint.step_written:5", "TT-02 epoch 1's checkpoint written, not renamed", False),
    ("fit.epoch_done:6", "all TT-02 epochs done, before its evaluation", False),
    ("results_io.before_replace:2", "TT-02 results.json temp file written, not renamed", False),
    ("store.record_result:2", "inside the last write of the queue (TT-02 done)", False),
]


@pytest.mark.slow
@pytest.mark.parametrize("point, where", [
    pytest.param(point, where, id=point, marks=() if in_ci else pytest.mark.soak)
    for point, where, in_ci in KILL_POINTS])
def test_a_run_killed_anywhere_restarts_and_ends_like_an_uninterrupted_one(point, where, tmp_path,
                                                                           reference, caplog):
    make_project(tmp_path)
    started = time.monotonic()
    killed = fembed(tmp_path, "run", "--all", fault=point)
    assert killed.returncode == -signal.SIGKILL, (
        f"{point} was never reached (exit {killed.returncode}):\n{killed.stdout}\n{killed.stderr}")
    state = left_behind(tmp_path)
    assert_nothing_half_written_is_valid(tmp_path, reference)

    code, out, err = fembed_inprocess(tmp_path, "run", "--all")
    assert code == 0, out + err
    assert "Traceback" not in out + err
    assert_same_outcome(tmp_path, reference)
    after = left_behind(tmp_path)  # no leftovers of interrupted writes
    assert not after["tmp_files"] and not any(after["tmp_steps"].values()), after
    if "running" in state["states"].values():  # the dead runner's claim was taken over at once
        assert "process no longer exists" in caplog.text
    report("kill", point=point, where=where, left=state, restart_exit=code,
           restart_output=[line for line in out.splitlines() if line.startswith(("finished", "TT-"))],
           seconds=round(time.monotonic() - started, 1))


def test_a_stale_claim_of_another_host_is_taken_over_once_its_heartbeat_expires(interrupted, copy_of,
                                                                                reference, caplog):
    """A runner on another node died holding TT-01 (its epoch 1 checkpointed): that process
    cannot be checked from here, so its claim holds until the heartbeat is older than
    STALE_AFTER_S; then the next run takes TT-01 over and resumes it."""
    from fembed_jax.liveness import STALE_AFTER_S

    root = copy_of(interrupted)
    now = time.time()
    with sqlite3.connect(store_path(root)) as db:
        db.execute("UPDATE experiments SET state = 'running', claimed_by = 'node-7:4242:0badc0de',"
                   " heartbeat_at = ?, attempts = 1 WHERE exp_id = 'TT-01'", (now,))
    db.close()

    code, out, err = fembed_inprocess(root, "run", "--all")
    assert code == 0, out + err
    assert "TT-01: claimed by another runner" in out
    assert left_behind(root)["states"] == {"TT-01": "running", "TT-02": "done"}

    # Time passes (here: the heartbeat is back-dated) and nobody refreshes the claim.
    with sqlite3.connect(store_path(root)) as db:
        db.execute("UPDATE experiments SET heartbeat_at = ? WHERE exp_id = 'TT-01'",
                   (now - STALE_AFTER_S - 1,))
    db.close()
    code, out, err = fembed_inprocess(root, "run", "--all")
    assert code == 0, out + err
    assert "takes over TT-01 from node-7:4242:0badc0de" in caplog.text
    assert_same_outcome(root, reference)
    report("stale-claim", point="claim of TT-01 held by a dead runner on another host",
           outcome="respected while its heartbeat is fresh; taken over after STALE_AFTER_S; "
                   "results equal the uninterrupted run")
