"""The Date column: parsed to tz-naive midnights (local trading days) and checked for holes."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from fembed_jax.data.errors import DataError

# A trailing UTC offset after a time of day, e.g. "1999-01-04 00:00:00-05:00" (yf.Ticker().history()).
_OFFSET = re.compile(r"(\d{2}:\d{2}(?::\d{2}(?:\.\d*)?)?)\s*(?:[+-]\d{2}:?\d{2}|Z|UTC)$")

# Gaps between consecutive rows. An exchange's longest routine closures are a few trading days
# (9/11: 4 weekdays, Hurricane Sandy: 2; the built-in data's longest step is 7 calendar days),
# while every rolling indicator computed across a long hole mixes two unrelated periods as if
# they were adjacent. So more than NOTE_WEEKDAYS missing weekdays (two weeks) is worth a note,
# and a hole of more than MAX_GAP_DAYS calendar days (a missing month or year) is an error.
NOTE_WEEKDAYS = 10
MAX_GAP_DAYS = 30


def _as_text(col: pd.Series) -> pd.Series:
    """Strings with any UTC offset removed, so the wall-clock time (the local day) is kept.

    The offset changes with daylight saving inside one file, which pandas refuses to parse
    without converting to UTC, and in UTC an evening timestamp would fall on the next day.
    """
    text = col.astype("string").str.strip()
    return text.str.replace(_OFFSET, r"\1", regex=True)


def _first_bad(text: pd.Series) -> tuple[int, str] | None:
    """(row, value) of the first non-empty value that does not parse like the ones before it."""
    try:
        coerced = pd.to_datetime(text, errors="coerce")
        bad = coerced.isna().to_numpy() & text.fillna("").ne("").to_numpy()
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            return i, str(text.iloc[i])
    except (ValueError, TypeError, OverflowError):
        pass
    for i, value in enumerate(text):
        if pd.isna(value) or value == "":
            continue
        try:
            pd.Timestamp(value)
        except (ValueError, TypeError, OverflowError):
            return i, str(value)
    return None


def to_dates(col: pd.Series, where: str) -> pd.Series:
    """Dates at midnight (datetime64[ns], tz-naive, the local calendar day); NaT for empty cells.

    Errors never pass pandas' own advice on (e.g. "Pass utc=True"): they name the first bad value.
    """
    textual = col.dtype == object or pd.api.types.is_string_dtype(col)
    values = _as_text(col) if textual else col
    try:
        dates = pd.to_datetime(values)
    except (ValueError, TypeError, OverflowError):
        bad = _first_bad(values) if textual else None
        if bad is None:
            raise DataError(f"{where}: column Date is not parseable as dates (first value {col.iloc[0]!r})") from None
        row, value = bad
        raise DataError(f"{where}: column Date: {value!r} (data row {row + 1}) is not a date") from None
    if getattr(dates.dt, "tz", None) is not None:
        dates = dates.dt.tz_localize(None)  # keep the local wall-clock time
    return dates.dt.normalize().astype("datetime64[ns]")


def _span(after: np.datetime64, before: np.datetime64) -> str:
    first = np.busday_offset(after + 1, 0, roll="forward")
    last = np.busday_offset(before - 1, 0, roll="backward")
    return f"{first}..{last}"


def calendar_gaps(dates: pd.Series, where: str) -> tuple[str, ...]:
    """Notes for holes of more than NOTE_WEEKDAYS weekdays; DataError beyond MAX_GAP_DAYS days."""
    d = dates.to_numpy().astype("datetime64[D]")
    if d.size < 2:
        return ()
    days = np.diff(d).astype(np.int64)
    big = np.flatnonzero(days > MAX_GAP_DAYS)
    if big.size:
        i = int(big[0])
        more = f" ({big.size - 1} more such gap(s))" if big.size > 1 else ""
        raise DataError(
            f"{where}: {_span(d[i], d[i + 1])} missing: no rows between {d[i]} and {d[i + 1]} "
            f"({days[i]} calendar days, more than {MAX_GAP_DAYS}){more}; indicators would run across "
            f"the gap, so fill it or start the file after it"
        )
    weekdays = np.busday_count(d[:-1] + 1, d[1:])
    return tuple(
        f"{where}: {_span(d[i], d[i + 1])} missing ({weekdays[i]} weekdays without a row); "
        f"indicators run across the gap"
        for i in np.flatnonzero(weekdays > NOTE_WEEKDAYS)
    )
