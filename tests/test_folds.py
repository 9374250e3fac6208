"""Walk-forward folds (`fembed run --folds K`): ids, split dates, the plan, and a real run on
the built-in a20 data through the report (fold by fold and across folds)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fembed_jax import folds
from fembed_jax.cli.main import main
from fembed_jax.data.config import DataConfig
from fembed_jax.data.errors import DataError
from fembed_jax.data.splits import split_starts
from fembed_jax.registry import load_registry
from fembed_jax.store import RunStore
from fembed_jax.train.plan import RunOptions, data_identity, make_plan, plan_groups, run_hash
from helpers import TINY_BCE, tiny_config, tiny_registry, write_project

ONE = TINY_BCE
# Two experiments of one structure (they share a program) and the same fold dates.
TWO = ONE + """
[[experiments]]
id = "TT-02"
priority = "P1"
tier = "a20"
d_embed = 8
learning_rate = 0.001
description = "tiny BCE, other learning rate"
"""


def test_fold_ids_round_trip_and_fold_1_is_the_experiment_itself():
    assert folds.fold_id("FE-06", 1) == "FE-06"
    assert folds.fold_id("FE-06", 2) == "FE-06.fold2"
    for exp_id in ("FE-06", "FE-06.SET-3F9A2C", "LF-01"):
        for k in (1, 2, 9, 10, 23):
            assert folds.split_fold(folds.fold_id(exp_id, k)) == (exp_id, k)
    # not fold ids: fold 1 has no suffix, no fold 0, no leading zero
    for exp_id in ("FE-06.fold1", "FE-06.fold0", "FE-06.fold02", "FE-06.foldx"):
        assert folds.split_fold(exp_id) == (exp_id, 1)
    with pytest.raises(ValueError):
        folds.fold_id("FE-06", 0)


def test_fold_dates_step_back_one_validation_period_and_tile_the_test_periods():
    base = DataConfig()  # val 2015-01-01, test 2017-01-01: a 24-month step
    assert folds.fold_data_config(base, 1) is base
    f2, f3 = folds.fold_data_config(base, 2), folds.fold_data_config(base, 3)
    assert (f2.val_start, f2.test_start, f2.test_end) == ("2013-01-01", "2015-01-01", "2017-01-01")
    assert (f3.val_start, f3.test_start, f3.test_end) == ("2011-01-01", "2013-01-01", "2015-01-01")
    assert f3.test_end == f2.test_start  # consecutive test periods, never overlapping
    # Boundaries on different days of the month step by days.
    odd = DataConfig(val_start="2015-01-15", test_start="2016-03-01")
    step = (pd.Timestamp("2016-03-01") - pd.Timestamp("2015-01-15")).days
    f2 = folds.fold_data_config(odd, 2)
    assert pd.Timestamp(f2.test_start) == pd.Timestamp("2016-03-01") - pd.Timedelta(days=step)
    assert f2.test_end == "2016-03-01"


def test_test_end_bounds_the_test_region_and_leaves_old_hashes_alone():
    dates = pd.bdate_range("2010-01-01", "2016-12-30").to_numpy().astype("datetime64[D]")
    starts = split_starts(dates, "2012-01-01", "2014-01-01", 81, "t", test_end="2015-01-01")
    last_day = dates[starts["test"][-1] + 80]
    assert last_day < np.datetime64("2015-01-01") and dates[starts["test"][-1] + 81] >= np.datetime64("2015-01-01")
    assert starts["train"][-1] + 81 <= starts["val"][0]
    with pytest.raises(DataError, match="test_end"):
        split_starts(dates, "2012-01-01", "2015-06-01", 81, "t", test_end="2015-01-01")
    with pytest.raises(DataError, match="before test_end"):
        DataConfig(test_end="2016-01-01")
    # A config without test_end keeps the identity (and every run hash) it had before folds.
    assert "test_end" not in data_identity(DataConfig())
    assert "test_end" in data_identity(folds.fold_data_config(DataConfig(), 2))


def test_registry_knows_a_fold_by_its_experiment(tmp_path):
    registry = load_registry(write_project(tmp_path, tiny_registry(ONE)))
    assert "TT-01.fold3" in registry and "TT-09.fold2" not in registry
    cfg = registry.get("TT-01.fold3")
    assert cfg.exp_id == "TT-01.fold3" and cfg.config_hash == registry.get("TT-01").config_hash
    with pytest.raises(KeyError):
        registry.select(exp_ids=["TT-01.fold3"])  # folds are run with --folds, not by id


def test_plan_has_one_item_per_fold_and_groups_only_within_a_fold(tmp_path):
    registry = load_registry(write_project(tmp_path, tiny_registry(TWO)))
    options = RunOptions(tmp_path / "outputs", tmp_path / "checkpoints", DataConfig(), folds=3)
    plan = make_plan(list(registry.experiments), options)
    assert [i.exp_id for i in plan] == ["TT-01", "TT-01.fold2", "TT-01.fold3", "TT-02", "TT-02.fold2",
                                        "TT-02.fold3"]
    assert len({i.run_hash for i in plan}) == 6
    assert plan[0].run_hash == run_hash(registry.get("TT-01"), DataConfig())  # fold 1 = an ordinary run
    assert plan[1].data_config.val_start == "2013-01-01"
    groups = [[i.exp_id for i in g] for g in plan_groups(plan)]
    assert groups == [["TT-01", "TT-02"], ["TT-01.fold2", "TT-02.fold2"], ["TT-01.fold3", "TT-02.fold3"]]
    assert make_plan([tiny_config()], RunOptions(tmp_path, tmp_path, DataConfig()))[0].exp_id == "T-01"


@pytest.mark.usefixtures("shared_cache")
def test_run_with_folds_trains_each_period_and_the_report_shows_the_spread(tmp_path, capsys):
    registry = write_project(tmp_path, tiny_registry(ONE, epochs=1))
    base = ["--registry", str(registry)]
    assert main([*base, "run", "--all", "--folds", "2"]) == 0
    out = capsys.readouterr().out
    assert "splits fold 1 (" in out and "splits fold 2 (" in out
    with RunStore(tmp_path / "outputs" / "fembed.db", readonly=True) as store:
        assert {r["exp_id"]: r["state"] for r in store.experiments()} == {"TT-01": "done", "TT-01.fold2": "done"}
        record = store.result("TT-01.fold2")["record"]
    splits = record["data"]["splits"]
    assert "2013-01-01" <= splits["val"]["first_decision"] and splits["val"]["last_decision"] < "2015-01-01"
    assert "2015-01-01" <= splits["test"]["first_decision"] and splits["test"]["last_decision"] < "2017-01-01"
    assert splits["train"]["last_decision"] < "2013-01-01"  # trained on what precedes its period

    # --folds 3 later: folds 1 and 2 are done, only fold 3 trains.
    assert main([*base, "run", "--all", "--folds", "3", "--dry-run", "--json", "--no-measure"]) == 0
    planned = {e["exp_id"]: e["status"] for e in json.loads(capsys.readouterr().out)["experiments"]}
    assert planned == {"TT-01": "done", "TT-01.fold2": "done", "TT-01.fold3": "run"}

    # The test split of a fold is its own test period.
    assert main([*base, "evaluate", "TT-01.fold2"]) == 0
    test = json.loads((tmp_path / "outputs" / "TT-01.fold2" / "test_results.json").read_text())
    assert test["data"]["first_decision"] >= "2015-01-01" and test["data"]["last_decision"] < "2017-01-01"

    report = tmp_path / "report.md"
    assert main([*base, "report", "--out", str(report), "--bootstrap", "200", "--no-plots"]) == 0
    text = report.read_text()
    section = text.split("### 4. Across periods (walk-forward folds)")[1].split("\n---")[0]
    assert "| TT-01 | 2 |" in section  # the across-folds row: 2 folds
    assert "| TT-01 | 2 | 2013-" in section and "| TT-01 | 1 | 2015-" in section  # one row per fold
    top = text.split("## Top Results")[1].split("## Not Ranked")[0]
    assert "TT-01.fold2" not in top and "TT-01.fold2" not in text.split("## Not Ranked")[1].split("---")[0]
    frame = pd.read_csv(tmp_path / "report_results.csv")
    rows = frame.set_index("exp_id")
    assert rows.loc["TT-01", "fold"] == 1 and rows.loc["TT-01.fold2", "fold"] == 2
    assert bool(rows.loc["TT-01", "ranked"]) and not bool(rows.loc["TT-01.fold2", "ranked"])
    assert np.isfinite(rows.loc["TT-01.fold2", "delta_auc_vs_reference"])  # against its own fold's reference


@pytest.mark.usefixtures("shared_cache")
def test_a_fold_before_the_data_is_one_line_naming_the_fold(tmp_path, capsys):
    registry = write_project(tmp_path, tiny_registry(ONE, epochs=1))
    assert main(["--registry", str(registry), "run", "--all", "--folds", "9", "--dry-run", "--no-measure"]) == 2
    err = capsys.readouterr().err
    assert "TT-01 fold 9 (val from 1999-01-01" in err and "Traceback" not in err
    assert not (Path(tmp_path) / "outputs" / "fembed.db").exists()
    assert main(["--registry", str(registry), "run", "--all", "--folds", "0"]) == 2
    assert "--folds must be at least 1" in capsys.readouterr().err
