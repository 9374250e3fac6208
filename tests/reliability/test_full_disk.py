"""A write that fails (full disk): the experiment fails with a clear error, the previous
checkpoint and result files stay intact, the queue goes on, and a later run recovers.

In CI the failure is injected (FEMBED_FAULT action "oserror" raises OSError(ENOSPC) at a fault
point, just before the write it names). The soak test fills a real, tiny tmpfs instead.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import uuid

import pytest

from fembed_jax import faults
from reliability_harness import (assert_same_outcome, fembed, fembed_inprocess, left_behind, make_project,
                                 report, results_path, store_rows)


def run_with_fault(root, spec, *args):
    faults.arm(spec)
    try:
        return fembed_inprocess(root, "run", *args)
    finally:
        faults.disarm()


def error_of(root, exp_id):
    return next(r["error"] for r in store_rows(root)["queue"] if r["exp_id"] == exp_id)


@pytest.mark.slow
def test_a_checkpoint_that_cannot_be_written_fails_the_experiment_and_keeps_the_previous_one(
        interrupted, copy_of, reference):
    """TT-01 resumes at epoch 2 and its checkpoint save fails: steps 0 and 1 survive."""
    root = copy_of(interrupted)
    code, out, err = run_with_fault(root, "checkpoint.save_begin:1:oserror", "--all")
    assert code == 1, out + err
    assert "Traceback" not in out + err
    assert "TT-01 failed: OSError: [Errno 28] No space left on device" in err
    assert "TT-02: precision" in out  # the queue went on
    state = left_behind(root)
    assert state["states"] == {"TT-01": "failed", "TT-02": "done"}
    assert state["steps"]["TT-01"] == ["0", "1"] and not state["tmp_steps"]["TT-01"]
    assert "Traceback" in (root / "outputs" / "TT-01" / "error.log").read_text()  # details for a bug report

    code, out, err = fembed_inprocess(root, "run", "--all")
    assert code == 0, out + err
    assert_same_outcome(root, reference)
    assert json.loads(results_path(root, "TT-01").read_text())["training"]["resumed_from_epoch"] == 1
    report("full-disk", case="checkpoint write fails (injected ENOSPC before the orbax save)",
           outcome="TT-01 failed with 'OSError: [Errno 28] No space left on device'; steps 0, 1 intact; "
                   "TT-02 trained; next run resumed TT-01 from epoch 1, results equal")


@pytest.mark.slow
def test_a_results_json_that_cannot_be_written_keeps_the_previous_record(reference, copy_of):
    """--force retrains TT-01; writing its new results.json fails: the old file is untouched."""
    root = copy_of(reference["root"])
    path = results_path(root, "TT-01")
    before = path.read_bytes()
    code, out, err = run_with_fault(root, "results_io.before_replace:1:oserror", "--exp-id", "TT-01", "--force")
    assert code == 1, out + err
    assert "Traceback" not in out + err
    assert "TT-01 failed: OSError: [Errno 28] No space left on device" in err
    assert path.read_bytes() == before
    assert not [p.name for p in path.parent.iterdir() if p.name.endswith(".tmp")]
    assert error_of(root, "TT-01").startswith("OSError: [Errno 28]")

    code, out, err = fembed_inprocess(root, "run", "--all")
    assert code == 0, out + err
    assert_same_outcome(root, reference)
    report("full-disk", case="results.json write fails (injected ENOSPC between temp file and rename)",
           outcome="TT-01 failed with a clear error; the previous results.json byte-identical, no temp "
                   "file left; next run redid TT-01 from its last checkpoint, results equal")


@pytest.mark.soak
def test_a_store_write_that_fails_rolls_back_and_fails_only_that_experiment(tmp_path, reference):
    make_project(tmp_path)
    code, out, err = run_with_fault(tmp_path, "store.record_epoch:2:oserror", "--all")
    assert code == 1, out + err
    assert "Traceback" not in out + err
    assert "TT-01 failed: OSError: [Errno 28]" in err and "TT-02: precision" in out
    assert [r["epoch"] for r in store_rows(tmp_path)["epochs"] if r["exp_id"] == "TT-01"] == [0, 0]

    code, out, err = fembed_inprocess(tmp_path, "run", "--all")
    assert code == 0, out + err
    assert_same_outcome(tmp_path, reference)
    report("full-disk", case="store write fails inside the epoch-1 transaction (injected ENOSPC)",
           outcome="transaction rolled back, TT-01 failed with a clear error, TT-02 trained; next run "
                   "redid epoch 1, results equal")


def _mount_tmpfs(target, size):
    target.mkdir(parents=True, exist_ok=True)
    if not shutil.which("mount"):
        pytest.skip("no mount command")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(target)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")


REAL_DISKS = [
    # (folder on the tmpfs, tmpfs size, fill it completely before the run?)
    pytest.param("checkpoints", "320k", False, id="checkpoints-320KiB"),
    pytest.param("outputs", "160k", False, id="outputs-160KiB"),
    pytest.param("outputs", "4m", True, id="outputs-full-before-start"),
]


def _runner_errors(failed) -> list[tuple[str, str]]:
    # The runner reached its summary: no exception escaped it. (orbax logs its own failed
    # background writes on stderr, tracebacks included: noise, see RELIABILITY.md.)
    assert "finished:" in failed.stdout, failed.stdout + failed.stderr[-3000:]
    # The "TT-xx failed:" lines go to stderr (with orbax's noise), the per-experiment results to
    # stdout; rich wraps long messages.
    unwrapped = (failed.stdout + failed.stderr).replace("\n", "")
    errors = re.findall(r"(TT-\d\d) failed: (.{0,3000}?)(?=TT-\d\d failed: |TT-\d\d: precision|queue |finished:|$)",
                        unwrapped)
    assert errors, failed.stdout
    for exp_id, message in errors:  # tensorstore says RESOURCE_EXHAUSTED, SQLite "disk is full"
        assert re.search(r"No space left on device|disk is full", message), (exp_id, message)
    return errors


@pytest.mark.soak
@pytest.mark.parametrize("folder, size, fill", REAL_DISKS)
def test_a_really_full_disk(folder, size, fill, tmp_path, reference):
    """outputs/ or checkpoints/ on a tiny tmpfs: real ENOSPC from SQLite, orbax/tensorstore or
    the results writer. The run must end with a clear error (the queue going on where it can),
    and once there is space the same command completes with the uninterrupted run's results."""
    make_project(tmp_path)
    disk = tmp_path / f"disk-{uuid.uuid4().hex[:6]}"
    _mount_tmpfs(disk, size)
    where = [f"--{folder}", str(disk)]
    try:
        if fill:
            assert fembed_inprocess(tmp_path, "run", "--exp-id", "TT-01", *where)[0] == 0
            with open(disk / "filler", "wb") as fh:
                fh.write(b"\0" * (os.statvfs(disk).f_bavail * os.statvfs(disk).f_frsize))
        failed = fembed(tmp_path, "run", "--all", *where, timeout=600)
        assert failed.returncode == 1, failed.stdout + failed.stderr
        if fill:  # the run store itself cannot be opened: one error line, nothing trained
            assert "Traceback" not in failed.stderr, failed.stderr
            assert "run store" in failed.stderr and "nothing is lost" in failed.stderr, failed.stderr
            errors = [("(all)", failed.stderr.strip().replace("\n", " "))]
        else:
            errors = _runner_errors(failed)

        subprocess.run(["mount", "-o", "remount,size=16m", str(disk)], check=True)
        (disk / "filler").unlink(missing_ok=True)
        done = fembed(tmp_path, "run", "--all", *where, timeout=600)
        assert done.returncode == 0, done.stdout + done.stderr
        outputs = disk if folder == "outputs" else tmp_path / "outputs"
        for exp_id in ("TT-01", "TT-02"):
            record = json.loads((outputs / exp_id / "results.json").read_text())
            assert record["history"] == reference["results_json"][exp_id]["history"]
            assert record["val_metrics_per_seed"] == reference["results_json"][exp_id]["val_metrics_per_seed"]
        report("full-disk", case=f"{folder}/ on a {size} tmpfs" + (" filled before the run" if fill else ""),
               first_run=[f"{e} failed: {m[:160]}" for e, m in errors]
               + [line for line in failed.stdout.splitlines() if line.startswith("finished")],
               outcome="exit 1, one clear line per failed experiment; after more space the same command "
                       "completed with the uninterrupted run's results")
    finally:
        subprocess.run(["umount", "-l", str(disk)], capture_output=True)
