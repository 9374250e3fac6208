"""Tier a20: 9 moving averages and 11 classic TA-Lib indicators (20 features)."""

from __future__ import annotations

import talib

from fembed_jax.data import indicators as ind
from fembed_jax.data.features import Inputs, family

TIER = "a20"


@family(TIER, "moving averages")
def moving_averages(x: Inputs):
    for name, kind, n in (
        ("dema_9", "DEMA", 9),
        ("dema_10", "DEMA", 10),
        ("sma_12", "SMA", 12),
        ("dema_20", "DEMA", 20),
        ("dema_25", "DEMA", 25),
        ("sma_50", "SMA", 50),
        ("dema_90", "DEMA", 90),
        ("sma_100", "SMA", 100),
        ("sma_200", "SMA", 200),
    ):
        values = x.sma(n) if kind == "SMA" else talib.DEMA(x.c, n)
        yield name, f"{kind}(Close, {n})", values


@family(TIER, "oscillators")
def oscillators(x: Inputs):
    weekly_close, _ = x.weekly()
    yield "rsi_daily", "RSI(Close, 14)", x.rsi(14)
    yield (
        "rsi_weekly",
        "RSI(weekly Close, 14) of the previous completed Mon-Sun week, held through the current week",
        x.from_week(talib.RSI(weekly_close, 14)),
    )
    yield "stochrsi_daily", "STOCHRSI(Close, 14, fastk 5, fastd 3) %K", talib.STOCHRSI(x.c, 14, 5, 3, 0)[0]
    yield (
        "stochrsi_weekly",
        "STOCHRSI(weekly Close, 14, 5, 3) %K of the previous completed week",
        x.from_week(talib.STOCHRSI(weekly_close, 14, 5, 3, 0)[0]),
    )
    yield "macd_line", "MACD(Close, 12, 26, 9) line = EMA12 - EMA26", x.macd()[0]


@family(TIER, "volume")
def volume(x: Inputs):
    yield "obv", "OBV(Close, Volume), cumulative from the first row", x.obv()
    yield "adosc", "ADOSC(High, Low, Close, Volume, 3, 10) Chaikin oscillator", talib.ADOSC(x.h, x.l, x.c, x.v, 3, 10)


@family(TIER, "volatility and trend")
def volatility_trend(x: Inputs):
    upper, _, lower = x.bbands(20, 2.0)
    yield "atr_14", "ATR(High, Low, Close, 14)", x.atr(14)
    yield "adx_14", "ADX(High, Low, Close, 14)", x.adx(14)
    yield "bb_percent_b", "(Close - BBlower) / (BBupper - BBlower), BBANDS(20, 2)", ind.div(x.c - lower, upper - lower, 0.5)
    yield "vwap_20", "sum(TypicalPrice * Volume, 20) / sum(Volume, 20), TypicalPrice = (H + L + C) / 3", x.vwap(20)
