"""The results record keeps the original's estimate formula (spec §1.9)."""

import csv
from pathlib import Path

from fembed_jax.registry import load_registry
from fembed_jax.train.record import estimated_params

MATRIX = Path(__file__).parent / "data" / "experiment_matrix.csv"


def test_estimated_params_equal_the_original_estimate_for_all_183():
    with MATRIX.open() as fh:
        expected = {r["exp_id"]: int(r["orig_estimated_params"]) for r in csv.DictReader(fh)}
    got = {cfg.exp_id: estimated_params(cfg) for cfg in load_registry().experiments}
    assert got == expected
