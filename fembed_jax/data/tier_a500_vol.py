"""Tier a500, chunks 7a/7b (45 features): volatility estimators, bands and channels; volume,
VWAP, money flow and volume spikes."""

from __future__ import annotations

import numpy as np
import talib

from fembed_jax.data import indicators as ind
from fembed_jax.data.features import Inputs, family
from fembed_jax.data.tier_a50 import bb_width

TIER = "a500"
SQRT252_100 = np.sqrt(252.0) * 100.0


@family(TIER, "volatility (7a)")
def volatility(x: Inputs):
    atr5, atr14, atr21 = x.atr(5), x.atr(14), x.atr(21)
    tr = talib.TRANGE(x.h, x.l, x.c)
    tr_pct = 100.0 * tr / x.c
    expansion = ind.rel_change(atr14, 5)
    yield "atr_5", "ATR(5)", atr5
    yield "atr_21", "ATR(21)", atr21
    yield "atr_5_pct", "100 * ATR5 / Close", 100.0 * atr5 / x.c
    yield "atr_21_pct", "100 * ATR21 / Close", 100.0 * atr21 / x.c
    yield "atr_5_21_ratio", "ATR5 / ATR21", ind.div(atr5, atr21, 1.0)
    yield "atr_expansion_5d", "100 * (ATR14 / ATR14[t-5] - 1)", expansion
    yield "atr_acceleration", "atr_expansion_5d - atr_expansion_5d[t-5]", ind.change(expansion, 5)
    yield "atr_percentile_20d", "percentile rank of ATR14 in 20 days", ind.rrank(atr14, 20)
    yield "tr_pct", "100 * TRANGE / Close", tr_pct
    yield "tr_pct_zscore_20d", "(tr_pct - mean(tr_pct, 20)) / std(tr_pct, 20)", ind.div(tr_pct - ind.rmean(tr_pct, 20), ind.rstd(tr_pct, 20))
    yield "consecutive_high_vol_days", "consecutive rows with TRANGE > ATR14", ind.streak(tr > atr14, ind.valid(atr14))
    rs = np.log(x.h / x.c) * np.log(x.h / x.o) + np.log(x.l / x.c) * np.log(x.l / x.o)
    yield "rogers_satchell_volatility", "sqrt(mean(ln(H/C) ln(H/O) + ln(L/C) ln(L/O), 20)) * sqrt(252) * 100", np.sqrt(np.maximum(ind.rmean(rs, 20), 0)) * SQRT252_100
    n = 20
    k = 0.34 / (1.34 + (n + 1) / (n - 1))
    overnight = np.log(x.o / ind.shift(x.c, 1))
    yz = ind.rstd(overnight, n) ** 2 + k * ind.rstd(np.log(x.c / x.o), n) ** 2 + (1 - k) * ind.rmean(rs, n)
    yield "yang_zhang_volatility", "sqrt(var(ln O/C[t-1]) + k var(ln C/O) + (1-k) RS, 20 days), k = 0.34/(1.34 + 21/19), annualised %", np.sqrt(np.maximum(yz, 0)) * SQRT252_100
    yield "historical_volatility_10d", "std(ln returns, 10) * sqrt(252) * 100", x.hv(10)
    width = bb_width(x)
    width_slope = ind.change(width, 5)
    yield "bb_width_slope", "bb_width - bb_width[t-5]", width_slope
    yield "bb_width_acceleration", "bb_width_slope - bb_width_slope[t-5]", ind.change(width_slope, 5)
    yield "bb_width_percentile_20d", "percentile rank of bb_width in 20 days", ind.rrank(width, 20)
    up50, _, lo50 = x.bbands(50, 2.0)
    yield "price_bb_band_position", "(Close - BBlower) / (BBupper - BBlower) of BBANDS(50, 2) (bb_percent_b uses 20 days)", ind.div(x.c - lo50, up50 - lo50, 0.5)
    kc_up, kc_mid, kc_lo = x.keltner(20, 2.0, atr_n=10)
    yield "kc_width", "100 * (KCupper - KClower) / EMA20, Keltner EMA20 +- 2 ATR10", 100.0 * ind.div(kc_up - kc_lo, kc_mid)
    yield "kc_position", "(Close - KClower) / (KCupper - KClower)", ind.div(x.c - kc_lo, kc_up - kc_lo, 0.5)
    bb_up, _, bb_lo = x.bbands(20, 2.0)
    yield "bb_kc_ratio", "(BBupper - BBlower) / (KCupper - KClower), BB(20, 2) vs Keltner(20, 2 ATR10)", ind.div(bb_up - bb_lo, kc_up - kc_lo, 1.0)
    yield "vol_regime_change_intensity", "|hv10 / hv10[t-5] - 1|", np.abs(ind.div(x.hv(10), ind.shift(x.hv(10), 5), 1.0) - 1.0)
    abs_r = np.abs(x.lr)
    yield "vol_clustering_score", "corr(|lr_t|, |lr_{t-1}|) over 60 days", ind.rcorr(abs_r, ind.shift(abs_r, 1), 60)


