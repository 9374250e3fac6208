"""Damaged state on disk: each case gives a warning and the right recovery, never a traceback.

Checkpoint cases start from `interrupted` (TT-01 stopped after epoch 1: steps 0 and 1 on disk),
damage it, run `fembed run --all` again and must end with the uninterrupted run's results:
resumed from the newest intact step (or from scratch), TT-02 untouched; a meta item edited into
other valid JSON (C9, C10) is damage like any other. results.json cases start from the finished
reference project: the file (also one edited into other valid JSON, R4) is rewritten from the run
store, nothing retrains. Damaged or deleted predictions (R5, R6) are named by `fembed report` and
`fembed compare` and not used.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys

import pytest

from fembed_jax.checkpoint import CheckpointWarning
from fembed_jax.train.queue import RecoveryWarning
from reliability_harness import (assert_same_outcome, fembed_inprocess, report, results_path,
                                 store_path)


def warnings_shown(recwarn, err, category):
    """What a run warned: the recorded warnings of ``category``, and the CLI's "warning: ..."
    lines (cli.common.guarded prints library warnings as one line, so pytest records none)."""
    recorded = [str(w.message) for w in recwarn if issubclass(w.category, category)]
    printed = [line.removeprefix("warning: ") for line in err.splitlines() if line.startswith("warning: ")]
    return recorded + printed


def largest_file(folder):
    return max((p for p in folder.rglob("*") if p.is_file()), key=lambda p: p.stat().st_size)


def truncate(path):
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def garble(path):
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle:middle + 64] = bytes(b ^ 0xFF for b in data[middle:middle + 64])
    path.write_bytes(bytes(data))


def step(root, exp_id, epoch):
    return root / "checkpoints" / exp_id / str(epoch)


def damage_truncated_array(root):
    truncate(largest_file(step(root, "TT-01", 1) / "state"))


def damage_garbled_array(root):
    garble(largest_file(step(root, "TT-01", 1) / "state"))


def damage_garbled_meta(root):
    (step(root, "TT-01", 1) / "meta" / "metadata").write_text('{"epoch": 1, "config_ha')


def edit_meta(root, change):
    """Rewrite TT-01 step 1's meta item after ``change(meta)``; the JSON stays valid."""
    path = step(root, "TT-01", 1) / "meta" / "metadata"
    meta = json.loads(path.read_text())
    change(meta)
    path.write_text(json.dumps(meta))


def damage_one_loss_digit_in_meta(root):
    """C9: one digit of a loss in the history changed (valid JSON)."""
    def change(meta):
        losses = meta["history"][-1]["val_loss"]
        text = repr(losses[0])
        position = next(i for i in range(len(text) - 1, -1, -1) if text[i].isdigit())
        losses[0] = float(text[:position] + str((int(text[position]) + 1) % 10) + text[position + 1:])
    edit_meta(root, change)


def damage_epoch_decremented_in_meta(root):
    """C10: 'epoch' decremented (valid JSON)."""
    edit_meta(root, lambda meta: meta.__setitem__("epoch", meta["epoch"] - 1))


def damage_missing_manifest(root):
    (step(root, "TT-01", 1) / "state" / "manifest.ocdbt").unlink()


def damage_both_steps(root):
    truncate(largest_file(step(root, "TT-01", 1) / "state"))
    garble(largest_file(step(root, "TT-01", 0) / "state"))


def damage_other_config(root):
    """TT-02's checkpoint folder holds checkpoints saved for TT-01's config (another hash)."""
    shutil.copytree(root / "checkpoints" / "TT-01", root / "checkpoints" / "TT-02")


def damage_half_deleted_old_step(root):
    """A crash while orbax removed an old step (max_to_keep): step 0 lost its state item."""
    shutil.rmtree(step(root, "TT-01", 0) / "state")


def damage_stray_tmp_step(root):
    """A crash mid-save left an unfinished step directory behind."""
    shutil.copytree(step(root, "TT-01", 1), root / "checkpoints" / "TT-01" / "2.orbax-checkpoint-tmp-1234")
    truncate(largest_file(root / "checkpoints" / "TT-01" / "2.orbax-checkpoint-tmp-1234" / "state"))


