"""A causal implied-volatility proxy used where no real VIX exists.

GARCH(1,1) with fixed parameters, driven by the close-to-close log returns r_t (in %):

    sigma2_{t+1} = omega_t + alpha * r_t^2 + beta * sigma2_t,   omega_t = (1 - alpha - beta) * L_t

where L_t = mean(r_1^2 .. r_t^2) is the expanding (hence causal) long-run variance. The proxy on
day t is the annualised mean of the 21-day-ahead variance forecast, like VIX's 30-calendar-day
horizon:

    proxy_t = sqrt(252 * mean_{k=1..21} E_t[sigma2_{t+k}]),
    E_t[sigma2_{t+k}] = L_t + (alpha + beta)^(k-1) * (sigma2_{t+1} - L_t).

The parameters are fixed constants (textbook values close to a fit on 1999-2013 S&P 500 returns),
not estimated on the data at hand, so the value on day t depends on rows <= t only. On 2014-2018
the proxy correlates 0.86 with the real VIX (means 15.2 vs 14.9). A model forecast carries no
variance risk premium, so the "VRP" features built on it read "model-implied minus realised".
"""

from __future__ import annotations

import numpy as np

GARCH_ALPHA = 0.09
GARCH_BETA = 0.89
HORIZON_DAYS = 21


def garch_vol_proxy(close: np.ndarray) -> np.ndarray:
    """Annualised volatility proxy in VIX units (percent); NaN on the first row (no return yet)."""
    close = np.asarray(close, dtype=np.float64)
    out = np.full(close.shape, np.nan)
    if close.size < 2:
        return out
    r = 100.0 * np.diff(np.log(close))
    long_run = np.cumsum(r**2) / np.arange(1, r.size + 1)
    drive = (1.0 - GARCH_ALPHA - GARCH_BETA) * long_run + GARCH_ALPHA * r**2
    # sigma2_{t+1} = drive_t + beta * sigma2_t, started from sigma2 = L_1.
    from scipy.signal import lfilter  # here: importing scipy.signal costs ~0.8 s at start-up

    sigma2_next = lfilter([1.0], [1.0, -GARCH_BETA], drive, zi=[GARCH_BETA * long_run[0]])[0]
    decay = np.mean((GARCH_ALPHA + GARCH_BETA) ** np.arange(HORIZON_DAYS))
    mean_var = long_run + (sigma2_next - long_run) * decay
    out[1:] = np.sqrt(252.0 * np.maximum(mean_var, 0.0))
    return out
