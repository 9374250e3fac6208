"""Feature registry and the shared inputs every tier module computes from.

A tier module registers *families*: generator functions that take the `Inputs` of one raw frame
and yield ``(name, one-line formula, values)``. Families run in tier order, so a later family can
read earlier features from ``x.f[name]``. The formulas follow `CONVENTIONS`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator

import numpy as np
import pandas as pd
import talib

from fembed_jax.data import indicators as ind

CONVENTIONS = (
    "r_t = Close_t / Close_{t-1} - 1 (simple daily return), lr_t = ln(Close_t / Close_{t-1}); "
    "hv_n = std(lr, n) * sqrt(252) * 100.",
    "\"slope\" of a price level = percent change over 5 rows unless the name says otherwise; \"slope\" of an "
    "oscillator = its change over 5 rows; \"acceleration\" = slope - slope 5 rows earlier.",
    "\"percentile\" = rolling percentile rank in (0, 1] (ties averaged); streaks (\"consecutive\", "
    "\"days_above\") and \"days since\" count trading rows, the latter from the first defined row "
    "when the event has not happened yet.",
    "Rolling windows are pandas rolling (min_periods = window, std with ddof 1 unless stated); "
    "standard indicators are TA-Lib 0.8.2 with its default seeding; divisions by zero give a "
    "neutral value stated per feature (0 unless given).",
    "Every feature at day t uses rows <= t only; weekly values come from the previous completed "
    "Monday-Sunday week.",
)

FeatureRows = Iterator[tuple[str, str, np.ndarray]]


@dataclasses.dataclass(frozen=True)
class Feature:
    name: str
    tier: str  # the tier that adds it
    family: str
    formula: str


@dataclasses.dataclass(frozen=True)
class Family:
    tier: str
    name: str
    compute: Callable[["Inputs"], FeatureRows]


FAMILIES: list[Family] = []


def family(tier: str, name: str):
    """Register a generator of (feature name, formula, values) for `tier`."""

    def register(fn: Callable[["Inputs"], FeatureRows]):
        FAMILIES.append(Family(tier, name, fn))
        return fn

    return register


class Inputs:
    """Raw arrays of one frame plus memoised indicators shared by many features."""

    def __init__(self, frame: pd.DataFrame):
        self.dates = frame["Date"].to_numpy().astype("datetime64[D]")
        self.o = frame["Open"].to_numpy(np.float64).copy()
        self.h = frame["High"].to_numpy(np.float64).copy()
        self.l = frame["Low"].to_numpy(np.float64).copy()
        self.c = frame["Close"].to_numpy(np.float64).copy()
        self.v = frame["Volume"].to_numpy(np.float64).copy()
        self.vix = frame["VIX"].to_numpy(np.float64).copy()
        self.n = len(self.c)
        self.f: dict[str, np.ndarray] = {}
        self._memo: dict[tuple, object] = {}

    def memo(self, key: tuple, fn: Callable[[], object]):
        if key not in self._memo:
            self._memo[key] = fn()
        return self._memo[key]

    # ---- returns and volatility ----------------------------------------------------------
    @property
    def r(self) -> np.ndarray:
        """Simple daily return (fraction)."""
        return self.memo(("r",), lambda: self.c / ind.shift(self.c, 1) - 1.0)

    @property
    def lr(self) -> np.ndarray:
        return self.memo(("lr",), lambda: np.log(self.c / ind.shift(self.c, 1)))

    def hv(self, n: int) -> np.ndarray:
        """Realised volatility: std(lr, n) * sqrt(252) * 100 (annualised %)."""
        return self.memo(("hv", n), lambda: ind.rstd(self.lr, n) * np.sqrt(252.0) * 100.0)

    @property
    def hl(self) -> np.ndarray:
        return self.h - self.l

    @property
    def body(self) -> np.ndarray:
        return np.abs(self.c - self.o)

    @property
    def upper_wick(self) -> np.ndarray:
        return self.h - np.maximum(self.o, self.c)

    @property
    def lower_wick(self) -> np.ndarray:
        return np.minimum(self.o, self.c) - self.l

    @property
    def typical(self) -> np.ndarray:
        return (self.h + self.l + self.c) / 3.0

    # ---- moving averages and standard indicators -----------------------------------------
    def sma(self, n: int, x: np.ndarray | None = None) -> np.ndarray:
        if x is not None:
            return talib.SMA(x, n)
        return self.memo(("sma", n), lambda: talib.SMA(self.c, n))

    def ema(self, n: int) -> np.ndarray:
        return self.memo(("ema", n), lambda: talib.EMA(self.c, n))

    def tema(self, n: int) -> np.ndarray:
        return self.memo(("tema", n), lambda: talib.TEMA(self.c, n))

    def kama(self, n: int) -> np.ndarray:
        return self.memo(("kama", n), lambda: talib.KAMA(self.c, n))

    def vwma(self, n: int) -> np.ndarray:
        """sum(Close * Volume, n) / sum(Volume, n); SMA(Close, n) where the volume sums to 0."""
        return self.memo(
            ("vwma", n), lambda: ind.div_or(ind.rsum(self.c * self.v, n), ind.rsum(self.v, n), self.sma(n))
        )

    def vwap(self, n: int) -> np.ndarray:
        """sum(TypicalPrice * Volume, n) / sum(Volume, n); mean typical price where volume sums to 0."""
        return self.memo(
            ("vwap", n),
            lambda: ind.div_or(ind.rsum(self.typical * self.v, n), ind.rsum(self.v, n), ind.rmean(self.typical, n)),
        )

    def rsi(self, n: int) -> np.ndarray:
        return self.memo(("rsi", n), lambda: talib.RSI(self.c, n))

    def atr(self, n: int) -> np.ndarray:
        return self.memo(("atr", n), lambda: talib.ATR(self.h, self.l, self.c, n))

    def adx(self, n: int = 14) -> np.ndarray:
        return self.memo(("adx", n), lambda: talib.ADX(self.h, self.l, self.c, n))

    def plus_di(self, n: int = 14) -> np.ndarray:
        return self.memo(("+di", n), lambda: talib.PLUS_DI(self.h, self.l, self.c, n))

    def minus_di(self, n: int = 14) -> np.ndarray:
        return self.memo(("-di", n), lambda: talib.MINUS_DI(self.h, self.l, self.c, n))

    def bbands(self, n: int = 20, k: float = 2.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(upper, middle, lower) Bollinger bands: SMA(n) +- k * population std(n)."""
        return self.memo(("bb", n, k), lambda: talib.BBANDS(self.c, n, k, k, 0))

    def keltner(self, n: int = 20, k: float = 1.5, atr_n: int | None = None):
        """(upper, middle, lower) Keltner channel: EMA(n) +- k * ATR(atr_n or n)."""

        def make():
            mid = self.ema(n)
            width = k * self.atr(atr_n or n)
            return mid + width, mid, mid - width

        return self.memo(("kc", n, k, atr_n), make)

    def macd(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return self.memo(("macd",), lambda: talib.MACD(self.c, 12, 26, 9))

    def obv(self) -> np.ndarray:
        return self.memo(("obv",), lambda: talib.OBV(self.c, self.v))

    def supertrend(self, n: int, mult: float) -> tuple[np.ndarray, np.ndarray]:
        return self.memo(("st", n, mult), lambda: supertrend(self.h, self.l, self.c, self.atr(n), mult))

    # ---- weekly (previous completed week) ------------------------------------------------
    def weekly(self) -> tuple[np.ndarray, np.ndarray]:
        """(weekly closes, week position of each day)."""
        return self.memo(("weekly",), lambda: ind.weekly_closes(self.dates, self.c))

    def from_week(self, weekly_values: np.ndarray) -> np.ndarray:
        return ind.from_previous_week(weekly_values, self.weekly()[1])


def supertrend(high, low, close, atr, mult):
    """SuperTrend line and direction (+1 up, -1 down) from hl2 +- mult * ATR.

    The final bands only ratchet: the upper band may fall but not rise while the close stays
    below it (and vice versa for the lower band); the trend flips when the close crosses the
    active band. Path-dependent, hence one pass over the rows (O(rows), not per feature).
    """
    n = close.size
    mid = (high + low) / 2.0
    basic_up, basic_dn = mid + mult * atr, mid - mult * atr
    line = np.full(n, np.nan)
    direction = np.full(n, np.nan)
    start = int(np.argmax(np.isfinite(atr))) if np.isfinite(atr).any() else n
    if start >= n:
        return line, direction
    up, dn, d = basic_up[start], basic_dn[start], 1.0
    bu, bd, cl = basic_up.tolist(), basic_dn.tolist(), close.tolist()
    lines, dirs = line.tolist(), direction.tolist()
    for t in range(start, n):
        if t > start:
            up = bu[t] if (bu[t] < up or cl[t - 1] > up) else up
            dn = bd[t] if (bd[t] > dn or cl[t - 1] < dn) else dn
            if d < 0 and cl[t] > up:
                d = 1.0
            elif d > 0 and cl[t] < dn:
                d = -1.0
        lines[t] = dn if d > 0 else up
        dirs[t] = d
    return np.asarray(lines), np.asarray(dirs)
