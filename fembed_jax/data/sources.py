"""Raw daily OHLCV (+ VIX): the built-in S&P 500 from `arch`, or a user CSV/parquet; validated.

Every loader returns a frame with columns Date, Open, High, Low, Close, Volume, VIX (float64,
Date as datetime64 at midnight, strictly increasing) plus a `RawSource` describing it.
"""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path

import numpy as np
import pandas as pd

from fembed_jax.data.config import DataConfig
from fembed_jax.data.dates import calendar_gaps, to_dates
from fembed_jax.data.errors import DataError
from fembed_jax.data.tables import read_table
from fembed_jax.data.volproxy import garch_vol_proxy

OHLCV = ("Open", "High", "Low", "Close", "Volume")
PRICE_COLUMNS = ("Open", "High", "Low", "Close")


@dataclasses.dataclass(frozen=True)
class RawSource:
    frame: pd.DataFrame  # Date, Open, High, Low, Close, Volume, VIX
    label: str  # e.g. "builtin:sp500" or the file path
    vix_kind: str  # "real", "proxy" or "real+proxy"
    vix_first_real: pd.Timestamp | None  # first date with real VIX, if any
    # Non-fatal findings for the user, one line each naming the file (e.g. an unused Adj Close
    # column, a two-week hole in the dates). Not part of the identity: content_hash ignores them.
    notes: tuple[str, ...] = ()

    @property
    def content_hash(self) -> str:
        """sha256 of the values and dates: the cache key of everything built from this source."""
        h = hashlib.sha256()
        h.update(self.frame["Date"].to_numpy().astype("datetime64[D]").tobytes())
        for col in (*OHLCV, "VIX"):
            h.update(np.ascontiguousarray(self.frame[col].to_numpy(np.float64)).tobytes())
        h.update(self.vix_kind.encode())
        return h.hexdigest()


# ---------------------------------------------------------------------------------------------
# reading and validation
# ---------------------------------------------------------------------------------------------
def canonical_columns(df: pd.DataFrame, required: tuple[str, ...], where: str) -> pd.DataFrame:
    """Rename columns matching `required` case-insensitively; raise naming the missing ones."""
    lower = {}
    for c in df.columns:
        lower.setdefault(str(c).strip().lower(), c)
    rename, missing = {}, []
    for name in required:
        if name in df.columns:
            continue
        if name.lower() in lower:
            rename[lower[name.lower()]] = name
        else:
            missing.append(name)
    if missing:
        raise DataError(
            f"{where}: missing column(s) {', '.join(missing)}; found {', '.join(map(str, df.columns))}"
        )
    return df.rename(columns=rename)


def parse_dates(df: pd.DataFrame, where: str) -> pd.DataFrame:
    """Date -> tz-naive midnight datetime64[ns]; rejects unparseable, duplicate or unsorted dates."""
    dates = to_dates(df["Date"], where)
    if dates.isna().any():
        raise DataError(f"{where}: {int(dates.isna().sum())} empty Date value(s)")
    dup = dates.duplicated()
    if dup.any():
        raise DataError(f"{where}: duplicate date(s), first {dates[dup].iloc[0].date()}")
    step = dates.diff().iloc[1:]
    if (step <= pd.Timedelta(0)).any():
        bad = dates.iloc[1:][(step <= pd.Timedelta(0)).to_numpy()].iloc[0]
        raise DataError(f"{where}: dates are not increasing (first out of order: {bad.date()})")
    out = df.copy()
    out["Date"] = dates.to_numpy()
    return out


def validate_ohlcv(df: pd.DataFrame, where: str) -> pd.DataFrame:
    """Canonical Date + OHLCV frame: numeric, finite prices > 0, High >= Low, Volume >= 0."""
    df = canonical_columns(df, ("Date", *OHLCV), where)
    df = parse_dates(df, where)
    for col in OHLCV:
        values = pd.to_numeric(df[col], errors="coerce")
        if values.isna().any() or not np.isfinite(values.to_numpy(np.float64)).all():
            bad = df["Date"][~np.isfinite(values.to_numpy(np.float64))].iloc[0]
            n = int((~np.isfinite(values.to_numpy(np.float64))).sum())
            raise DataError(f"{where}: {n} NaN/non-numeric value(s) in {col}, first on {bad.date()}")
        df[col] = values.astype(np.float64)
    for col in PRICE_COLUMNS:
        if (df[col] <= 0).any():
            bad = df["Date"][df[col] <= 0].iloc[0]
            raise DataError(f"{where}: non-positive {col} on {bad.date()}")
    if (df["Volume"] < 0).any():
        raise DataError(f"{where}: negative Volume on {df['Date'][df['Volume'] < 0].iloc[0].date()}")
    bad_hl = df["High"] < df["Low"]
    if bad_hl.any():
        raise DataError(
            f"{where}: High < Low on {int(bad_hl.sum())} row(s), first on {df['Date'][bad_hl].iloc[0].date()}"
        )
    return df.reset_index(drop=True)


