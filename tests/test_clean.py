"""`fembed clean` on a real tiny project: the dry listing, --yes, old-config and orphan folders, a
live runner's experiment, a SIGKILL in the middle, --json, the caches and bad input.

One run is made once per module (TT-01 and TT-02 done; TT-03 in the registry, never run); each
test works on a copy of it. Its checkpoint folders hold steps 0, 1 and selected/ each: what a run
stopped between recording a result and freeing its checkpoints leaves (made here with --keep all,
then the selected weights saved from the last step as fit.py saves them).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest

from fembed_jax.cli import cmd_clean
from fembed_jax.cli.main import main
from helpers import tiny_registry, write_project

EXPERIMENTS = """\
[[experiments]]
id = "TT-01"
priority = "P1"
tier = "a20"
d_embed = 8

[[experiments]]
id = "TT-02"
priority = "P2"
tier = "a20"
d_embed = 8
loss = "focal"
loss_params = { gamma = 2.0, alpha = 0.5 }

[[experiments]]
id = "TT-03"
priority = "P2"
tier = "a20"
d_embed = 8
"""


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("clean-origin")
    registry = write_project(root, tiny_registry(EXPERIMENTS, epochs=2))
    assert main(["--registry", str(registry), "run", "-e", "TT-01", "-e", "TT-02", "--keep", "all"]) == 0
    from fembed_jax.checkpoint import Checkpointer

    for exp_id in ("TT-01", "TT-02"):
        with Checkpointer(root / "checkpoints" / exp_id, run_hash(root, exp_id)) as checkpointer:
            epoch, state, meta = checkpointer.restore_latest(lambda meta: None)
            assert epoch == 1
            checkpointer.save_selected(epoch, {key: state[key] for key in ("best_params", "stop", "epoch")},
                                       {key: meta[key] for key in ("history", "seeds")})
    return root


@pytest.fixture
def project(finished, tmp_path) -> Path:
    """A copy of the finished project, its files aged past the recent-write guard."""
    root = tmp_path / "project"
    shutil.copytree(finished, root)
    age(root)
    return root


def age(root: Path, seconds: float = 1000) -> None:
    past = time.time() - seconds
    for path in root.rglob("*"):
        os.utime(path, (past, past), follow_symlinks=False)


def clean(capsys, root: Path, *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(["--registry", str(root / "registry" / "experiments.toml"), "clean", *args])
    out, err = capsys.readouterr()
    return code, " ".join(out.split()), err


def names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in root.rglob("*") if p.is_file()}


def run_hash(root: Path, exp_id: str) -> str:
    with sqlite3.connect(root / "outputs" / "fembed.db") as db:
        return db.execute("SELECT run_hash FROM experiments WHERE exp_id = ?", (exp_id,)).fetchone()[0]


def restorable(root: Path, exp_id: str) -> int | None:
    """The epoch the store's run hash restores from checkpoints/<ID>/ (None: nothing)."""
    from fembed_jax.checkpoint import Checkpointer

    with Checkpointer(root / "checkpoints" / exp_id, run_hash(root, exp_id)) as checkpointer, \
            warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the old config's steps it skips
        found = checkpointer.restore_latest(lambda meta: None)
    return None if found is None else found.epoch


def old_step(folder: Path, epoch: int = 7, run_hash: str = "0ld0c0nf1g0hash0") -> Path:
    """A step saved for another run hash (an old config), newer than the current ones."""
    from fembed_jax.checkpoint import Checkpointer

    with Checkpointer(folder, run_hash, max_to_keep=1000) as checkpointer:  # deletes no step
        return checkpointer.save(epoch, {"params": np.ones(64, np.float32)})


def set_row(root: Path, exp_id: str, **columns) -> None:
    with sqlite3.connect(root / "outputs" / "fembed.db") as db:
        sets = ", ".join(f"{name} = ?" for name in columns)
        db.execute(f"UPDATE experiments SET {sets} WHERE exp_id = ?", (*columns.values(), exp_id))


