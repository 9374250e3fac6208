"""Tier a500, chunks 10a/10b (50 features): weekly multi-timeframe (previous completed week),
permutation/sample/approximate/spectral entropy, Hurst, autocorrelation, Higuchi FD, and the
relation between entropy and volatility."""

from __future__ import annotations

import numpy as np
import talib

from fembed_jax.data import complexity as cx
from fembed_jax.data import indicators as ind
from fembed_jax.data.features import Inputs, family

TIER = "a500"


def sample_entropy(x: Inputs, n: int) -> np.ndarray:
    return x.memo(("sampen", n), lambda: cx.trailing(x.lr, n, cx.sample_entropy_windows))


def approx_entropy(x: Inputs, n: int) -> np.ndarray:
    return x.memo(("apen", n), lambda: cx.trailing(x.lr, n, cx.approx_entropy_windows))


def perm_entropy(x: Inputs, order: int) -> np.ndarray:
    window = {3: 20, 4: 40, 5: 60}[order]
    return x.memo(("pe", order), lambda: ind.permutation_entropy(x.c, order, window))


def sign_entropy(x: Inputs, n: int) -> np.ndarray:
    """Normalised Shannon entropy of the shares of down (< -0.25%), flat and up (> 0.25%) days in n days."""

    def make():
        r = 100.0 * x.r
        ok = np.isfinite(r)
        h = np.zeros(x.n)
        for cls in (r < -0.25, np.abs(r) <= 0.25, r > 0.25):
            p = ind.rmean(np.where(ok, cls.astype(float), np.nan), n)
            h -= np.where(p > 0, p * np.log(np.where(p > 0, p, 1.0)), 0.0)
        return ind.nanmask(h / np.log(3.0), ind.valid(ind.rmean(np.where(ok, 1.0, np.nan), n)))

    return x.memo(("sign_entropy", n), make)


