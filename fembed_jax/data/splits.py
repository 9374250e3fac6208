"""Date splits with strict containment (the original's SimpleSplitter).

A window starting at row i uses rows [i, i + span) with span = context_length + horizon: the
context, then the label day(s). It belongs to a region only if the whole span lies inside it:

    train: i = 0 .. v - span        val: i = v .. s - span        test: i = s .. n - span

where v, s are the first rows on/after val_start and test_start (boundary dates are snapped to
the next trading day) and n is the number of rows, or the first row on/after test_end when one is
given (a walk-forward fold's test period, fembed_jax.folds). For span 81 this is the spec's
train i = 0..v-81, val i = v..s-81, test i = s..n-81.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

from fembed_jax.config import SELECTION_RULES
from fembed_jax.data.errors import DataError

SPLITS = ("train", "val", "test")


@dataclasses.dataclass(frozen=True)
class Boundaries:
    val_row: int
    test_row: int
    rows: int
    val_date: pd.Timestamp
    test_date: pd.Timestamp


def boundaries(dates: np.ndarray, val_start, test_start, where: str, test_end=None) -> Boundaries:
    dates = np.asarray(dates).astype("datetime64[ns]")
    n = dates.size
    if test_end is not None:  # rows from test_end on belong to no split
        n = int(np.searchsorted(dates, np.datetime64(pd.Timestamp(test_end), "ns"), side="left"))
    vs, ts = pd.Timestamp(val_start), pd.Timestamp(test_start)
    if vs >= ts:
        raise DataError(f"{where}: val_start {vs.date()} must be before test_start {ts.date()}")
    v = int(np.searchsorted(dates, np.datetime64(vs, "ns"), side="left"))
    s = int(np.searchsorted(dates, np.datetime64(ts, "ns"), side="left"))
    first, last = pd.Timestamp(dates[0]).date(), pd.Timestamp(dates[max(n, 1) - 1]).date()
    for name, row, day in (("val_start", v, vs), ("test_start", s, ts)):
        if row == 0 or row >= n:
            end = f", before test_end {pd.Timestamp(test_end).date()}" if test_end is not None else ""
            raise DataError(
                f"{where}: {name} {day.date()} is outside the usable dates {first}..{last} (after warm-up{end})"
            )
    return Boundaries(v, s, n, pd.Timestamp(dates[v]), pd.Timestamp(dates[s]))


def split_starts(dates: np.ndarray, val_start, test_start, span: int, where: str,
                 test_end=None) -> dict[str, np.ndarray]:
    """Window start rows per split (int32), each window wholly inside its region."""
    b = boundaries(dates, val_start, test_start, where, test_end)
    regions = {"train": (0, b.val_row), "val": (b.val_row, b.test_row), "test": (b.test_row, b.rows)}
    out = {}
    for name, (lo, hi) in regions.items():
        if hi - lo < span:
            span_text = (
                f" ({pd.Timestamp(dates[lo]).date()}..{pd.Timestamp(dates[hi - 1]).date()})" if hi > lo else ""
            )
            raise DataError(
                f"{where}: the {name} region has {hi - lo} rows{span_text}, too few for one window of "
                f"{span} rows (context + horizon)"
            )
        out[name] = np.arange(lo, hi - span + 1, dtype=np.int32)
    return out


# Early stopping and the ranking must not read the same windows, or every reported number carries
# the selection's optimism (+0.01-0.02 AUC on FE-06, ../reviews/science.md §4). Rule "alternate":
# the validation windows are cut into consecutive blocks of SELECTION_BLOCK windows (about one
# trading month); even blocks (0, 2, ...) are the selection windows early stopping reads, odd
# blocks the report windows every val metric is scored on. Blocks keep market regimes on both
# sides. Rule "all" is the original's protocol: both read every window.
SELECTION_BLOCK = 21


def selection_masks(n_windows: int, rule: str) -> tuple[np.ndarray, np.ndarray]:
    """(select, report): boolean masks over the n validation windows, in window order."""
    if rule not in SELECTION_RULES:
        raise ValueError(f"unknown selection_windows {rule!r}; expected one of {SELECTION_RULES}")
    if rule == "all":
        every = np.ones(n_windows, bool)
        return every, every.copy()
    select = (np.arange(n_windows) // SELECTION_BLOCK) % 2 == 0
    return select, ~select


def report_mask(record_rule: str | None, n_windows: int) -> np.ndarray:
    """The windows a result's val metrics are scored on; a record without the rule (written
    before it existed) was selected and scored on every window."""
    return selection_masks(n_windows, record_rule or "all")[1]