def live_claim(root: Path, exp_id: str) -> str:
    """Make ``exp_id`` held by a live runner: this process, a fresh heartbeat."""
    from fembed_jax.liveness import make_owner

    owner, now = make_owner(), time.time()
    set_row(root, exp_id, state="running", claimed_by=owner, heartbeat_at=now, started_at=now)
    return owner


def test_the_layout_clean_reads_is_the_checkpointers(tmp_path):
    step = old_step(tmp_path / "X", epoch=3, run_hash="abc")
    assert cmd_clean._step_hash(step) == "abc"


def test_the_dry_listing_shows_what_would_be_freed_and_changes_nothing(project, capsys):
    shutil.copytree(project / "checkpoints" / "TT-01" / "0", project / "checkpoints" / "GONE-1" / "0")
    (project / "checkpoints" / "notes").mkdir()
    (project / "checkpoints" / "notes" / "todo.txt").write_text("not fembed's")
    age(project)
    before = snapshot(project)
    code, out, err = clean(capsys, project)
    assert code == 0, err
    assert "would be freed" in out and "TT-01" in out and "TT-02" in out and "GONE-1" in out
    assert "2 steps beyond --keep best" in out and "not in the registry nor the run store" in out
    assert "total: " in out
    assert "run fembed clean --yes to delete" in out
    assert "notes" in out and "not checkpoints: left alone" in out
    assert snapshot(project) == before


def test_yes_keeps_the_selected_weights_and_evaluate_still_restores_them(project, capsys):
    code, out, err = clean(capsys, project, "--yes")
    assert code == 0, err
    assert "freed" in out and "TT-01" in out
    for exp_id in ("TT-01", "TT-02"):
        assert names(project / "checkpoints" / exp_id) == ["selected"]
    assert not (project / "checkpoints" / cmd_clean.TRASH_DIR).exists()
    code = main(["--registry", str(project / "registry" / "experiments.toml"), "evaluate", "TT-01",
                 "--split", "val"])
    assert code == 0 and "matches results.json" in capsys.readouterr().out
    code, out, _ = clean(capsys, project)
    assert code == 0 and "nothing to free" in out


def test_keep_last_keeps_the_last_step(project, capsys):
    code, _, err = clean(capsys, project, "--keep", "last", "--yes", "-e", "TT-02")
    assert code == 0, err
    assert names(project / "checkpoints" / "TT-02") == ["1"]
    assert restorable(project, "TT-02") == 1
    assert names(project / "checkpoints" / "TT-01") == ["0", "1", "selected"]  # not selected


def test_old_config_orphan_and_leftovers_go_current_resume_points_stay(project, capsys):
    ckpt = project / "checkpoints"
    # TT-01 pending again with its run hash: steps 0, 1 are what it resumes from; plus an old
    # config's step 7, an unfinished save and a damaged step.
    set_row(project, "TT-01", state="pending")
    old_step(ckpt / "TT-01")
    (ckpt / "TT-01" / "8.orbax-checkpoint-tmp-1234").mkdir()
    (ckpt / "TT-01" / "9" / "meta").mkdir(parents=True)
    (ckpt / "TT-01" / "9" / "meta" / "metadata").write_text("{not json")
    # TT-02's config changed since its run: everything it has is of the old run hash.
    set_row(project, "TT-02", state="pending", run_hash="n3wc0nf1g0hash00")
    shutil.copytree(ckpt / "TT-01" / "0", ckpt / "GONE-1" / "0")  # an id nobody knows
    shutil.copytree(ckpt / "TT-01" / "0", ckpt / "TT-03" / "0")  # registered, never queued here
    age(project)

    code, out, err = clean(capsys, project, "--yes")
    assert code == 0, err
    assert names(ckpt / "TT-01") == ["0", "1", "selected"]
    assert restorable(project, "TT-01") == 1
    assert names(ckpt / "TT-02") == []
    assert not (ckpt / "GONE-1").exists()
    assert names(ckpt / "TT-03") == ["0"] and "--untracked deletes it" in out
    code, _, err = clean(capsys, project, "--yes", "--untracked")
    assert code == 0, err
    assert not (ckpt / "TT-03").exists()