@family(TIER, "weekly timeframe, entropy, Hurst, autocorrelation (10a)")
def weekly_entropy(x: Inputs):
    wc, _ = x.weekly()
    w_ma = talib.SMA(wc, 10)
    w_ma_slope = ind.rel_change(w_ma, 1)
    w_rsi = talib.RSI(wc, 14)
    w_rsi_slope = ind.change(w_rsi, 1)
    w_up, w_mid, w_lo = talib.BBANDS(wc, 20, 2.0, 2.0, 0)
    w_width = 100.0 * ind.div(w_up - w_lo, w_mid)
    w_vol = ind.rstd(np.log(wc / ind.shift(wc, 1)), 10) * np.sqrt(52.0) * 100.0
    prev = "of the previous completed week"
    yield "weekly_ma_slope", f"100 * (wMA10 / wMA10[w-1] - 1), wMA10 = SMA of 10 weekly closes, {prev}", x.from_week(w_ma_slope)
    yield "weekly_ma_slope_acceleration", f"weekly_ma_slope - its value a week earlier, {prev}", x.from_week(ind.change(w_ma_slope, 1))
    yield "price_pct_from_weekly_ma", "100 * (Close / wMA10 of the previous completed week - 1)", ind.pct_diff(x.c, x.from_week(w_ma))
    yield "weekly_rsi_slope", f"weekly RSI14 - its value a week earlier, {prev}", x.from_week(w_rsi_slope)
    yield "weekly_rsi_slope_acceleration", f"weekly_rsi_slope - its value a week earlier, {prev}", x.from_week(ind.change(w_rsi_slope, 1))
    yield "weekly_bb_position", "(Close - wBBlower) / (wBBupper - wBBlower), BBANDS(20, 2) of weekly closes of the previous completed week", ind.div(x.c - x.from_week(w_lo), x.from_week(w_up - w_lo), 0.5)
    yield "weekly_bb_width", f"100 * (wBBupper - wBBlower) / wBBmiddle, {prev}", x.from_week(w_width)
    yield "weekly_bb_width_slope", f"weekly_bb_width - its value a week earlier, {prev}", x.from_week(ind.change(w_width, 1))
    weekly_slope = x.from_week(w_ma_slope)
    yield "trend_alignment_daily_weekly", "sign(sma_21_slope) * sign(weekly_ma_slope)", np.sign(ind.rel_change(x.sma(21), 5)) * np.sign(weekly_slope)
    yield "rsi_alignment_daily_weekly", "sign(rsi_daily - 50) * sign(rsi_weekly - 50)", np.sign(x.f["rsi_daily"] - 50) * np.sign(x.f["rsi_weekly"] - 50)
    yield "vol_alignment_daily_weekly", "hv10 / (std(weekly ln returns, 10) * sqrt(52) * 100 of the previous completed week)", ind.div(x.hv(10), x.from_week(w_vol), 1.0)
    pe4 = perm_entropy(x, 4)
    pe_slope = ind.change(pe4, 5)
    yield "permutation_entropy_slope", "permutation_entropy_order4 - its value 5 rows earlier", pe_slope
    yield "permutation_entropy_acceleration", "permutation_entropy_slope - its value 5 rows earlier", ind.change(pe_slope, 5)
    se = sample_entropy(x, 20)
    se_slope = ind.change(se, 5)
    yield "sample_entropy_20d", "SampEn(m=2, r=0.2 std) of the last 20 ln returns, ln((B+1)/(A+1))", se
    yield "sample_entropy_slope", "sample_entropy_20d - its value 5 rows earlier", se_slope
    yield "sample_entropy_acceleration", "sample_entropy_slope - its value 5 rows earlier", ind.change(se_slope, 5)
    yield "entropy_percentile_60d", "percentile rank of sample_entropy_20d in 60 days", ind.rrank(se, 60)
    yield "entropy_vol_ratio", "sample_entropy_20d / hv20", ind.div(se, x.hv(20))
    yield "entropy_regime_score", "z-score of sample_entropy_20d over 60 days", ind.div(se - ind.rmean(se, 60), ind.rstd(se, 60))
    lr, lr2 = x.lr, x.lr + ind.shift(x.lr, 1)
    hurst = np.clip(0.5 * np.log2(ind.div(ind.rstd(lr2, 19) ** 2, ind.rstd(lr, 20) ** 2, 2.0)), 0.0, 1.0)
    yield "hurst_exponent_20d", "clip(0.5 log2(var(2-day ln returns, 19) / var(ln returns, 20)), 0, 1) (variance-ratio Hurst)", hurst
    yield "hurst_exponent_slope", "hurst_exponent_20d - its value 5 rows earlier", ind.change(hurst, 5)
    yield "autocorr_lag1", "corr(lr_t, lr_{t-1}) over 20 days", ind.rcorr(lr, ind.shift(lr, 1), 20)
    yield "autocorr_lag5", "corr(lr_t, lr_{t-5}) over 20 days", ind.rcorr(lr, ind.shift(lr, 5), 20)

    def acf1(w):
        d = w - w.mean(axis=1, keepdims=True)
        return (d[:, 1:] * d[:, :-1]).sum(axis=1) / np.maximum((d**2).sum(axis=1), cx.EPS)

    yield "autocorr_partial_lag1", "PACF(1) = ACF(1) estimate sum(d_t d_{t-1}) / sum(d_t^2) over 60 days (autocorr_lag1: 20-day Pearson)", cx.trailing(lr, 60, acf1)
    yield "fractal_dimension_20d", "Higuchi fractal dimension of the last 20 closes, kmax 5", cx.trailing(x.c, 20, cx.higuchi_fd_windows)


