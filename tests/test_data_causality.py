"""Causality: features computed on data cut at day t equal those computed on the full data for
every day <= t, for every tier."""

from __future__ import annotations

import numpy as np
import pytest

from fembed_jax.data import TIERS, feature_names
from fembed_jax.data.build import WARMUP_ROWS, build_tier_frames
from fembed_jax.data.sources import attach_vix, load_builtin
from fembed_jax.data.synthetic import random_walk_ohlcv


@pytest.fixture(scope="module")
def builtin():
    src = load_builtin()
    return src.frame, build_tier_frames(src.frame, TIERS, "full")


def _assert_prefix_equal(full, cut, tier):
    names = list(feature_names(tier))
    n = len(cut)
    assert full["Date"].iloc[:n].equals(cut["Date"])
    a, b = full[names].to_numpy()[:n], cut[names].to_numpy()
    bad = ~np.isclose(a, b, rtol=1e-9, atol=1e-9)
    if bad.any():
        col = names[np.argwhere(bad)[0][1]]
        raise AssertionError(f"{tier}: {col} changes when future rows are removed")


@pytest.mark.slow
@pytest.mark.parametrize("cut_row", [700, 4200])  # before and after real VIX starts (row 3774)
def test_truncated_equals_full_every_tier(builtin, cut_row):
    raw, full = builtin
    cut = build_tier_frames(raw.iloc[: cut_row + 1].reset_index(drop=True), TIERS, f"cut at {cut_row}")
    for tier in TIERS:
        assert len(cut[tier]) == cut_row + 1 - WARMUP_ROWS[tier]
        _assert_prefix_equal(full[tier], cut[tier], tier)


def test_changing_future_rows_changes_nothing_before():
    """Perturb every row after t (prices and VIX) on a synthetic series: rows <= t stay the same."""
    raw = random_walk_ohlcv(700, seed=3)
    raw, _, _ = attach_vix(raw, None)
    t = 500
    other = raw.copy()
    rng = np.random.default_rng(1)
    scale = np.exp(rng.normal(0, 0.05, len(raw) - t - 1))
    for col in ("Open", "High", "Low", "Close"):
        other.loc[t + 1:, col] = raw.loc[t + 1:, col].to_numpy() * scale
    other.loc[t + 1:, "Volume"] = raw.loc[t + 1:, "Volume"].to_numpy()[::-1]
    other.loc[t + 1:, "VIX"] = 99.0
    a = build_tier_frames(raw, ("a100",), "a")["a100"]
    b = build_tier_frames(other, ("a100",), "b")["a100"]
    n = t + 1 - WARMUP_ROWS["a100"]
    _assert_prefix_equal(a, b.iloc[:n], "a100")


def test_vix_proxy_is_causal():
    from fembed_jax.data.volproxy import garch_vol_proxy

    close = load_builtin().frame["Close"].to_numpy()
    full = garch_vol_proxy(close)
    for k in (50, 1000, 3000):
        assert np.allclose(garch_vol_proxy(close[:k]), full[:k], rtol=1e-12, equal_nan=True)