def test_an_experiment_a_live_runner_holds_is_never_touched(project, capsys):
    owner = live_claim(project, "TT-01")
    old_step(project / "checkpoints" / "TT-01")
    age(project)
    before = snapshot(project / "checkpoints" / "TT-01")
    code, out, err = clean(capsys, project, "--yes")
    assert code == 0, err
    assert f"skipped: held by {owner}" in out
    assert snapshot(project / "checkpoints" / "TT-01") == before
    assert names(project / "checkpoints" / "TT-02") == ["selected"]


def test_a_claim_taken_after_the_listing_is_seen_before_deleting(project, capsys, monkeypatch):
    listing = cmd_clean._Project.plan
    claimed = []

    def plan_then_claim(self, only=None):
        targets = listing(self, only)
        if only is None and not claimed:
            claimed.append(live_claim(project, "TT-02"))
        return targets

    monkeypatch.setattr(cmd_clean._Project, "plan", plan_then_claim)
    before = snapshot(project / "checkpoints" / "TT-02")
    code, out, err = clean(capsys, project, "--yes")
    assert code == 0, err
    assert f"skipped: held by {claimed[0]}" in out
    assert snapshot(project / "checkpoints" / "TT-02") == before
    assert names(project / "checkpoints" / "TT-01") == ["selected"]


def test_a_folder_written_moments_ago_is_left_for_later(finished, tmp_path, capsys):
    root = tmp_path / "fresh"
    shutil.copytree(finished, root)
    os.utime(root / "checkpoints" / "TT-01" / "1" / "commit_success.txt")  # just written
    code, out, err = clean(capsys, root, "--yes")
    assert code == 0, err
    assert "written 0s ago" in out and names(root / "checkpoints" / "TT-01") == ["0", "1", "selected"]


@pytest.mark.parametrize("point", ["clean.trashed:1", "clean.between:1", "clean.between:2",
                                   "clean.between:3"])
def test_a_clean_killed_midway_leaves_every_result_restorable(project, capsys, point):
    """Hits with this plan: TT-01 freed (between 1); TT-02: its old step trashed (trashed 1,
    between 2), then freed (between 3); the orphan trashed (trashed 2, between 4)."""
    old_step(project / "checkpoints" / "TT-02")
    shutil.copytree(project / "checkpoints" / "TT-01" / "0", project / "checkpoints" / "GONE-1" / "0")
    age(project)
    env = dict(os.environ, FEMBED_FAULT=point)
    killed = subprocess.run([sys.executable, "-m", "fembed_jax.cli.main", "--registry",
                             str(project / "registry" / "experiments.toml"), "clean", "--yes"],
                            env=env, capture_output=True, text=True, timeout=300)
    assert killed.returncode == -signal.SIGKILL, killed.stdout + killed.stderr
    for exp_id in ("TT-01", "TT-02"):
        assert restorable(project, exp_id) is not None, exp_id

    code, out, err = clean(capsys, project, "--yes")
    assert code == 0, err
    assert "Traceback" not in out + err
    for exp_id in ("TT-01", "TT-02"):
        assert names(project / "checkpoints" / exp_id) == ["selected"]
        assert restorable(project, exp_id) == 1
    assert names(project / "checkpoints") == ["TT-01", "TT-02"]  # orphan and trash gone


def test_json_gives_the_plan_then_the_result(project, capsys):
    old_step(project / "checkpoints" / "TT-02")
    age(project)
    code, out, err = clean(capsys, project, "--json")
    assert code == 0, err
    plan = json.loads(out)
    assert set(plan) >= {"checkpoints", "store", "keep", "deleted", "experiments", "caches",
                         "total_bytes", "freed_bytes"}
    assert plan["deleted"] is False and plan["freed_bytes"] is None and plan["keep"] == "best"
    rows = {row["id"]: row for row in plan["experiments"]}
    assert rows["TT-02"]["state"] == "done" and rows["TT-02"]["run_hash"] == run_hash(project, "TT-02")
    kinds = sorted(item["kind"] for item in rows["TT-02"]["items"])
    assert kinds == ["beyond-keep", "beyond-keep", "old-config"]
    assert rows["TT-02"]["bytes"] == sum(item["bytes"] for item in rows["TT-02"]["items"])
    assert plan["total_bytes"] == sum(row["bytes"] for row in plan["experiments"]) > 0

    code, out, err = clean(capsys, project, "--json", "--yes")
    assert code == 0, err
    result = json.loads(out)
    assert result["deleted"] is True and result["freed_bytes"] > 0
    assert all(row["freed"] is not None for row in result["experiments"] if row["items"])


