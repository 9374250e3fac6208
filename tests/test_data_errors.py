"""Bad input raises DataError naming the file and what is wrong."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fembed_jax.data import DataConfig, DataError, load_dataset
from fembed_jax.data.synthetic import random_walk_ohlcv

VAL, TEST = "2002-06-01", "2003-01-01"  # inside an 800-row business-day frame from 2001-01-01


@pytest.fixture
def raw():
    return random_walk_ohlcv(800, seed=1)


def _load(tmp_path, frame, tier="a20", suffix=".csv", **cfg):
    path = tmp_path / f"raw{suffix}"
    if suffix == ".csv":
        frame.to_csv(path, index=False)
    else:
        frame.to_parquet(path, index=False)
    config = DataConfig(source=str(path), val_start=cfg.pop("val_start", VAL), test_start=cfg.pop("test_start", TEST),
                        cache_dir=str(tmp_path / "cache"), **cfg)
    return load_dataset(tier, config), path


def test_good_synthetic_file_loads(tmp_path, raw):
    ds, _ = _load(tmp_path, raw)
    assert ds.num_features == 20 and all(len(ds.starts[k]) > 0 for k in ("train", "val", "test"))


def test_missing_column(tmp_path, raw):
    with pytest.raises(DataError, match=r"raw\.csv: missing column\(s\) Volume"):
        _load(tmp_path, raw.drop(columns="Volume"))


def test_misnamed_column(tmp_path, raw):
    with pytest.raises(DataError, match=r"raw\.parquet: missing column\(s\) Close"):
        _load(tmp_path, raw.rename(columns={"Close": "Last"}), suffix=".parquet")


def test_lowercase_columns_are_accepted(tmp_path, raw):
    ds, _ = _load(tmp_path, raw.rename(columns=str.lower))
    assert ds.num_features == 20


def test_non_monotonic_dates(tmp_path, raw):
    bad = raw.copy()
    bad.loc[[100, 101], "Date"] = bad.loc[[101, 100], "Date"].to_numpy()
    with pytest.raises(DataError, match=r"raw\.csv: dates are not increasing"):
        _load(tmp_path, bad)


def test_duplicate_dates(tmp_path, raw):
    bad = raw.copy()
    bad.loc[200, "Date"] = bad.loc[199, "Date"]
    with pytest.raises(DataError, match=r"raw\.csv: duplicate date\(s\), first 2001-10-05"):
        _load(tmp_path, bad)


def test_nan_prices(tmp_path, raw):
    bad = raw.copy()
    bad.loc[300, "Close"] = np.nan
    with pytest.raises(DataError, match=r"raw\.csv: 1 NaN/non-numeric value\(s\) in Close, first on 2002-02-25"):
        _load(tmp_path, bad)


def test_high_below_low(tmp_path, raw):
    bad = raw.copy()
    bad.loc[400, "High"] = bad.loc[400, "Low"] * 0.9
    with pytest.raises(DataError, match=r"raw\.csv: High < Low on 1 row\(s\)"):
        _load(tmp_path, bad)


def test_too_few_rows_for_the_warmup(tmp_path, raw):
    with pytest.raises(DataError, match=r"raw\.csv: 150 rows is too few for tier a20 \(warm-up 199"):
        _load(tmp_path, raw.iloc[:150])


def test_too_few_rows_for_a_split(tmp_path, raw):
    # test region: the last 40 rows, shorter than context 80 + horizon 1
    test_start = str(raw["Date"].iloc[-40].date())
    with pytest.raises(DataError, match=r"the test region has 40 rows.*too few for one window of 81"):
        _load(tmp_path, raw, test_start=test_start)


def test_split_boundary_outside_the_data(tmp_path, raw):
    with pytest.raises(DataError, match=r"test_start 2030-01-01 is outside the usable dates"):
        _load(tmp_path, raw, test_start="2030-01-01")


def test_single_class_split(tmp_path, raw):
    calm = raw.copy()
    late = calm["Date"] >= pd.Timestamp(TEST)
    close = calm.loc[late, "Close"].iloc[0] * (1 + 0.001 * np.sin(np.arange(late.sum())))
    calm.loc[late, ["Open", "Close"]] = np.c_[close, close]
    calm.loc[late, "High"], calm.loc[late, "Low"] = close * 1.001, close * 0.999  # never +1% next day
    with pytest.raises(DataError, match=r"the test split has a single class \(0\) for task threshold_1pct"):
        _load(tmp_path, calm)


def _write_tier_dir(tmp_path, tier, drop=0, nan=False):
    ds_dir = tmp_path / "tiers"
    ds_dir.mkdir(exist_ok=True)
    from fembed_jax.data.build import build_tier_frames
    from fembed_jax.data.sources import attach_vix

    raw, _, _ = attach_vix(random_walk_ohlcv(800, seed=1), None)
    frame = build_tier_frames(raw, (tier,), "synthetic")[tier]
    if drop:
        frame = frame.iloc[:, : frame.shape[1] - drop]
    if nan:
        frame.iloc[10, 8] = np.nan
    path = ds_dir / "SPY_dataset_a20.parquet"
    frame.to_parquet(path, index=False)
    return ds_dir, path


def test_tier_file_with_a_missing_feature_names_it(tmp_path):
    tier_dir, _ = _write_tier_dir(tmp_path, "a20", drop=1)
    cfg = DataConfig(tier_dir=str(tier_dir), val_start=VAL, test_start=TEST)
    with pytest.raises(DataError, match=r"SPY_dataset_a20\.parquet: columns do not match tier a20's 20 features; "
                                        r"missing: vwap_20$"):
        load_dataset("a20", cfg)


def test_tier_file_missing(tmp_path):
    tier_dir, _ = _write_tier_dir(tmp_path, "a20")
    cfg = DataConfig(tier_dir=str(tier_dir), val_start=VAL, test_start=TEST)
    with pytest.raises(DataError, match=r"SPY_dataset_a50_combined\.parquet: file not found"):
        load_dataset("a50", cfg)


def test_tier_file_with_nan_feature(tmp_path):
    tier_dir, _ = _write_tier_dir(tmp_path, "a20", nan=True)
    cfg = DataConfig(tier_dir=str(tier_dir), val_start=VAL, test_start=TEST)
    with pytest.raises(DataError, match=r"SPY_dataset_a20\.parquet: feature \w+ is NaN/inf"):
        load_dataset("a20", cfg)


def test_unknown_tier_task_and_bad_arguments(tmp_path, raw):
    with pytest.raises(DataError, match="unknown tier 'a30'"):
        load_dataset("a30")
    with pytest.raises(DataError, match="unknown task 'up'"):
        load_dataset("a20", task="up")
    with pytest.raises(DataError, match="horizon must be a positive integer"):
        load_dataset("a20", horizon=0)


def test_config_errors(tmp_path):
    with pytest.raises(DataError, match=r"reg\.toml: unknown key 'sorce' in \[data\]"):
        DataConfig.from_mapping({"sorce": "builtin"}, "reg.toml")
    with pytest.raises(DataError, match=r"reg\.toml: \[data\] val_start='2015-13-01' is not a date"):
        DataConfig.from_mapping({"val_start": "2015-13-01"}, "reg.toml")
    with pytest.raises(DataError, match=r"reg\.toml: \[data\] val_start 2018-01-01 must be before test_start"):
        DataConfig.from_mapping({"val_start": "2018-01-01"}, "reg.toml")
    with pytest.raises(DataError, match=r"reg\.toml: \[data\] cache_dir must be a string"):
        DataConfig.from_mapping({"cache_dir": 3}, "reg.toml")
    with pytest.raises(DataError, match=r"--data .*nope: no such file or directory"):
        DataConfig().with_data_path(tmp_path / "nope")
    with pytest.raises(DataError, match=r"nope\.csv: file not found"):
        load_dataset("a20", DataConfig(source=str(tmp_path / "nope.csv")))
    bad = tmp_path / "raw.txt"
    bad.write_text("x")
    with pytest.raises(DataError, match=r"raw\.txt: unsupported file type"):
        load_dataset("a20", DataConfig(source=str(bad)))
