"""Labels and date splits on small hand-made frames (spec §5.3-5.4)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fembed_jax.data.dataset import dataset_from_frame
from fembed_jax.data.errors import DataError
from fembed_jax.data.labels import decision_labels
from fembed_jax.data.splits import split_starts


def test_threshold_label_is_next_high_vs_close_inclusive():
    close = np.array([100.0, 100.0, 100.0, 100.0, 100.0])
    high = np.array([100.0, 101.0, 100.99, 103.0, 100.0])
    y = decision_labels(high, close, "threshold_1pct", 1)
    # t=0: High[1] = 101 >= 101 (inclusive) -> 1; t=1: 100.99 < 101 -> 0; t=2: 103 -> 1; t=3: 100 -> 0
    assert y[:4].tolist() == [1.0, 0.0, 1.0, 0.0]
    assert np.isnan(y[4])  # no next day
    assert decision_labels(high, close, "threshold_2pct", 1)[:4].tolist() == [0.0, 0.0, 1.0, 0.0]
    assert decision_labels(high, close, "threshold_0.5pct", 1)[:4].tolist() == [1.0, 1.0, 1.0, 0.0]


def test_horizon_uses_max_high_and_direction_uses_close():
    close = np.array([100.0, 99.0, 98.0, 102.0, 97.0])
    high = np.array([100.0, 99.5, 101.5, 102.0, 98.0])
    y2 = decision_labels(high, close, "threshold_1pct", 2)
    # t=0: max(99.5, 101.5) >= 101 -> 1; t=1: max(101.5, 102) >= 99.99 -> 1; t=2: max(102, 98) >= 98.98 -> 1
    assert y2[:3].tolist() == [1.0, 1.0, 1.0]
    assert np.isnan(y2[3:]).all()
    d = decision_labels(high, close, "direction", 1)
    assert d[:4].tolist() == [0.0, 0.0, 1.0, 0.0]
    with pytest.raises(DataError, match="unknown task"):
        decision_labels(high, close, "threshold_7pct", 1)


def test_split_counts_match_the_spec():
    """context 80, horizon 1: train i = 0..v-81, val i = v..s-81, test i = s..n-81."""
    dates = pd.bdate_range("2010-01-01", periods=600).to_numpy()
    v, s = 250, 450
    starts = split_starts(dates, dates[v], dates[s], 81, "test")
    assert starts["train"].tolist() == list(range(0, v - 80))
    assert starts["val"].tolist() == list(range(v, s - 80))
    assert starts["test"].tolist() == list(range(s, 600 - 80))
    assert [len(starts[k]) for k in ("train", "val", "test")] == [v - 80, s - v - 80, 600 - s - 80]
    # generalised span: context 20 + horizon 3
    st = split_starts(dates, dates[v], dates[s], 23, "test")
    assert st["train"][-1] + 23 == v and st["val"][-1] + 23 == s and st["test"][-1] + 23 == 600


def test_boundary_dates_snap_to_next_trading_day():
    dates = pd.bdate_range("2014-12-01", periods=300).to_numpy()  # 2015-01-01 is a Thursday
    dates = dates[dates != np.datetime64("2015-01-01")]  # a holiday
    starts = split_starts(dates, "2015-01-01", "2015-07-04", 11, "test")  # 2015-07-04 is a Saturday
    assert pd.Timestamp(dates[starts["val"][0]]).date().isoformat() == "2015-01-02"
    assert pd.Timestamp(dates[starts["test"][0]]).date().isoformat() == "2015-07-06"


def _hand_frame(n=60):
    rng = np.random.default_rng(0)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    high = close * (1 + np.abs(rng.normal(0, 0.012, n)))
    return pd.DataFrame({
        "Date": pd.bdate_range("2020-01-01", periods=n), "Open": close, "High": high,
        "Low": close * 0.99, "Close": close, "Volume": 1e6, "f1": np.arange(n, dtype=float),
        "f2": rng.normal(size=n),
    })


def test_dataset_windows_labels_and_info():
    frame = _hand_frame()
    dates = frame["Date"]
    ds = dataset_from_frame(frame, "a20", ("f1", "f2"), "hand", dates[25], dates[45], context_length=5, horizon=1)
    assert ds.starts["train"].tolist() == list(range(0, 25 - 6 + 1))
    assert ds.starts["val"].tolist() == list(range(25, 45 - 6 + 1))
    assert ds.starts["test"].tolist() == list(range(45, 60 - 6 + 1))
    high, close = frame["High"].to_numpy(), frame["Close"].to_numpy()
    for split in ("train", "val", "test"):
        t = ds.starts[split] + 4
        expected = (high[t + 1] >= close[t] * 1.01).astype(np.float32)
        assert np.array_equal(ds.labels[split], expected)
        assert ds.labels[split].dtype == np.float32 and ds.starts[split].dtype == np.int32
    # the matrix is a float32 view source: window rows are matrix[start : start + context]
    assert ds.matrix.dtype == np.float32 and ds.matrix.shape == (60, 2)
    assert ds.matrix[ds.starts["val"][0], 0] == 25.0
    assert not ds.matrix.flags.writeable
    info = ds.split_info()
    assert info["val"]["windows"] == 15
    assert info["val"]["base_rate"] == pytest.approx(ds.labels["val"].mean())
    assert info["val"]["first_decision"] == str(dates[29].date())


def test_single_class_split_is_an_error():
    frame = _hand_frame()
    frame.loc[45:, "High"] = frame.loc[45:, "Close"]  # no 1% move in the test region
    with pytest.raises(DataError, match="test split has a single class"):
        dataset_from_frame(frame, "a20", ("f1",), "hand", frame["Date"][25], frame["Date"][45], context_length=5)


def test_region_too_short_is_an_error():
    frame = _hand_frame()
    with pytest.raises(DataError, match="the val region has 4 rows"):
        dataset_from_frame(frame, "a20", ("f1",), "hand", frame["Date"][25], frame["Date"][29], context_length=5)
    with pytest.raises(DataError, match="outside the usable dates"):
        dataset_from_frame(frame, "a20", ("f1",), "hand", "2019-01-01", frame["Date"][45], context_length=5)
