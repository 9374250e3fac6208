"""Tier a500, chunks 11a/11b (55 features): fractal dimensions, Lyapunov and correlation
dimension, MFDFA, a multi-scale decomposition (fast EMD stand-in), DFA, rescaled-range Hurst,
30-day entropies, Aroon(14), squeeze, SuperTrend variants and Wyckoff-style phase scores."""

from __future__ import annotations

import numpy as np
import talib

from fembed_jax.data import complexity as cx
from fembed_jax.data import indicators as ind
from fembed_jax.data.features import Inputs, family
from fembed_jax.data.tier_a50 import atr_pct
from fembed_jax.data.tier_a500_complexity import approx_entropy, sample_entropy

TIER = "a500"
MFDFA_QS = (-3.0, -1.0, 1.0, 2.0, 3.0)
MFDFA_SCALES = (6, 10, 16, 25)
DFA_SCALES = (4, 6, 8, 12, 16, 25)
DECOMP_LEVELS = 5  # moving averages of width 2, 4, ..., 32


def zscore(values: np.ndarray, n: int) -> np.ndarray:
    return ind.div(values - ind.rmean(values, n), ind.rstd(values, n))


def _decomposition(x: Inputs):
    """Detail energies E_k (k = 1..5) over 32 days of d_k = MA_{2^(k-1)}(ln C) - MA_{2^k}(ln C)
    (MA_1 = ln C), and the variance of the trend MA_32 over the same 32 days."""

    def make():
        logc = np.log(x.c)
        levels = [logc] + [ind.rmean(logc, 2**k) for k in range(1, DECOMP_LEVELS + 1)]
        energies = np.stack([ind.rstd(levels[k - 1] - levels[k], 32, 0) ** 2 for k in range(1, DECOMP_LEVELS + 1)], axis=1)
        trend_var = ind.rstd(levels[-1], 32, 0) ** 2
        return energies, trend_var

    return x.memo(("decomp",), make)


