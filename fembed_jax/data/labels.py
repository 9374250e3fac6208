"""Labels of a decision day t, from the raw High/Close of the rows after it."""

from __future__ import annotations

import numpy as np

from fembed_jax.data.errors import DataError

# task -> threshold on max(High[t+1..t+h]) relative to Close[t]; "direction" is Close-based.
THRESHOLDS: dict[str, float | None] = {
    "threshold_0.5pct": 0.005,
    "threshold_1pct": 0.01,
    "threshold_2pct": 0.02,
    "threshold_3pct": 0.03,
    "threshold_5pct": 0.05,
    "direction": None,
}


def check_task(task: str, horizon: int) -> None:
    if task not in THRESHOLDS:
        raise DataError(f"unknown task {task!r}; tasks are {', '.join(THRESHOLDS)}")
    if not isinstance(horizon, (int, np.integer)) or horizon < 1:
        raise DataError(f"horizon must be a positive integer, got {horizon!r}")


def task_formula(task: str, horizon: int | str) -> str:
    """One-line label formula; `horizon` may be a symbol such as 'h'."""
    if THRESHOLDS[task] is None:
        return f"1 if Close[t+{horizon}] > Close[t] else 0"
    future = "High[t+1]" if horizon == 1 else f"max(High[t+1..t+{horizon}])"
    return f"1 if {future} >= (1 + {THRESHOLDS[task]}) * Close[t] else 0"


def decision_labels(high: np.ndarray, close: np.ndarray, task: str, horizon: int) -> np.ndarray:
    """Label of every row t as a decision day (float32 0/1); NaN where t + horizon is past the end.

    threshold_X: 1 when max(High[t+1 .. t+horizon]) >= Close[t] * (1 + X) (inclusive, as the original);
    direction:   1 when Close[t+horizon] > Close[t].
    """
    check_task(task, horizon)
    high = np.asarray(high, np.float64)
    close = np.asarray(close, np.float64)
    n = close.size
    out = np.full(n, np.nan, dtype=np.float32)
    if n <= horizon:
        return out
    thr = THRESHOLDS[task]
    if thr is None:
        hit = close[horizon:] > close[:-horizon]
    else:
        future_high = np.lib.stride_tricks.sliding_window_view(high[1:], horizon).max(axis=1)
        hit = future_high >= close[: n - horizon] * (1 + thr)
    out[: n - horizon] = hit.astype(np.float32)
    return out
