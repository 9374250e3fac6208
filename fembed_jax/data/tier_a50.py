"""Tier a50 = a20 + 30: returns, QQE/STC, volatility risk premium, risk-adjusted returns, distances."""

from __future__ import annotations

import numpy as np
import talib

from fembed_jax.data import indicators as ind
from fembed_jax.data.features import Inputs, family

TIER = "a50"
SQRT252 = np.sqrt(252.0)
# Floor of the downside deviation (daily, as a fraction) so that a window without down days
# gives a large but finite Sortino ratio.
DOWNSIDE_FLOOR = 1e-3


def sharpe(x: Inputs, n: int) -> np.ndarray:
    """mean(r, n) / std(r, n) * sqrt(252)."""
    return x.memo(("sharpe", n), lambda: ind.div(ind.rmean(x.r, n), ind.rstd(x.r, n), 0.0) * SQRT252)


def sortino(x: Inputs, n: int) -> np.ndarray:
    """mean(r, n) / max(sqrt(mean(min(r, 0)^2, n)), 1e-3) * sqrt(252)."""

    def make():
        downside = np.sqrt(ind.rmean(np.minimum(x.r, 0.0) ** 2, n))
        return ind.rmean(x.r, n) / np.maximum(downside, DOWNSIDE_FLOOR) * SQRT252

    return x.memo(("sortino", n), make)


def stoch_of(values: np.ndarray, n: int) -> np.ndarray:
    """100 * (v - min(v, n)) / (max(v, n) - min(v, n)); 50 on a flat window."""
    lo, hi = ind.rmin(values, n), ind.rmax(values, n)
    return 100.0 * ind.div(values - lo, hi - lo, 0.5)


def stc(x: Inputs) -> np.ndarray:
    """Schaff Trend Cycle: MACD(23, 50) -> stochastic(10) -> EMA(alpha 0.5) -> stochastic(10) -> EMA(0.5)."""

    def make():
        macd = talib.EMA(x.c, 23) - talib.EMA(x.c, 50)
        k1 = ind.ewm(stoch_of(macd, 10), alpha=0.5)
        return ind.ewm(stoch_of(k1, 10), alpha=0.5)

    return x.memo(("stc",), make)


def qqe_fast(x: Inputs) -> np.ndarray:
    return x.memo(("qqe_fast",), lambda: talib.EMA(x.rsi(14), 5))


def kvo(x: Inputs) -> tuple[np.ndarray, np.ndarray]:
    """Klinger volume oscillator (signed-volume form): sv = +Volume if TypicalPrice rose else -Volume,
    KVO = EMA(sv, 34) - EMA(sv, 55), signal = EMA(KVO, 13)."""

    def make():
        d_tp = ind.change(x.typical, 1)
        sv = np.where(np.isfinite(d_tp), np.where(d_tp >= 0, x.v, -x.v), np.nan)
        line = talib.EMA(sv, 34) - talib.EMA(sv, 55)
        return line, talib.EMA(line, 13)

    return x.memo(("kvo",), make)


def atr_pct(x: Inputs, n: int = 14) -> np.ndarray:
    return x.memo(("atr_pct", n), lambda: 100.0 * ind.div(x.atr(n), x.c))


def bb_width(x: Inputs, n: int = 20) -> np.ndarray:
    def make():
        upper, mid, lower = x.bbands(n, 2.0)
        return 100.0 * ind.div(upper - lower, mid)

    return x.memo(("bb_width", n), make)


@family(TIER, "returns")
def returns(x: Inputs):
    yield "return_1d", "100 * (Close / Close[t-1] - 1)", 100.0 * x.r
    for n in (5, 21, 63, 252):
        yield f"return_{n}d", f"100 * (Close / Close[t-{n}] - 1)", ind.roc(x.c, n)


@family(TIER, "momentum oscillators")
def momentum(x: Inputs):
    fast = qqe_fast(x)
    slow = talib.EMA(fast, 14)
    stc_value = stc(x)
    yield "qqe_fast", "EMA(RSI(Close, 14), 5) (the original's QQE is only this smoothed RSI)", fast
    yield "qqe_slow", "EMA(qqe_fast, 14)", slow
    yield "qqe_fast_slow_spread", "qqe_fast - qqe_slow", fast - slow
    yield "stc_value", "Schaff Trend Cycle: MACD(23,50) -> Stoch(10) -> EMA(a=0.5) -> Stoch(10) -> EMA(a=0.5)", stc_value
    yield "stc_from_50", "|stc_value - 50| (distance from the midline; the original's signed stc - 50 is an affine copy)", np.abs(stc_value - 50.0)
    rsi = x.rsi(14)
    yield "rsi_slope", "RSI14 - RSI14[t-5]", ind.change(rsi, 5)
    yield "rsi_extreme_dist", "RSI14 - 70 if RSI14 >= 50 else RSI14 - 30 (signed distance to the nearer band)", ind.signed_extreme_dist(rsi, 50, 30, 70)
    hist = x.macd()[2]
    yield "macd_histogram", "MACD(12, 26, 9) line - signal", hist


@family(TIER, "volatility risk premium")
def vrp(x: Inputs):
    yield "vrp_10d", "VIX - hv10, hv_n = std(ln returns, n) * sqrt(252) * 100", x.vix - x.hv(10)
    yield "vrp_21d", "VIX - hv21", x.vix - x.hv(21)
    yield "implied_vs_realized_ratio", "VIX / hv21", ind.div(x.vix, x.hv(21), 1.0)


@family(TIER, "risk-adjusted returns")
def risk_adjusted(x: Inputs):
    for n in (20, 60):
        yield f"sharpe_{n}d", f"mean(r, {n}) / std(r, {n}) * sqrt(252)", sharpe(x, n)
    for n in (20, 60):
        yield f"sortino_{n}d", f"mean(r, {n}) / max(sqrt(mean(min(r,0)^2, {n})), 0.001) * sqrt(252)", sortino(x, n)


@family(TIER, "trend distances")
def trend_distances(x: Inputs):
    yield "price_pct_from_sma_50", "100 * (Close / SMA50 - 1)", ind.pct_diff(x.c, x.sma(50))
    yield "price_pct_from_sma_200", "100 * (Close / SMA200 - 1)", ind.pct_diff(x.c, x.sma(200))
    yield "sma_50_200_proximity", "100 * (SMA50 / SMA200 - 1)", ind.pct_diff(x.sma(50), x.sma(200))


@family(TIER, "volatility")
def volatility(x: Inputs):
    yield "atr_pct", "100 * ATR14 / Close", atr_pct(x)
    yield "atr_pct_slope", "atr_pct - atr_pct[t-5]", ind.change(atr_pct(x), 5)
    yield "bb_width", "100 * (BBupper - BBlower) / BBmiddle, BBANDS(20, 2)", bb_width(x)


@family(TIER, "price action and volume")
def price_action(x: Inputs):
    yield "overnight_gap", "100 * (Open / Close[t-1] - 1)", ind.pct_diff(x.o, ind.shift(x.c, 1))
    yield "open_to_close_pct", "100 * (Close / Open - 1)", ind.pct_diff(x.c, x.o)
    yield "volume_ratio_20d", "Volume / SMA(Volume, 20)", ind.div(x.v, x.sma(20, x.v), 1.0)
    yield "kvo_signal", "EMA(KVO, 13), KVO = EMA(sv, 34) - EMA(sv, 55), sv = +-Volume by TypicalPrice direction", kvo(x)[1]
