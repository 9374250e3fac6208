"""load_dataset end to end: built-in data, cache, user raw files, ready tier files, config, CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fembed_jax.data import DataConfig, feature_names, load_dataset
from fembed_jax.data import tierstore
from fembed_jax.data.config import DEFAULT_TIER_FILES
from fembed_jax.data.sources import load_builtin

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("FEMBED_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_builtin_a100_matches_the_documented_protocol(cache):
    ds = load_dataset("a100")
    assert ds.feature_names == feature_names("a100")
    assert ds.matrix.shape == (4779, 100) and ds.matrix.dtype == np.float32
    assert not ds.matrix.flags.writeable
    assert str(ds.dates[0]) == "2000-01-03" and str(ds.dates[-1]) == "2018-12-31"
    info = ds.split_info()
    assert [info[k]["windows"] for k in ("train", "val", "test")] == [3693, 424, 422]
    assert 0.15 < info["val"]["base_rate"] < 0.21
    assert ds.val_start == "2015-01-02" and ds.test_start == "2017-01-03"
    assert ds.source_id.startswith("builtin:sp500|vix=real+proxy|sha256=")
    # labels are High[t+1] >= 1.01 Close[t] of the decision day t = start + 79
    raw = load_builtin().frame.set_index("Date")
    t = ds.starts["val"] + 79
    day, nxt = ds.dates[t].astype("datetime64[ns]"), ds.dates[t + 1].astype("datetime64[ns]")
    expected = raw.loc[nxt, "High"].to_numpy() >= 1.01 * raw.loc[day, "Close"].to_numpy()
    assert np.array_equal(ds.labels["val"], expected.astype(np.float32))
    # windows never cross a boundary
    v = int(np.searchsorted(ds.dates, np.datetime64("2015-01-02")))
    assert ds.starts["train"][-1] + 81 == v and ds.starts["val"][0] == v


def test_cache_is_reused_and_keyed_by_code_version(cache, monkeypatch):
    cfg = DataConfig()
    first = tierstore.tier_frame(cfg, "a50")
    assert first.built and first.path.parent == cache and first.path.is_file()
    assert sorted(p.name.split("-")[0] for p in cache.glob("*.parquet")) == ["a20", "a50"]  # lower tier too
    second = tierstore.tier_frame(cfg, "a50")
    assert not second.built and second.frame.equals(first.frame)
    assert not list(cache.glob("*.tmp"))
    # The built-in source's identity is remembered: a cached tier loads without the raw data...
    real_load_raw = tierstore.load_raw
    monkeypatch.setattr(tierstore, "load_raw", lambda cfg: pytest.fail("raw data loaded"))
    assert tierstore.tier_frame(cfg, "a50").source_id == first.source_id
    # ...until the package that ships it changes version (then the raw data is hashed again).
    monkeypatch.setattr(tierstore, "_arch_version", lambda: "another-version")
    loads = []
    monkeypatch.setattr(tierstore, "load_raw", lambda cfg: loads.append(1) or real_load_raw(cfg))
    assert not tierstore.tier_frame(cfg, "a50").built and loads == [1]
    monkeypatch.setattr(tierstore, "CODE_VERSION", "test-bump")
    third = tierstore.tier_frame(cfg, "a50")
    assert third.built and third.path != first.path
    third.path.write_bytes(b"not a parquet file")  # a damaged cache file is rebuilt
    assert tierstore.tier_frame(cfg, "a50").built


def test_user_raw_files_csv_parquet_and_vix(tmp_path):
    src = load_builtin().frame
    ohlcv = src[["Date", "Open", "High", "Low", "Close", "Volume"]]
    with_vix = src.rename(columns={"VIX": "vix"})
    with_vix.to_parquet(tmp_path / "spx.parquet", index=False)
    ohlcv.to_csv(tmp_path / "spx.csv", index=False)
    src[["Date", "VIX"]].rename(columns={"VIX": "Close"}).to_csv(tmp_path / "vix.csv", index=False)
    base = DataConfig(cache_dir=str(tmp_path / "cache"))
    builtin = load_dataset("a50", base)
    from_parquet = load_dataset("a50", DataConfig(source=str(tmp_path / "spx.parquet"), cache_dir=base.cache_dir))
    np.testing.assert_array_equal(from_parquet.matrix, builtin.matrix)
    assert from_parquet.source_id.split("|")[0].endswith("spx.parquet")
    from_csv = load_dataset("a50", DataConfig(source=str(tmp_path / "spx.csv"), vix=str(tmp_path / "vix.csv"),
                                              cache_dir=base.cache_dir))
    np.testing.assert_allclose(from_csv.matrix, builtin.matrix, rtol=1e-6)
    proxy_only = load_dataset("a50", DataConfig(source=str(tmp_path / "spx.csv"), cache_dir=base.cache_dir))
    assert "vix=proxy" in proxy_only.source_id
    np.testing.assert_array_equal(proxy_only.matrix[:, :20], builtin.matrix[:, :20])  # a20 needs no VIX


def test_ready_tier_files_are_used_as_they_are(tmp_path):
    cfg = DataConfig(cache_dir=str(tmp_path / "cache"))
    frames = tierstore.build_and_cache(cfg, ("a20", "a100"))
    tier_dir = tmp_path / "processed"
    tier_dir.mkdir()
    for tier, tf in frames.items():
        tf.frame.to_parquet(tier_dir / DEFAULT_TIER_FILES[tier], index=False)
    for tier in ("a20", "a100"):
        ds = load_dataset(tier, DataConfig(tier_dir=str(tier_dir)))
        ref = load_dataset(tier, cfg)
        np.testing.assert_array_equal(ds.matrix, ref.matrix)
        assert all(np.array_equal(ds.starts[k], ref.starts[k]) for k in ref.starts)
        assert ds.source_id.startswith(f"tier_file:{DEFAULT_TIER_FILES[tier]}|sha256=")


def test_horizon_and_context_generalise(cache):
    ds = load_dataset("a20", horizon=3, context_length=40, task="threshold_2pct")
    v = int(np.searchsorted(ds.dates, np.datetime64(ds.val_start)))
    s = int(np.searchsorted(ds.dates, np.datetime64(ds.test_start)))
    assert len(ds.starts["train"]) == v - 43 + 1 and len(ds.starts["val"]) == s - v - 43 + 1
    assert len(ds.starts["test"]) == len(ds.dates) - s - 43 + 1
    direction = load_dataset("a20", task="direction")
    assert 0.45 < direction.split_info()["train"]["base_rate"] < 0.6


def test_config_from_mapping_and_data_override(tmp_path):
    reg = tmp_path / "registry" / "experiments.toml"
    reg.parent.mkdir()
    reg.write_text("")
    cfg = DataConfig.from_mapping(
        {"source": "../data/spy.csv", "val_start": pd.Timestamp("2023-01-01").date(), "test_start": "2025-01-01",
         "tier_files": {"a20": "a20.parquet"}}, reg)
    assert cfg.source == str(tmp_path / "registry" / ".." / "data" / "spy.csv")
    assert cfg.val_start == "2023-01-01" and dict(cfg.tier_files) == {"a20": "a20.parquet"}
    assert DataConfig.from_mapping({"source": "builtin"}, reg).is_builtin
    (tmp_path / "f.csv").write_text("x")
    assert DataConfig().with_data_path(tmp_path / "f.csv").source == str(tmp_path / "f.csv")
    over = cfg.with_data_path(tmp_path)
    assert over.tier_dir == str(tmp_path) and over.tier_file("a20") == tmp_path / "a20.parquet"
    assert over.tier_file("a500") == tmp_path / "SPY_dataset_a500_combined.parquet"


def test_cli_build_info_and_errors(cache, tmp_path, capsys, monkeypatch):
    from fembed_jax.cli.main import main

    monkeypatch.chdir(REPO)
    assert main(["data", "build", "--tier", "a20"]) == 0
    capsys.readouterr()
    assert main(["data", "info", "--tier", "a20", "--tier", "a50", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["tier"] for r in rows] == ["a20", "a50"]
    assert [rows[1]["splits"][k]["windows"] for k in ("train", "val", "test")] == [3693, 424, 422]
    assert main(["data", "info", "--tier", "a20"]) == 0
    assert "3,746" in capsys.readouterr().out
    assert main(["data", "info", "--data", str(tmp_path / "missing.csv")]) == 2
    assert "no such file or directory" in " ".join(capsys.readouterr().err.split())  # rich wraps lines
    bad = tmp_path / "bad.csv"
    pd.DataFrame({"Date": ["2020-01-01"], "Open": [1.0]}).to_csv(bad, index=False)
    assert main(["data", "info", "--data", str(bad)]) == 2
    assert "missing column(s) High, Low, Close, Volume" in " ".join(capsys.readouterr().err.split())


@pytest.mark.slow
def test_data_card_is_current(cache, tmp_path, monkeypatch):
    """docs/data_card.md must equal what `fembed data card` generates now (regenerate it if not)."""
    from fembed_jax.cli.main import main

    monkeypatch.chdir(REPO)
    out = tmp_path / "card.md"
    assert main(["data", "card", "--output", str(out)]) == 0
    text = out.read_text()
    assert text.count("\n| ") >= 500 + 5
    assert text == (REPO / "docs" / "data_card.md").read_text(), "run `fembed data card` to refresh docs/data_card.md"
