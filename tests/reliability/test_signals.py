"""SIGTERM / SIGINT: the runner finishes the chunk of steps it is in, checkpoints its position
inside the epoch (or the epoch, at its end), releases the claim, exits 143 / 130, and the same
command later resumes to the uninterrupted run's results.

The external-signal test waits for TT-01's first checkpoint and then signals the process from
outside; the others let the process signal itself at a fault point (FEMBED_FAULT
"point:N:sigterm|sigint"), which makes the moment deterministic. How long the runner took from
signal to exit is reported (FEMBED_RELIABILITY_REPORT), not asserted.
"""

from __future__ import annotations

import signal
import subprocess
import time

import pytest

from reliability_harness import (assert_same_outcome, fembed, fembed_cmd, fembed_inprocess, left_behind,
                                 make_project, report, subprocess_env)

HANG_GUARD_S = 300  # a guard against a runner that never exits, not a timing requirement


def resume_and_compare(root, reference) -> str:
    code, out, err = fembed_inprocess(root, "run", "--all")
    assert code == 0, out + err
    assert_same_outcome(root, reference)
    return out


@pytest.mark.slow
@pytest.mark.parametrize("sig, code", [pytest.param(signal.SIGTERM, 143, id="SIGTERM"),
                                       pytest.param(signal.SIGINT, 130, id="SIGINT", marks=pytest.mark.soak)])
def test_a_signal_from_outside_stops_within_seconds_and_the_run_resumes(sig, code, tmp_path, reference):
    make_project(tmp_path)
    proc = subprocess.Popen(fembed_cmd(tmp_path, "run", "--all"), env=subprocess_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    first_checkpoint = tmp_path / "checkpoints" / "TT-01" / "0"
    deadline = time.monotonic() + HANG_GUARD_S
    while not first_checkpoint.is_dir() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(sig)
    signalled = time.monotonic()
    out, err = proc.communicate(timeout=HANG_GUARD_S)
    seconds = time.monotonic() - signalled
    assert proc.returncode == code, out + err
    assert f"stopped by {sig.name}" in out and "Traceback" not in out + err
    state = left_behind(tmp_path)
    assert state["states"]["TT-01"] == "pending" and state["states"]["TT-02"] == "pending"
    assert state["steps"]["TT-01"], "the position it was at is checkpointed"
    assert seconds < 30, f"{seconds:.1f} s from {sig.name} to exit"

    restart = resume_and_compare(tmp_path, reference)
    report("signal", signal=sig.name, how="sent from outside after TT-01's first checkpoint",
           exit_code=proc.returncode, seconds_to_exit=round(seconds, 2), left=state,
           restart=[line for line in restart.splitlines() if line.startswith("finished")])


SELF_SIGNALS = [
    # (fault, extra args, exit code, expected states right after, checkpoint steps of TT-01, in CI?)
    ("fit.epoch_trained:2:sigint", (), 130, {"TT-01": "pending", "TT-02": "pending"}, ["0", "1"], True),
    # inside TT-01 epoch 1 after step 8 of 15: that position is step 1
    ("fit.chunk_trained:5:sigterm", ("--chunk-steps", "4"), 143, {"TT-01": "pending", "TT-02": "pending"},
     ["0", "1"], True),
    # the signal comes as TT-01 is recorded: its checkpoints are still freed, then the queue stops
    ("runner.recorded:1:sigterm", (), 143, {"TT-01": "done", "TT-02": "pending"}, [], True),
    # TT-01 goes on to be recorded, and its checkpoints freed, before the runner stops
    ("runner.trained:1:sigterm", (), 143, {"TT-01": "done", "TT-02": "pending"}, [], False),
    # a second Ctrl-C aborts at once (KeyboardInterrupt): epoch 0 is in the store, not checkpointed
    ("fit.epoch_trained:1:sigint,fit.before_checkpoint:1:sigint", (), 130,
     {"TT-01": "pending", "TT-02": "pending"}, [], False),
    # ... also while the position inside epoch 1 (step 4) is being saved: epoch 0's stays
    ("fit.chunk_trained:4:sigint,checkpoint.save_begin:2:sigint", ("--chunk-steps", "4"), 130,
     {"TT-01": "pending", "TT-02": "pending"}, ["0"], False),
]


@pytest.mark.slow
@pytest.mark.parametrize("fault, args, code, states, steps", [
    pytest.param(f, a, c, st, sp, id=f, marks=() if ci else pytest.mark.soak)
    for f, a, c, st, sp, ci in SELF_SIGNALS])
def test_a_signal_at_a_fault_point_exits_with_its_code_and_the_run_resumes(fault, args, code, states,
                                                                         steps, tmp_path, reference):
    make_project(tmp_path)
    stopped = fembed(tmp_path, "run", "--all", *args, fault=fault, timeout=HANG_GUARD_S)
    assert stopped.returncode == code, stopped.stdout + stopped.stderr
    assert "Traceback" not in stopped.stdout + stopped.stderr
    state = left_behind(tmp_path)
    assert state["states"] == states
    assert state["steps"].get("TT-01", []) == steps
    if "chunk_trained:5" in fault:
        assert "stopping: saving the position inside epoch 2 (step 8/15) of TT-01…" in stopped.stdout
        assert "TT-01 inside epoch 2/3 (step 8/15); that position is checkpointed" in stopped.stdout

    restart = resume_and_compare(tmp_path, reference)
    assert left_behind(tmp_path)["steps"] == {"TT-01": [], "TT-02": []}  # done: selected weights only
    report("signal", signal=fault, how="sent by the process itself at the fault point",
           exit_code=stopped.returncode, left=state,
           restart=[line for line in restart.splitlines() if line.startswith("finished")])
