"""SIGKILL at random times (not only at fault points): however often a run of the tiny project
is killed, the run that finally finishes ends exactly like an uninterrupted one.

Bounded for every CI run (10 kills, about two minutes); FEMBED_RELIABILITY_FULL=1 adds a longer
one. The kill times come from a seeded generator: FEMBED_SOAK_SEED=N reproduces a failure.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import time

import pytest

from reliability_harness import (assert_same_outcome, fembed, fembed_cmd, left_behind, make_project,
                                 report, subprocess_env)


@pytest.mark.parametrize("kills", [10, pytest.param(40, marks=pytest.mark.soak)])
def test_random_sigkills_end_like_an_uninterrupted_run(kills, tmp_path, reference):
    seed = int(os.environ.get("FEMBED_SOAK_SEED") or random.SystemRandom().randrange(10**6))
    rng = random.Random(seed)
    make_project(tmp_path)
    killed, finished, delays = 0, False, []
    while killed < kills and not finished:
        process = subprocess.Popen(fembed_cmd(tmp_path, "run", "--all"), env=subprocess_env(),
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        delay = rng.uniform(0.5, 8.0)  # start-up (~4 s: imports, cached compile) and training
        try:
            finished = process.wait(timeout=delay) == 0
        except subprocess.TimeoutExpired:
            process.send_signal(signal.SIGKILL)
            process.wait()
            killed += 1
            delays.append(round(delay, 2))
    state = left_behind(tmp_path)
    done = fembed(tmp_path, "run", "--all")
    assert done.returncode == 0, f"seed {seed}: " + done.stdout + done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    assert_same_outcome(tmp_path, reference)
    report("random-kill", case=f"{kills} SIGKILLs at random times (seed {seed})", kills=killed,
           delays_s=delays, left_before_last_run=state["states"], outcome="identical to the uninterrupted run")