@family(TIER, "fractal, chaos, MFDFA, decomposition, DFA (11a)")
def fractal(x: Inputs):
    katz = cx.trailing(x.c, 20, cx.katz_fd_windows)
    petrosian = cx.trailing(x.c, 20, cx.petrosian_fd_windows)
    yield "katz_fd_20d", "Katz FD of the last 20 closes: log10(19) / (log10(19) + log10(d / L))", katz
    yield "katz_fd_slope", "katz_fd_20d - its value 5 rows earlier", ind.change(katz, 5)
    yield "petrosian_fd_20d", "Petrosian FD of the last 20 closes", petrosian
    yield "petrosian_fd_slope", "petrosian_fd_20d - its value 5 rows earlier", ind.change(petrosian, 5)
    yield "fd_diversity_ratio", "katz_fd_20d / petrosian_fd_20d", ind.div(katz, petrosian, 1.0)
    yield "fd_regime_score", "z-score of katz_fd_20d over 60 days", zscore(katz, 60)
    lyap = cx.trailing(x.lr, 20, cx.lyapunov_windows)
    yield "lyapunov_exp_20d", "one-step Rosenstein estimate of the largest Lyapunov exponent, 20 ln returns, embedding 2", lyap
    yield "lyapunov_exp_slope", "lyapunov_exp_20d - its value 5 rows earlier", ind.change(lyap, 5)
    yield "lyapunov_regime", "1 if lyapunov_exp_20d is above its 60-day median", ind.nanmask((lyap > ind.rquantile(lyap, 60, 0.5)).astype(float), ind.valid(ind.rquantile(lyap, 60, 0.5)))
    cdim = cx.trailing(x.lr, 20, cx.correlation_dim_windows)
    yield "correlation_dim_20d", "Grassberger-Procaccia slope ln(C(std) / C(std/2)) / ln 2, 20 ln returns, embedding 2", cdim
    yield "correlation_dim_slope", "correlation_dim_20d - its value 5 rows earlier", ind.change(cdim, 5)
    h = cx.trailing_matrix(x.lr, 100, lambda w: cx.generalized_hurst(w, MFDFA_SCALES, MFDFA_QS), len(MFDFA_QS))
    qs = np.array(MFDFA_QS)
    tau = qs[None, :] * h - 1.0
    alpha = np.gradient(tau, qs, axis=1)
    h_mean = h.mean(axis=1)
    q = {qv: h[:, i] for i, qv in enumerate(MFDFA_QS)}
    yield "mfdfa_hurst_mean", "mean of MFDFA h(q), q in {-3,-1,1,2,3}, scales 6/10/16/25, last 100 ln returns", h_mean
    yield "mfdfa_hurst_width", "h(-3) - h(3)", q[-3.0] - q[3.0]
    yield "mfdfa_hurst_slope", "h(2) - its value 5 rows earlier", ind.change(q[2.0], 5)
    yield "mfdfa_alpha_range", "max - min of alpha(q) = d(q h(q) - 1)/dq (singularity spectrum width)", alpha.max(axis=1) - alpha.min(axis=1)
    yield "mfdfa_asymmetry", "(h(-3) - h(2)) - (h(2) - h(3))", (q[-3.0] - q[2.0]) - (q[2.0] - q[3.0])
    yield "mfdfa_regime_score", "z-score of mfdfa_hurst_mean over 60 days", zscore(h_mean, 60)
    energies, trend_var = _decomposition(x)
    total = energies.sum(axis=1)
    share = energies / np.where(total > 0, total, 1.0)[:, None]
    count = np.where(np.isfinite(total), (share > 0.15).sum(axis=1).astype(float), np.nan)
    dominant = np.where(np.isfinite(total), 2.0 ** (np.argmax(np.nan_to_num(energies, nan=-1.0), axis=1) + 1), np.nan)
    decomp = "MA decomposition of ln Close (widths 1, 2, 4, .., 32; detail k = MA_2^(k-1) - MA_2^k), energies over 32 days"
    yield "emd_imf_count", f"detail levels holding > 15% of the detail energy; {decomp}", count
    yield "emd_trend_strength", "var(MA32) / (var(MA32) + detail energy), 32 days", ind.div(trend_var, trend_var + total)
    yield "emd_noise_ratio", "energy of the finest detail (width 1 vs 2) / detail energy", share[:, 0]
    yield "emd_dominant_period", "2^k of the detail level with the most energy", dominant
    yield "emd_imf_count_slope", "emd_imf_count - its value 5 rows earlier", ind.change(count, 5)
    same = ind.windows(dominant, 10)
    stability = ind.pad((same == same[:, -1:]).mean(axis=1), x.n)
    yield "emd_stability_score", "fraction of the last 10 days with today's emd_dominant_period", ind.nanmask(stability, ind.valid(ind.rsum(dominant, 10)))

    def alpha_of(scales):
        def fn(w):
            f = np.stack([f2.mean(axis=1) for f2 in cx.dfa_f2(w, scales)], axis=1)
            return cx.slope(np.log(np.array(scales, float)), 0.5 * np.log(f))

        return fn

    dfa20 = cx.trailing(x.lr, 20, alpha_of((4, 5, 10)))
    yield "dfa_alpha_20d", "DFA-1 alpha of the last 20 ln returns, scales 4/5/10", dfa20
    yield "dfa_alpha_slope", "dfa_alpha_20d - its value 5 rows earlier", ind.change(dfa20, 5)
    yield "dfa_crossover_scale", "scale (8, 12 or 16) where a two-segment line fits DFA ln F(s) best, 100 ln returns, scales 4..25", cx.trailing(x.lr, 100, cx.dfa_crossover_windows)
    yield "dfa_trend_strength", "DFA-1 alpha of the last 100 ln returns (scales 4..25) - 0.5", cx.trailing(x.lr, 100, alpha_of(DFA_SCALES)) - 0.5


