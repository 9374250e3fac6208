"""A small synthetic daily OHLCV frame (geometric random walk on business days) for tests and demos."""

from __future__ import annotations

import numpy as np
import pandas as pd


def random_walk_ohlcv(rows: int = 800, seed: int = 0, start: str = "2001-01-01", daily_vol: float = 0.012) -> pd.DataFrame:
    """Date, Open, High, Low, Close, Volume with Low <= Open, Close <= High and positive volume."""
    rng = np.random.default_rng(seed)
    dates = pd.bdate_range(start, periods=rows)
    vol = daily_vol * np.exp(0.3 * np.sin(np.arange(rows) / 60.0))  # slow volatility cycles
    close = 100.0 * np.exp(np.cumsum(rng.normal(0.0003, vol)))
    open_ = np.r_[100.0, close[:-1]] * np.exp(rng.normal(0, vol / 3))
    high = np.maximum(open_, close) * np.exp(np.abs(rng.normal(0, vol / 1.5)))
    low = np.minimum(open_, close) * np.exp(-np.abs(rng.normal(0, vol / 1.5)))
    volume = rng.lognormal(20, 0.3, rows).round()
    return pd.DataFrame({"Date": dates, "Open": open_, "High": high, "Low": low, "Close": close, "Volume": volume})
