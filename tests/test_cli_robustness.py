"""The CLI as a script and a newcomer meet it: piped output that never wraps, one `error:` line
with the documented exit code instead of a traceback, readers that never write, --json, flags
that conflict, and finished results that are never replaced without --force."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fembed_jax.cli.main import main
from fembed_jax.store import RunStore
from helpers import tiny_registry, write_project
from test_report import make_tiny_project

pytestmark = pytest.mark.usefixtures("shared_cache")  # tests/conftest.py
LEGACY = Path(__file__).parent / "data" / "legacy_results"

ONE = """
[[experiments]]
id = "FE-01"
priority = "P1"
tier = "a20"
description = "tiny"
"""


@pytest.fixture(scope="module")
def tiny_project(tmp_path_factory):
    return make_tiny_project(tmp_path_factory)


def _registry(root: Path) -> str:
    return str(root / "registry" / "experiments.toml")


def _fembed(capsys, *args) -> tuple[int, str, str]:
    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


def _fembed_subprocess(*args, cwd=None, env=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "fembed_jax.cli.main", *args], capture_output=True,
                          text=True, cwd=cwd, env={**os.environ, **(env or {})}, timeout=300)


def _one_error_line(err: str, *fragments: str) -> None:
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    for fragment in fragments:
        assert fragment in lines[0], (fragment, err)


# -- piped output --------------------------------------------------------------------------

def test_piped_messages_with_a_long_path_stay_on_one_line(tmp_path):
    deep = tmp_path.joinpath(*["a-rather-long-folder-name"] * 8)
    deep.mkdir(parents=True)
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    result = _fembed_subprocess("status", "--outputs", str(deep), env=env)
    assert result.returncode == 0, result.stderr
    line = next(line for line in result.stdout.splitlines() if "No run store" in line)
    assert str(deep / "fembed.db") in line  # the path is not broken across lines


def test_a_closed_pipe_is_not_an_error(tmp_path):
    proc = subprocess.Popen([sys.executable, "-m", "fembed_jax.cli.main", "list", "--json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.read(200)
    proc.stdout.close()  # what `| head -c 200` does
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=300) == 0 and "Traceback" not in err, err


# -- stores that cannot or must not be written ----------------------------------------------

def test_readers_write_nothing_to_the_store(tiny_project, tmp_path, capsys):
    root = tmp_path / "project"
    shutil.copytree(tiny_project, root)
    store = root / "outputs" / "fembed.db"
    with sqlite3.connect(store) as db:  # checkpoint the WAL so the file alone holds everything
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        db.execute("PRAGMA journal_mode = DELETE")
    db.close()
    before = hashlib.sha256(store.read_bytes()).hexdigest()
    files = sorted(p.name for p in store.parent.iterdir())
    for args in (["status"], ["status", "--json"], ["show", "FE-01"], ["compare", "FE-01", "FE-02"],
                 ["run", "--all", "--dry-run"]):
        code, out, err = _fembed(capsys, "--registry", _registry(root), *args)
        assert code == 0, (args, err)
    assert hashlib.sha256(store.read_bytes()).hexdigest() == before
    assert sorted(p.name for p in store.parent.iterdir()) == files  # no -wal, no -shm


def test_a_store_in_a_folder_that_cannot_be_written_is_read_immutable(tiny_project, tmp_path, monkeypatch):
    root = tmp_path / "project"
    shutil.copytree(tiny_project, root)
    store_path = root / "outputs" / "fembed.db"
    for suffix in ("-wal", "-shm"):
        Path(f"{store_path}{suffix}").unlink(missing_ok=True)
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda path, mode, **kw: False if mode == os.W_OK
                        else real_access(path, mode, **kw))
    with RunStore(store_path, readonly=True) as store:  # a read-only mount, as far as fembed sees
        assert {r["exp_id"] for r in store.results()} >= {"FE-01", "FE-02"}
    assert not Path(f"{store_path}-shm").exists()


@pytest.mark.parametrize("content", [b"", b"definitely not a database, just text" * 10])
def test_a_damaged_store_is_one_error_line_and_never_replaced(tiny_project, tmp_path, capsys, content):
    root = tmp_path / "project"
    shutil.copytree(tiny_project, root)
    store = root / "outputs" / "fembed.db"
    for suffix in ("-wal", "-shm"):
        Path(f"{store}{suffix}").unlink(missing_ok=True)
    store.write_bytes(content)
    for args in (["status"], ["show", "FE-01"], ["compare", "FE-01", "FE-02"], ["run", "--all"],
                 ["import-legacy", str(LEGACY)]):
        code, out, err = _fembed(capsys, "--registry", _registry(root), *args)
        assert code == 1, (args, out, err)
        _one_error_line(err, str(store))
        assert store.read_bytes() == content  # not silently turned into a new, empty store


def test_report_into_a_folder_it_cannot_create_is_one_error_line(tiny_project, tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("in the way")
    code, out, err = _fembed(capsys, "--registry", _registry(tiny_project), "report", "--no-reference",
                             "--no-plots", "--out", str(blocker / "report" / "tracker.md"))
    assert code == 1
    _one_error_line(err, str(blocker))


# -- machine-readable output ----------------------------------------------------------------

def test_status_show_and_compare_have_json(tiny_project, capsys):
    registry = _registry(tiny_project)
    code, out, _ = _fembed(capsys, "status", "--json", "--registry", registry)
    status = json.loads(out)
    assert code == 0 and status["queue"]["done"] >= 2
    assert {e["id"]: e["state"] for e in status["experiments"]}["FE-01"] == "done"
    code, out, _ = _fembed(capsys, "show", "FE-01", "--json", "--registry", registry)
    shown = json.loads(out)
    assert code == 0 and shown["result"]["record"]["exp_id"] == "FE-01" and shown["queue"]["state"] == "done"
    code, out, _ = _fembed(capsys, "compare", "FE-01", "FE-02", "--json", "--bootstrap", "200",
                           "--registry", registry)
    compared = json.loads(out)
    assert code == 0 and {row["metric"] for row in compared["paired"]} == {"auc", "precision"}
    assert compared["metrics"]["FE-01"]["n_seeds"] >= 1


def test_list_json_has_the_full_resolved_config(capsys):
    code, out, _ = _fembed(capsys, "list", "--json", "-e", "FE-06")
    (row,) = json.loads(out)
    for key in ("learning_rate", "epochs", "seeds", "batch_size", "patience", "selection", "params"):
        assert key in row, key


# -- arguments --------------------------------------------------------------------------------

def test_registry_works_after_the_subcommand_too(tiny_project, capsys):
    code, out, _ = _fembed(capsys, "list", "--json", "--registry", _registry(tiny_project))
    assert code == 0 and {r["id"] for r in json.loads(out)} >= {"FE-01", "FE-02"}


@pytest.mark.parametrize("args, fragment", [
    (["run", "--all", "-e", "FE-06", "--dry-run"], "--all"),
    (["run", "-e", "FE-06", "--ray-cpus", "2", "--dry-run"], "--ray-cpus"),
    (["run", "-e", "FE-06", "--backend", "ray", "--devices", "2", "--dry-run"], "--devices"),
    (["status", "--results", "-1"], "--results"),
    (["show", "fe-01"], "did you mean FE-01"),
    (["compare", "FE-01", "FE-02", "--block", "99999"], "--block"),
])
def test_bad_arguments_are_one_error_line_with_exit_2(tiny_project, capsys, args, fragment):
    code, out, err = _fembed(capsys, "--registry", _registry(tiny_project), *args)
    assert code == 2, (out, err)
    _one_error_line(err, fragment)


def test_gpu_on_a_cpu_only_install_says_so(tiny_project):
    import jax

    if any(d.platform == "gpu" for d in jax.devices()):
        pytest.skip("a GPU is present")
    result = _fembed_subprocess("--registry", _registry(tiny_project), "evaluate", "FE-01", "--device", "gpu")
    assert result.returncode == 2, result.stderr
    _one_error_line(result.stderr, "JAX sees no GPU")


# -- liveness in `fembed status` ------------------------------------------------------------

def _running_row(store_path: Path, exp_id: str, owner: str, started_at: float) -> None:
    with sqlite3.connect(store_path) as db:
        db.execute("UPDATE experiments SET state = 'running', claimed_by = ?, heartbeat_at = ?, "
                   "started_at = ? WHERE exp_id = ?", (owner, time.time(), started_at, exp_id))
    db.close()


def test_status_shows_a_killed_runner_as_interrupted_at_once(tiny_project, tmp_path, capsys):
    import socket

    root = tmp_path / "project"
    shutil.copytree(tiny_project, root)
    store = root / "outputs" / "fembed.db"
    host = socket.gethostname()
    killed = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    killed.kill()
    killed.wait()
    alive = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        time.sleep(0.1)
        _running_row(store, "FE-01", f"{host}:{killed.pid}:deadbeef", time.time())
        _running_row(store, "FE-02", f"{host}:{alive.pid}:0badcafe", time.time())
        code, out, _ = _fembed(capsys, "status", "--json", "--registry", _registry(root))
        states = {e["id"]: e for e in json.loads(out)["experiments"]}
        assert states["FE-01"]["state"] == "interrupted"
        assert "no longer exists" in states["FE-01"]["liveness"]
        assert states["FE-02"]["state"] == "running"
        # The same pid, but its process started after the claim: another program reused it.
        _running_row(store, "FE-02", f"{host}:{alive.pid}:0badcafe", time.time() - 3600)
        code, out, _ = _fembed(capsys, "status", "--json", "--registry", _registry(root))
        states = {e["id"]: e for e in json.loads(out)["experiments"]}
        assert states["FE-02"]["state"] == "interrupted" and "after the claim" in states["FE-02"]["liveness"]
    finally:
        alive.kill()
        alive.wait()


def test_status_shows_a_run_stopped_by_ctrl_c_as_interrupted_at_its_epoch(tiny_project, tmp_path, capsys,
                                                                            shared_cache):
    root = tmp_path / "project"
    shutil.copytree(tiny_project, root)
    # Ctrl-C right after LF-01's first epoch is checkpointed: the clean stop releases the claim.
    result = _fembed_subprocess("--registry", _registry(root), "run", "-e", "LF-01", "--seeds", "1",
                                env={"FEMBED_FAULT": "fit.epoch_done:1:sigint", "FEMBED_CACHE": str(shared_cache)})
    assert result.returncode == 130, result.stderr
    code, out, _ = _fembed(capsys, "status", "--json", "--registry", _registry(root))
    lf01 = {e["id"]: e for e in json.loads(out)["experiments"]}["LF-01"]
    assert (lf01["stored_state"], lf01["state"]) == ("pending", "interrupted")
    assert lf01["interrupted_at_epoch"] == 1 and lf01["epochs"] == 2
    assert "stopped after epoch 1" in lf01["liveness"]
    code, out, _ = _fembed(capsys, "status", "--registry", _registry(root))
    (line,) = [line for line in out.splitlines() if "LF-01" in line]
    assert "interrupted" in line and "1/2" in line and "resumes" in line
    assert "1 interrupted" in out.splitlines()[0]
    # The plan says the same command resumes it, and that a failed one is retried.
    dry = ("--registry", _registry(root), "run", "-e", "LF-01", "--seeds", "1", "--dry-run", "--no-measure")
    code, out, _ = _fembed(capsys, *dry)
    assert code == 0 and "resume after epoch 1/2" in out
    code, out, _ = _fembed(capsys, *dry, "--json")
    assert json.loads(out)["experiments"][0]["resumes_after_epoch"] == 1
    with sqlite3.connect(root / "outputs" / "fembed.db") as db:
        db.execute("UPDATE experiments SET state = 'failed', attempts = 2, error = 'boom\nat line 2'"
                   " WHERE exp_id = 'LF-01'")
    db.close()
    code, out, _ = _fembed(capsys, *dry)
    assert code == 0 and "retry (failed 2×: boom)" in out
    code, out, _ = _fembed(capsys, *dry, "--json")
    (row,) = json.loads(out)["experiments"]
    assert row["retries_failure"].startswith("boom") and row["resumes_after_epoch"] is None


# -- finished results are kept ----------------------------------------------------------------

@pytest.mark.slow
def test_a_quick_look_never_replaces_a_finished_result_without_force(tmp_path, capsys):
    registry = str(write_project(tmp_path, tiny_registry(ONE, epochs=2)))
    code, _, err = _fembed(capsys, "--registry", registry, "run", "--all", "--epochs", "1", "--seeds", "1")
    assert code == 0, err
    results = tmp_path / "outputs" / "FE-01" / "results.json"
    first = results.read_bytes()

    code, out, _ = _fembed(capsys, "--registry", registry, "run", "--all", "--dry-run")
    assert code == 0 and "replacing 1 seed x 1 epochs on builtin" in out
    code, out, err = _fembed(capsys, "--registry", registry, "run", "--all")
    assert code == 2
    _one_error_line(err, "FE-01", "--force")
    assert results.read_bytes() == first

    code, _, err = _fembed(capsys, "--registry", registry, "run", "--all", "--force")
    assert code == 0, err
    assert len(json.loads(results.read_text())["seeds"]) == 2


# -- where a project is -----------------------------------------------------------------------

def test_init_makes_a_project_that_every_sub_folder_finds(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("FEMBED_REGISTRY", raising=False)
    monkeypatch.delenv("FEMBED_OUTPUTS", raising=False)
    project = tmp_path / "sweep"
    code, out, err = _fembed(capsys, "init", str(project))
    assert code == 0, err
    assert (project / "registry" / "experiments.toml").is_file()
    deep = project / "notebooks" / "week1"
    deep.mkdir(parents=True)
    monkeypatch.chdir(deep)
    code, out, _ = _fembed(capsys, "status")
    assert code == 0 and str(project / "outputs" / "fembed.db") in out
    code, out, err = _fembed(capsys, "init", str(project))
    assert code == 2 and "exists already" in err


def test_outside_any_project_the_packaged_registry_works_in_the_working_folder(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("FEMBED_REGISTRY", raising=False)
    monkeypatch.delenv("FEMBED_OUTPUTS", raising=False)
    monkeypatch.chdir(tmp_path)
    code, out, _ = _fembed(capsys, "list", "--json", "-p", "P4")
    assert code == 0 and len(json.loads(out)) == 5
    code, out, _ = _fembed(capsys, "status")
    assert code == 0 and str(tmp_path / "outputs" / "fembed.db") in out


def test_a_run_into_another_outputs_folder_keeps_its_checkpoints_there(tmp_path, monkeypatch, capsys):
    """A quick look with --outputs /tmp/quick must not replace the project's checkpoints (the
    weights its own results were selected with); the project's outputs keep the project's."""
    import argparse

    from fembed_jax.cli.paths import paths_from_args
    from fembed_jax.registry import load_registry

    for name in ("FEMBED_REGISTRY", "FEMBED_OUTPUTS", "FEMBED_CHECKPOINTS"):
        monkeypatch.delenv(name, raising=False)
    project = tmp_path / "sweep"
    assert _fembed(capsys, "init", str(project))[0] == 0
    registry = load_registry(project / "registry" / "experiments.toml")
    quick = tmp_path / "quick"
    assert paths_from_args(argparse.Namespace(outputs=str(quick)), registry) == (quick, quick / "checkpoints")
    assert paths_from_args(argparse.Namespace(), registry) == (project / "outputs", project / "checkpoints")
    same = argparse.Namespace(outputs=str(project / "outputs"))
    assert paths_from_args(same, registry) == (project / "outputs", project / "checkpoints")
    chosen = argparse.Namespace(outputs=str(quick), checkpoints=str(tmp_path / "c"))
    assert paths_from_args(chosen, registry) == (quick, tmp_path / "c")


@pytest.mark.slow
def test_the_wheel_carries_the_registry(tmp_path):
    import zipfile

    repo = Path(__file__).resolve().parents[1]
    result = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(repo)],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    (wheel,) = tmp_path.glob("fembed-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "fembed_jax/registry_data/experiments.toml" in names


def test_reset_requeues_failed_and_dead_runs_and_refuses_done_and_live_ones(tiny_project, tmp_path, capsys):
    import socket

    root = tmp_path / "project"
    shutil.copytree(tiny_project, root)
    store = root / "outputs" / "fembed.db"
    with sqlite3.connect(store) as db:
        db.execute("UPDATE experiments SET state = 'failed', error = 'boom' WHERE exp_id = 'FE-01'")
    db.close()
    code, out, err = _fembed(capsys, "--registry", _registry(root), "reset", "FE-01")
    assert code == 0 and "FE-01: failed -> pending" in out
    _running_row(store, "FE-02", f"{socket.gethostname()}:{os.getpid() + 10**6}:deadbeef", time.time())
    code, out, err = _fembed(capsys, "--registry", _registry(root), "reset", "FE-02")
    assert code == 0 and "FE-02: interrupted -> pending" in out
    with RunStore(store, readonly=True) as reader:
        assert {r["exp_id"]: r["state"] for r in reader.experiments()}["FE-02"] == "pending"
        epochs = len(reader.epochs("FE-02"))
    assert epochs > 0  # what was trained is kept: the next run resumes
    _running_row(store, "FE-02", f"{socket.gethostname()}:{os.getppid()}:0badcafe", time.time())
    code, out, err = _fembed(capsys, "--registry", _registry(root), "reset", "FE-02", "FE-01")
    assert code == 1 and "live runner" in err and "pending; nothing to re-queue" in err


def test_split_dates_from_the_command_line_are_a_new_run(tiny_project, tmp_path, capsys):
    code, out, err = _fembed(capsys, "--registry", _registry(tiny_project), "run", "-e", "FE-01",
                             "--val-start", "2014-01-01", "--dry-run")
    assert code == 0 and "replacing" in out  # other splits: not the stored result
    # The plan says where the splits fall and how validation is divided.
    (line,) = [line for line in out.splitlines() if line.startswith("splits (")]
    assert " val 2014-" in line and "early stopping on " in line and "held out" in line
    code, out, err = _fembed(capsys, "--registry", _registry(tiny_project), "run", "-e", "FE-01",
                             "--val-start", "2014-01-01", "--dry-run", "--json", "--no-measure")
    (layout,) = json.loads(out)["splits"]
    train, val, test = layout["train"], layout["val"], layout["test"]
    assert train["last_decision"] < "2014-01-01" <= val["first_decision"] <= val["last_decision"]
    assert val["last_decision"] < layout["test_start"] <= test["first_decision"]
    assert val["rule"] == "alternate" and val["selection"] + val["report"] == val["windows"] > 0
    assert layout["val_start"] >= "2014-01-01" and layout["tiers"] == ["a20"]
    code, out, err = _fembed(capsys, "--registry", _registry(tiny_project), "run", "-e", "FE-01",
                             "--val-start", "2018-01-01", "--dry-run")
    assert code == 2 and "--val-start 2018-01-01" in err


def test_export_writes_every_result_with_its_data_and_protocol(tiny_project, tmp_path, capsys):
    import pandas as pd

    registry = _registry(tiny_project)
    code, out, _ = _fembed(capsys, "--registry", registry, "export", "--json")
    rows = {r["exp_id"]: r for r in json.loads(out)}
    assert code == 0 and rows["FE-01"]["source"] == "fembed" and rows["FE-01"]["data"].startswith("builtin")
    assert rows["FE-01"]["seeds"] == rows["FE-01"]["registry_seeds"] and rows["FE-01"]["quick"] is False
    target = tmp_path / "results.parquet"
    code, out, _ = _fembed(capsys, "--registry", registry, "export", "--parquet", "--out", str(target))
    frame = pd.read_parquet(target)
    assert code == 0 and set(frame.exp_id) == set(rows) and "auc_mean" in frame
    code, out, _ = _fembed(capsys, "--registry", registry, "export", "--csv", "--outputs", str(tmp_path / "none"))
    assert code == 0 and out.startswith("exp_id,source,current,run_hash,data")  # a header, even when empty


def test_completion_scripts_know_every_command_and_flag(capsys):
    code, out, _ = _fembed(capsys, "completion", "bash")
    assert code == 0
    for word in ("init", "export", "reset", "--val-start", "--set", "--json"):
        assert word in out, word


def test_show_lists_the_runs_a_forced_run_replaced(tmp_path, capsys):
    registry = str(write_project(tmp_path, tiny_registry(ONE, epochs=1)))
    assert _fembed(capsys, "--registry", registry, "run", "--all", "--seeds", "1")[0] == 0
    code, _, err = _fembed(capsys, "--registry", registry, "run", "--all", "--seeds", "2", "--force")
    assert code == 0, err
    code, out, _ = _fembed(capsys, "--registry", registry, "show", "FE-01")
    assert code == 0 and "earlier runs, replaced (1)" in out and "1 seed x 1 epochs" in out
    code, out, _ = _fembed(capsys, "--registry", registry, "show", "FE-01", "--json")
    shown = json.loads(out)
    assert len(shown["history"]) == 1 and len(shown["result"]["record"]["seeds"]) == 2
