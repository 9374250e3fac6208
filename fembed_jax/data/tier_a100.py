"""Tier a100 = a50 + 50: accelerations, more oscillators, tail risk, trend and volume structure."""

from __future__ import annotations

import numpy as np
import talib

from fembed_jax.data import indicators as ind
from fembed_jax.data.features import Inputs, family
from fembed_jax.data.tier_a50 import atr_pct, bb_width, kvo, qqe_fast, sharpe, sortino, stc

TIER = "a100"


def cvar(returns_pct: np.ndarray, n: int, worst: int) -> np.ndarray:
    """-mean of the `worst` lowest values in each trailing n-row window."""
    w = ind.windows(returns_pct, n)
    lowest = np.partition(w, worst - 1, axis=1)[:, :worst]
    return ind.pad(-lowest.mean(axis=1), returns_pct.size)


@family(TIER, "accelerations and oscillator distances")
def accelerations(x: Inputs):
    r1, r5 = x.f["return_1d"], x.f["return_5d"]
    yield "return_1d_acceleration", "return_1d - return_1d[t-1]", ind.change(r1, 1)
    yield "return_5d_acceleration", "return_5d - return_5d[t-5]", ind.change(r5, 5)
    fast, stc_value = qqe_fast(x), stc(x)
    yield "qqe_slope", "qqe_fast - qqe_fast[t-5]", ind.change(fast, 5)
    yield "qqe_extreme_dist", "qqe_fast - 70 if qqe_fast >= 50 else qqe_fast - 30", ind.signed_extreme_dist(fast, 50, 30, 70)
    yield "stc_slope", "stc_value - stc_value[t-5]", ind.change(stc_value, 5)
    yield "stc_extreme_dist", "stc_value - 75 if stc_value >= 50 else stc_value - 25", ind.signed_extreme_dist(stc_value, 50, 25, 75)


@family(TIER, "oscillators")
def oscillators(x: Inputs):
    demax = np.maximum(ind.change(x.h, 1), 0.0)
    demin = np.maximum(-ind.change(x.l, 1), 0.0)
    up, dn = x.sma(14, demax), x.sma(14, demin)
    dem = ind.div(up, up + dn, 0.5)
    yield "demarker_value", "SMA(DeMax,14) / (SMA(DeMax,14) + SMA(DeMin,14)), DeMax = max(H - H[t-1], 0), DeMin = max(L[t-1] - L, 0)", dem
    yield "demarker_from_half", "|demarker_value - 0.5|", np.abs(dem - 0.5)
    k, d = talib.STOCH(x.h, x.l, x.c, 14, 3, 0, 3, 0)
    yield "stoch_k_14", "STOCH(14, slowk 3, slowd 3) slow %K", k
    yield "stoch_d_14", "STOCH(14, 3, 3) slow %D", d
    yield "stoch_extreme_dist", "stoch_k_14 - 80 if stoch_k_14 >= 50 else stoch_k_14 - 20", ind.signed_extreme_dist(k, 50, 20, 80)
    yield "cci_14", "CCI(High, Low, Close, 14)", talib.CCI(x.h, x.l, x.c, 14)
    yield "mfi_14", "MFI(High, Low, Close, Volume, 14)", talib.MFI(x.h, x.l, x.c, x.v, 14)
    yield "williams_r_14", "WILLR(High, Low, Close, 14) (fast, unlike the slow stoch_k_14)", talib.WILLR(x.h, x.l, x.c, 14)


@family(TIER, "volatility risk premium")
def vrp(x: Inputs):
    yield "vrp_5d", "VIX - hv5", x.vix - x.hv(5)
    yield "vrp_slope", "vrp_21d - vrp_21d[t-5]", ind.change(x.f["vrp_21d"], 5)


@family(TIER, "risk")
def risk(x: Inputs):
    yield "sharpe_252d", "mean(r, 252) / std(r, 252) * sqrt(252)", sharpe(x, 252)
    yield "sortino_252d", "mean(r, 252) / max(downside deviation(252), 0.001) * sqrt(252)", sortino(x, 252)
    yield "sharpe_slope_20d", "sharpe_20d - sharpe_20d[t-20]", ind.change(sharpe(x, 20), 20)
    yield "sortino_slope_20d", "sortino_20d - sortino_20d[t-20]", ind.change(sortino(x, 20), 20)
    r_pct = 100.0 * x.r
    yield "var_95", "-quantile(100 r, 0.05) over 20 days (historical VaR, loss positive)", -ind.rquantile(r_pct, 20, 0.05)
    yield "var_99", "-quantile(100 r, 0.01) over 60 days", -ind.rquantile(r_pct, 60, 0.01)
    yield "cvar_95", "-mean of the 3 worst 100 r of 60 days (expected shortfall at 5%)", cvar(r_pct, 60, 3)


