"""Tier contents: exact names and order (the original's), nesting, no NaN/inf, constant or
duplicate columns, OHLCV never a feature, equal dates across tiers."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from fembed_jax.data import TIER_COUNTS, TIERS, WARMUP_ROWS, feature_names
from fembed_jax.data.build import build_tier_frames
from fembed_jax.data.feature_names import ADDED
from fembed_jax.data.sources import OHLCV, load_builtin

REFERENCE_CSV = Path(__file__).parent / "data" / "original_feature_names.csv"


@pytest.fixture(scope="module")
def builtin_tiers():
    src = load_builtin()
    return build_tier_frames(src.frame, TIERS, "builtin")


def test_counts_and_nesting():
    for tier in TIERS:
        names = feature_names(tier)
        assert len(names) == TIER_COUNTS[tier]
        assert len(set(names)) == len(names)
    for lower, upper in zip(TIERS, TIERS[1:]):
        assert feature_names(upper)[: TIER_COUNTS[lower]] == feature_names(lower)
        assert feature_names(upper)[TIER_COUNTS[lower]:] == ADDED[upper]
    assert not set(OHLCV) & set(feature_names("a500"))


def test_names_match_original_csv():
    with open(REFERENCE_CSV) as fh:
        rows = list(csv.DictReader(fh))
    assert tuple(r["name"] for r in rows) == feature_names("a500")
    for tier in TIERS:
        assert tuple(r["name"] for r in rows if r["first_tier"] == tier) == ADDED[tier]


def test_built_frames_have_the_original_layout(builtin_tiers):
    for tier, frame in builtin_tiers.items():
        assert tuple(frame.columns) == ("Date", *OHLCV, *feature_names(tier))
        assert len(frame) == 5031 - WARMUP_ROWS[tier]  # built-in S&P 500 has 5,031 rows
    assert builtin_tiers["a20"]["Date"].iloc[0].date().isoformat() == "1999-10-18"
    assert builtin_tiers["a50"]["Date"].equals(builtin_tiers["a100"]["Date"])
    assert builtin_tiers["a200"]["Date"].equals(builtin_tiers["a500"]["Date"])
    # nested tiers carry identical values for their shared columns
    a100, a500 = builtin_tiers["a100"], builtin_tiers["a500"]
    offset = WARMUP_ROWS["a500"] - WARMUP_ROWS["a100"]
    shared = list(feature_names("a100"))
    assert np.array_equal(a500[shared].to_numpy(), a100.iloc[offset:][shared].to_numpy())


def test_no_nan_inf_constant_or_duplicate_columns(builtin_tiers):
    frame = builtin_tiers["a500"]  # a superset of every tier's columns
    x = frame[list(feature_names("a500"))].to_numpy(np.float64)
    assert np.isfinite(x).all()
    names = feature_names("a500")
    constant = [n for n, col in zip(names, x.T) if np.ptp(col) == 0]
    assert constant == []
    # exact duplicates
    _, first = np.unique(x.T, axis=0, return_index=True)
    assert len(first) == x.shape[1], sorted(set(names) - {names[i] for i in first})
    # renamed (affine) duplicates: |corr| of exactly 1 (up to rounding)
    corr = np.corrcoef(x.T)
    np.fill_diagonal(corr, 0.0)
    i, j = np.where(np.abs(corr) > 1 - 1e-7)
    assert [(names[a], names[b]) for a, b in zip(i, j) if a < b] == []


def test_every_feature_fits_its_tier_warmup():
    from fembed_jax.data.build import compute_features

    values, specs = compute_features(load_builtin().frame, "a500")
    for name, v in values.items():
        lead = int(np.argmax(np.isfinite(v)))
        first_tier = next(t for t in TIERS if name in ADDED[t])
        assert lead <= WARMUP_ROWS[first_tier], (name, lead)
        assert specs[name].formula and specs[name].family