@family(TIER, "approximate/spectral/multiscale entropy, entropy vs volatility (10b)")
def entropy_vol(x: Inputs):
    ap = approx_entropy(x, 20)
    ap_pct = ind.rrank(ap, 60)
    yield "approx_entropy_20d", "ApEn(m=2, r=0.2 std) of the last 20 ln returns", ap
    yield "approx_entropy_slope", "approx_entropy_20d - its value 5 rows earlier", ind.change(ap, 5)
    yield "approx_entropy_percentile_60d", "percentile rank of approx_entropy_20d in 60 days", ap_pct
    yield "approx_entropy_regime", "-1 / 0 / +1: approx_entropy_percentile_60d below 1/3, between, above 2/3", ind.bucket3(ap_pct, 1 / 3, 2 / 3)
    sp = cx.trailing(x.lr, 20, cx.spectral_entropy_windows)
    sp_pct = ind.rrank(sp, 60)
    hv20 = x.hv(20)
    yield "spectral_entropy_20d", "normalised Shannon entropy of the periodogram of the last 20 ln returns (DC excluded)", sp
    yield "spectral_entropy_slope", "spectral_entropy_20d - its value 5 rows earlier", ind.change(sp, 5)
    yield "spectral_entropy_percentile_60d", "percentile rank of spectral_entropy_20d in 60 days", sp_pct
    yield "spectral_vs_volatility_ratio", "spectral_entropy_20d / hv20", ind.div(sp, hv20)
    yield "spectral_entropy_regime", "-1 / 0 / +1 by spectral_entropy_percentile_60d terciles", ind.bucket3(sp_pct, 1 / 3, 2 / 3)
    e5, e10, e20 = sign_entropy(x, 5), sign_entropy(x, 10), sign_entropy(x, 20)
    yield "entropy_scale_5d", "entropy of down/flat/up day shares (|r| <= 0.25% is flat) over 5 days, / ln 3", e5
    yield "entropy_scale_10d", "the same over 10 days", e10
    yield "entropy_scale_ratio_5_20", "entropy_scale_5d / entropy over 20 days", ind.div(e5, e20, 1.0)
    yield "entropy_scale_ratio_10_20", "entropy_scale_10d / entropy over 20 days", ind.div(e10, e20, 1.0)
    yield "entropy_scale_consistency", "1 - std(entropy over 5, 10, 20 days)", 1.0 - np.std(np.stack([e5, e10, e20]), axis=0)
    se = sample_entropy(x, 20)
    se_pct, hv_pct = ind.rrank(se, 60), ind.rrank(hv20, 60)
    yield "entropy_vol_divergence", "entropy_percentile_60d - percentile rank of hv20 in 60 days", se_pct - hv_pct
    yield "entropy_vol_correlation_20d", "corr(sample_entropy_20d, hv20) over 20 days", ind.rcorr(se, hv20, 20)
    yield "entropy_leading_vol", "corr(sample_entropy_20d[t-5], hv20) over 20 days", ind.rcorr(ind.shift(se, 5), hv20, 20)
    yield "vol_leading_entropy", "corr(hv20[t-5], sample_entropy_20d) over 20 days", ind.rcorr(ind.shift(hv20, 5), se, 20)
    yield "entropy_vol_regime_match", "1 if entropy and hv20 are on the same side of their 60-day medians", ind.nanmask(((se_pct > 0.5) == (hv_pct > 0.5)).astype(float), ind.valid(se_pct, hv_pct))
    yield "hidden_instability_score", "entropy_percentile_60d * (1 - percentile rank of hv20): high entropy in calm markets", se_pct * (1.0 - hv_pct)
    regime_sign = np.sign(x.f["entropy_regime_score"])
    yield "entropy_regime_duration", "rows since sign(entropy_regime_score) changed", ind.days_since_change(regime_sign)
    yield "entropy_regime_change_count_20d", "changes of sign(entropy_regime_score) in the last 20 days", ind.count_changes(regime_sign, 20)
    pe5 = perm_entropy(x, 5)
    trend5 = ind.change(pe5, 5)
    yield "perm_entropy_trend_5d", "permutation_entropy_order5 - its value 5 rows earlier", trend5
    yield "perm_entropy_acceleration_5d", "perm_entropy_trend_5d - its value 5 rows earlier", ind.change(trend5, 5)
    pe4 = perm_entropy(x, 4)
    yield "entropy_stability_score", "1 - std(permutation_entropy_order4, 20) / mean(..., 20)", 1.0 - ind.div(ind.rstd(pe4, 20), ind.rmean(pe4, 20))