CHECKPOINT_CASES = [
    # (damage, resumed_from_epoch of TT-01 afterwards, a CheckpointWarning matching, in CI?)
    (damage_truncated_array, 0, r"TT-01/1: (cannot be restored|restored contents do not match)", True),
    (damage_garbled_array, 0, r"TT-01/1: (cannot be restored|restored contents do not match)", True),
    (damage_garbled_meta, 0, r"TT-01/1: unreadable metadata", False),
    (damage_one_loss_digit_in_meta, 0, r"TT-01/1: metadata does not match its digest", True),
    (damage_epoch_decremented_in_meta, 0, r"TT-01/1: metadata does not match its digest", True),
    (damage_missing_manifest, 0, r"TT-01/1: cannot be restored", False),
    (damage_both_steps, None, r"TT-01/0: ", True),
    (damage_other_config, 1, r"TT-02/1: saved for run", True),
    (damage_half_deleted_old_step, 1, None, False),
    (damage_stray_tmp_step, 1, None, False),
]


@pytest.mark.slow
@pytest.mark.parametrize("damage, resumed_from, warning", [
    pytest.param(d, r, w, id=d.__name__.removeprefix("damage_"), marks=() if ci else pytest.mark.soak)
    for d, r, w, ci in CHECKPOINT_CASES])
def test_a_damaged_checkpoint_is_skipped_with_a_warning(damage, resumed_from, warning, interrupted,
                                                        copy_of, reference, recwarn):
    root = copy_of(interrupted)
    damage(root)
    code, out, err = fembed_inprocess(root, "run", "--all")
    assert code == 0, out + err
    assert "Traceback" not in out + err
    assert_same_outcome(root, reference)
    record = json.loads(results_path(root, "TT-01").read_text())
    assert record["training"]["resumed_from_epoch"] == resumed_from
    warned = warnings_shown(recwarn, err, CheckpointWarning)
    if warning:
        assert any(re.search(warning, text) for text in warned), warned
    report("damage", case=damage.__name__.removeprefix("damage_"), doc=damage.__doc__,
           warnings=warned, resumed_from_epoch=resumed_from, outcome="results equal the uninterrupted run")


RESULTS_CASES = {
    "deleted": lambda path: path.unlink(),
    "truncated": truncate,
    "garbled": lambda path: path.write_bytes(b"\xff\xfe" + path.read_bytes()[2:]),
    "empty": lambda path: path.write_bytes(b""),
    "another run's": lambda path: path.write_text(json.dumps({"exp_id": "TT-01", "run_hash": "0" * 16})),
    "val AUC edited (R4)": lambda path: path.write_text(json.dumps(raise_auc(json.loads(path.read_text())), indent=2)),
}


def raise_auc(record):
    """R4: val AUC raised by 0.05; valid JSON, same run hash."""
    record["val_metrics"]["auc"] += 0.05
    record["summary"]["auc_mean"] += 0.05
    return record


@pytest.mark.slow
@pytest.mark.parametrize("case", list(RESULTS_CASES))
def test_a_damaged_results_json_is_rebuilt_from_the_store(case, reference, copy_of, recwarn):
    root = copy_of(reference["root"])
    path = results_path(root, "TT-01")
    original = path.read_bytes()
    RESULTS_CASES[case](path)
    code, out, err = fembed_inprocess(root, "run", "--all")
    warned = warnings_shown(recwarn, err, RecoveryWarning)
    assert any(re.search(r"TT-01/results.json .*; rewritten from the run store", w) for w in warned), warned
    assert code == 0, out + err
    assert "0 trained, 2 skipped" in out
    assert path.read_bytes() == original
    assert_same_outcome(root, reference)
    report("damage", case=f"results.json {case}", outcome="rewritten from the run store, byte-identical; nothing retrained")


PREDICTIONS_CASES = {
    "overwritten with random bytes (R5)": lambda path: path.write_bytes(os.urandom(path.stat().st_size)),
    "deleted (R6)": lambda path: path.unlink(),
}


@pytest.mark.slow
@pytest.mark.parametrize("case", list(PREDICTIONS_CASES))
def test_damaged_predictions_are_reported_by_report_and_compare_not_used(case, reference, copy_of):
    root = copy_of(reference["root"])
    PREDICTIONS_CASES[case](root / "outputs" / "TT-01" / "val_predictions.npz")
    code, out, err = fembed_inprocess(root, "report", "--no-reference", "--no-plots", "--bootstrap", "20")
    assert code == 0, out + err
    assert "Traceback" not in out + err
    assert re.search(r"TT-01: val_predictions.npz not used: .*predictions missing \(damaged\)", out + err), out + err
    code, out, err = fembed_inprocess(root, "compare", "TT-01", "TT-02", "--bootstrap", "20")
    assert code == 0, out + err
    assert "TT-01: predictions not used" in out + err and "predictions missing (damaged)" in out + err
    report("damage", case=f"val_predictions.npz {case}",
           outcome="report and compare warn 'predictions missing (damaged)' and do not use the file")


