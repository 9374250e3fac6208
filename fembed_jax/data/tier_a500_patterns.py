"""Tier a500, chunks 9a/9b (50 features): candlestick patterns (TA-Lib CDL* where one exists),
gaps, inside/outside and narrow-range days, dojis, marubozu, stars, soldiers/crows, harami."""

from __future__ import annotations

import numpy as np
import talib

from fembed_jax.data import indicators as ind
from fembed_jax.data.features import Inputs, family

TIER = "a500"


def _cdl(x: Inputs, name: str) -> np.ndarray:
    """TA-Lib candlestick output (+100 bullish, -100 bearish, 0) as -1 / 0 / +1."""
    return x.memo(("cdl", name), lambda: np.sign(getattr(talib, name)(x.o, x.h, x.l, x.c)).astype(float))


def _body_ratio(x: Inputs) -> np.ndarray:
    return x.memo(("body_ratio",), lambda: ind.div(x.body, x.hl))


def _three_in_a_row(x: Inputs, up: bool) -> np.ndarray:
    """Three strong same-colour candles, each closing beyond the previous close. (TA-Lib's
    CDL3BLACKCROWS never fires on the built-in data, which would leave a constant column.)"""
    colour = (x.c > x.o) if up else (x.c < x.o)
    beyond = (x.c > ind.shift(x.c, 1)) if up else (x.c < ind.shift(x.c, 1))
    day = (colour & beyond & (_body_ratio(x) > 0.5)).astype(float)
    three = ind.rsum(ind.nanmask(day, ind.valid(ind.shift(x.c, 1))), 3) == 3
    return ind.nanmask(three.astype(float), ind.valid(ind.shift(x.c, 3)))


@family(TIER, "candlestick patterns, gaps, range days (9a)")
def patterns_a(x: Inputs):
    engulf = _cdl(x, "CDLENGULFING")
    yield "bullish_engulfing", "1 if CDLENGULFING > 0", (engulf > 0).astype(float)
    yield "bearish_engulfing", "1 if CDLENGULFING < 0", (engulf < 0).astype(float)
    yield "engulfing_score", "sign(CDLENGULFING) * |C - O| / |C - O|[t-1]", engulf * ind.div(x.body, ind.shift(x.body, 1), 1.0)
    yield "consecutive_engulfing_count", "engulfing patterns (either side) in the last 5 days", ind.rsum(np.abs(engulf), 5)
    yield "hammer_indicator", "1 if CDLHAMMER", np.abs(_cdl(x, "CDLHAMMER"))
    yield "shooting_star_indicator", "1 if CDLSHOOTINGSTAR", np.abs(_cdl(x, "CDLSHOOTINGSTAR"))
    yield "hammer_score", "lower wick / (High - Low)", ind.div(x.lower_wick, x.hl)
    yield "shooting_star_score", "upper wick / (High - Low)", ind.div(x.upper_wick, x.hl)
    yield "wick_rejection_score", "(lower wick - upper wick) / (High - Low)", ind.div(x.lower_wick - x.upper_wick, x.hl)
    prev_h, prev_l, prev_c = ind.shift(x.h, 1), ind.shift(x.l, 1), ind.shift(x.c, 1)
    true_gap = np.where(x.l > prev_h, ind.pct_diff(x.l, prev_h), np.where(x.h < prev_l, ind.pct_diff(x.h, prev_l), 0.0))
    true_gap = ind.nanmask(true_gap, ind.valid(prev_h))
    yield "gap_size_pct", "true gap: 100 (Low / High[t-1] - 1) if Low > High[t-1], 100 (High / Low[t-1] - 1) if High < Low[t-1], else 0", true_gap
    yield "gap_direction", "sign(gap_size_pct)", np.sign(true_gap)
    gap = x.o - prev_c
    fill = np.where(gap > 0, np.clip(ind.div(x.o - x.l, gap), 0, 1), np.where(gap < 0, np.clip(ind.div(x.h - x.o, -gap), 0, 1), 0.0))
    fill = ind.nanmask(fill, ind.valid(prev_c))
    filled = np.where(gap > 0, x.l <= prev_c, np.where(gap < 0, x.h >= prev_c, False)).astype(float)
    yield "gap_filled_today", "1 if an opening gap (Open vs Close[t-1]) was closed during the day", ind.nanmask(filled, ind.valid(prev_c))
    yield "gap_fill_pct", "fraction of the opening gap retraced during the day, clipped to [0, 1] (0 without a gap)", fill
    yield "significant_gap", "1 if |overnight_gap| > 0.5%", ind.nanmask((np.abs(x.f["overnight_gap"]) > 0.5).astype(float), ind.valid(prev_c))
    ok = ind.valid(prev_h)
    inside = (x.h < prev_h) & (x.l > prev_l)
    outside = (x.h > prev_h) & (x.l < prev_l)
    yield "inside_day", "1 if High < High[t-1] and Low > Low[t-1]", ind.nanmask(inside.astype(float), ok)
    yield "outside_day", "1 if High > High[t-1] and Low < Low[t-1]", ind.nanmask(outside.astype(float), ok)
    yield "consecutive_inside_days", "consecutive inside days", ind.streak(inside, ok)
    yield "consecutive_outside_days", "consecutive outside days", ind.streak(outside, ok)
    hl_ok = ind.valid(ind.rmin(x.hl, 7))
    yield "narrow_range_day", "1 if today's range is the smallest of the last 7 (NR7)", ind.nanmask((x.hl <= ind.rmin(x.hl, 7)).astype(float), hl_ok)
    yield "wide_range_day", "1 if today's range is the largest of the last 7", ind.nanmask((x.hl >= ind.rmax(x.hl, 7)).astype(float), hl_ok)
    yield "narrow_range_score", "1 - percentile rank of (High - Low) in 20 days", 1.0 - ind.rrank(x.hl, 20)
    avg_range = ind.rmean(x.hl, 20)
    yield "consecutive_narrow_days", "consecutive rows with range < mean range(20)", ind.streak(x.hl < avg_range, ind.valid(avg_range))
    trend_day = ind.nanmask(((_body_ratio(x) > 0.7) & (x.hl > avg_range)).astype(float), ind.valid(avg_range))
    yield "trend_day_indicator", "1 if body / range > 0.7 and range > mean range(20)", trend_day
    yield "trend_day_direction", "sign(Close - Open) * trend_day_indicator", np.sign(x.c - x.o) * trend_day
    yield "consecutive_trend_days", "consecutive trend days", ind.streak(trend_day == 1, ind.valid(trend_day))


