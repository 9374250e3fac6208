"""`fembed list` / `fembed show` / `fembed status` and the CLI's exit codes."""

from __future__ import annotations

import csv
import json
from collections import Counter
from pathlib import Path

import pytest

from fembed_jax.cli.main import main

MATRIX = Path(__file__).parent / "data" / "experiment_matrix.csv"


@pytest.fixture(scope="module")
def listed(tmp_path_factory):
    """`fembed list --json` over the whole registry (parameter counts traced once, cached)."""
    import os

    os.environ.setdefault("FEMBED_CACHE", str(tmp_path_factory.getbasetemp() / "fembed-cache"))
    import contextlib
    import io

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["list", "--json"]) == 0
    return json.loads(out.getvalue())


def test_list_json_has_all_183_with_the_stable_keys(listed):
    assert len(listed) == 183
    keys = {"id", "priority", "tier", "num_features", "d_embed", "d_model", "n_layers", "n_heads",
            "d_ff", "dropout", "weight_decay", "loss", "loss_params", "embedding",
            "embedding_params", "params"}
    assert all(keys <= set(row) for row in listed)
    assert Counter(r["priority"] for r in listed)["P5"] == 19


def test_list_params_are_the_built_models_and_equal_the_reference(listed):
    with MATRIX.open() as fh:
        built = {r["exp_id"]: int(r["built_params"]) for r in csv.DictReader(fh)}
    assert {r["id"]: r["params"] for r in listed} == built


def test_list_filters_combine(capsys):
    assert main(["list", "--json", "--priority", "AE-P5", "--tier", "a500"]) == 0
    ids = [r["id"] for r in json.loads(capsys.readouterr().out)]
    assert ids == ["AE-19", "AE-20"]
    assert main(["list", "--priority", "LF-P9"]) == 0
    table = capsys.readouterr().out
    assert "LF-61" in table and "entropyreg" in table and "FE-06" not in table


def test_show_prints_config_and_what_differs(capsys):
    assert main(["show", "FE-28"]) == 0
    out = capsys.readouterr().out
    assert "FE-28" in out and "*dropout" in out and "*weight_decay" in out and "*d_model" not in out


def test_unknown_ids_and_bad_registries_exit_2(tmp_path, capsys):
    assert main(["show", "FE-999"]) == 2
    assert "FE-999" in capsys.readouterr().err
    bad = tmp_path / "bad.toml"
    bad.write_text('[tiers.a20]\nfeatures = 20\n[[experiments]]\nid = "FE-01"\npriority = "P1"\ntier = "a21"\n')
    assert main(["--registry", str(bad), "list"]) == 2
    err = capsys.readouterr().err
    assert "bad.toml" in err and "FE-01" in err and "tier" in err


def test_status_without_a_store_says_how_to_start(tmp_path, capsys):
    assert main(["status", "--outputs", str(tmp_path / "none")]) == 0
    assert "fembed run" in capsys.readouterr().out


def test_help_lists_commands_with_examples(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    for command in ("list", "show", "run", "status"):
        assert command in out
    assert "examples" in out
