"""Crash anywhere: `fembed run` as a subprocess, SIGKILLed at a fault point, then restarted.

Each kill point is a `faults.hit(name)` line in the library; FEMBED_FAULT="name:N" makes the
N-th hit of that line SIGKILL the process (fembed_jax/faults.py). After the kill: no
results.json or stored result that exists may differ from the uninterrupted run's (a
half-written one would not even parse). The restart (in this process, like a user typing the
same command again) must exit 0 and end with exactly the uninterrupted run's results.json files,
stored results and per-epoch rows, every experiment done.

The tiny queue is TT-01 then TT-02, 3 epochs each. Hits per clean run: store.claim,
runner.claimed, runner.trained, results_io.*, runner.results_written, store.record_result,
runner.recorded and runner.checkpoints_freed once per experiment; fit.epoch_trained,
store.record_epoch, fit.before_checkpoint and fit.epoch_done once per epoch (TT-01: hits 1-3,
TT-02: 4-6); checkpoint.save_begin, checkpoint.step_written and checkpoint.renamed once per
epoch and once more for each experiment's selected weights, saved after its last epoch (TT-01:
hits 1-4, TT-02: 5-8); checkpoint.item_written twice as often (the state item, then the meta).

Inside an epoch (MID_EPOCH_POINTS): with --chunk-steps 4 an epoch's 15 batches run as chunks
ending at steps 4, 8, 12 and 15, and fit.chunk_trained is hit after each but the last (TT-01:
hits 1-9, TT-02: 10-18). A stop there saves the position (fit.position_saved, and the
checkpoint.* points of its save). The restart runs without --chunk-steps (chunks sized from the
measured step time), so these also show that the results do not depend on the chunking.
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
    ("checkpoint.step_written:4", "TT-01's selected weights written, not renamed (epochs all done)", False),
    ("runner.checkpoints_freed:1", "TT-01 done, its checkpoints reduced to the selected weights", False),
    ("checkpoint.step_written:6", "TT-02 epoch 1's checkpoint written, not renamed", False),
    ("fit.epoch_done:6", "all TT-02 epochs done, before its evaluation", False),
    ("results_io.before_replace:2", "TT-02 results.json temp file written, not renamed", False),
    ("store.record_result:2", "inside the last write of the queue (TT-02 done)", False),
]


MID_EPOCH_POINTS = [
    ("fit.chunk_trained:2", "inside TT-01 epoch 0 (step 8/15), nothing of it saved", True),
    ("fit.chunk_trained:5:sigterm,checkpoint.item_written:3",
     "SIGTERM inside TT-01 epoch 1 (step 8/15); killed mid-write of that position's checkpoint", False),
    ("fit.chunk_trained:5:sigterm,checkpoint.renamed:2",
     "the position inside TT-01 epoch 1 renamed into place, not fsynced", False),
    ("fit.chunk_trained:5:sigterm,fit.position_saved:1",
     "the position inside TT-01 epoch 1 saved, the process not yet out", True),
    ("fit.chunk_trained:14:sigterm,fit.position_saved:1",
     "TT-01 done; the position inside TT-02 epoch 1 (step 8/15) saved", False),
]


@pytest.mark.slow
@pytest.mark.parametrize("point, where, args", [
    *(pytest.param(point, where, (), id=point, marks=() if in_ci else pytest.mark.soak)
      for point, where, in_ci in KILL_POINTS),
    *(pytest.param(point, where, ("--chunk-steps", "4"), id=f"chunks-4-{point}",
                   marks=() if in_ci else pytest.mark.soak)
      for point, where, in_ci in MID_EPOCH_POINTS)])
def test_a_run_killed_anywhere_restarts_and_ends_like_an_uninterrupted_one(point, where, args, tmp_path,
                                                                           reference, caplog):
    make_project(tmp_path)
    started = time.monotonic()
    killed = fembed(tmp_path, "run", "--all", *args, fault=point)
    assert killed.returncode == -signal.SIGKILL, (
        f"{point} was never reached (exit {killed.returncode}):\n{killed.stdout}\n{killed.stderr}")
    state = left_behind(tmp_path)
    assert_nothing_half_written_is_valid(tmp_path, reference)

    code, out, err = fembed_inprocess(tmp_path, "run", "--all")
    assert code == 0, out + err
    assert "Traceback" not in out + err
    assert_same_outcome(tmp_path, reference)
    after = left_behind(tmp_path)  # no leftovers of interrupted writes; only the selected weights
    assert not after["tmp_files"] and not any(after["tmp_steps"].values()), after
    assert after["steps"] == {"TT-01": [], "TT-02": []}, after
    if "running" in state["states"].values():  # the dead runner's claim was taken over at once
        assert "process no longer exists" in caplog.text
    report("kill", point=point, where=where, args=list(args), left=state, restart_exit=code,
           restart_output=[line for line in out.splitlines() if line.startswith(("finished", "TT-"))],
           seconds=round(time.monotonic() - started, 1))


@pytest.mark.slow
@pytest.mark.parametrize("second", [
    pytest.param("fit.chunk_trained:1", id="killed"),
    pytest.param("fit.chunk_trained:1:sigterm", id="stopped-again", marks=pytest.mark.soak)])
def test_a_run_resumed_inside_an_epoch_and_stopped_there_again_ends_like_an_uninterrupted_one(
        second, tmp_path, reference):
    """SIGTERM inside TT-01 epoch 1 (position: step 8); the resumed run is killed (or stopped
    again) after its first chunk (step 12) of that epoch; a third run finishes the queue."""
    make_project(tmp_path)
    first = fembed(tmp_path, "run", "--all", "--chunk-steps", "4", fault="fit.chunk_trained:5:sigterm")
    assert first.returncode == 143, first.stdout + first.stderr
    assert "inside epoch 2/3 (step 8/15)" in first.stdout
    assert left_behind(tmp_path)["steps"]["TT-01"] == ["0", "1"]
    again = fembed(tmp_path, "run", "--all", "--chunk-steps", "4", fault=second)
    if second.endswith("sigterm"):
        assert again.returncode == 143 and "inside epoch 2/3 (step 12/15)" in again.stdout, again.stdout
    else:
        assert again.returncode == -signal.SIGKILL, again.stdout + again.stderr
    assert left_behind(tmp_path)["steps"]["TT-01"] == ["0", "1"]

    code, out, err = fembed_inprocess(tmp_path, "run", "--all")
    assert code == 0, out + err
    assert_same_outcome(tmp_path, reference)
    report("kill", point=f"fit.chunk_trained:5:sigterm, then {second}",
           where="resumed inside TT-01 epoch 1 from step 8, stopped there again at step 12",
           restart_exit=code)


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
