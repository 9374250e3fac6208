"""Shared pieces of the reliability suite: a tiny project, `fembed` as a subprocess or in-process,
snapshots of everything a run leaves behind, and the checks every fault test ends with.

The tiny project is two experiments on the built-in a20 data (d_model 16, one layer, context 32,
2 seeds, 3 epochs): TT-01 (BCE) then TT-02 (focal). A run of it trains in seconds, and the
data and compiled programs come from the session's FEMBED_CACHE.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import pathlib
import sqlite3
import subprocess
import sys
import time
from collections.abc import Mapping

EXPERIMENTS = ("TT-01", "TT-02")
EPOCHS = 3

REGISTRY = """\
[defaults]
d_model = 16
n_layers = 1
n_heads = 2
d_ff = 32
context_length = 32
batch_size = 256
epochs = {epochs}
seeds = 2

[tiers.a20]
features = 20

[data]
source = "builtin"
val_start = "2015-01-01"
test_start = "2017-01-01"

[[experiments]]
id = "TT-01"
priority = "P1"
tier = "a20"
d_embed = 8
description = "tiny BCE"
{extra_01}
[[experiments]]
id = "TT-02"
priority = "P1"
tier = "a20"
d_embed = 8
loss = "focal"
loss_params = {{ gamma = 2.0, alpha = 0.5 }}
dropout = 0.3  # a structural difference: TT-01 and TT-02 never share a program (bit-exact checks)
description = "tiny focal"
{extra_02}"""

# Fields of a result record that must equal the uninterrupted run's (timings, dates and
# training.resumed_from_epoch may differ).
COMPARED_FIELDS = ("history", "val_metrics_per_seed", "best_epoch", "seeds", "config_hash",
                   "run_hash", "val_metrics")


def make_project(root: pathlib.Path, *, epochs: int = EPOCHS, extra_01: str = "",
                 extra_02: str = "") -> pathlib.Path:
    """registry/experiments.toml under ``root`` (outputs/ and checkpoints/ go beside it)."""
    (root / "registry").mkdir(parents=True, exist_ok=True)
    path = root / "registry" / "experiments.toml"
    path.write_text(REGISTRY.format(epochs=epochs, extra_01=extra_01, extra_02=extra_02))
    return path


def registry_of(root: pathlib.Path) -> pathlib.Path:
    return root / "registry" / "experiments.toml"


def fembed_cmd(root: pathlib.Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "fembed_jax.cli.main", "--registry", str(registry_of(root)), *args]


def subprocess_env(fault: str | None = None, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("FEMBED_FAULT", None)
    env.pop("FEMBED_FAULT_TRACE", None)
    if fault:
        env["FEMBED_FAULT"] = fault
    env.update(extra)
    env.setdefault("COLUMNS", "200")  # rich: one line per message, easy to search
    return env


def fembed(root: pathlib.Path, *args: str, fault: str | None = None, timeout: float = 600,
           env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess:
    """`fembed --registry <root>/registry/experiments.toml ARGS` as a subprocess (output captured)."""
    return subprocess.run(fembed_cmd(root, *args), env=subprocess_env(fault, **dict(env or {})),
                          capture_output=True, text=True, timeout=timeout)


def fembed_inprocess(root: pathlib.Path, *args: str) -> tuple[int, str, str]:
    """`fembed ...` through cli.main.main in this process: (exit code, stdout, stderr)."""
    from fembed_jax.cli.main import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["--registry", str(registry_of(root)), *args])
    return code, out.getvalue(), err.getvalue()


# -- what a run leaves behind ----------------------------------------------------------------

def results_path(root: pathlib.Path, exp_id: str) -> pathlib.Path:
    return root / "outputs" / exp_id / "results.json"


def store_path(root: pathlib.Path) -> pathlib.Path:
    return root / "outputs" / "fembed.db"


def comparable(record: Mapping) -> dict:
    """The part of a result record that must equal an uninterrupted run's."""
    return json.loads(json.dumps({k: record.get(k) for k in COMPARED_FIELDS}))


def store_rows(root: pathlib.Path) -> dict[str, list[dict]]:
    """Queue rows and per-seed epoch rows, read with a plain sqlite3 connection."""
    with contextlib.closing(sqlite3.connect(store_path(root))) as db:
        db.row_factory = sqlite3.Row
        queue = [dict(r) for r in db.execute("SELECT * FROM experiments ORDER BY exp_id")]
        epochs = [dict(r) for r in db.execute(
            "SELECT exp_id, epoch, seed, train_loss, val_loss, val_auc, active, is_best"
            " FROM epochs ORDER BY exp_id, epoch, seed")]
        results = [dict(r) for r in db.execute("SELECT exp_id, results_json FROM results ORDER BY exp_id")]
    return {"queue": queue, "epochs": epochs, "results": results}