# ---------------------------------------------------------------------------------------------
# VIX
# ---------------------------------------------------------------------------------------------
def _read_vix(path: str | Path) -> pd.Series:
    where = str(path)
    df = read_table(path)
    df = canonical_columns(df, ("Date",), where)
    col = next((c for c in df.columns if str(c).strip().lower() in ("vix", "close")), None)
    if col is None:
        raise DataError(f"{where}: no VIX values; expected a column named VIX or Close next to Date")
    df = parse_dates(df, where)
    values = pd.to_numeric(df[col], errors="coerce")
    return pd.Series(values.to_numpy(np.float64), index=pd.DatetimeIndex(df["Date"]), name="VIX")


def attach_vix(ohlcv: pd.DataFrame, vix: pd.Series | None) -> tuple[pd.DataFrame, str, pd.Timestamp | None]:
    """Add a VIX column: real values where they exist (gaps inside their range forward-filled,
    i.e. the last known value), the causal GARCH proxy before the first real value."""
    proxy = garch_vol_proxy(ohlcv["Close"].to_numpy())
    out = ohlcv.copy()
    if vix is None or vix.dropna().empty:
        out["VIX"] = proxy
        return out, "proxy", None
    vix = vix.dropna()
    aligned = vix.reindex(pd.DatetimeIndex(out["Date"]), method="ffill").to_numpy()
    real = ~np.isnan(aligned)
    out["VIX"] = np.where(real, aligned, proxy)
    first = pd.Timestamp(out["Date"][real].iloc[0]) if real.any() else None
    kind = "real" if real.all() else ("real+proxy" if real.any() else "proxy")
    return out, kind, first


# ---------------------------------------------------------------------------------------------
# sources
# ---------------------------------------------------------------------------------------------
def load_builtin() -> RawSource:
    """S&P 500 (^GSPC) daily OHLCV 1999-01-04..2018-12-31 and VIX 2014+ from the `arch` package."""
    from arch.data import sp500, vix

    raw = sp500.load().reset_index()[["Date", *OHLCV]]
    ohlcv = validate_ohlcv(raw, "arch.data.sp500")
    vix_series = vix.load()["vix"]
    vix_series.index = pd.DatetimeIndex(vix_series.index).normalize()
    notes = calendar_gaps(ohlcv["Date"], "arch.data.sp500")  # none: its longest step is 7 days
    frame, kind, first = attach_vix(ohlcv, vix_series)
    return RawSource(frame=frame, label="builtin:sp500", vix_kind=kind, vix_first_real=first, notes=notes)


def _is_adjusted_close(column) -> bool:
    return str(column).lower().replace(" ", "").replace("_", "").replace(".", "") in ("adjclose", "adjustedclose")


def raw_notes(df: pd.DataFrame, ohlcv: pd.DataFrame, where: str) -> tuple[str, ...]:
    """What a user should know about a raw file that still loads (see RawSource.notes)."""
    notes = []
    if any(_is_adjusted_close(c) for c in df.columns):
        # Labels and features use Close as given, so a split or dividend in the unadjusted series
        # is a real price jump to the model; the note makes the choice visible, not silent.
        notes.append(f"{where}: Adj Close present and not used; Close (not adjusted) is used")
    return (*notes, *calendar_gaps(ohlcv["Date"], where))


def load_user(path: str | Path, vix_path: str | Path | None = None) -> RawSource:
    """A raw OHLCV CSV/parquet; VIX from `vix_path`, else from a VIX column in the file, else proxy."""
    where = str(path)
    df = read_table(path)
    ohlcv = validate_ohlcv(df, where)
    notes = raw_notes(df, ohlcv, where)
    vix = None
    if vix_path is not None:
        vix = _read_vix(vix_path)
    else:
        col = next((c for c in ohlcv.columns if str(c).strip().lower() == "vix"), None)
        if col is not None:
            vix = pd.Series(
                pd.to_numeric(ohlcv[col], errors="coerce").to_numpy(np.float64),
                index=pd.DatetimeIndex(ohlcv["Date"]),
            )
    frame, kind, first = attach_vix(ohlcv[["Date", *OHLCV]], vix)
    return RawSource(frame=frame, label=str(Path(path).expanduser()), vix_kind=kind, vix_first_real=first,
                     notes=notes)


def load_raw(cfg: DataConfig) -> RawSource:
    if cfg.source == "builtin":
        if cfg.vix is not None:
            src = load_builtin()
            frame, kind, first = attach_vix(src.frame.drop(columns="VIX"), _read_vix(cfg.vix))
            return RawSource(frame, src.label, kind, first, src.notes)
        return load_builtin()
    return load_user(cfg.source, cfg.vix)