@family(TIER, "dojis, marubozu, multi-candle patterns (9b)")
def patterns_b(x: Inputs):
    ratio = _body_ratio(x)
    doji = ratio < 0.1
    upper_small, lower_small = x.upper_wick < 0.1 * x.hl, x.lower_wick < 0.1 * x.hl
    yield "doji_strict_indicator", "1 if |C - O| / (H - L) < 0.05 (doji_indicator uses 0.1)", (ratio < 0.05).astype(float)
    yield "doji_score", "max(0, 1 - body_to_range_ratio / 0.1)", np.maximum(0.0, 1.0 - ratio / 0.1)
    doji_type = np.where(~doji, 0.0, np.where(upper_small, 1.0, np.where(lower_small, 2.0, 3.0)))
    yield "doji_type", "0 no doji, 1 dragonfly (upper wick < 10% of range), 2 gravestone (lower wick < 10%), 3 other doji", doji_type
    yield "consecutive_doji_count", "dojis (body / range < 0.1) in the last 5 days", ind.rsum(doji.astype(float), 5)
    prior_move = ind.shift(x.f["return_5d"], 1)
    yield "doji_after_trend", "1 if a doji follows |return_5d[t-1]| > 2%", ind.nanmask((doji & (np.abs(prior_move) > 2.0)).astype(float), ind.valid(prior_move))
    marubozu = (ratio > 0.9).astype(float)
    yield "marubozu_indicator", "1 if body / range > 0.9", marubozu
    yield "marubozu_direction", "sign(Close - Open) * marubozu_indicator", np.sign(x.c - x.o) * marubozu
    yield "marubozu_strength", "|Close - Open| / ATR14", ind.div(x.body, x.atr(14))
    yield "consecutive_strong_candles", "consecutive rows with body / range > 0.6", ind.streak(ratio > 0.6)
    spinning = (ratio >= 0.1) & (ratio <= 0.3) & (x.upper_wick > x.body) & (x.lower_wick > x.body)
    yield "spinning_top_indicator", "1 if 0.1 <= body / range <= 0.3 and both wicks exceed the body", spinning.astype(float)
    yield "spinning_top_score", "min(upper wick, lower wick) / (High - Low)", ind.div(np.minimum(x.upper_wick, x.lower_wick), x.hl)
    indecision = doji | spinning
    yield "indecision_streak", "consecutive doji or spinning-top days", ind.streak(indecision)
    pos = x.f["range_position_20d"]
    yield "indecision_at_extreme", "1 if a doji/spinning top closes in the top or bottom 10% of the 20-day close range", ind.nanmask((indecision & ((pos > 0.9) | (pos < 0.1))).astype(float), ind.valid(pos))
    morning, evening = _cdl(x, "CDLMORNINGSTAR"), _cdl(x, "CDLEVENINGSTAR")
    soldiers, crows = _three_in_a_row(x, up=True), _three_in_a_row(x, up=False)
    harami, piercing, dark = _cdl(x, "CDLHARAMI"), _cdl(x, "CDLPIERCING"), _cdl(x, "CDLDARKCLOUDCOVER")
    yield "morning_star_indicator", "1 if CDLMORNINGSTAR", np.abs(morning)
    yield "evening_star_indicator", "1 if CDLEVENINGSTAR", np.abs(evening)
    yield "three_white_soldiers", "1 if 3 up candles in a row, each Close > previous Close and body > 50% of range", soldiers
    yield "three_black_crows", "1 if 3 down candles in a row, each Close < previous Close and body > 50% of range", crows
    yield "harami_indicator", "sign of CDLHARAMI (+1 bullish, -1 bearish)", harami
    yield "piercing_line", "1 if CDLPIERCING", np.abs(piercing)
    yield "dark_cloud_cover", "1 if CDLDARKCLOUDCOVER", np.abs(dark)
    prev_o, prev_c = ind.shift(x.o, 1), ind.shift(x.c, 1)
    ok = ind.valid(prev_c)
    bottom = (np.abs(x.l - ind.shift(x.l, 1)) <= 0.001 * x.c) & (prev_c < prev_o) & (x.c > x.o)
    top = (np.abs(x.h - ind.shift(x.h, 1)) <= 0.001 * x.c) & (prev_c > prev_o) & (x.c < x.o)
    bottom, top = ind.nanmask(bottom.astype(float), ok), ind.nanmask(top.astype(float), ok)
    yield "tweezer_bottom", "1 if |Low - Low[t-1]| <= 0.1% of Close, a down day then an up day", bottom
    yield "tweezer_top", "1 if |High - High[t-1]| <= 0.1% of Close, an up day then a down day", top
    engulf = _cdl(x, "CDLENGULFING")
    hammer, star = np.abs(_cdl(x, "CDLHAMMER")), np.abs(_cdl(x, "CDLSHOOTINGSTAR"))
    any_reversal = ((engulf != 0) | (hammer > 0) | (star > 0) | (morning != 0) | (evening != 0) | (harami != 0)
                    | (piercing != 0) | (dark != 0) | (bottom > 0) | (top > 0)).astype(float)
    count5 = ind.rsum(ind.nanmask(any_reversal, ok), 5)
    bull = (engulf > 0) + hammer + np.abs(morning) + (harami > 0) + np.abs(piercing) + bottom + np.abs(soldiers)
    bear = (engulf < 0) + star + np.abs(evening) + (harami < 0) + np.abs(dark) + top + np.abs(crows)
    yield "reversal_pattern_count_5d", "days in the last 5 with any reversal pattern (engulfing, hammer, star, harami, piercing, dark cloud, tweezer)", count5
    yield "pattern_alignment_score", "sum over 5 days of bullish minus bearish pattern flags", ind.rsum(bull - bear, 5)
    yield "pattern_cluster_indicator", "1 if reversal_pattern_count_5d >= 2", ind.nanmask((count5 >= 2).astype(float), ind.valid(count5))
