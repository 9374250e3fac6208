"""Tier frames from disk: ready tier files in the original's layout, and fembed's own cache.

Layout (the original's "combined" parquet): Date, Open, High, Low, Close, Volume + one column per
feature. The cache uses the same layout, so a cache file is also a valid ready tier file.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd

from fembed_jax.atomic import atomic_write
from fembed_jax.data.dates import calendar_gaps
from fembed_jax.data.errors import DataError
from fembed_jax.data.sources import OHLCV, read_table, validate_ohlcv

NON_FEATURES = ("Date", *OHLCV)


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def features_digest(names: tuple[str, ...]) -> str:
    """sha256 of the feature names in order: which columns, in which order, a model was given."""
    return hashlib.sha256("\n".join(names).encode()).hexdigest()


def _listed(names: list[str], limit: int = 8) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f" (+{len(names) - limit} more)" if len(names) > limit else "")


def match_features(columns: list[str], names: tuple[str, ...], where: str, tier: str) -> bool:
    """Check a tier file's feature columns BY NAME against the tier's canonical list.

    Taking "every non-OHLCV column" would train on whatever else the file holds (an Adj Close
    column, a label) and accept a file whose columns merely number right. Returns whether the
    file's order differs from the canonical one (the caller reorders by name).
    """
    present, wanted = set(columns), set(names)
    missing = [n for n in names if n not in present]
    unexpected = [c for c in columns if c not in wanted]
    if missing or unexpected:
        parts = [f"missing: {_listed(missing)}" if missing else "",
                 f"unexpected: {_listed(unexpected)}" if unexpected else ""]
        raise DataError(
            f"{where}: columns do not match tier {tier}'s {len(names)} features; "
            + "; ".join(p for p in parts if p)
        )
    return tuple(columns) != names


def read_tier_file(path: str | Path, names: tuple[str, ...], tier: str) -> tuple[pd.DataFrame, tuple[str, ...]]:
    """Read and validate a ready tier file: (frame with the features in `names` order, notes)."""
    path = Path(path).expanduser()
    where = str(path)
    df = validate_ohlcv(read_table(path), where)
    columns = [str(c) for c in df.columns if c not in NON_FEATURES]
    if len(columns) != len(set(columns)):
        dup = next(c for c in columns if columns.count(c) > 1)
        raise DataError(f"{where}: column {dup!r} appears more than once")
    notes = list(calendar_gaps(df["Date"], where))
    if match_features(columns, names, where, tier):
        notes.append(f"{where}: feature columns reordered by name to tier {tier}'s order")
    for col in names:
        if not pd.api.types.is_numeric_dtype(df[col]):
            raise DataError(f"{where}: feature column {col!r} is not numeric (dtype {df[col].dtype})")
    block = df[list(names)].to_numpy(np.float64)
    bad = ~np.isfinite(block)
    if bad.any():
        row, col = np.argwhere(bad)[0]
        raise DataError(
            f"{where}: feature {names[col]} is NaN/inf on {pd.Timestamp(df['Date'].iloc[row]).date()} "
            f"({int(bad.sum())} bad value(s) in all)"
        )
    return df[[*NON_FEATURES, *names]], tuple(notes)


def write_parquet_atomic(frame: pd.DataFrame, path: Path) -> None:
    """Readers never see half a file (fembed_jax.atomic)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda handle: frame.to_parquet(handle, index=False))


def read_cached(path: Path, names: tuple[str, ...]) -> pd.DataFrame | None:
    """A cached tier frame, or None when it is missing, unreadable or has other columns."""
    if not path.is_file():
        return None
    try:
        frame = pd.read_parquet(path)
    except Exception:  # noqa: BLE001 - a damaged cache file is rebuilt
        return None
    if tuple(frame.columns) != (*NON_FEATURES, *names):
        return None
    return frame
