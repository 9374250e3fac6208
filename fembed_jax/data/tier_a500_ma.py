"""Tier a500, chunks 6a/6b (49 features): more moving averages, their slopes, proximities,
durations, crosses and accelerations; fast and slow RSI and Stochastic."""

from __future__ import annotations

import talib

from fembed_jax.data import indicators as ind
from fembed_jax.data.features import Inputs, family

TIER = "a500"


def _mas(x: Inputs) -> dict:
    return {
        "sma_5": x.sma(5), "sma_14": x.sma(14), "sma_21": x.sma(21), "sma_63": x.sma(63),
        "ema_5": x.ema(5), "ema_9": x.ema(9), "ema_50": x.ema(50), "ema_100": x.ema(100), "ema_200": x.ema(200),
        "sma_50": x.sma(50), "sma_200": x.sma(200),
    }


def _label(key: str) -> str:
    return key.upper().replace("_", "")


@family(TIER, "moving averages (6a)")
def averages(x: Inputs):
    ma = _mas(x)
    for key in ("sma_5", "sma_14", "sma_21", "sma_63"):
        yield key, f"SMA(Close, {key[4:]})", ma[key]
    for key in ("ema_5", "ema_9", "ema_50", "ema_100", "ema_200"):
        yield key, f"EMA(Close, {key[4:]})", ma[key]
    for key in ("sma_5", "sma_21", "sma_63", "ema_9", "ema_50", "ema_100"):
        yield f"{key}_slope", f"100 * ({_label(key)} / {_label(key)}[t-5] - 1)", ind.rel_change(ma[key], 5)
    for key in ("sma_5", "sma_21", "ema_9", "ema_50", "ema_100"):
        yield f"price_pct_from_{key}", f"100 * (Close / {_label(key)} - 1)", ind.pct_diff(x.c, ma[key])
    for a, b in (("sma_5", "sma_21"), ("sma_21", "sma_50"), ("sma_63", "sma_200"), ("ema_9", "ema_50")):
        name = f"{a}_{b.split('_')[1]}_proximity"
        yield name, f"100 * ({_label(a)} / {_label(b)} - 1)", ind.pct_diff(ma[a], ma[b])


@family(TIER, "MA durations, crosses, accelerations; fast oscillators (6b)")
def durations(x: Inputs):
    ma = _mas(x)
    for key in ("ema_9", "ema_50", "sma_21", "sma_63"):
        ok = ind.valid(ma[key])
        yield f"days_above_{key}", f"consecutive rows with Close > {_label(key)}", ind.streak(x.c > ma[key], ok)
        yield f"days_below_{key}", f"consecutive rows with Close < {_label(key)}", ind.streak(x.c < ma[key], ok)
    for a, b, name in (
        ("ema_9", "ema_50", "days_since_ema_9_50_cross"),
        ("ema_50", "ema_200", "days_since_ema_50_200_cross"),
        ("sma_5", "sma_21", "days_since_sma_5_21_cross"),
        ("sma_21", "sma_63", "days_since_sma_21_63_cross"),
        ("ema_9", "sma_50", "days_since_ema_9_sma_50_cross"),
    ):
        yield name, f"rows since sign({_label(a)} - {_label(b)}) changed", ind.days_since_cross(ma[a], ma[b])
    for key in ("ema_9", "ema_50", "sma_21", "sma_63"):
        slope = ind.rel_change(ma[key], 5)
        yield f"{key}_acceleration", f"{key}_slope - {key}_slope[t-5]", ind.change(slope, 5)
    rsi5, rsi21 = x.rsi(5), x.rsi(21)
    k5, d5 = talib.STOCH(x.h, x.l, x.c, 5, 3, 0, 3, 0)
    yield "rsi_5", "RSI(Close, 5)", rsi5
    yield "rsi_21", "RSI(Close, 21)", rsi21
    yield "stoch_k_5", "STOCH(5, slowk 3, slowd 3) slow %K", k5
    yield "stoch_d_5", "STOCH(5, 3, 3) slow %D", d5
    yield "rsi_5_slope", "RSI5 - RSI5[t-5]", ind.change(rsi5, 5)
    yield "rsi_21_slope", "RSI21 - RSI21[t-5]", ind.change(rsi21, 5)
    yield "stoch_k_5_slope", "stoch_k_5 - stoch_k_5[t-5]", ind.change(k5, 5)
    yield "rsi_5_21_spread", "RSI5 - RSI21", rsi5 - rsi21