@family(TIER, "moving-average structure")
def ma_structure(x: Inputs):
    yield "sma_9_50_proximity", "100 * (SMA9 / SMA50 - 1)", ind.pct_diff(x.sma(9), x.sma(50))
    yield "sma_50_slope", "100 * (SMA50 / SMA50[t-5] - 1)", ind.rel_change(x.sma(50), 5)
    yield "sma_200_slope", "100 * (SMA200 / SMA200[t-20] - 1)", ind.rel_change(x.sma(200), 20)
    yield "days_since_sma_50_cross", "rows since sign(Close - SMA50) changed", ind.days_since_cross(x.c, x.sma(50))
    yield "days_since_sma_200_cross", "rows since sign(Close - SMA200) changed", ind.days_since_cross(x.c, x.sma(200))
    yield "ema_12", "EMA(Close, 12)", x.ema(12)
    yield "ema_26", "EMA(Close, 26)", x.ema(26)


@family(TIER, "volatility")
def volatility(x: Inputs):
    yield "atr_pct_percentile_60d", "percentile rank of atr_pct in 60 days", ind.rrank(atr_pct(x), 60)
    yield "bb_width_percentile_60d", "percentile rank of bb_width in 60 days", ind.rrank(bb_width(x), 60)
    log_hl2 = np.log(x.h / x.l) ** 2
    yield "parkinson_volatility", "sqrt(mean(ln(H/L)^2, 20) / (4 ln 2)) * sqrt(252) * 100", np.sqrt(ind.rmean(log_hl2, 20) / (4 * np.log(2))) * np.sqrt(252) * 100
    gk = 0.5 * log_hl2 - (2 * np.log(2) - 1) * np.log(x.c / x.o) ** 2
    yield "garman_klass_volatility", "sqrt(max(mean(0.5 ln(H/L)^2 - (2 ln2 - 1) ln(C/O)^2, 20), 0)) * sqrt(252) * 100", np.sqrt(np.maximum(ind.rmean(gk, 20), 0)) * np.sqrt(252) * 100
    yield "vol_of_vol", "std(hv10, 20)", ind.rstd(x.hv(10), 20)


@family(TIER, "trend strength")
def trend(x: Inputs):
    yield "adx_slope", "ADX14 - ADX14[t-5]", ind.change(x.adx(14), 5)
    yield "di_spread", "PLUS_DI(14) - MINUS_DI(14)", x.plus_di(14) - x.minus_di(14)
    yield "aroon_oscillator", "AROONOSC(High, Low, 25)", talib.AROONOSC(x.h, x.l, 25)
    line, direction = x.supertrend(10, 3.0)
    yield "price_pct_from_supertrend", "100 * (Close / SuperTrend(10, 3) - 1)", ind.pct_diff(x.c, line)
    yield "supertrend_direction", "SuperTrend(10, 3) direction, +1 up / -1 down", direction


@family(TIER, "volume")
def volume(x: Inputs):
    obv = x.obv()
    yield "obv_slope", "(OBV - OBV[t-20]) / sum(Volume, 20)", ind.div(ind.change(obv, 20), ind.rsum(x.v, 20))
    vpt = np.cumsum(np.nan_to_num(x.v * x.r))
    vpt[0] = np.nan
    yield "volume_price_trend", "cumulative sum of Volume * r from the first row", vpt
    line, signal = kvo(x)
    yield "kvo_histogram", "KVO - EMA(KVO, 13)", line - signal
    yield "accumulation_dist", "AD(High, Low, Close, Volume) Chaikin A/D line", talib.AD(x.h, x.l, x.c, x.v)


@family(TIER, "win statistics and range position")
def win_stats(x: Inputs):
    win = np.where(np.isfinite(x.r), (x.r > 0).astype(float), np.nan)
    yield "expectancy_20d", "mean(100 r, 20) = p_win * avg_win - p_loss * avg_loss", ind.rmean(100.0 * x.r, 20)
    yield "win_rate_20d", "fraction of the last 20 days with r > 0", ind.rmean(win, 20)
    yield "buying_pressure_ratio", "sum(Close - Low, 14) / sum(High - Low, 14)", ind.div(ind.rsum(x.c - x.l, 14), ind.rsum(x.hl, 14), 0.5)
    lo, hi = ind.rmin(x.l, 44), ind.rmax(x.h, 44)
    yield "fib_range_position", "(Close - min(Low, 44)) / (max(High, 44) - min(Low, 44))", ind.div(x.c - lo, hi - lo, 0.5)
    yield "prior_high_20d_dist", "100 * (Close / max(High[t-20..t-1]) - 1)", ind.pct_diff(x.c, ind.shift(ind.rmax(x.h, 20), 1))
    yield "prior_low_20d_dist", "100 * (Close / min(Low[t-20..t-1]) - 1)", ind.pct_diff(x.c, ind.shift(ind.rmin(x.l, 20), 1))
