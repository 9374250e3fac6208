"""Tier a500, chunks 8a/8b (45 features): directional movement, up/down magnitudes, trend regime,
linear regression, Aroon(25); range positions, breakouts, support tests and retracements."""

from __future__ import annotations

import numpy as np
import talib

from fembed_jax.data import indicators as ind
from fembed_jax.data.features import Inputs, family
from fembed_jax.data.tier_a50 import atr_pct

TIER = "a500"


def adx_regime(x: Inputs) -> np.ndarray:
    return x.memo(("adx_regime",), lambda: ind.bucket3(x.adx(14), 20.0, 40.0) + 1.0)


@family(TIER, "trend (8a)")
def trend(x: Inputs):
    adx, pdi, mdi = x.adx(14), x.plus_di(14), x.minus_di(14)
    yield "plus_di_14", "PLUS_DI(14)", pdi
    yield "minus_di_14", "MINUS_DI(14)", mdi
    yield "adx_14_slope", "ADX14 - ADX14[t-1] (adx_slope is the 5-day change)", ind.change(adx, 1)
    yield "adx_acceleration", "adx_slope - adx_slope[t-5]", ind.change(ind.change(adx, 5), 5)
    yield "di_cross_recency", "rows since sign(PLUS_DI - MINUS_DI) changed", ind.days_since_cross(pdi, mdi)
    r_pct = 100.0 * x.r
    ok = np.isfinite(r_pct)
    up = np.where(ok, (r_pct > 0).astype(float), np.nan)
    down = np.where(ok, (r_pct < 0).astype(float), np.nan)
    avg_up = ind.div(ind.rsum(np.where(r_pct > 0, r_pct, 0.0), 20), ind.rsum(up, 20))
    avg_down = ind.div(ind.rsum(np.where(r_pct < 0, -r_pct, 0.0), 20), ind.rsum(down, 20))
    yield "avg_up_day_magnitude", "mean 100 r over the up days of the last 20 (0 if none)", avg_up
    yield "avg_down_day_magnitude", "mean |100 r| over the down days of the last 20 (0 if none)", avg_down
    yield "up_down_magnitude_ratio", "avg_up_day_magnitude / avg_down_day_magnitude (1 if no down day)", ind.div(avg_up, avg_down, 1.0)
    same_sign = np.where(ind.valid(x.r, lag=1), (np.sign(x.r) * np.sign(ind.shift(x.r, 1)) > 0).astype(float), np.nan)
    yield "trend_persistence_20d", "fraction of the last 20 days whose return sign repeats the previous day's", ind.rmean(same_sign, 20)
    abs_sum = ind.rsum(np.abs(r_pct), 10)
    yield "up_vs_down_momentum", "(sum of up returns - sum of |down returns|) / sum |returns|, 10 days (simple sums, not Wilder)", ind.div(ind.rsum(r_pct, 10), abs_sum)
    yield "directional_bias_strength", "DX(14) = 100 |+DI - -DI| / (+DI + -DI)", talib.DX(x.h, x.l, x.c, 14)
    regime = adx_regime(x)
    yield "adx_regime", "0 if ADX14 < 20, 1 if 20..40, 2 if > 40", regime
    slope20 = talib.LINEARREG_SLOPE(x.c, 20)
    yield "price_trend_direction", "sign(LINEARREG_SLOPE(Close, 20))", np.sign(slope20)
    sma20, sma50, sma200 = x.sma(20), x.sma(50), x.sma(200)
    yield "trend_alignment_score", "(sign(C - SMA20) + sign(SMA20 - SMA50) + sign(SMA50 - SMA200)) / 3", (np.sign(x.c - sma20) + np.sign(sma20 - sma50) + np.sign(sma50 - sma200)) / 3.0
    yield "trend_regime_duration", "rows since adx_regime changed", ind.days_since_change(regime)
    yield "trend_strength_vs_vol", "ADX14 / atr_pct", ind.div(adx, atr_pct(x))
    r2 = talib.CORREL(np.arange(x.n, dtype=float), x.c, 20) ** 2
    yield "linreg_slope_20d", "100 * LINEARREG_SLOPE(Close, 20) / Close", 100.0 * slope20 / x.c
    yield "linreg_r_squared_20d", "CORREL(time, Close, 20)^2", r2
    yield "price_linreg_deviation", "100 * (Close - LINEARREG(Close, 20)) / Close", 100.0 * (x.c - talib.LINEARREG(x.c, 20)) / x.c
    yield "channel_width_linreg_20d", "100 * 2 * STDDEV(Close, 20) * sqrt(1 - R^2) / Close (twice the residual std)", 200.0 * talib.STDDEV(x.c, 20) * np.sqrt(np.maximum(1.0 - r2, 0.0)) / x.c
    down25, up25 = talib.AROON(x.h, x.l, 25)
    yield "aroon_up_25", "AROON(25) up", up25
    yield "aroon_down_25", "AROON(25) down", down25
    yield "aroon_trend_strength", "|aroon_up_25 - aroon_down_25|", np.abs(up25 - down25)


