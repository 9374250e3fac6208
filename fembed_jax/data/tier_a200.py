"""Tier a200 = a100 + 106: more averages, durations, crosses, bands, calendar, candles, Ichimoku,
Donchian, divergences, permutation entropy and regimes."""

from __future__ import annotations

import numpy as np
import talib

from fembed_jax.data import indicators as ind
from fembed_jax.data.features import Inputs, family
from fembed_jax.data.tier_a50 import atr_pct

TIER = "a200"


def hma(x: Inputs, n: int) -> np.ndarray:
    """Hull MA: WMA(2 WMA(C, n/2) - WMA(C, n), sqrt(n))."""
    return x.memo(("hma", n), lambda: talib.WMA(2 * talib.WMA(x.c, n // 2) - talib.WMA(x.c, n), int(np.sqrt(n))))


def tercile_vs_year(values: np.ndarray) -> np.ndarray:
    """0 / 1 / 2: below the trailing 252-day 1/3 quantile, between, above the 2/3 quantile."""
    return ind.bucket3(values, ind.rquantile(values, 252, 1 / 3), ind.rquantile(values, 252, 2 / 3)) + 1.0


def vol_regime_state(x: Inputs) -> np.ndarray:
    """+1 when hv21 > 1.1 hv63 (vol expanding), -1 when hv21 < 0.9 hv63, else 0."""
    return x.memo(("vol_regime",), lambda: ind.bucket3(ind.div(x.hv(21), x.hv(63), 1.0), 0.9, 1.1))


def direction_divergence(price: np.ndarray, other: np.ndarray, n: int = 14) -> np.ndarray:
    """-1 when price rose over n rows while `other` fell (bearish), +1 the reverse, else 0."""
    dp, do = ind.change(price, n), ind.change(other, n)
    out = np.where((dp > 0) & (do < 0), -1.0, np.where((dp < 0) & (do > 0), 1.0, 0.0))
    return ind.nanmask(out, ind.valid(dp, do))


@family(TIER, "moving averages")
def moving_averages(x: Inputs):
    for n in (9, 20, 50, 100):
        yield f"tema_{n}", f"TEMA(Close, {n})", x.tema(n)
    for n in (10, 20, 50, 200):
        yield f"wma_{n}", f"WMA(Close, {n})", talib.WMA(x.c, n)
    for n in (10, 20, 50):
        yield f"kama_{n}", f"KAMA(Close, {n})", x.kama(n)
    for n in (9, 21, 50):
        yield f"hma_{n}", f"Hull MA: WMA(2 WMA(C, {n // 2}) - WMA(C, {n}), {int(np.sqrt(n))})", hma(x, n)
    for n in (10, 20, 50):
        yield f"vwma_{n}", f"sum(Close * Volume, {n}) / sum(Volume, {n}) (close-weighted; vwap_20 uses the typical price)", x.vwma(n)
    yield "tema_20_slope", "100 * (TEMA20 / TEMA20[t-5] - 1)", ind.rel_change(x.tema(20), 5)
    yield "price_pct_from_tema_50", "100 * (Close / TEMA50 - 1)", ind.pct_diff(x.c, x.tema(50))
    yield "price_pct_from_kama_20", "100 * (Close / KAMA20 - 1)", ind.pct_diff(x.c, x.kama(20))


@family(TIER, "durations above/below averages")
def durations(x: Inputs):
    for label, ma in (
        ("sma_9", x.sma(9)), ("sma_50", x.sma(50)), ("sma_200", x.sma(200)),
        ("tema_20", x.tema(20)), ("kama_20", x.kama(20)), ("vwma_20", x.vwma(20)),
    ):
        ok = ind.valid(ma)
        name = label.upper().replace("_", "")
        yield f"days_above_{label}", f"consecutive rows with Close > {name}", ind.streak(x.c > ma, ok)
        yield f"days_below_{label}", f"consecutive rows with Close < {name}", ind.streak(x.c < ma, ok)


@family(TIER, "moving-average crosses and proximity")
def crosses(x: Inputs):
    sma9, sma50, sma200 = x.sma(9), x.sma(50), x.sma(200)
    tema20, kama20 = x.tema(20), x.kama(20)
    yield "days_since_sma_9_50_cross", "rows since sign(SMA9 - SMA50) changed", ind.days_since_cross(sma9, sma50)
    yield "days_since_sma_50_200_cross", "rows since sign(SMA50 - SMA200) changed", ind.days_since_cross(sma50, sma200)
    yield "days_since_tema_sma_50_cross", "rows since sign(TEMA20 - SMA50) changed", ind.days_since_cross(tema20, sma50)
    yield "days_since_kama_sma_50_cross", "rows since sign(KAMA20 - SMA50) changed", ind.days_since_cross(kama20, sma50)
    yield "days_since_sma_9_200_cross", "rows since sign(SMA9 - SMA200) changed", ind.days_since_cross(sma9, sma200)
    yield "tema_20_sma_50_proximity", "100 * (TEMA20 / SMA50 - 1)", ind.pct_diff(tema20, sma50)
    yield "kama_20_sma_50_proximity", "100 * (KAMA20 / SMA50 - 1)", ind.pct_diff(kama20, sma50)
    yield "sma_9_200_proximity", "100 * (SMA9 / SMA200 - 1)", ind.pct_diff(sma9, sma200)


@family(TIER, "Bollinger bands")
def bands(x: Inputs):
    upper, _, lower = x.bbands(20, 2.0)
    kc_up, _, kc_lo = x.keltner(20, 1.5)
    ok = ind.valid(upper)
    squeeze = ind.nanmask(((upper < kc_up) & (lower > kc_lo)).astype(float), ind.valid(upper, kc_up))
    yield "pct_from_upper_band", "100 * (Close / BBupper(20, 2) - 1)", ind.pct_diff(x.c, upper)
    yield "pct_from_lower_band", "100 * (Close / BBlower(20, 2) - 1)", ind.pct_diff(x.c, lower)
    yield "days_above_upper_band", "consecutive rows with Close > BBupper", ind.streak(x.c > upper, ok)
    yield "days_below_lower_band", "consecutive rows with Close < BBlower", ind.streak(x.c < lower, ok)
    yield "bb_squeeze_indicator", "1 if BB(20, 2) lies inside Keltner(EMA20 +- 1.5 ATR20) else 0", squeeze
    yield "bb_squeeze_duration", "consecutive rows with bb_squeeze_indicator = 1", ind.streak(squeeze == 1, ind.valid(squeeze))


@family(TIER, "RSI states")
def rsi_states(x: Inputs):
    rsi = x.rsi(14)
    ok = ind.valid(rsi)
    yield "rsi_distance_from_50", "|RSI14 - 50|", np.abs(rsi - 50.0)
    yield "days_rsi_overbought", "consecutive rows with RSI14 > 70", ind.streak(rsi > 70, ok)
    yield "days_rsi_oversold", "consecutive rows with RSI14 < 30", ind.streak(rsi < 30, ok)
    yield "rsi_percentile_60d", "percentile rank of RSI14 in 60 days", ind.rrank(rsi, 60)


@family(TIER, "statistical position")
def statistical(x: Inputs):
    for n in (20, 50):
        prior_mean, prior_std = ind.shift(ind.rmean(x.c, n), 1), ind.shift(ind.rstd(x.c, n), 1)
        yield (
            f"zscore_from_{n}d_mean",
            f"(Close - mean(Close[t-{n}..t-1])) / std(Close[t-{n}..t-1]) (prior window, unlike bb_percent_b)",
            ind.div(x.c - prior_mean, prior_std),
        )
    hi, lo = ind.rmax(x.h, 252), ind.rmin(x.l, 252)
    yield "percentile_in_52wk_range", "(Close - min(Low, 252)) / (max(High, 252) - min(Low, 252))", ind.div(x.c - lo, hi - lo, 0.5)
    yield "distance_from_52wk_high_pct", "100 * (Close / max(High, 252) - 1)", ind.pct_diff(x.c, hi)
    yield "days_since_52wk_high", "rows since the highest High of the last 252 rows", ind.days_since_extreme(x.h, 252, True)
    yield "days_since_52wk_low", "rows since the lowest Low of the last 252 rows", ind.days_since_extreme(x.l, 252, False)


@family(TIER, "streaks")
def streaks(x: Inputs):
    ok = ind.valid(x.r)
    yield "consecutive_up_days", "consecutive rows with Close > Close[t-1]", ind.streak(x.r > 0, ok)
    yield "consecutive_down_days", "consecutive rows with Close < Close[t-1]", ind.streak(x.r < 0, ok)
    yield "up_days_ratio_20d", "fraction of the last 20 days with Close > Open (candle colour; win_rate_20d uses Close > Close[t-1])", ind.rmean((x.c > x.o).astype(float), 20)
    yield "range_compression_5d", "mean(High - Low, 5) / mean(High - Low, 20)", ind.div(ind.rmean(x.hl, 5), ind.rmean(x.hl, 20), 1.0)


@family(TIER, "MACD")
def macd(x: Inputs):
    line, signal, hist = x.macd()
    yield "macd_signal", "MACD(12, 26, 9) signal line", signal
    yield "macd_histogram_slope", "macd_histogram - macd_histogram[t-5]", ind.change(hist, 5)
    yield "days_since_macd_cross_signal", "rows since sign(MACD - signal) changed", ind.days_since_cross(line, signal)
    yield "macd_signal_proximity", "(MACD - signal) / ATR14", ind.div(hist, x.atr(14))


@family(TIER, "volume dynamics")
def volume(x: Inputs):
    vol_ratio = ind.div(x.v, x.sma(20, x.v), 1.0)
    sign_r = np.sign(x.r)
    yield "volume_trend_5d", "LINEARREG_SLOPE(Volume, 5) / SMA(Volume, 5)", ind.div(talib.LINEARREG_SLOPE(x.v, 5), x.sma(5, x.v))
    yield "consecutive_volume_increase", "consecutive rows with Volume > Volume[t-1]", ind.streak(x.v > ind.shift(x.v, 1), ind.valid(x.r))
    yield "volume_price_confluence", "sign(r) * Volume / SMA(Volume, 20)", sign_r * vol_ratio
    heavy = (x.v > x.sma(20, x.v)).astype(float)
    bias = ind.div(ind.rsum(heavy * sign_r, 20), ind.rsum(heavy, 20))
    yield "high_volume_direction_bias", "over 20 days, mean sign(r) on days with Volume > SMA(Volume, 20) (0 if none)", bias


@family(TIER, "calendar")
def calendar(x: Inputs):
    days = x.dates.astype(np.int64)
    weekday = ((days + 3) % 7).astype(float)  # Monday = 0
    months = x.dates.astype("datetime64[M]")
    month = (months.astype(np.int64) % 12 + 1).astype(float)
    month_end = (months + 1).astype("datetime64[D]") - 1
    yield "trading_day_of_week", "weekday of the date, Monday = 0 .. Friday = 4", weekday
    yield "is_monday", "1 if Monday", (weekday == 0).astype(float)
    yield "is_friday", "1 if Friday", (weekday == 4).astype(float)
    yield "days_to_month_end", "calendar days to the last day of the month", (month_end - x.dates).astype(np.int64).astype(float)
    yield "month_of_year", "month 1..12", month
    yield "is_quarter_end_month", "1 in March, June, September, December", np.isin(month, (3, 6, 9, 12)).astype(float)


@family(TIER, "candles")
def candles(x: Inputs):
    body_ratio = ind.div(x.body, x.hl)
    yield "candle_body_pct", "100 * |Close - Open| / Open (size; open_to_close_pct is the signed move)", 100.0 * x.body / x.o
    yield "body_to_range_ratio", "|Close - Open| / (High - Low) (0 if High = Low)", body_ratio
    yield "upper_wick_pct", "100 * (High - max(Open, Close)) / Close", 100.0 * x.upper_wick / x.c
    yield "lower_wick_pct", "100 * (min(Open, Close) - Low) / Close", 100.0 * x.lower_wick / x.c
    yield "doji_indicator", "1 if body_to_range_ratio < 0.1", (body_ratio < 0.1).astype(float)
    yield "range_vs_avg_range", "(High - Low) / mean(High - Low, 20)", ind.div(x.hl, ind.rmean(x.hl, 20), 1.0)


@family(TIER, "Ichimoku (spans not shifted forward: no look-ahead)")
def ichimoku(x: Inputs):
    def mid(n):
        return (ind.rmax(x.h, n) + ind.rmin(x.l, n)) / 2.0

    tenkan, kijun, span_b = mid(9), mid(26), mid(52)
    span_a = (tenkan + kijun) / 2.0
    top, bottom = np.maximum(span_a, span_b), np.minimum(span_a, span_b)
    vs_cloud = np.where(x.c > top, 1.0, np.where(x.c < bottom, -1.0, 0.0))
    yield "tenkan_sen", "(max(High, 9) + min(Low, 9)) / 2", tenkan
    yield "kijun_sen", "(max(High, 26) + min(Low, 26)) / 2", kijun
    yield "senkou_span_a", "(tenkan_sen + kijun_sen) / 2, not shifted", span_a
    yield "senkou_span_b", "(max(High, 52) + min(Low, 52)) / 2, not shifted", span_b
    yield "price_vs_cloud", "+1 above both spans, -1 below both, 0 inside", ind.nanmask(vs_cloud, ind.valid(span_b))
    yield "cloud_thickness_pct", "100 * |span_a - span_b| / Close", 100.0 * np.abs(span_a - span_b) / x.c


@family(TIER, "Donchian channel")
def donchian(x: Inputs):
    upper, lower = ind.rmax(x.h, 20), ind.rmin(x.l, 20)
    yield "donchian_upper_20", "max(High, 20)", upper
    yield "donchian_lower_20", "min(Low, 20)", lower
    yield "donchian_position", "(Close - donchian_lower_20) / (donchian_upper_20 - donchian_lower_20)", ind.div(x.c - lower, upper - lower, 0.5)
    yield "donchian_width_pct", "100 * (donchian_upper_20 - donchian_lower_20) / Close", 100.0 * (upper - lower) / x.c
    yield "pct_to_donchian_breakout", "100 * (donchian_upper_20 / Close - 1)", ind.pct_diff(upper, x.c)


@family(TIER, "divergences")
def divergences(x: Inputs):
    rsi_div = direction_divergence(x.c, x.rsi(14))
    d_rsi = ind.change(x.rsi(14), 14)
    yield "price_rsi_divergence", "-1 if Close rose and RSI14 fell over 14 rows, +1 the reverse, else 0", rsi_div
    yield "price_obv_divergence", "the same for Close and OBV", direction_divergence(x.c, x.obv())
    yield "divergence_streak", "consecutive rows with price_rsi_divergence != 0", ind.streak(rsi_div != 0, ind.valid(rsi_div))
    yield "divergence_magnitude", "|RSI14 - RSI14[t-14]| when price_rsi_divergence != 0, else 0", ind.nanmask(np.where(rsi_div != 0, np.abs(d_rsi), 0.0), ind.valid(rsi_div))


@family(TIER, "entropy and regimes")
def entropy_regimes(x: Inputs):
    pe3 = ind.permutation_entropy(x.c, 3, 20)
    yield "permutation_entropy_order3", "normalised permutation entropy of Close, order 3, 20-day window", pe3
    yield "permutation_entropy_order4", "the same, order 4, 40-day window", ind.permutation_entropy(x.c, 4, 40)
    yield "permutation_entropy_order5", "the same, order 5, 60-day window", ind.permutation_entropy(x.c, 5, 60)
    yield "entropy_trend_5d", "permutation_entropy_order3 - its value 5 rows earlier", ind.change(pe3, 5)
    yield "atr_regime_pct_60d", "percentile rank of ATR14 (price units; atr_pct_percentile_60d ranks ATR14/Close) in 60 days", ind.rrank(x.atr(14), 60)
    yield "atr_regime_rolling_q", "0/1/2: atr_pct below / between / above its trailing 252-day 1/3 and 2/3 quantiles", tercile_vs_year(atr_pct(x))
    yield "trend_strength_pct_60d", "percentile rank of ADX14 in 60 days", ind.rrank(x.adx(14), 60)
    yield "trend_strength_rolling_q", "0/1/2: ADX14 against its trailing 252-day terciles", tercile_vs_year(x.adx(14))
    state = vol_regime_state(x)
    yield "vol_regime_state", "+1 if hv21 > 1.1 hv63, -1 if hv21 < 0.9 hv63, else 0", state
    same = ind.windows(state, 20)
    consistency = ind.pad((same == same[:, -1:]).mean(axis=1), x.n)
    yield "regime_consistency", "fraction of the last 20 days with today's vol_regime_state", ind.nanmask(consistency, ind.valid(ind.rsum(state, 20)))
    yield "regime_transition_prob", "changes of vol_regime_state in the last 60 days / 60", ind.count_changes(state, 60) / 60.0
