"""Raw frame -> tier frames (Date + OHLCV + features) with the warm-up rows dropped."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd

from fembed_jax.data import tier_a20, tier_a50, tier_a100, tier_a200  # noqa: F401 (registers families)
from fembed_jax.data import tier_a500_ma, tier_a500_vol, tier_a500_trend  # noqa: F401
from fembed_jax.data import tier_a500_patterns, tier_a500_complexity, tier_a500_fractal  # noqa: F401
from fembed_jax.data.config import TIERS
from fembed_jax.data.errors import DataError
from fembed_jax.data.feature_names import ADDED
from fembed_jax.data.features import FAMILIES, Feature, Inputs
from fembed_jax.data.sources import OHLCV

# Bump when any feature formula, the VIX proxy or the tier layout changes: it keys the cache.
CODE_VERSION = "1"

TIER_COUNTS = {"a20": 20, "a50": 50, "a100": 100, "a200": 206, "a500": 500}
# Rows dropped at the start of every tier, as the original did on SPY (SMA200 -> 199,
# return_252d -> 252, TEMA(100) -> 297). No feature of a tier needs more; the build checks it.
WARMUP_ROWS = {"a20": 199, "a50": 252, "a100": 252, "a200": 297, "a500": 297}


def check_tier(tier: str) -> str:
    if tier not in TIERS:
        raise DataError(f"unknown tier {tier!r}; tiers are {', '.join(TIERS)}")
    return tier


def tiers_upto(tier: str) -> tuple[str, ...]:
    return TIERS[: TIERS.index(check_tier(tier)) + 1]


def feature_names(tier: str) -> tuple[str, ...]:
    """The tier's feature columns, in the original's order (each tier extends the one below)."""
    return tuple(name for t in tiers_upto(tier) for name in ADDED[t])


def compute_features(
    frame: pd.DataFrame, tier: str, timings: dict[str, float] | None = None
) -> tuple[dict[str, np.ndarray], dict[str, Feature]]:
    """All features of `tier` on every row of the raw frame (warm-up rows still NaN).

    `timings`, if given, receives the seconds spent on each tier's own families.
    """
    x = Inputs(frame)
    specs: dict[str, Feature] = {}
    for t in tiers_upto(tier):
        start = time.perf_counter()
        for fam in (f for f in FAMILIES if f.tier == t):
            for name, formula, values in fam.compute(x):
                if name in specs:
                    raise RuntimeError(f"feature {name} defined twice ({fam.name})")
                values = np.asarray(values, dtype=np.float64)
                if values.shape != (x.n,):
                    raise RuntimeError(f"feature {name} has shape {values.shape}, expected ({x.n},)")
                specs[name] = Feature(name, t, fam.name, formula)
                x.f[name] = values
        got = [n for n, s in specs.items() if s.tier == t]
        if sorted(got) != sorted(ADDED[t]):
            missing = sorted(set(ADDED[t]) - set(got))
            extra = sorted(set(got) - set(ADDED[t]))
            raise RuntimeError(f"tier {t}: missing features {missing}, unexpected {extra}")
        if timings is not None:
            timings[t] = time.perf_counter() - start
    return x.f, specs


def build_tier_frames(
    raw: pd.DataFrame, tiers: tuple[str, ...], where: str, timings: dict[str, float] | None = None
) -> dict[str, pd.DataFrame]:
    """Tier frames for `tiers`, computed once on the full raw frame (so dates agree across tiers).

    Each frame is Date, Open, High, Low, Close, Volume + the tier's features, starting after the
    tier's warm-up rows. Raises DataError when the raw frame is too short or a feature is
    NaN/inf after the warm-up.
    """
    top = max(tiers, key=TIERS.index)
    need = WARMUP_ROWS[top] + 2
    if len(raw) < need:
        raise DataError(
            f"{where}: {len(raw)} rows is too few for tier {top} (warm-up {WARMUP_ROWS[top]} rows, "
            f"need at least {need})"
        )
    values, _ = compute_features(raw, top, timings)
    out = {}
    for tier in tiers:
        names = feature_names(tier)
        skip = WARMUP_ROWS[tier]
        block = np.column_stack([values[n][skip:] for n in names])
        bad = ~np.isfinite(block)
        if bad.any():
            row, col = np.argwhere(bad)[0]
            date = pd.Timestamp(raw["Date"].iloc[skip + row]).date()
            raise DataError(
                f"{where}: feature {names[col]} is not finite on {date} (after the {skip}-row warm-up of "
                f"tier {tier}); {int(bad[:, col].sum())} such row(s)"
            )
        frame = raw[["Date", *OHLCV]].iloc[skip:].reset_index(drop=True)
        frame = pd.concat([frame, pd.DataFrame(block, columns=list(names))], axis=1)
        out[tier] = frame
    return out