@family(TIER, "volume (7b)")
def volume(x: Inputs):
    v = x.v
    sma_v5, sma_v20 = x.sma(5, v), x.sma(20, v)
    vol_ratio_5_20 = ind.div(sma_v5, sma_v20, 1.0)
    vwap = x.vwap(20)
    vwap_slope = ind.rel_change(vwap, 5)
    prev_high = ind.shift(ind.rmax(x.h, 20), 1)
    abs_r_pct = np.abs(100.0 * x.r)
    yield "volume_trend_3d", "LINEARREG_SLOPE(Volume, 3) / SMA(Volume, 3)", ind.div(talib.LINEARREG_SLOPE(v, 3), x.sma(3, v))
    yield "volume_ma_ratio_5_20", "SMA(Volume, 5) / SMA(Volume, 20)", vol_ratio_5_20
    yield "consecutive_decreasing_vol", "consecutive rows with Volume < Volume[t-1]", ind.streak(v < ind.shift(v, 1), ind.valid(x.r))
    yield "volume_acceleration", "volume_ma_ratio_5_20 - its value 5 rows earlier", ind.change(vol_ratio_5_20, 5)
    yield "pct_from_vwap_20", "100 * (Close / vwap_20 - 1)", ind.pct_diff(x.c, vwap)
    yield "vwap_slope_5d", "100 * (vwap_20 / vwap_20[t-5] - 1)", vwap_slope
    yield "vwap_pct_change_1d", "100 * (vwap_20 / vwap_20[t-1] - 1)", ind.rel_change(vwap, 1)
    yield "vwap_price_divergence", "return_5d - vwap_slope_5d", x.f["return_5d"] - vwap_slope
    yield "price_vwap_cross_recency", "rows since sign(Close - vwap_20) changed", ind.days_since_cross(x.c, vwap)
    mfv = ind.div((x.c - x.l) - (x.h - x.c), x.hl) * v
    yield "cmf_20", "sum(MFM * Volume, 20) / sum(Volume, 20), MFM = ((C - L) - (H - C)) / (H - L)", ind.div(ind.rsum(mfv, 20), ind.rsum(v, 20))
    mid_move = ind.change((x.h + x.l) / 2.0, 1)
    emv = ind.div(mid_move * x.hl, v / 1e8)
    yield "emv_14", "SMA(((H+L)/2 - (H+L)[t-1]/2) * (H - L) / (Volume / 1e8), 14) ease of movement", x.sma(14, emv)
    r = np.nan_to_num(x.r)
    dv = ind.change(v, 1)
    nvi = np.cumprod(np.where(dv < 0, 1.0 + r, 1.0))
    pvi = np.cumprod(np.where(dv > 0, 1.0 + r, 1.0))
    yield "nvi_signal", "100 * (NVI / EMA(NVI, 100) - 1), NVI compounds r only on days Volume fell", ind.pct_diff(nvi, talib.EMA(nvi, 100))
    yield "pvi_signal", "100 * (PVI / EMA(PVI, 100) - 1), PVI compounds r only on days Volume rose", ind.pct_diff(pvi, talib.EMA(pvi, 100))
    yield "vpt_slope", "(VPT - VPT[t-5]) / SMA(Volume, 20)", ind.div(ind.change(x.f["volume_price_trend"], 5), sma_v20)
    spike = v > 1.5 * sma_v20
    ok = ind.valid(sma_v20, x.r)
    yield "volume_spike_price_flat", "1 if Volume > 1.5 SMA(Volume, 20) and |r| < 0.5%", ind.nanmask((spike & (abs_r_pct < 0.5)).astype(float), ok)
    yield "volume_price_spike_both", "1 if Volume > 1.5 SMA(Volume, 20) and |r| > 1.5%", ind.nanmask((spike & (abs_r_pct > 1.5)).astype(float), ok)
    up3 = (v > ind.shift(v, 1)) & (ind.shift(v, 1) > ind.shift(v, 2)) & (ind.shift(v, 2) > ind.shift(v, 3))
    yield "sequential_vol_buildup_3d", "1 if Volume rose on each of the last 3 days", ind.nanmask(up3.astype(float), ind.valid(ind.shift(v, 3)))
    yield "vol_breakout_confirmation", "1 if Close > max(High[t-20..t-1]) and Volume > SMA(Volume, 20)", ind.nanmask(((x.c > prev_high) & (v > sma_v20)).astype(float), ind.valid(prev_high, sma_v20))
    yield "volume_percentile_20d", "percentile rank of Volume in 20 days", ind.rrank(v, 20)
    yield "volume_zscore_20d", "(Volume - SMA(Volume, 20)) / std(Volume, 20)", ind.div(v - sma_v20, ind.rstd(v, 20))
    up = np.where(np.isfinite(x.r), (x.r > 0).astype(float), np.nan)
    down = np.where(np.isfinite(x.r), (x.r < 0).astype(float), np.nan)
    n_up, n_down = ind.rsum(up, 20), ind.rsum(down, 20)
    both = (n_up > 0) & (n_down > 0)
    ratio = ind.div(ind.rsum(v * up, 20) * n_down, ind.rsum(v * down, 20) * n_up, 1.0)
    ratio = ind.nanmask(np.where(both, ratio, 1.0), ind.valid(n_up))
    yield "avg_vol_up_vs_down_days", "mean Volume on up days / on down days over 20 days (1 if either has none)", ratio
    yield "volume_trend_strength", "corr(Volume, time) over 20 days", ind.rcorr(v, np.arange(x.n, dtype=float), 20)