LOCKER = """
import sqlite3, sys
db = sqlite3.connect(sys.argv[1], isolation_level=None)
db.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
sys.stdin.read()          # hold the lock until the test closes our stdin
db.execute("ROLLBACK")
"""


@pytest.mark.slow
def test_a_store_locked_by_another_process_gives_a_clear_error_and_nothing_is_lost(
        interrupted, copy_of, reference, monkeypatch):
    root = copy_of(interrupted)
    monkeypatch.setenv("FEMBED_STORE_BUSY_TIMEOUT_S", "1")
    locker = subprocess.Popen([sys.executable, "-c", LOCKER, str(store_path(root))],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert locker.stdout.readline().strip() == "locked"
        code, out, err = fembed_inprocess(root, "run", "--all")
        assert code == 1, out + err
        assert "Traceback" not in out + err
        # A failed experiment is reported on stderr (cli/cmd_run.py); stdout keeps the summary.
        assert "is locked by another process or connection (waited 1s)" in out + err
        assert "nothing is lost" in out + err
        status_code, status_out, _ = fembed_inprocess(root, "status")  # readers still work
        # TT-01 was stopped after its epoch 1 (the fixture): shown interrupted, resumable
        assert status_code == 0 and "queue: 1 pending, 1 interrupted" in status_out
    finally:
        locker.stdin.close()
        locker.wait(timeout=60)
    code, out, err = fembed_inprocess(root, "run", "--all")
    assert code == 0, out + err
    assert_same_outcome(root, reference)
    report("damage", case="store locked by another process (BEGIN EXCLUSIVE held)",
           outcome="exit 1 with 'run store ... is locked by another process' after the busy timeout; "
                   "fembed status still reads; the next run resumes, results equal")


@pytest.mark.soak
def test_a_store_lock_released_within_the_busy_timeout_is_waited_for(interrupted, copy_of, reference):
    root = copy_of(interrupted)
    brief = LOCKER.replace("sys.stdin.read()", "__import__('time').sleep(2)")
    locker = subprocess.Popen([sys.executable, "-c", brief, str(store_path(root))],
                              stdout=subprocess.PIPE, text=True)
    assert locker.stdout.readline().strip() == "locked"
    code, out, err = fembed_inprocess(root, "run", "--all")
    locker.wait(timeout=60)
    assert code == 0, out + err
    assert_same_outcome(root, reference)
    report("damage", case="store locked for 2 s (less than the busy timeout)", outcome="the run waits, then completes")


def test_results_json_gets_the_permissions_of_any_file_the_user_creates(reference):
    """Collaborators on a shared cluster can read the results (mkstemp alone makes them 0600)."""
    import os

    umask = os.umask(0o022)
    os.umask(umask)
    assert results_path(reference["root"], "TT-01").stat().st_mode & 0o777 == 0o666 & ~umask


@pytest.mark.soak
def test_truncated_compilation_cache_entries_are_compiled_again(tmp_path, reference, fembed_cache):
    """JAX writes its persistent cache entries in place (not atomically): a run killed while
    writing one leaves it truncated. JAX must warn and recompile, never run a damaged program.
    (A private cache, filled by a first run: cache keys depend on the cache's own path.)"""
    from reliability_harness import fembed, make_project

    cache = tmp_path / "cache"
    cache.mkdir()
    for tier in fembed_cache.glob("a20-*.parquet"):  # the built data: no need to build it again
        shutil.copy2(tier, cache / tier.name)
    make_project(tmp_path / "first")
    assert fembed(tmp_path / "first", "run", "--all", env={"FEMBED_CACHE": str(cache)}).returncode == 0
    entries = sorted((cache / "jax").glob("*-cache"))
    assert entries
    for entry in entries:
        truncate(entry)
    root = tmp_path / "project"
    make_project(root)
    done = fembed(root, "run", "--all", env={"FEMBED_CACHE": str(cache)})
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    assert_same_outcome(root, reference)
    unreadable = re.findall(r"Error reading persistent compilation cache entry for '(\w+)'", done.stderr)
    assert unreadable, done.stderr[-3000:]  # the damaged entries were found, and not used
    report("damage", case=f"every JAX compilation cache entry truncated ({len(entries)} files)",
           warnings=sorted(set(unreadable)),
           outcome="JAX warned 'Error reading persistent compilation cache entry', compiled again; "
                   "results equal the uninterrupted run")