@family(TIER, "Hurst R/S, 30-day entropy, Aroon(14), squeeze, SuperTrend, phases (11b)")
def regimes(x: Inputs):
    hurst = cx.trailing(x.lr, 30, cx.hurst_rs_windows)
    regime = ind.bucket3(hurst, 0.45, 0.55)
    hv20 = x.hv(20)
    yield "hurst_rs_30d", "rescaled-range Hurst of the last 30 ln returns, chunk sizes 5/10/15/30", hurst
    yield "hurst_rs_slope", "hurst_rs_30d - its value 5 rows earlier", ind.change(hurst, 5)
    yield "hurst_regime", "-1 if hurst_rs_30d < 0.45, +1 if > 0.55, else 0", regime
    yield "hurst_vs_volatility", "hurst_rs_30d / hv20", ind.div(hurst, hv20)
    yield "days_in_hurst_regime", "rows since hurst_regime changed", ind.days_since_change(regime)
    yield "hurst_regime_transition_prob", "changes of hurst_regime in the last 20 days / 20", ind.count_changes(regime, 20) / 20.0
    se30, ap30 = sample_entropy(x, 30), approx_entropy(x, 30)
    yield "sample_entropy_30d", "SampEn(m=2, r=0.2 std) of the last 30 ln returns", se30
    yield "approximate_entropy_30d", "ApEn(m=2, r=0.2 std) of the last 30 ln returns", ap30
    yield "entropy_atr_ratio", "sample_entropy_30d / atr_pct", ind.div(se30, atr_pct(x))
    yield "entropy_regime", "-1 / 0 / +1 by the 60-day percentile terciles of sample_entropy_30d", ind.bucket3(ind.rrank(se30, 60), 1 / 3, 2 / 3)
    yield "entropy_change_10d", "sample_entropy_30d - its value 10 rows earlier", ind.change(se30, 10)
    down14, up14 = talib.AROON(x.h, x.l, 14)
    yield "aroon_up_14", "AROON(14) up", up14
    yield "aroon_down_14", "AROON(14) down", down14
    yield "aroon_crossover_recency", "rows since sign(aroon_up_14 - aroon_down_14) changed", ind.days_since_cross(up14, down14)
    yield "aroon_consolidation", "1 if both Aroon(14) lines are below 50", ind.nanmask(((up14 < 50) & (down14 < 50)).astype(float), ind.valid(up14))
    yield "aroon_oscillator_14", "aroon_up_14 - aroon_down_14", up14 - down14
    bb_up, _, bb_lo = x.bbands(14, 2.0)
    kc_up, _, kc_lo = x.keltner(14, 1.5)
    ok = ind.valid(bb_up, kc_up)
    squeeze = (bb_up < kc_up) & (bb_lo > kc_lo) & ok
    fired = np.zeros(x.n, bool)
    fired[1:] = ~squeeze[1:] & squeeze[:-1]
    yield "squeeze_on_14", "1 if BB(14, 2) lies inside Keltner(EMA14 +- 1.5 ATR14) (bb_squeeze_indicator uses 20 days)", ind.nanmask(squeeze.astype(float), ok)
    yield "squeeze_duration_14", "consecutive rows with squeeze_on_14", ind.streak(squeeze, ok)
    yield "squeeze_fire_recency", "rows since a squeeze_on_14 run ended", ind.days_since(fired, ok)
    _, dir14 = x.supertrend(14, 3.0)
    line20, _ = x.supertrend(20, 3.0)
    line10, _ = x.supertrend(10, 3.0)
    yield "supertrend_flip_recency_14", "rows since SuperTrend(14, 3) changed direction", ind.days_since_change(dir14)
    yield "pct_from_supertrend_20", "100 * (Close / SuperTrend(20, 3) - 1)", ind.pct_diff(x.c, line20)
    yield "supertrend_slope", "100 * (SuperTrend(10, 3) / its value 5 rows earlier - 1)", ind.rel_change(line10, 5)
    adx, pdi, mdi = x.adx(14), x.plus_di(14), x.minus_di(14)
    pos50 = x.f["range_position_50d"]
    cmf = x.f["cmf_20"]
    width_pct = x.f["bb_width_percentile_60d"]
    sma50 = x.sma(50)
    slope50 = ind.rel_change(sma50, 5)

    def score(*conds):
        ok = ind.valid(adx, pos50, cmf, width_pct, slope50, sma50)
        return ind.nanmask(np.mean([c.astype(float) for c in conds], axis=0), ok)

    scores = np.stack([
        score(pos50 < 0.35, adx < 25, cmf > 0, width_pct < 0.5),
        score(x.c > sma50, slope50 > 0, adx > 25, pdi > mdi),
        score(pos50 > 0.65, adx < 25, cmf < 0, width_pct < 0.5),
        score(x.c < sma50, slope50 < 0, adx > 25, mdi > pdi),
    ], axis=1)
    yield "accumulation_score", "mean of [range_position_50d < 0.35, ADX14 < 25, cmf_20 > 0, bb_width_percentile_60d < 0.5]", scores[:, 0]
    yield "markup_score", "mean of [Close > SMA50, sma_50_slope > 0, ADX14 > 25, +DI > -DI]", scores[:, 1]
    yield "distribution_score", "mean of [range_position_50d > 0.65, ADX14 < 25, cmf_20 < 0, bb_width_percentile_60d < 0.5]", scores[:, 2]
    yield "markdown_score", "mean of [Close < SMA50, sma_50_slope < 0, ADX14 > 25, -DI > +DI]", scores[:, 3]
    ok = np.isfinite(scores).all(axis=1)
    ranked = np.sort(np.nan_to_num(scores), axis=1)
    yield "cycle_phase", "argmax of (accumulation, markup, distribution, markdown) scores: 0..3 (first on ties)", ind.nanmask(np.argmax(np.nan_to_num(scores), axis=1).astype(float), ok)
    yield "cycle_phase_confidence", "highest phase score - second highest", ind.nanmask(ranked[:, -1] - ranked[:, -2], ok)
