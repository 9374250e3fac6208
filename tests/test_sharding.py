"""The (experiment, seed) axis sharded over 4 CPU host devices (real jax.sharding over a 1-D mesh)
gives the results of one device with the same seeds.

The sharded run is a separate `fembed run --devices 4` process: the host device count must be
fixed before JAX starts, and this test process already runs JAX on one device.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from fembed_jax.cli.main import main
from helpers import tiny_registry, write_project

# Two experiments of one structure (one program, 4 members) and one of another (2 members):
# 4 devices split the first evenly and the second with two filler members.
EXPERIMENTS = """\
[[experiments]]
id = "SH-01"
priority = "P1"
tier = "a20"
d_embed = 8
loss = "focal"
loss_params = { gamma = 2.0, alpha = 0.25 }
description = "focal"

[[experiments]]
id = "SH-02"
priority = "P1"
tier = "a20"
d_embed = 8
loss = "focal"
loss_params = { gamma = 1.0, alpha = 0.5 }
description = "focal, other values: same program as SH-01"

[[experiments]]
id = "SH-03"
priority = "P1"
tier = "a20"
d_embed = 8
description = "bce: a program of its own, 2 members on 4 devices"
"""


def results(root: Path, exp_id: str) -> dict:
    return json.loads((root / "outputs" / exp_id / "results.json").read_text())


pytestmark = pytest.mark.usefixtures("shared_cache")  # tests/conftest.py

def test_four_host_devices_give_the_results_of_one(tmp_path, shared_cache):
    one, four = tmp_path / "one", tmp_path / "four"
    assert main(["--registry", str(write_project(one, tiny_registry(EXPERIMENTS))), "run", "--all"]) == 0

    registry = write_project(four, tiny_registry(EXPERIMENTS))
    env = {**os.environ, "FEMBED_CACHE": str(shared_cache),
           "XLA_FLAGS": "--xla_force_host_platform_device_count=4"}
    done = subprocess.run([sys.executable, "-m", "fembed_jax.cli.main", "--registry", str(registry),
                           "run", "--all", "--device", "cpu", "--devices", "4"],
                          capture_output=True, text=True, env=env, timeout=900)
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    assert "4 device(s)" in " ".join(done.stdout.split())  # rich wraps long lines

    for exp_id in ("SH-01", "SH-02", "SH-03"):
        sharded, single = results(four, exp_id), results(one, exp_id)
        assert sharded["device"]["count"] == 4 and sharded["seeds"] == single["seeds"] == [42, 43]
        assert sharded["best_epoch"] == single["best_epoch"]
        for key in ("train_loss", "val_loss"):
            np.testing.assert_allclose([h[key] for h in sharded["history"]],
                                       [h[key] for h in single["history"]], rtol=1e-5, atol=1e-6)
        for mine, theirs in zip(sharded["val_metrics_per_seed"], single["val_metrics_per_seed"]):
            assert mine["n_positive_preds"] == theirs["n_positive_preds"]
            assert mine["auc"] == pytest.approx(theirs["auc"], abs=2e-4)  # near-tied pairs
        with np.load(four / "outputs" / exp_id / "val_predictions.npz") as a, \
                np.load(one / "outputs" / exp_id / "val_predictions.npz") as b:
            np.testing.assert_allclose(a["probs"], b["probs"], rtol=1e-5, atol=1e-6)
