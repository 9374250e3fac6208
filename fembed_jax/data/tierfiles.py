"""Tier frames from disk: ready tier files in the original's layout, and fembed's own cache.

Layout (the original's "combined" parquet): Date, Open, High, Low, Close, Volume + one column per
feature. The cache uses the same layout, so a cache file is also a valid ready tier file.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from fembed_jax.data.errors import DataError
from fembed_jax.data.sources import OHLCV, read_table, validate_ohlcv

NON_FEATURES = ("Date", *OHLCV)


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def read_tier_file(path: str | Path, expected_features: int, tier: str) -> pd.DataFrame:
    """Read and validate a ready tier file; features are every non-OHLCV column, in file order."""
    path = Path(path).expanduser()
    where = str(path)
    df = validate_ohlcv(read_table(path), where)
    features = [c for c in df.columns if c not in NON_FEATURES]
    if len(features) != expected_features:
        raise DataError(
            f"{where}: tier {tier} needs {expected_features} feature columns besides Date/OHLCV, "
            f"found {len(features)}"
        )
    for col in features:
        if not pd.api.types.is_numeric_dtype(df[col]):
            raise DataError(f"{where}: feature column {col!r} is not numeric (dtype {df[col].dtype})")
    block = df[features].to_numpy(np.float64)
    bad = ~np.isfinite(block)
    if bad.any():
        row, col = np.argwhere(bad)[0]
        raise DataError(
            f"{where}: feature {features[col]} is NaN/inf on {pd.Timestamp(df['Date'].iloc[row]).date()} "
            f"({int(bad.sum())} bad value(s) in all)"
        )
    return df[[*NON_FEATURES, *features]]


def write_parquet_atomic(frame: pd.DataFrame, path: Path) -> None:
    """Write to a temporary file in the same directory, then os.replace: readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        frame.to_parquet(tmp, index=False)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


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