def test_caches_only_with_the_flag_and_only_ours(project, capsys, monkeypatch, tmp_path):
    cache = tmp_path / "cache"
    (cache / "jax").mkdir(parents=True)
    (cache / "jax" / "program").write_bytes(b"1" * 3000)
    (cache / "a20-0123456789abcdef-v3.parquet").write_bytes(b"2" * 2000)
    (cache / "builtin-source-v3.json").write_text("{}")
    (cache / "param_counts.json").write_text("{}")
    (cache / "notes.txt").write_text("mine")
    monkeypatch.setenv("FEMBED_CACHE", str(cache))

    code, out, _ = clean(capsys, project, "--yes", "-e", "TT-01")
    assert code == 0 and "tier data" not in out and (cache / "jax").exists()
    owner = live_claim(project, "TT-02")
    code, out, _ = clean(capsys, project, "--caches", "--yes")
    assert code == 0 and f"in use by the live runner {owner}" in out and (cache / "jax").exists()
    set_row(project, "TT-02", state="done", claimed_by=None)
    code, out, _ = clean(capsys, project, "--caches")
    assert "tier data" in out and "compiled programs" in out and "fembed data build" in out
    code, out, _ = clean(capsys, project, "--caches", "--yes")
    assert code == 0
    assert names(cache) == ["notes.txt"]


def test_bad_input_is_one_line_and_exit_2(project, tmp_path, capsys):
    code, out, err = clean(capsys, project, "--outputs", str(tmp_path / "none"))
    assert code == 2 and "no run store" in err and len(err.strip().splitlines()) == 1
    code, out, err = clean(capsys, project, "-e", "NOPE-1")
    assert code == 2 and "NOPE-1" in err and "Traceback" not in err
    (project / "checkpoints" / "GONE-1").mkdir()
    age(project)
    code, out, err = clean(capsys, project, "-e", "GONE-1", "--yes")  # an orphan, by name
    assert code == 0, err
    assert not (project / "checkpoints" / "GONE-1").exists()
    assert names(project / "checkpoints" / "TT-01") == ["0", "1", "selected"]


def test_without_selected_weights_best_keeps_the_last_step(project, capsys):
    """A run with --keep all saved no selected weights: --keep best falls back to its last step."""
    shutil.rmtree(project / "checkpoints" / "TT-01" / "selected")
    code, out, err = clean(capsys, project, "-e", "TT-01")
    assert code == 0, err
    assert "1 step beyond --keep best" in out and "keeps its last step" in out
    code, _, err = clean(capsys, project, "-e", "TT-01", "--yes")
    assert code == 0, err
    assert names(project / "checkpoints" / "TT-01") == ["1"] and restorable(project, "TT-01") == 1


def test_a_failed_deletion_is_one_line_exit_1_and_the_rest_goes_on(project, capsys, monkeypatch):
    shutil.copytree(project / "checkpoints" / "TT-01" / "0", project / "checkpoints" / "GONE-1" / "0")
    age(project)
    rename = os.rename

    def refuse(src, dst):
        if Path(src).name == "GONE-1":
            raise PermissionError(13, "Permission denied", str(src))
        rename(src, dst)

    monkeypatch.setattr(cmd_clean.os, "rename", refuse)
    code, out, err = clean(capsys, project, "--yes")
    assert code == 1
    assert err.strip().splitlines() == [f"error: GONE-1: {project / 'checkpoints' / 'GONE-1'}: Permission denied"]
    assert names(project / "checkpoints" / "TT-01") == ["selected"]
    assert (project / "checkpoints" / "GONE-1" / "0").is_dir()