@family(TIER, "support and resistance (8b)")
def support_resistance(x: Inputs):
    def position(n):
        lo, hi = ind.rmin(x.c, n), ind.rmax(x.c, n)
        return ind.div(x.c - lo, hi - lo, 0.5)

    for n in (20, 50, 252):
        yield f"range_position_{n}d", f"(Close - min(Close, {n})) / (max(Close, {n}) - min(Close, {n})) (closes; donchian_position uses High/Low)", position(n)
    yield "range_width_20d_pct", "100 * (max(Close, 20) - min(Close, 20)) / Close", 100.0 * (ind.rmax(x.c, 20) - ind.rmin(x.c, 20)) / x.c
    yield "pct_from_20d_high", "100 * (Close / max(Close, 20) - 1) (closes, today included)", ind.pct_diff(x.c, ind.rmax(x.c, 20))
    yield "pct_from_20d_low", "100 * (Close / min(Close, 20) - 1)", ind.pct_diff(x.c, ind.rmin(x.c, 20))
    yield "pct_from_52w_high", "100 * (Close / max(Close, 252) - 1) (closes; distance_from_52wk_high_pct uses High)", ind.pct_diff(x.c, ind.rmax(x.c, 252))
    yield "pct_from_52w_low", "100 * (Close / min(Close, 252) - 1)", ind.pct_diff(x.c, ind.rmin(x.c, 252))
    for n in (20, 50):
        yield f"days_since_{n}d_high", f"rows since the highest High of the last {n} rows", ind.days_since_extreme(x.h, n, True)
        yield f"days_since_{n}d_low", f"rows since the lowest Low of the last {n} rows", ind.days_since_extreme(x.l, n, False)
    prev_high, prev_low = ind.shift(ind.rmax(x.h, 20), 1), ind.shift(ind.rmin(x.l, 20), 1)
    ok = ind.valid(prev_high)
    yield "breakout_20d", "1 if Close > max(High[t-20..t-1])", ind.nanmask((x.c > prev_high).astype(float), ok)
    yield "breakdown_20d", "1 if Close < min(Low[t-20..t-1])", ind.nanmask((x.c < prev_low).astype(float), ok)
    yield "breakout_strength_20d", "max(Close - max(High[t-20..t-1]), 0) / ATR14", ind.div(np.maximum(x.c - prev_high, 0.0), x.atr(14))
    hi20 = ind.rmax(x.h, 20)
    yield "consecutive_new_highs_20d", "consecutive rows whose High is the 20-day high", ind.streak(x.h >= hi20, ind.valid(hi20))
    span10 = ind.rmax(x.h, 10) - ind.rmin(x.l, 10)
    yield "range_expansion_10d", "(max(H, 10) - min(L, 10)) / the same 10 rows earlier", ind.div(span10, ind.shift(span10, 10), 1.0)
    shrink = np.where(ind.valid(ind.shift(x.hl, 1)), (x.hl < ind.shift(x.hl, 1)).astype(float), np.nan)
    yield "range_contraction_score", "fraction of the last 10 days with a smaller range than the day before", ind.rmean(shrink, 10)
    yield "high_low_range_ratio", "(High - Low) / (High - Low)[t-1]", ind.div(x.hl, ind.shift(x.hl, 1), 1.0)
    w = ind.windows(x.l, 20)
    tests = (w <= w.min(axis=1, keepdims=True) * 1.005).sum(axis=1)
    yield "support_test_count_20d", "days of the last 20 whose Low is within 0.5% of the 20-day low", ind.pad(tests, x.n)
    hi50, lo50 = ind.rmax(x.h, 50), ind.rmin(x.l, 50)
    retr = ind.div(hi50 - x.c, hi50 - lo50, 0.5)
    yield "fib_retracement_level", "(max(High, 50) - Close) / (max(High, 50) - min(Low, 50))", retr
    yield "distance_to_fib_50", "|fib_retracement_level - 0.5|", np.abs(retr - 0.5)
