"""Vectorised, causal building blocks for the feature tiers.

Every function maps arrays indexed by trading day to an array of the same length whose value at
row t depends on rows <= t only. NaN marks "not defined yet" (warm-up) and propagates.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from numpy.lib.stride_tricks import sliding_window_view

NAN = np.nan


def as_float(x) -> np.ndarray:
    return np.asarray(x, dtype=np.float64)


def shift(x, n: int = 1) -> np.ndarray:
    """x[t - n] (NaN for the first n rows)."""
    x = as_float(x)
    out = np.full_like(x, NAN)
    if n == 0:
        return x.copy()
    out[n:] = x[:-n]
    return out


def change(x, n: int) -> np.ndarray:
    """x[t] - x[t - n]."""
    return as_float(x) - shift(x, n)


def div(a, b, fill: float = 0.0) -> np.ndarray:
    """a / b, with `fill` where b == 0 (NaN inputs stay NaN)."""
    a, b = np.broadcast_arrays(as_float(a), as_float(b))
    out = np.full(a.shape, NAN)
    ok = np.isfinite(a) & np.isfinite(b)
    zero = ok & (b == 0)
    good = ok & ~zero
    out[good] = a[good] / b[good]
    out[zero] = fill
    return out


def div_or(a, b, fallback) -> np.ndarray:
    """a / b, with the matching `fallback` value where b == 0."""
    a, b, fallback = np.broadcast_arrays(as_float(a), as_float(b), as_float(fallback))
    out = div(a, b, fill=NAN)
    zero = np.isfinite(a) & (b == 0)
    out[zero] = fallback[zero]
    return out


def pct_diff(a, b) -> np.ndarray:
    """100 * (a / b - 1): percent distance of a from b."""
    return 100.0 * (div(a, b, fill=1.0) - 1.0)


def roc(x, n: int) -> np.ndarray:
    """Percent change over n rows, 100 * (x[t] / x[t-n] - 1)."""
    return pct_diff(x, shift(x, n))


def rel_change(x, n: int) -> np.ndarray:
    """Percent change of a level over n rows (slope of a moving average in % per n days)."""
    return roc(x, n)


def _roll(x, n):
    return pd.Series(as_float(x)).rolling(n, min_periods=n)


def rmean(x, n):
    return _roll(x, n).mean().to_numpy()


def rsum(x, n):
    return _roll(x, n).sum().to_numpy()


def rstd(x, n, ddof: int = 1):
    return _roll(x, n).std(ddof=ddof).to_numpy()


def rmax(x, n):
    return _roll(x, n).max().to_numpy()


def rmin(x, n):
    return _roll(x, n).min().to_numpy()


def rquantile(x, n, q):
    return _roll(x, n).quantile(q).to_numpy()


def rrank(x, n):
    """Percentile rank in (0, 1] of x[t] among x[t-n+1..t] (ties averaged)."""
    return _roll(x, n).rank(pct=True).to_numpy()


def rcorr(a, b, n):
    """Rolling Pearson correlation over n rows; 0 where either side is (numerically) constant."""
    sa, sb = pd.Series(as_float(a)), pd.Series(as_float(b))
    out = sa.rolling(n, min_periods=n).corr(sb).to_numpy().copy()
    sd_a, sd_b = rstd(a, n, 0), rstd(b, n, 0)
    defined = np.isfinite(sd_a) & np.isfinite(sd_b)
    flat = defined & ((sd_a <= 1e-12 * (1 + np.abs(rmean(a, n)))) | (sd_b <= 1e-12 * (1 + np.abs(rmean(b, n)))))
    out[flat] = 0.0
    out[defined & ~np.isfinite(out)] = 0.0
    return np.clip(out, -1.0, 1.0)


def ewm(x, span: int | None = None, alpha: float | None = None):
    """Recursive EMA, y_t = a*x_t + (1-a)*y_{t-1} (adjust=False), started at the first non-NaN x."""
    return pd.Series(as_float(x)).ewm(span=span, alpha=alpha, adjust=False).mean().to_numpy()


def valid(*arrays, lag: int = 0) -> np.ndarray:
    """True where every array (and, with lag, its value lag rows back) is finite."""
    ok = np.ones(len(arrays[0]), dtype=bool)
    for a in arrays:
        fa = np.isfinite(as_float(a))
        ok &= fa
        if lag:
            ok &= np.concatenate([np.zeros(lag, bool), fa[:-lag]])
    return ok


def streak(cond, ok=None) -> np.ndarray:
    """Number of consecutive rows up to t where cond holds (0 when it does not); NaN where not ok."""
    cond = np.asarray(cond, dtype=bool)
    ok = np.ones(cond.shape, bool) if ok is None else np.asarray(ok, bool)
    cond = cond & ok
    idx = np.arange(cond.size)
    last_false = np.maximum.accumulate(np.where(~cond, idx, -1))
    out = (idx - last_false).astype(np.float64)
    out[~ok] = NAN
    return out


def days_since(event, ok) -> np.ndarray:
    """Rows since the last event (0 on the event day); before the first event, rows since the first
    row where the inputs are defined. NaN where not ok."""
    event = np.asarray(event, bool)
    ok = np.asarray(ok, bool)
    idx = np.arange(event.size)
    first_ok = int(np.argmax(ok)) if ok.any() else event.size
    last = np.maximum.accumulate(np.where(event & ok, idx, -1))
    out = (idx - np.maximum(last, first_ok)).astype(np.float64)
    out[~ok] = NAN
    return out


def days_since_cross(a, b) -> np.ndarray:
    """Rows since the sign of a - b last changed."""
    above = as_float(a) > as_float(b)
    ok = valid(a, b)
    event = np.zeros(above.size, bool)
    event[1:] = (above[1:] != above[:-1]) & ok[:-1]
    return days_since(event, ok)


def days_since_change(state) -> np.ndarray:
    """Rows since a discrete state series last changed value."""
    s = as_float(state)
    ok = np.isfinite(s)
    event = np.zeros(s.size, bool)
    event[1:] = (s[1:] != s[:-1]) & ok[:-1] & ok[1:]
    return days_since(event, ok)


def count_changes(state, n: int) -> np.ndarray:
    """Number of value changes of a discrete state within the last n rows."""
    s = as_float(state)
    ch = np.where(valid(s, lag=1), (s != shift(s, 1)).astype(np.float64), NAN)
    return rsum(ch, n)


def windows(x, n: int) -> np.ndarray:
    """(rows - n + 1, n) view of the trailing windows; row k ends at row k + n - 1."""
    return sliding_window_view(as_float(x), n)


def pad(values, total: int) -> np.ndarray:
    """Left-pad per-window results (one per trailing window) with NaN to `total` rows."""
    values = as_float(values)
    out = np.full(total, NAN)
    if values.size:
        out[total - values.size :] = values
    return out


def days_since_extreme(x, n: int, highest: bool) -> np.ndarray:
    """Rows since the most recent max (or min) of x over the last n rows (0 = today)."""
    w = windows(x, n)[:, ::-1]  # most recent first
    pos = np.argmax(w, axis=1) if highest else np.argmin(w, axis=1)
    return pad(pos, len(x))


def bucket3(x, lo, hi) -> np.ndarray:
    """-1 below lo, +1 above hi, 0 between (NaN propagates)."""
    x = as_float(x)
    out = np.where(x < lo, -1.0, np.where(x > hi, 1.0, 0.0))
    return np.where(np.isfinite(x) & np.isfinite(as_float(lo) + as_float(hi) + 0 * x), out, NAN)


def signed_extreme_dist(x, mid, lo, hi) -> np.ndarray:
    """Distance to the nearer extreme band: x - hi when x >= mid, else x - lo."""
    x = as_float(x)
    return np.where(x >= mid, x - hi, x - lo)


def nanmask(x, ok) -> np.ndarray:
    return np.where(ok, as_float(x), NAN)


# ---------------------------------------------------------------------------------------------
# weekly bars (previous completed week only: no look-ahead)
# ---------------------------------------------------------------------------------------------
def week_ids(dates) -> np.ndarray:
    """Monday-based calendar week number of each date (1970-01-01 was a Thursday)."""
    days = np.asarray(dates).astype("datetime64[D]").astype(np.int64)
    return (days + 3) // 7


def weekly_closes(dates, close) -> tuple[np.ndarray, np.ndarray]:
    """(last close of every week present, position of each day's week in that list)."""
    wk = week_ids(dates)
    last_of_week = np.r_[wk[1:] != wk[:-1], True]
    week_pos = np.cumsum(np.r_[True, wk[1:] != wk[:-1]]) - 1
    return as_float(close)[last_of_week], week_pos


def from_previous_week(weekly_values, week_pos) -> np.ndarray:
    """Daily series holding the value of the previous *completed* week (NaN in the first week)."""
    weekly_values = as_float(weekly_values)
    prev = week_pos - 1
    out = np.full(week_pos.size, NAN)
    ok = prev >= 0
    out[ok] = weekly_values[prev[ok]]
    return out


# ---------------------------------------------------------------------------------------------
# permutation entropy (ordinal patterns)
# ---------------------------------------------------------------------------------------------
def _pattern_ids(order: int) -> np.ndarray:
    """Lookup table: base-`order` code of a rank vector -> dense id of that permutation."""
    import itertools

    table = np.full(order**order, -1, dtype=np.int64)
    for k, perm in enumerate(itertools.permutations(range(order))):
        table[np.dot(perm, order ** np.arange(order))] = k
    return table


def permutation_entropy(x, order: int, window: int) -> np.ndarray:
    """Normalised permutation entropy of the ordinal patterns (delay 1) of x in the last `window`
    rows: -sum p log p / log(order!), over the window - order + 1 patterns ending inside it."""
    import math

    x = as_float(x)
    w = windows(x, order)
    ranks = np.argsort(np.argsort(w, axis=1, kind="stable"), axis=1, kind="stable")
    ids = _pattern_ids(order)[ranks @ (order ** np.arange(order))]
    k = math.factorial(order)
    onehot = np.zeros((ids.size + 1, k))
    onehot[np.arange(1, ids.size + 1), ids] = 1.0
    counts_cum = np.cumsum(onehot, axis=0)
    m = window - order + 1
    counts = counts_cum[m:] - counts_cum[:-m]
    p = counts / m
    with np.errstate(divide="ignore", invalid="ignore"):
        h = -np.sum(np.where(p > 0, p * np.log(p), 0.0), axis=1) / np.log(k)
    out = pad(h, x.size)
    finite = np.isfinite(rsum(x, window))
    return np.where(finite, out, NAN)
