"""SIGTERM / SIGINT: the runner finishes the epoch it is in, checkpoints it, releases the claim,
exits 143 / 130, and the same command later resumes to the uninterrupted run's results.

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
def test_a_signal_from_outside_stops_after_the_epoch_and_the_run_resumes(sig, code, tmp_path, reference):
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
    assert state["steps"]["TT-01"], "the epoch it was in is checkpointed"

    restart = resume_and_compare(tmp_path, reference)
    report("signal", signal=sig.name, how="sent from outside after TT-01's first checkpoint",
           exit_code=proc.returncode, seconds_to_exit=round(seconds, 2), left=state,
           restart=[line for line in restart.splitlines() if line.startswith("finished")])


SELF_SIGNALS = [
    # (fault, exit code, expected states right after, checkpoint steps of TT-01, in CI?)
    ("fit.epoch_trained:2:sigint", 130, {"TT-01": "pending", "TT-02": "pending"}, ["0", "1"], True),
    ("runner.recorded:1:sigterm", 143, {"TT-01": "done", "TT-02": "pending"}, ["1", "2"], True),
    ("runner.trained:1:sigterm", 143, {"TT-01": "done", "TT-02": "pending"}, ["1", "2"], False),
    # a second Ctrl-C aborts at once (KeyboardInterrupt): epoch 0 is in the store, not checkpointed
    ("fit.epoch_trained:1:sigint,fit.before_checkpoint:1:sigint", 130,
     {"TT-01": "pending", "TT-02": "pending"}, [], False),
]


@pytest.mark.slow
@pytest.mark.parametrize("fault, code, states, steps", [
    pytest.param(f, c, st, sp, id=f, marks=() if ci else pytest.mark.soak) for f, c, st, sp, ci in SELF_SIGNALS])
def test_a_signal_at_a_fault_point_exits_with_its_code_and_the_run_resumes(fault, code, states, steps,
                                                                         tmp_path, reference):
    make_project(tmp_path)
    stopped = fembed(tmp_path, "run", "--all", fault=fault, timeout=HANG_GUARD_S)
    assert stopped.returncode == code, stopped.stdout + stopped.stderr
    assert "Traceback" not in stopped.stdout + stopped.stderr
    state = left_behind(tmp_path)
    assert state["states"] == states
    assert state["steps"].get("TT-01", []) == steps

    restart = resume_and_compare(tmp_path, reference)
    report("signal", signal=fault, how="sent by the process itself at the fault point",
           exit_code=stopped.returncode, left=state,
           restart=[line for line in restart.splitlines() if line.startswith("finished")])
