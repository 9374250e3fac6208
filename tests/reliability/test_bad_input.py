"""Bad input, systematically (hypothesis): mutated registries and mutated data files.

Property: every mutated registry either loads (and then its models can be built) or raises
RegistryError / DataError naming the file; every mutated OHLCV file either loads or raises
DataError naming the file. Anything else (KeyError, TypeError, a numpy error...) is a traceback a
user would see, and fails the test. The CI run draws a fixed (derandomized) set of examples; the
soak run draws many more.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import math
import os
import pathlib
import re
import tempfile

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fembed_jax.data import DataConfig, DataError, load_dataset
from fembed_jax.data.synthetic import random_walk_ohlcv
from fembed_jax.registry import RegistryError, load_registry
from reliability_harness import fembed_inprocess, make_project, report

FULL = os.environ.get("FEMBED_RELIABILITY_FULL") == "1"
REGISTRY_EXAMPLES = 1500 if FULL else 200
DATA_EXAMPLES = 400 if FULL else 60

# ---------------------------------------------------------------------------------------------
# registries
# ---------------------------------------------------------------------------------------------

VALID_REGISTRY = {
    "defaults": {"d_model": 16, "n_layers": 1, "n_heads": 2, "d_ff": 32, "epochs": 3, "seeds": 2,
                 "context_length": 32, "learning_rate": 1e-4, "dropout": 0.1},
    "tiers": {"a20": {"features": 20}, "a50": {"features": 50}},
    "data": {"source": "builtin", "val_start": "2015-01-01", "test_start": "2017-01-01"},
    "experiments": [
        {"id": "TT-01", "priority": "P1", "tier": "a20", "d_embed": 8, "description": "bce"},
        {"id": "TT-02", "priority": "LF-P2", "tier": "a20", "d_embed": 8, "loss": "focal",
         "loss_params": {"gamma": 2.0, "alpha": 0.5}},
        {"id": "TT-03", "priority": "AE-P3", "tier": "a50", "d_embed": 16, "embedding": "bottleneck",
         "embedding_params": {"compression_ratio": 0.5, "use_skip": True}},
        {"id": "TT-04", "priority": "P4", "tier": "a20", "d_embed": 8, "embedding": "multihead",
         "embedding_params": {"num_heads": 2, "head_dim": 4, "combine_method": "concat"}},
    ],
}

FIELD_NAMES = ("id", "priority", "tier", "description", "d_embed", "d_model", "n_layers", "n_heads", "d_ff",
               "dropout", "head_dropout", "weight_decay", "learning_rate", "batch_size", "epochs",
               "context_length", "patch_length", "stride", "use_revin", "loss", "loss_params", "embedding",
               "embedding_params", "early_stop_metric", "patience", "min_delta", "task", "horizon",
               "selection", "seeds", "features", "file", "source", "val_start", "test_start", "vix",
               "tier_dir", "gamma", "alpha", "compression_ratio", "num_heads", "head_dim", "num_layers",
               "hidden_dim", "latent_dim", "beta", "combine_method", "use_skip", "use_position", "smoothing")
NAMES = ("bce", "focal", "focall", "softauc", "labelsmoothing", "linear", "none", "attention", "bottleneck",
         "gated_residual", "variational", "progressive", "multihead", "a20", "a30", "a500", "P1", "LF-P8",
         "best", "last", "val_auc", "val_loss", "threshold_1pct", "threshold_7pct", "concat", "sum",
         "builtin", "2015-01-01", "2030-01-01", "2015-13-45", "", "FE-01", "fe_1", "TT-01")

scalars = st.one_of(
    st.integers(-3, 80), st.sampled_from([0, -1, 10**9, 2**63 - 1]),
    st.floats(allow_nan=True, allow_infinity=True, width=64),
    st.sampled_from([0.0, 0.5, 1.0, 1.5, -0.1, 1e-12, 1e30]),
    st.booleans(), st.sampled_from(NAMES), st.text(max_size=8),
    st.just(dt.date(2015, 1, 1)),
)
values = st.one_of(scalars, st.lists(scalars, max_size=3),
                   st.dictionaries(st.sampled_from(FIELD_NAMES), scalars, max_size=3))


def _tables(reg: dict) -> list[tuple[str, dict]]:
    """(where, table) pairs a mutation can touch."""
    out = [(name, reg[name]) for name in ("defaults", "tiers", "data") if isinstance(reg.get(name), dict)]
    if isinstance(reg.get("tiers"), dict):
        out += [(f"tiers.{k}", v) for k, v in reg["tiers"].items() if isinstance(v, dict)]
    experiments = reg.get("experiments")
    for i, exp in enumerate(experiments if isinstance(experiments, list) else []):
        if isinstance(exp, dict):
            out.append((f"experiments[{i}]", exp))
            out += [(f"experiments[{i}].{k}", exp[k]) for k in ("loss_params", "embedding_params")
                    if isinstance(exp.get(k), dict)]
    return out


@st.composite
def mutated_registries(draw):
    reg = copy.deepcopy(VALID_REGISTRY)
    done = []
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["set", "set", "set", "delete", "duplicate", "replace_top", "drop_exps"]))
        tables = _tables(reg)
        if kind == "replace_top":
            name = draw(st.sampled_from(["defaults", "tiers", "data", "experiments"]))
            reg[name] = draw(values)
            done.append(f"{name} = {reg[name]!r}")
        elif kind == "drop_exps":
            reg["experiments"] = []
            done.append("no experiments")
        elif kind == "duplicate" and isinstance(reg.get("experiments"), list) and reg["experiments"]:
            reg["experiments"].append(copy.deepcopy(draw(st.sampled_from(reg["experiments"]))))
            done.append("duplicate experiment")
        elif tables:
            where, table = draw(st.sampled_from(tables))
            if kind == "delete" and table:
                key = draw(st.sampled_from(sorted(table)))
                del table[key]
                done.append(f"del {where}.{key}")
            else:
                key = draw(st.sampled_from(FIELD_NAMES))
                table[key] = draw(values)
                done.append(f"{where}.{key} = {table[key]!r}")
    return reg, done


def _toml_key(key: str) -> str:
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else json.dumps(key)


def _toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # a TOML basic string is JSON-compatible for these characters
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{_toml_key(k)} = {_toml_value(v)}" for k, v in value.items()) + " }"
    raise TypeError(value)


def to_toml(reg: dict) -> str:
    """The registry as TOML in the layout users write: [tables], [[experiments]] blocks."""
    lines, tables = [], []
    for name, value in reg.items():
        if isinstance(value, dict) or (name == "experiments" and isinstance(value, list) and value
                                       and all(isinstance(v, dict) for v in value)):
            tables.append((name, value))
        else:
            lines.append(f"{_toml_key(name)} = {_toml_value(value)}")
    for name, value in tables:
        blocks = [(f"[[{name}]]", v) for v in value] if isinstance(value, list) else [(f"[{name}]", value)]
        for header, table in blocks:
            lines += ["", header] + [f"{_toml_key(k)} = {_toml_value(v)}" for k, v in table.items()]
    return "\n".join(lines) + "\n"


def test_the_unmutated_registry_loads_and_the_emitter_round_trips(tmp_path):
    path = tmp_path / "experiments.toml"
    path.write_text(to_toml(VALID_REGISTRY))
    registry = load_registry(path)
    assert [c.exp_id for c in registry.experiments] == ["TT-01", "TT-02", "TT-03", "TT-04"]


SMALL_SHAPES = {"d_model": 64, "n_layers": 2, "n_heads": 8, "d_ff": 128, "context_length": 96,
                "d_embed": 64, "num_heads": 8, "head_dim": 16, "hidden_dim": 64, "num_layers": 3, "latent_dim": 32}


def _small(registry) -> bool:
    """Models cheap enough to trace in a test (huge-but-valid values are legal, just slow)."""
    for cfg in registry.experiments:
        fields = {**cfg.to_dict(), **dict(cfg.embedding_params)}
        if any(isinstance(fields.get(k), int) and fields[k] > limit for k, limit in SMALL_SHAPES.items()):
            return False
    return True


_outcomes = {"loaded": 0, "RegistryError": 0, "DataError": 0}


@pytest.mark.slow
@settings(max_examples=REGISTRY_EXAMPLES, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(case=mutated_registries())
def test_a_mutated_registry_loads_or_names_its_problem(case):
    from fembed_jax.catalog import param_counts

    reg, mutations = case
    with tempfile.TemporaryDirectory() as folder:
        path = pathlib.Path(folder) / "experiments.toml"
        path.write_text(to_toml(reg))
        try:
            registry = load_registry(path)
            DataConfig.from_mapping(registry.data, path)  # what `fembed run` does with [data]
        except RegistryError as exc:
            _outcomes["RegistryError"] += 1
            assert exc.errors and all(str(path) in line for line in exc.errors), (mutations, exc.errors)
            return
        except DataError as exc:
            _outcomes["DataError"] += 1
            assert str(path) in str(exc), (mutations, str(exc))
            return
        _outcomes["loaded"] += 1
        if _small(registry):  # what loads must also build: no validation gap
            counts = param_counts(registry.experiments)
            assert all(n > 0 for n in counts.values()), (mutations, counts)


def test_zz_report_registry_outcomes():
    """Records how the registry examples ended (runs after the property test in file order)."""
    report("bad-input", case=f"mutated registries ({REGISTRY_EXAMPLES} hypothesis examples)", outcomes=dict(_outcomes))


BAD_REGISTRIES = {
    "not TOML": "[defaults\nd_model = 16",
    "wrong type": to_toml({**VALID_REGISTRY, "defaults": {**VALID_REGISTRY["defaults"], "d_model": "big"}}),
    "unknown loss": to_toml({**VALID_REGISTRY, "experiments": [{**VALID_REGISTRY["experiments"][0],
                                                                "loss": "focall"}]}),
    "missing tier": to_toml({**VALID_REGISTRY, "experiments": [{"id": "TT-01", "priority": "P1"}]}),
    "bad [data] date": to_toml({**VALID_REGISTRY, "data": {"val_start": "2015-13-01"}}),
}


@pytest.mark.parametrize("case", list(BAD_REGISTRIES))
def test_the_cli_reports_a_bad_registry_without_a_traceback(case, tmp_path):
    make_project(tmp_path)
    (tmp_path / "registry" / "experiments.toml").write_text(BAD_REGISTRIES[case])
    commands = [["list"], ["run", "--all", "--dry-run"], ["status"]]
    if case == "bad [data] date":  # only `run` reads [data]
        commands = [["run", "--all", "--dry-run"], ["run", "--all"]]
    for command in commands:
        code, out, err = fembed_inprocess(tmp_path, *command)
        assert code == 2, (command, out, err)
        unwrapped = err.replace("\n", "")  # rich wraps long lines at the console width
        assert "error:" in err and "experiments.toml" in unwrapped and "Traceback" not in out + err


# ---------------------------------------------------------------------------------------------
# data files
# ---------------------------------------------------------------------------------------------

VAL, TEST = "2002-06-01", "2003-01-01"  # inside an 800-row business-day frame from 2001-01-01
BASE_FRAME = random_walk_ohlcv(800, seed=1)
COLUMNS = ("Date", "Open", "High", "Low", "Close", "Volume")
NUMERIC = COLUMNS[1:]


@st.composite
def mutated_frames(draw):
    frame = BASE_FRAME.copy()
    done = []
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["drop", "rename", "cells", "cells", "swap", "duplicate_date", "truncate",
                                     "one_class", "reverse", "high_low", "junk_column", "dates_text"]))
        n = len(frame)
        if kind == "drop" and len(frame.columns) > 1:
            col = draw(st.sampled_from(list(frame.columns)))
            frame = frame.drop(columns=col)
        elif kind == "rename":
            col = draw(st.sampled_from(list(frame.columns)))
            frame = frame.rename(columns={col: draw(st.sampled_from(["close", "CLOSE", "Last", "", "Adj Close"]))})
        elif kind == "cells" and n:
            col = draw(st.sampled_from([c for c in frame.columns if c in NUMERIC] or list(frame.columns)))
            rows = draw(st.lists(st.integers(0, n - 1), min_size=1, max_size=5))
            value = draw(st.sampled_from([np.nan, np.inf, -np.inf, 0.0, -1.0, 1e300, "x"]))
            if isinstance(value, str):
                frame[col] = frame[col].astype(object)
            frame.loc[frame.index[rows], col] = value
        elif kind == "swap" and n > 1:
            i, j = draw(st.integers(0, n - 1)), draw(st.integers(0, n - 1))
            frame.iloc[[i, j]] = frame.iloc[[j, i]].to_numpy()
        elif kind == "duplicate_date" and "Date" in frame and n > 1:
            i = draw(st.integers(1, n - 1))
            frame.loc[frame.index[i], "Date"] = frame["Date"].iloc[i - 1]
        elif kind == "truncate":
            frame = frame.iloc[: draw(st.sampled_from([0, 1, 50, 199, 201, 280, 400, 500, 700]))]
        elif kind == "one_class" and {"Date", "Open", "High", "Low", "Close"} <= set(frame.columns) and n:
            late = pd.to_datetime(frame["Date"], errors="coerce") >= pd.Timestamp(TEST)
            if late.any():
                base = float(pd.to_numeric(frame.loc[late, "Close"], errors="coerce").iloc[0])
                flat = base * (1 + 0.001 * np.sin(np.arange(int(late.sum()))))
                frame.loc[late, ["Open", "Close"]] = np.c_[flat, flat]
                frame.loc[late, "High"], frame.loc[late, "Low"] = flat * 1.001, flat * 0.999
        elif kind == "reverse":
            frame = frame.iloc[::-1]
        elif kind == "high_low" and {"High", "Low"} <= set(frame.columns):
            frame["High"], frame["Low"] = frame["Low"].to_numpy(), frame["High"].to_numpy()
        elif kind == "junk_column":
            frame["Comment"] = "ok"
        elif kind == "dates_text" and "Date" in frame and n:
            frame["Date"] = frame["Date"].astype(object)
            frame.loc[frame.index[draw(st.integers(0, n - 1))], "Date"] = draw(st.sampled_from(["", "yesterday", "2002-02-30"]))
        done.append(kind)
    suffix = draw(st.sampled_from([".csv", ".csv", ".parquet", ".txt", "garbage.csv", "empty.csv"]))
    return frame, suffix, done


_data_outcomes = {"loaded": 0, "DataError": 0}


def _write(frame: pd.DataFrame, folder: pathlib.Path, suffix: str) -> pathlib.Path:
    if suffix == "garbage.csv":
        path = folder / "raw.csv"
        path.write_bytes(b"\x00\xff\xfe" + os.urandom(64))
    elif suffix == "empty.csv":
        path = folder / "raw.csv"
        path.write_bytes(b"")
    elif suffix == ".parquet":
        path = folder / "raw.parquet"
        for col in frame.columns:  # parquet needs one type per column: mixed ones become text
            if frame[col].dtype == object:
                frame[col] = frame[col].astype(str)
        frame.to_parquet(path, index=False)
    else:
        path = folder / f"raw{suffix}"
        frame.to_csv(path, index=False)
    return path


@pytest.mark.slow
@settings(max_examples=DATA_EXAMPLES, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(case=mutated_frames())
def test_a_mutated_data_file_loads_or_names_its_problem(case):
    frame, suffix, mutations = case
    with tempfile.TemporaryDirectory() as folder:
        folder = pathlib.Path(folder)
        path = _write(frame, folder, suffix)
        config = DataConfig(source=str(path), val_start=VAL, test_start=TEST, cache_dir=str(folder / "cache"))
        try:
            dataset = load_dataset("a20", config)
        except DataError as exc:
            _data_outcomes["DataError"] += 1
            assert path.name in str(exc), (mutations, str(exc))
            return
        _data_outcomes["loaded"] += 1
        assert np.isfinite(dataset.matrix).all()
        for split in ("train", "val", "test"):
            assert len(np.unique(dataset.labels[split])) == 2, (mutations, split)
        assert (np.diff(dataset.dates.astype("datetime64[D]").astype(np.int64)) > 0).all(), mutations


def test_zz_report_data_outcomes():
    report("bad-input", case=f"mutated OHLCV files ({DATA_EXAMPLES} hypothesis examples)", outcomes=dict(_data_outcomes))


@pytest.mark.slow
def test_a_bad_data_file_is_refused_before_anything_is_written(tmp_path):
    """`fembed run --data bad.csv`: one line naming the file and the column, exit 2, no store."""
    make_project(tmp_path)
    bad = tmp_path / "prices.csv"
    BASE_FRAME.drop(columns="Volume").to_csv(bad, index=False)
    code, out, err = fembed_inprocess(tmp_path, "run", "--all", "--data", str(bad))
    assert code == 2, out + err
    assert "Traceback" not in out + err
    assert err.count("error:") == 1 and f"{bad}: missing column(s) Volume" in err
    assert not (tmp_path / "outputs" / "fembed.db").exists()
    code, out, err = fembed_inprocess(tmp_path, "run", "--all", "--data", str(bad), "--dry-run")
    assert code == 2 and "missing column(s) Volume" in err
    report("bad-input", case="fembed run --data with a file missing Volume",
           outcome="refused before the queue: 'error: ...prices.csv: missing column(s) Volume', exit 2, no store written")
