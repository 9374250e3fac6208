"""Test helpers: a tiny experiment config, small synthetic windows for engine tests, and tiny
registries on the built-in a20 data for end-to-end runs."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np

from fembed_jax.config import ExperimentConfig


def tiny_config(**changes) -> ExperimentConfig:
    """A model small enough that a test epoch compiles and runs in about a second."""
    base = dict(exp_id="T-01", priority="P1", tier="a20", num_features=6, d_embed=8,
                embedding="linear", d_model=16, n_heads=2, n_layers=1, d_ff=32,
                context_length=32, patch_length=16, stride=8, batch_size=32, epochs=4,
                patience=2, seeds=2)
    base.update(changes)
    return ExperimentConfig(**base)


def synthetic_dataset(rows: int = 420, features: int = 6, seed: int = 0) -> SimpleNamespace:
    """Random features with a learnable label (the sign of a feature at the decision day)."""
    rng = np.random.default_rng(seed)
    matrix = rng.normal(size=(rows, features)).astype(np.float32)
    context = 32

    def split(lo, hi):
        starts = np.arange(lo, hi - context, dtype=np.int32)
        labels = (matrix[starts + context - 1, 0] > 0.3).astype(np.float32)
        return starts, labels

    parts = {"train": split(0, 250), "val": split(250, 360), "test": split(360, rows)}
    return SimpleNamespace(matrix=matrix, starts={k: v[0] for k, v in parts.items()},
                           labels={k: v[1] for k, v in parts.items()})


# The [defaults]/[tiers]/[data] of the end-to-end tests' registries: a model that trains an epoch
# of the built-in a20 data in about a second. Tests that use the same defaults share compiled
# programs through the session's jax cache.
TINY_DEFAULTS = """\
[defaults]
d_model = 16
n_layers = 1
n_heads = 2
d_ff = 32
epochs = {epochs}
seeds = 2

[tiers.a20]
features = 20

[data]
source = "builtin"
val_start = "2015-01-01"
test_start = "2017-01-01"
"""


# One tiny BCE experiment on a20 (the end-to-end tests' usual subject).
TINY_BCE = """\
[[experiments]]
id = "TT-01"
priority = "P1"
tier = "a20"
d_embed = 8
description = "tiny BCE"
"""


def tiny_registry(experiments: str, epochs: int = 2) -> str:
    """A whole registry: the tiny defaults plus `experiments` ([[experiments]] tables)."""
    return TINY_DEFAULTS.format(epochs=epochs) + "\n" + experiments


def write_project(root: Path, registry_text: str) -> Path:
    """root/registry/experiments.toml with `registry_text`; returns its path."""
    (root / "registry").mkdir(parents=True, exist_ok=True)
    path = root / "registry" / "experiments.toml"
    path.write_text(registry_text)
    return path


STORE_V1 = Path(__file__).parent / "data" / "store_v1.db"  # release 0.1's store: 2 runs, 29 legacy


def old_store(path: Path, version: int) -> Path:
    """Release 0.1's store (tests/data/store_v1.db) brought to schema ``version`` by the frozen
    migrations themselves, as the fembed of that version left it; at 2 and above with one
    replaced result (FE-01's) in its history."""
    import shutil
    import sqlite3

    from fembed_jax.store import schema

    path.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(STORE_V1, path)
    with sqlite3.connect(path) as db:
        for v in range(1, version):
            schema.MIGRATIONS[v](db)
        if version >= 2:
            hash_column = "run_hash" if version >= 4 else "config_hash"
            db.execute(
                f"INSERT INTO result_history SELECT exp_id, {hash_column}, results_json, precision_mean,"
                " precision_std, recall_mean, auc_mean, auc_std, tp_total, pred_pos_total, collapsed,"
                " epochs, seconds, finished_at, recorded_at, 1.0 FROM results WHERE exp_id = 'FE-01'")
        db.execute("UPDATE schema_version SET version = ?", (version,))
    db.close()
    return path