def outcome(root: pathlib.Path) -> dict:
    """Everything that must equal an uninterrupted run: results.json files (their comparable
    part), the store's queue states, epoch rows and stored results."""
    rows = store_rows(root)
    return {
        "results_json": {e: comparable(json.loads(results_path(root, e).read_text())) for e in EXPERIMENTS},
        "states": {r["exp_id"]: r["state"] for r in rows["queue"]},
        "epochs": rows["epochs"],
        "stored": {r["exp_id"]: comparable(json.loads(r["results_json"])) for r in rows["results"]},
    }


def assert_same_outcome(root: pathlib.Path, reference: dict) -> None:
    got = outcome(root)
    assert got["states"] == {e: "done" for e in EXPERIMENTS}, got["states"]
    for exp_id in EXPERIMENTS:
        assert got["results_json"][exp_id] == reference["results_json"][exp_id], f"{exp_id} results.json differs"
        assert got["stored"][exp_id] == reference["stored"][exp_id], f"{exp_id} stored result differs"
    assert got["epochs"] == reference["epochs"], "per-epoch rows in the store differ"


def left_behind(root: pathlib.Path) -> dict:
    """What a killed run left on disk (for the assertions and for RELIABILITY.md)."""
    info: dict = {"results_json": [], "tmp_files": [], "steps": {}, "tmp_steps": {}, "states": {}}
    for exp_id in EXPERIMENTS:
        folder = root / "outputs" / exp_id
        if results_path(root, exp_id).exists():
            info["results_json"].append(exp_id)
        if folder.is_dir():
            info["tmp_files"] += [p.name for p in folder.iterdir() if p.name.endswith(".tmp")]
        ckpt = root / "checkpoints" / exp_id
        if ckpt.is_dir():
            names = sorted(p.name for p in ckpt.iterdir())
            info["steps"][exp_id] = [n for n in names if n.isdigit()]
            info["tmp_steps"][exp_id] = [n for n in names if "tmp" in n]
    if store_path(root).exists():
        with contextlib.closing(sqlite3.connect(store_path(root))) as db:
            info["states"] = dict(db.execute("SELECT exp_id, state FROM experiments ORDER BY exp_id"))
    return info


def assert_nothing_half_written_is_valid(root: pathlib.Path, reference: dict) -> None:
    """After a crash: every results.json that exists is complete and equals the reference (a
    truncated one would fail to parse), and the store opens and answers."""
    from fembed_jax.results_io import read_results
    from fembed_jax.store import RunStore

    for exp_id in EXPERIMENTS:
        path = results_path(root, exp_id)
        if path.exists():
            assert comparable(read_results(path)) == reference["results_json"][exp_id], path
    if store_path(root).exists():
        with RunStore(store_path(root), readonly=True) as store:
            store.counts()  # the queue reads
            for row in store.results(with_record=True):
                if row["exp_id"] in reference["stored"]:
                    assert comparable(row["record"]) == reference["stored"][row["exp_id"]]


# One pair of near-tied validation windows swapping order moves a tiny model's AUC by ~4e-5.
AUC_TOL = 2e-4


def assert_close_to_reference(root: pathlib.Path, reference: dict) -> None:
    """Like assert_nothing_half_written_is_valid, for runs whose experiments may have trained in
    a shared program with others (grouping): equal up to the last bits of the batched kernels —
    same seeds, epochs, best epochs and predicted-positive counts, losses and AUCs within 1e-5."""
    import numpy as np

    from fembed_jax.results_io import read_results

    for exp_id in EXPERIMENTS:
        got = comparable(read_results(results_path(root, exp_id)))
        want = reference["results_json"][exp_id]
        for key in ("seeds", "best_epoch", "config_hash", "run_hash"):
            assert got[key] == want[key], (exp_id, key)
        assert [h["epoch"] for h in got["history"]] == [h["epoch"] for h in want["history"]], exp_id
        for key in ("train_loss", "val_loss"):
            np.testing.assert_allclose([h[key] for h in got["history"]],
                                       [h[key] for h in want["history"]], rtol=1e-5, atol=1e-6)
        for mine, theirs in zip(got["val_metrics_per_seed"], want["val_metrics_per_seed"], strict=True):
            assert mine["n_positive_preds"] == theirs["n_positive_preds"], exp_id
            assert (mine["auc"] is None) == (theirs["auc"] is None), exp_id
            if mine["auc"] is not None:
                np.testing.assert_allclose(mine["auc"], theirs["auc"], atol=AUC_TOL)


# -- reporting -------------------------------------------------------------------------------

def report(kind: str, **fields) -> None:
    """Append one JSON line to $FEMBED_RELIABILITY_REPORT (the data behind RELIABILITY.md)."""
    target = os.environ.get("FEMBED_RELIABILITY_REPORT")
    if not target:
        return
    with open(target, "a", encoding="utf-8") as fh:
        fh.write(json.dumps({"kind": kind, "time": time.strftime("%Y-%m-%d %H:%M:%S"), **fields},
                            default=str) + "\n")
