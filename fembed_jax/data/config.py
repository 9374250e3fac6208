"""Where fembed's data comes from (`DataConfig`), validated from a registry's ``[data]`` table."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from fembed_jax.data.errors import DataError
from fembed_jax.registry import DATE_KEYS

TIERS = ("a20", "a50", "a100", "a200", "a500")

# The original's file names (data/processed/v1/), used when a tier_dir holds ready tier files.
DEFAULT_TIER_FILES = {
    "a20": "SPY_dataset_a20.parquet",
    "a50": "SPY_dataset_a50_combined.parquet",
    "a100": "SPY_dataset_a100_combined.parquet",
    "a200": "SPY_dataset_a200_combined.parquet",
    "a500": "SPY_dataset_a500_combined.parquet",
}

BUILTIN = "builtin"


def _repo_root() -> Path | None:
    root = Path(__file__).resolve().parents[2]
    return root if (root / "pyproject.toml").exists() else None


def default_cache_dir() -> Path:
    """$FEMBED_CACHE, else <repo>/.cache/fembed-data, else ~/.cache/fembed-data (installed package)."""
    if os.environ.get("FEMBED_CACHE"):
        return Path(os.environ["FEMBED_CACHE"]).expanduser()
    root = _repo_root()
    return (root / ".cache" / "fembed-data") if root else Path.home() / ".cache" / "fembed-data"


@dataclasses.dataclass(frozen=True)
class DataConfig:
    """Data source and split dates.

    source:     "builtin" (S&P 500 1999-2018 from the `arch` package) or a path to a raw daily
                OHLCV CSV/parquet (Date, Open, High, Low, Close, Volume [, VIX]).
    vix:        optional path to a daily VIX file (Date + Close or VIX column).
    tier_dir:   optional directory with ready tier parquets in the original's layout; when set,
                tiers are read from it as they are and `source`/`vix` are not used.
    tier_files: optional {tier: file name} overrides inside tier_dir (default: the original's names).
    val_start, test_start: first calendar dates of the validation and test regions (snapped to
                the next trading day).
    test_end:   None (the test region runs to the end of the data) or the first calendar date
                after it: a walk-forward fold's (fembed_jax.folds) test period ends where the next
                fold's begins.
    cache_dir:  where built tiers are cached (None: $FEMBED_CACHE or <repo>/.cache/fembed-data).
    """

    source: str = BUILTIN
    vix: str | None = None
    tier_dir: str | None = None
    tier_files: tuple[tuple[str, str], ...] = ()
    val_start: str = "2015-01-01"
    test_start: str = "2017-01-01"
    test_end: str | None = None
    cache_dir: str | None = None

    def __post_init__(self):
        where = "DataConfig"
        for name in DATE_KEYS:
            value = getattr(self, name)
            if value is None and name == "test_end":
                continue
            try:
                pd.Timestamp(value)
            except (ValueError, TypeError) as exc:
                raise DataError(f"{where}: {name}={value!r} is not a date ({exc})") from None
        if pd.Timestamp(self.val_start) >= pd.Timestamp(self.test_start):
            raise DataError(f"{where}: val_start {self.val_start} must be before test_start {self.test_start}")
        if self.test_end is not None and pd.Timestamp(self.test_start) >= pd.Timestamp(self.test_end):
            raise DataError(f"{where}: test_start {self.test_start} must be before test_end {self.test_end}")
        if isinstance(self.tier_files, Mapping):
            object.__setattr__(self, "tier_files", tuple(sorted(self.tier_files.items())))
        for tier, _ in self.tier_files:
            if tier not in TIERS:
                raise DataError(f"{where}: tier_files has unknown tier {tier!r}; tiers are {', '.join(TIERS)}")

    # ---- derived -------------------------------------------------------------------------
    @property
    def is_builtin(self) -> bool:
        return self.tier_dir is None and self.source == BUILTIN

    def resolved_cache_dir(self) -> Path:
        return Path(self.cache_dir).expanduser() if self.cache_dir else default_cache_dir()

    def tier_file(self, tier: str) -> Path:
        """Path of the ready tier file for `tier` inside tier_dir."""
        if self.tier_dir is None:
            raise DataError(f"DataConfig: no tier_dir set, cannot locate a ready file for tier {tier}")
        name = dict(self.tier_files).get(tier, DEFAULT_TIER_FILES[tier])
        return Path(self.tier_dir).expanduser() / name

    def with_data_path(self, path: str | os.PathLike) -> "DataConfig":
        """The `--data PATH` override: a file is a raw OHLCV source, a directory a tier_dir."""
        p = Path(path).expanduser()
        if p.is_dir():
            return dataclasses.replace(self, tier_dir=str(p))
        if p.is_file():
            return dataclasses.replace(self, source=str(p), tier_dir=None)
        raise DataError(f"--data {path}: no such file or directory")

    # ---- construction from a registry table ------------------------------------------------
    @classmethod
    def from_mapping(cls, mapping: Mapping, source_file: str | os.PathLike = "<mapping>") -> "DataConfig":
        """Build from e.g. the registry's ``[data]`` table.

        Unknown keys and wrongly typed values raise DataError naming `source_file` and the key.
        Relative paths (source, vix, tier_dir, cache_dir) are resolved against the directory of
        `source_file` when that file exists, so a table means the same from any working directory.
        """
        fields = {f.name: f for f in dataclasses.fields(cls)}
        base = Path(source_file).resolve().parent if Path(str(source_file)).is_file() else None
        kwargs = {}
        for key, value in dict(mapping).items():
            if key not in fields:
                raise DataError(
                    f"{source_file}: unknown key {key!r} in [data]; allowed keys: {', '.join(fields)}"
                )
            if key == "tier_files":
                if not isinstance(value, Mapping) or not all(
                    isinstance(k, str) and isinstance(v, str) for k, v in value.items()
                ):
                    raise DataError(f"{source_file}: [data] tier_files must be a table of tier = \"file name\"")
                kwargs[key] = tuple(sorted(value.items()))
                continue
            if hasattr(value, "isoformat") and key in DATE_KEYS:
                value = value.isoformat()  # TOML dates arrive as datetime.date
            if value is not None and not isinstance(value, str):
                raise DataError(f"{source_file}: [data] {key} must be a string, got {type(value).__name__}")
            if key in ("source", "vix", "tier_dir", "cache_dir") and value and base is not None:
                if not (key == "source" and value == BUILTIN) and not Path(value).expanduser().is_absolute():
                    value = str(base / value)
            kwargs[key] = value
        try:
            return cls(**kwargs)
        except DataError as exc:
            raise DataError(f"{source_file}: [data] {str(exc).removeprefix('DataConfig: ')}") from None
