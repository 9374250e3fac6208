"""`fembed compare`: only differing config fields, metrics with spread, paired bootstrap."""

from __future__ import annotations

import json

import pytest

from fembed_jax import stats
from fembed_jax.config_diff import MISSING, config_differences, flatten
from fembed_jax.cli.main import main
from fembed_jax.predictions import load_predictions
from fembed_jax.report.collect import scored_predictions
from fembed_jax import fmt
from test_report import make_tiny_project


pytestmark = pytest.mark.usefixtures("shared_cache")  # tests/conftest.py

@pytest.fixture(scope="module")
def tiny_project(tmp_path_factory):
    """The session's tiny runs (FE-01, FE-02 done; LF-01, AE-01 pending): see test_report.py."""
    return make_tiny_project(tmp_path_factory)


def test_flatten_nests_parameters_and_drops_empty_ones():
    assert flatten({"loss": "focal", "loss_params": {"gamma": 2.0, "alpha": 0.5}, "embedding_params": {}}) == {
        "loss": "focal", "loss_params.gamma": 2.0, "loss_params.alpha": 0.5}


def test_config_differences_lists_only_fields_that_differ():
    a = {"exp_id": "FE-01", "description": "x", "tier": "a100", "d_embed": 32, "loss": "bce", "loss_params": {},
         "d_model": 128}
    b = {"exp_id": "LF-09", "description": "y", "tier": "a100", "d_embed": 32, "loss": "focal",
         "loss_params": {"gamma": 2.0}, "d_model": 128}
    c = {**a, "exp_id": "FE-02", "d_embed": None}
    assert config_differences([a, b]) == [("loss", ["bce", "focal"]), ("loss_params.gamma", [MISSING, 2.0])]
    assert config_differences([a, c]) == [("d_embed", [32, None])]
    assert config_differences([a, {**a, "exp_id": "FE-09"}]) == []
    every = dict(config_differences([a, b], all_fields=True))
    assert every["tier"] == ["a100", "a100"] and "exp_id" not in every and "description" not in every


def _compare(project, capsys, *ids):
    code = main(["--registry", str(project / "registry" / "experiments.toml"), "compare", *ids,
                 "--bootstrap", "300"])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _field_rows(out: str) -> dict[str, list[str]]:
    """The config table's rows: field -> cells."""
    section = out.split("validation metrics")[0]
    rows = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip("│ ").split("│")]
        if len(cells) > 1 and cells[0] and cells[0] != "field":
            rows[cells[0]] = cells[1:]
    return rows


def test_compare_two_runs_shows_only_what_differs_and_a_paired_test(tiny_project, capsys):
    code, out, _ = _compare(tiny_project, capsys, "FE-01", "FE-02")
    assert code == 0
    assert _field_rows(out) == {"epochs": ["2", "3"]}  # FE-02 is FE-01 trained one epoch longer
    a, b = (scored_predictions(load_predictions(tiny_project / "outputs", e),
                               json.loads((tiny_project / "outputs" / e / "results.json").read_text()))
            for e in ("FE-01", "FE-02"))
    paired = stats.paired_bootstrap(b.probs, a.probs, a.labels, n_boot=300)
    assert "paired bootstrap against FE-01" in out
    line = next(row for row in out.splitlines() if row.startswith("│ FE-02") and "AUC" in row)
    assert fmt.signed(paired["auc"]["diff"]) in line
    assert fmt.signed_interval(paired["auc"]["low"], paired["auc"]["high"]) in line
    assert str(a.n_windows) in line
    metrics = out.split("validation metrics")[1].split("paired bootstrap")[0]
    for exp_id, pred in (("FE-01", a), ("FE-02", b)):
        record = json.loads((tiny_project / "outputs" / exp_id / "results.json").read_text())
        s = stats.experiment_stats(record, pred, n_boot=300)
        assert fmt.pm(s["auc"]) in out
        # precision at 0.5 over the seeds where it is defined, never a 0 for 0/0
        assert fmt.precision_spread(s["precision"]) in " ".join(metrics.split())
        ap = stats.bootstrap_pr_auc(pred.probs.mean(axis=0), pred.labels, n_boot=300)
        assert fmt.with_ci(ap["pr_auc"], ap["low"], ap["high"]) in metrics
    assert "ensemble precision top 5% (TP/k)" in metrics and "0.000 (0/0)" not in out


def test_compare_with_a_pending_experiment_and_a_legacy_record(tiny_project, capsys):
    code, out, _ = _compare(tiny_project, capsys, "FE-01", "LF-01", "FE-01@legacy")
    assert code == 0
    rows = _field_rows(out)
    assert rows["loss"] == ["bce", "focal", "bce"]
    assert rows["loss_params.gamma"] == [MISSING, "2", MISSING]
    assert rows["tier"] == ["a20", "a20", "a500"] and rows["selection"] == ["best", "best", "last"]
    # the tiny registry's FE-01 is not the original's FE-01: the legacy record keeps its own architecture
    assert rows["d_model"] == ["16", "16", "128"] and rows["n_layers"] == ["1", "1", "4"]
    assert "description" not in rows and rows["patience"] == ["15", "15", MISSING]  # not recorded
    assert "LF-01 (not run)" in out and "FE-01@legacy (legacy)" in out
    assert "no paired test for" in out and "legacy (1 seed, final-epoch weights)" in out


@pytest.mark.parametrize("ids, message", [
    (["FE-01"], "at least two"),
    (["FE-01", "NO-99"], "NO-99"),
    (["FE-01", "FE-01"], "twice"),
    (["FE-01", "FE-02@legacy", "ZZ-01@legacy"], "ZZ-01"),
])
def test_bad_ids_exit_2(tiny_project, capsys, ids, message):
    code, _, err = _compare(tiny_project, capsys, *ids)
    assert code == 2 and message in " ".join(err.split())


def test_show_id_at_legacy_shows_the_imported_record_and_what_it_ran_differently(tiny_project, capsys):
    registry = str(tiny_project / "registry" / "experiments.toml")

    def show(*args):
        code = main(["--registry", registry, "show", *args])
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    code, out, _ = show("FE-01")  # a fembed result, with the legacy record kept beside it
    assert code == 0 and "fembed show FE-01@legacy" in out
    code, out, _ = show("FE-01@legacy")
    assert code == 0 and out.startswith("FE-01@legacy") and "imported from " in out
    assert "legacy record (original system, 1 seed, final-epoch weights)" in out and "None" not in out
    d_model = [line for line in out.splitlines() if "d_model" in line]
    assert len(d_model) == 1 and "128" in d_model[0] and "16" in d_model[0]
    code, out, _ = show("FE-01@legacy", "--json")
    shown = json.loads(out)
    assert code == 0 and shown["source"] == "legacy" and shown["record"]["legacy"] is True
    assert shown["differs_from_registry"]["d_model"] == {"legacy": 128, "registry": 16}
    code, _, err = show("LF-01@legacy")
    assert code == 2 and "no legacy record of LF-01" in err
    code, _, err = show("FE-01@legacy", "--toml")
    assert code == 2 and "drop @legacy" in err
