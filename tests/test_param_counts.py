"""Parameter counts of all 183 experiments equal `built_params` of the reference matrix.

The CSV (shared/reference/experiment_matrix.csv, the original's counts with RevIN and the
advanced embeddings included) lives beside the repository, not in it: the test skips when it is
absent. Counts come from shapes only (jax.eval_shape); identical architectures are counted once.
"""

from __future__ import annotations

import csv
import functools
import json
import types
from pathlib import Path

import pytest

from fembed_jax.models import count_params

MATRIX = Path(__file__).resolve().parents[1] / ".." / "shared" / "reference" / "experiment_matrix.csv"


def _rows() -> list[dict[str, str]]:
    if not MATRIX.is_file():
        return []
    with MATRIX.open(newline="") as handle:
        return list(csv.DictReader(handle))


ROWS = _rows()
pytestmark = pytest.mark.skipif(
    not ROWS, reason=f"reference matrix not found at {MATRIX.resolve()} (shared/ must sit beside the repo)"
)


def config_from_row(row: dict[str, str]) -> types.SimpleNamespace:
    return types.SimpleNamespace(
        num_features=int(row["num_features"]),
        d_embed=int(row["d_embed"]) if row["d_embed"] else None,
        d_model=int(row["d_model"]),
        n_layers=int(row["n_layers"]),
        n_heads=int(row["n_heads"]),
        d_ff=int(row["d_ff"]),
        dropout=float(row["dropout"]),
        head_dropout=0.0,
        context_length=80,
        patch_length=16,
        stride=8,
        use_revin=True,
        embedding=row["embedding_type"],
        embedding_params=json.loads(row["embedding_params"] or "{}"),
    )


@functools.lru_cache(maxsize=None)
def _count(architecture: tuple) -> int:
    fields = dict(architecture)
    fields["embedding_params"] = json.loads(fields["embedding_params"])
    return count_params(types.SimpleNamespace(**fields))


def test_matrix_has_all_experiments():
    assert len(ROWS) == 183
    assert len({row["exp_id"] for row in ROWS}) == 183


@pytest.mark.parametrize("row", ROWS, ids=[row["exp_id"] for row in ROWS])
def test_param_count_matches_reference(row):
    cfg = vars(config_from_row(row))
    cfg["embedding_params"] = json.dumps(cfg["embedding_params"], sort_keys=True)
    assert _count(tuple(sorted(cfg.items()))) == int(row["built_params"]), row["exp_id"]
