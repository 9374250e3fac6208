"""Files as people have them: yfinance's layouts, other separators, holes in the dates, ready tier
folders with the wrong columns. Built from the built-in S&P 500, so every file is real-shaped."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fembed_jax.data import DataConfig, DataError, feature_names, load_dataset
from fembed_jax.data.build import build_tier_frames
from fembed_jax.data.config import DEFAULT_TIER_FILES
from fembed_jax.data.sources import OHLCV, load_builtin, load_user
from fembed_jax.data.tierstore import source_id_for

# The built-in source id, as cached results carry it: no change here may alter it.
BUILTIN_SOURCE_ID = "builtin:sp500|vix=real+proxy|sha256=2dd7a349d84f4796|fembed-data-v1"


@pytest.fixture(scope="module")
def builtin():
    return load_builtin()


@pytest.fixture(scope="module")
def ohlcv(builtin):
    return builtin.frame[["Date", *OHLCV]]


@pytest.fixture(scope="module")
def a20(builtin):
    return build_tier_frames(builtin.frame, ("a20",), "builtin")["a20"]


def _same_prices(src, ohlcv):
    assert src.frame["Date"].equals(ohlcv["Date"])
    np.testing.assert_allclose(src.frame[list(OHLCV)].to_numpy(), ohlcv[list(OHLCV)].to_numpy(), rtol=1e-12)


def _yfinance_download(ohlcv: pd.DataFrame, tickers=("SPY",)) -> pd.DataFrame:
    """What `yfinance.download(...)` returns: (Price, Ticker) columns, a Date index."""
    prices = ohlcv.set_index("Date").assign(**{"Adj Close": lambda f: f["Close"] * 0.9})
    prices = prices[["Adj Close", "Close", "High", "Low", "Open", "Volume"]]
    frame = pd.concat({t: prices for t in tickers}, axis=1).swaplevel(axis=1)
    frame.columns.names = ["Price", "Ticker"]
    return frame


def test_builtin_source_id_and_notes_are_unchanged(builtin):
    assert source_id_for(builtin) == BUILTIN_SOURCE_ID
    assert builtin.notes == ()  # holidays and the 9/11 closure (4 weekdays) are not gaps


def test_yfinance_download_csv_with_three_header_rows(tmp_path, ohlcv):
    path = tmp_path / "spy.csv"
    _yfinance_download(ohlcv).to_csv(path)
    assert path.read_text().splitlines()[:3] == [
        "Price,Adj Close,Close,High,Low,Open,Volume", "Ticker,SPY,SPY,SPY,SPY,SPY,SPY", "Date,,,,,,"]
    src = load_user(path)
    _same_prices(src, ohlcv)
    assert src.notes == (f"{path}: Adj Close present and not used; Close (not adjusted) is used",)


def test_yfinance_csv_with_several_tickers_is_rejected(tmp_path, ohlcv):
    path = tmp_path / "two.csv"
    _yfinance_download(ohlcv.iloc[:300], ("QQQ", "SPY")).to_csv(path)
    with pytest.raises(DataError, match=r"two\.csv: yfinance file with several tickers \(QQQ, SPY\)"):
        load_user(path)


def test_tz_aware_dates_take_the_local_day(tmp_path, ohlcv):
    # yf.Ticker("SPY").history(period="max").to_csv(): New York midnights, -05:00 and -04:00 (DST)
    hist = ohlcv.set_index("Date").assign(Dividends=0.0, **{"Stock Splits": 0.0})
    hist.index = hist.index.tz_localize("America/New_York")
    path = tmp_path / "hist.csv"
    hist.to_csv(path)
    text = path.read_text()
    assert "\n1999-01-04 00:00:00-05:00," in text and "\n1999-07-01 00:00:00-04:00," in text
    src = load_user(path)
    _same_prices(src, ohlcv)
    assert src.notes == ()


def test_semicolon_and_decimal_comma_files(tmp_path, ohlcv):
    semi = tmp_path / "semi.csv"
    ohlcv.to_csv(semi, sep=";", index=False)
    _same_prices(load_user(semi), ohlcv)
    euro = tmp_path / "euro.csv"
    ohlcv.to_csv(euro, sep=";", decimal=",", index=False)
    _same_prices(load_user(euro), ohlcv)
    tab = tmp_path / "tab.csv"
    ohlcv.to_csv(tab, sep="\t", index=False)
    _same_prices(load_user(tab), ohlcv)


def test_a_bad_date_is_named_without_pandas_advice(tmp_path, ohlcv):
    bad = ohlcv.astype({"Date": str})
    bad.loc[317, "Date"] = "2000-02-30"
    path = tmp_path / "bad.csv"
    bad.to_csv(path, index=False)
    with pytest.raises(DataError, match=r"bad\.csv: column Date: '2000-02-30' \(data row 318\) is not a date$"):
        load_user(path)
    mixed = ohlcv.astype({"Date": str})
    mixed.loc[5, "Date"] = "1999-01-12 00:00:00+01:00 Europe"  # garbage after the offset
    mixed.to_csv(path, index=False)
    with pytest.raises(DataError) as exc:
        load_user(path)
    assert "utc=True" not in str(exc.value) and "data row 6" in str(exc.value)


def test_a_missing_year_is_an_error_naming_the_span(tmp_path, ohlcv):
    path = tmp_path / "hole.csv"
    ohlcv[ohlcv["Date"].dt.year != 2006].to_csv(path, index=False)
    with pytest.raises(DataError, match=r"hole\.csv: 2006-01-02\.\.2007-01-02 missing: no rows between 2005-12-30 "
                                        r"and 2007-01-03 \(369 calendar days, more than 30\)"):
        load_user(path)


def test_a_three_week_hole_is_a_note_that_reaches_the_dataset(tmp_path, ohlcv):
    path = tmp_path / "spy.csv"
    hole = (ohlcv["Date"] >= "2010-03-01") & (ohlcv["Date"] < "2010-03-20")
    ohlcv[~hole].assign(**{"Adj Close": ohlcv["Close"]}).to_csv(path, index=False)
    ds = load_dataset("a20", DataConfig(source=str(path), cache_dir=str(tmp_path / "cache")))
    assert ds.notes == (
        f"{path}: Adj Close present and not used; Close (not adjusted) is used",
        f"{path}: 2010-03-01..2010-03-19 missing (15 weekdays without a row); indicators run across the gap",
    )
    assert ds.feature_names == feature_names("a20")


def _tier_dir(tmp_path, frame):
    folder = tmp_path / "processed"
    folder.mkdir(exist_ok=True)
    frame.to_parquet(folder / DEFAULT_TIER_FILES["a20"], index=False)
    return DataConfig(tier_dir=str(folder))


def test_tier_file_with_adj_close_instead_of_a_feature_is_rejected(tmp_path, a20):
    swapped = a20.rename(columns={"sma_50": "Adj Close"})
    with pytest.raises(DataError, match=r"SPY_dataset_a20\.parquet: columns do not match tier a20's 20 features; "
                                        r"missing: sma_50; unexpected: Adj Close$"):
        load_dataset("a20", _tier_dir(tmp_path, swapped))
    extra = a20.assign(label=0.0)  # 21 columns: a merged-in label would have become a feature
    with pytest.raises(DataError, match=r"; unexpected: label$"):
        load_dataset("a20", _tier_dir(tmp_path, extra))


def test_tier_file_features_are_taken_by_name(tmp_path, a20):
    names = list(feature_names("a20"))
    straight = load_dataset("a20", _tier_dir(tmp_path, a20))
    assert straight.notes == ()
    reordered = a20[["Date", *OHLCV, *names[::-1]]]
    ds = load_dataset("a20", _tier_dir(tmp_path, reordered))
    assert ds.feature_names == feature_names("a20")
    np.testing.assert_array_equal(ds.matrix, straight.matrix)
    assert ds.notes == (f"{tmp_path / 'processed' / DEFAULT_TIER_FILES['a20']}: "
                        "feature columns reordered by name to tier a20's order",)
    assert ds.source_id.startswith(f"tier_file:{DEFAULT_TIER_FILES['a20']}|sha256=")
    assert "|features=" in ds.source_id and ds.source_id.endswith("|fembed-data-v1")
