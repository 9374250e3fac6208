"""`fembed report` on a store holding real tiny runs (with predictions) and the 29 legacy records.

The runs are made once per session (``tiny_project``, shared with test_compare.py and
test_evaluate.py): FE-01 (BCE, d_embed 8, 2 seeds x 2 epochs, test_runner.py's TT-01) and FE-02
(the same for 3 epochs: it reuses FE-01's compiled programs) on the built-in a20 data; LF-01 and
AE-01 stay pending. Findings that need other experiments (ranking, quick runs, other data, the
d_embed and loss families) are checked on synthetic records, which cost no training.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fembed_jax import stats
from fembed_jax.cli.main import main
from fembed_jax.metrics import classification_metrics
from fembed_jax.predictions import load_predictions, predictions_path, write_predictions
from fembed_jax.data.splits import report_mask
from fembed_jax.report.collect import scored_predictions
from fembed_jax.registry import load_registry
from fembed_jax.report import SECTIONS, collect, render, write_report
from fembed_jax import fmt
from fembed_jax.report.frame import COLUMNS
from fembed_jax.report.multiplicity import holm
from fembed_jax.store import RunStore
from helpers import tiny_registry, write_project

LEGACY_DIR = Path(__file__).parent / "data" / "legacy_results"

# The models of test_runner.py's TT-01 / TT-02 (same compiled programs, so a warm jax cache is shared).
TINY_REGISTRY = tiny_registry("""\
[[experiments]]
id = "FE-01"
priority = "P1"
tier = "a20"
d_embed = 8
description = "tiny BCE with a linear embedding"

[[experiments]]
id = "FE-02"
priority = "P1"
tier = "a20"
d_embed = 8
epochs = 3
description = "FE-01 trained one epoch longer (same compiled programs: no extra compilation)"

[[experiments]]
id = "LF-01"
priority = "LF-P1"
tier = "a20"
d_embed = 8
loss = "focal"
loss_params = { gamma = 2.0, alpha = 0.5 }
description = "never run: FE-01 with focal loss"

[[experiments]]
id = "AE-01"
priority = "AE-P1"
tier = "a20"
d_embed = 8
embedding = "progressive"
description = "never run"
""")

_PROJECT: dict[str, Path] = {}


pytestmark = pytest.mark.usefixtures("shared_cache")  # tests/conftest.py

def _make_project(root: Path, cache: Path) -> Path:
    """Run P1 (the runner saves each run's val_predictions.npz) and import the legacy files."""
    registry = write_project(root, TINY_REGISTRY)
    outputs = root / "outputs"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FEMBED_CACHE", str(cache))
        assert main(["--registry", str(registry), "run", "--priority", "P1"]) == 0
        for exp_id in ("FE-01", "FE-02"):
            assert predictions_path(outputs, exp_id).exists()
        assert main(["--registry", str(registry), "import-legacy", str(LEGACY_DIR)]) == 0
    return root


def make_tiny_project(tmp_path_factory) -> Path:
    """Project root (registry/, outputs/, checkpoints/) with the tiny runs, made once per session
    (test_compare.py and test_evaluate.py call this from their own fixtures)."""
    if "root" not in _PROJECT:
        base = tmp_path_factory.getbasetemp()
        _PROJECT["root"] = _make_project(base / "report-project", base / "fembed-cache")
    return _PROJECT["root"]


@pytest.fixture(scope="module")
def tiny_project(tmp_path_factory) -> Path:
    return make_tiny_project(tmp_path_factory)


@pytest.fixture(scope="module")
def report(tiny_project, tmp_path_factory):
    """The report of the tiny project, written once through the CLI."""
    out = tmp_path_factory.mktemp("report") / "tracker.md"
    code = main(["--registry", str(tiny_project / "registry" / "experiments.toml"), "report",
                 "--out", str(out), "--bootstrap", "300", "--top", "50"])
    assert code == 0
    return out


def _results(project: Path) -> dict:
    with RunStore(project / "outputs" / "fembed.db", readonly=True) as store:
        return {r["exp_id"]: r for r in store.results()}


def _section(text: str, name: str) -> str:
    after = text.split(f"## {name}\n")[1]
    return after.split("\n## ")[0]


def test_report_has_every_section_of_the_tracker(report):
    text = report.read_text()
    for section in SECTIONS:
        assert f"## {section}" in text, section
    assert text.startswith("# Feature Embedding Experiment Tracker")


def test_file_locations_are_given_from_the_working_folder(tiny_project, tmp_path, monkeypatch):
    """A report committed to a repository names its files from the project, not from the
    author's machine."""
    monkeypatch.chdir(tiny_project)
    out = tmp_path / "tracker.md"
    assert main(["--registry", "registry/experiments.toml", "report", "--out", str(out), "--bootstrap", "50"]) == 0
    files = _section(out.read_text(), "File Locations")
    assert "- Run store: `outputs/fembed.db`" in files and "- Registry: `registry/experiments.toml`" in files
    assert "`outputs/<ID>/results.json`" in files and str(tiny_project) not in files


def test_report_shows_the_numbers_of_the_runs(report, tiny_project):
    text = report.read_text()
    results = _results(tiny_project)
    top = _section(text, "Top Results")
    for exp_id in ("FE-01", "FE-02"):
        pred = scored_predictions(load_predictions(tiny_project / "outputs", exp_id), results[exp_id]["record"])
        s = stats.experiment_stats(results[exp_id]["record"], pred)
        assert results[exp_id]["legacy"] is False
        assert fmt.pm(s["auc"]) in text and fmt.precision_spread(s["precision"]) in text
        # the seed ensemble from val_predictions.npz, scored independently here
        mean = pred.probs.mean(axis=0)
        ap = stats.bootstrap_pr_auc(mean, pred.labels, n_boot=300)
        auc = stats.bootstrap_auc(mean, pred.labels, n_boot=300)
        row = next(line for line in top.splitlines() if f" {exp_id} |" in line or f"**{exp_id}**" in line)
        assert fmt.with_ci(ap["pr_auc"], ap["low"], ap["high"]) in row
        assert fmt.with_ci(auc["auc"], auc["low"], auc["high"]) in row
        assert fmt.at_rate(classification_metrics(mean, pred.labels), "top5pct") in row


def test_the_ranking_holds_fembed_results_only_and_legacy_rows_stay_apart(report):
    text = report.read_text()
    top = _section(text, "Top Results")
    ranked = [line.split(" | ")[1].strip("* ") for line in top.splitlines() if line[:4] in ("| 1 ", "| 2 ")]
    assert sorted(ranked) == ["FE-01", "FE-02"]
    assert "(legacy)" not in top and "FE-26" not in top  # the original's rank-1 record
    assert "| baseline | volatility only (ATR14/Close, logistic regression) |" in top
    assert "| baseline | logistic regression on the a20 features at the decision day |" in top
    for section in ("Top Results", "Not Ranked", "Key Findings", "Baselines"):
        assert "(legacy)" not in _section(text, section), section


def test_no_precision_of_0_over_0_is_printed_as_a_number(report):
    text = report.read_text()
    assert "0.000 (0/0)" not in text and "0.000 ± 0.000" not in text and "(0/0)" not in text
    legacy = _section(text, "Legacy Results")
    for exp_id in ("FE-69", "FE-70", "FE-72"):  # the original's 0/0 records
        row = next(line for line in legacy.splitlines() if line.startswith(f"| {exp_id} (legacy) |"))
        assert "| undefined (0 predicted) | 0/0 | - |" in row
    collapse = _section(text, "Observations on Probability Collapse")
    assert "(legacy) |" not in collapse and "FE-69, FE-70, FE-72 (Legacy Results)" in collapse


def test_report_overview_status_and_pending_come_from_the_registry_and_store(report):
    text = report.read_text()
    assert "| FE (P1) | 2 | 2 | 0 |" in text and "| LF (LF-P1) | 1 | 0 | 0 |" in text
    assert "| **Total** | **4** | **2** | **0** |" in text
    status = _section(text, "Run Status")
    assert "| P1 | FE-01 to FE-02 | 2 | 2 | 0 | 0 | 0 | 0 | complete | FE-0" in status
    assert "| AE-P1 | AE-01 | 1 | 0 | 0 | 0 | 1 | 0 | pending | - |" in status
    pending = _section(text, "Pending")
    assert "| LF-P1 | LF-01 | 1 | focal | 1 pending | `fembed run --priority LF-P1` |" in pending
    assert "| AE-P1 | AE-01 | 1 | bce; embedding progressive |" in pending
    assert "**Remaining: 2 experiments**" in pending


def test_key_findings_open_with_the_corrected_count_against_the_reference(report):
    text = report.read_text()
    findings = _section(text, "Key Findings")
    first = findings.strip().splitlines()[0]
    assert first.startswith("- **") and "of 2 experiments beat the reference (paired, corrected)**" in first
    assert "Holm over the 2 comparison(s)" in first
    assert "experiments beat a logistic regression on their tier's decision-day features" in findings
    assert "every number here is scored on the odd blocks, which nothing was selected on" in findings
    # How much more work would detect a 0.01 AUC effect, from the comparisons' standard errors.
    assert re.search(r"\*\*What would change this conclusion\*\*: detecting a 0\.01 AUC difference .* needs a "
                     r"standard error of 0\.0036; today's is 0\.[0-9]+ \(median of 2 comparison", findings)
    assert "validation period(s) of this size (walk-forward folds)" in findings
    header = text.split("---")[0]
    # how many were scored on test depends on which tests ran before (test_evaluate scores FE-01)
    assert "**Ranking windows**: the validation report windows (" in header
    assert "Early stopping chose every seed's epoch on the even blocks" in header
    assert re.search(r"read for [0-9]+ experiment\(s\)", header)
    baselines = _section(text, "Baselines")
    assert "builtin:sp500 [a20]" in baselines
    for exp_id in ("FE-01", "FE-02"):
        row = next(line for line in baselines.splitlines() if line.startswith(f"| {exp_id} |"))
        assert row.count("Holm") == 0 and ("no detectable difference" in row or "than the" in row)


def test_legacy_records_are_spelled_out(report, tiny_project):
    legacy = _section(report.read_text(), "Legacy Results")
    rows = [line for line in legacy.splitlines() if "(legacy) |" in line]
    assert len(rows) == 29 and all("| cannot be judged |" in r for r in rows)
    assert all("the original's SPY data, validation 2023-2024 (422 windows)" in r for r in rows)
    assert all(("embedding untrained (B2)" in r) == r.startswith("| AE-") for r in rows)
    assert all(("OHLCV as inputs (B5)" in r) != r.startswith("| AE-") for r in rows)
    lf48 = next(r for r in rows if r.startswith("| LF-48 (legacy) | a200_dembed_64 |"))
    assert "| labelsmoothing (epsilon=0.1) | 0.600 | 6/10 |" in lf48
    fe11 = next(r for r in rows if r.startswith("| FE-11 (legacy) |"))
    # val BCE against the best constant (the val base rate), scored independently
    from sklearn.metrics import log_loss
    rate = 0.18009478672985782
    y = np.r_[np.ones(76), np.zeros(346)]
    assert f"| 0.545 vs {log_loss(y, np.full(y.size, rate)):.3f} (worse) |" in fe11
    # FE-01 and FE-02 have fembed results now: their legacy records live on beside them
    results = _results(tiny_project)
    assert not results["FE-01"]["legacy"] and any(r.startswith("| FE-01 (legacy) | a500_dembed_none |") for r in rows)


def test_results_table_csv_parquet_and_plots(report, tiny_project):
    csv = pd.read_csv(report.with_name("tracker_results.csv"))
    parquet = pd.read_parquet(report.with_name("tracker_results.parquet"))
    assert list(csv.columns) == list(parquet.columns) == list(COLUMNS)
    assert len(csv) == len(parquet) == 2 + 29
    assert set(csv.loc[~csv["legacy"], "exp_id"]) == {"FE-01", "FE-02"}
    assert set(csv.loc[csv["ranked"], "exp_id"]) == {"FE-01", "FE-02"}
    results = _results(tiny_project)
    row = parquet[(parquet.exp_id == "FE-02") & (parquet.source == "fembed")].iloc[0]
    assert row["auc_mean"] == pytest.approx(results["FE-02"]["auc_mean"])
    assert row["n_seeds"] == 2 and row["loss"] == "bce"
    pred = scored_predictions(load_predictions(tiny_project / "outputs", "FE-02"), results["FE-02"]["record"])
    mean = pred.probs.mean(axis=0)
    m = classification_metrics(mean, pred.labels)
    assert row["pr_auc"] == pytest.approx(m["pr_auc"]) and row["brier"] == pytest.approx(m["brier"])
    assert row["precision_top5pct"] == pytest.approx(m["precision_top5pct"])
    assert row["delta_auc_vs_reference_ci_low"] <= row["delta_auc_vs_reference"] <= row["delta_auc_vs_reference_ci_high"]
    assert not np.isnan(row["delta_auc_vs_logistic"]) and not np.isnan(row["brier_skill"])
    lf48 = csv[csv.exp_id == "LF-48"].iloc[0]
    assert (lf48["tp_mean"], lf48["pred_pos_mean"], lf48["source"], lf48["ranked"]) == (6, 10, "legacy", False)
    assert np.isnan(csv[csv.exp_id == "FE-72"].iloc[0]["precision_mean"])  # 0/0: empty, not 0
    for name in ("precision_recall.png", "auc.png", "reliability.png"):
        png = report.parent / "tracker_plots" / name
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000
        assert f"tracker_plots/{name}" in report.read_text()


def test_the_csv_has_its_header_with_no_result(tmp_path):
    files = write_report(tmp_path / "outputs", tmp_path / "r" / "t.md", None, reference=False, plots=True, n_boot=20)
    assert files.csv.read_text().strip() == ",".join(COLUMNS)
    assert list(pd.read_parquet(files.parquet).columns) == list(COLUMNS)


def test_stale_predictions_are_not_used(tiny_project, tmp_path):
    outputs = tmp_path / "outputs"
    shutil.copytree(tiny_project / "outputs", outputs)
    pred = load_predictions(outputs, "FE-01")
    write_predictions(predictions_path(outputs, "FE-01"), pred.probs[:, ::-1], pred.labels, pred.starts,
                      pred.seeds, pred.dates)  # not the probabilities results.json was computed from
    data = collect(outputs, load_registry(tiny_project / "registry" / "experiments.toml"), n_boot=50)
    entry = next(e for e in data.fembed if e.exp_id == "FE-01")
    assert entry.predictions is None and entry.stats["ensemble"] is None
    assert any("FE-01" in w and "stale" in w for w in data.warnings)
    assert [e.exp_id for e in data.ranked()] == ["FE-02"]  # no ensemble, no rank
    assert "no usable val_predictions.npz" in _section(render(data), "Not Ranked")


# ---- synthetic results (no training) -------------------------------------------------------------

LABELS = (np.random.default_rng(0).random(400) < 0.2).astype(np.float32)
DATES = np.datetime64("2015-04-28") + np.arange(LABELS.size)


def _synthetic_run(store, outputs, exp_id, probs, labels=LABELS, record=None, **config):
    """A fembed-like result whose per-seed metrics come from ``probs`` (saved as its predictions)."""
    seeds = [42 + k for k in range(len(probs))]
    scored = report_mask("alternate", labels.size)  # as a run of today's protocol scores them
    per_seed = [dict(classification_metrics(p[scored], labels[scored]), seed=s, diverged=False)
                for s, p in zip(seeds, probs, strict=True)]
    cfg = {"exp_id": exp_id, "priority": "P1", "tier": "a100", "d_embed": None, "loss": "bce",
           "loss_params": {}, "embedding": "none", "d_model": 128, "n_layers": 4, "n_heads": 8, "d_ff": 512,
           "early_stop_metric": "val_auc", **config}
    store.record_result(exp_id, f"hash-{exp_id}", {"exp_id": exp_id, "val_metrics_per_seed": per_seed,
                                                   "seeds": seeds, "config": cfg, "selection": "best",
                                                   "selection_windows": {"rule": "alternate"},
                                                   **(record or {})})
    write_predictions(predictions_path(outputs, exp_id), probs, labels, np.arange(labels.size), seeds, DATES)


def _seeds(signal, k=3, noise=0.15, seed=None):
    rng = np.random.default_rng(seed if seed is not None else int(signal * 1000) + k)
    return np.clip(rng.normal(0.25, noise, (k, LABELS.size)) + signal * LABELS, 0, 1).astype(np.float32)


def test_ranking_uses_the_ensemble_pr_auc_not_precision_at_0_5_and_never_the_test_split(tmp_path):
    outputs = tmp_path / "outputs"
    calibrated = np.clip(_seeds(0.25) * 0.4, 0, 0.45)  # ranks well, never reaches 0.5: precision undefined
    confident = np.clip(_seeds(0.08) + 0.4, 0, 1)  # ranks worse, many windows above 0.5
    with RunStore(outputs / "fembed.db") as store:
        _synthetic_run(store, outputs, "FE-05", confident)
        _synthetic_run(store, outputs, "FE-06", calibrated, d_embed=32, embedding="linear",
                       record={"test_metrics_per_seed": [classification_metrics(p, LABELS) for p in calibrated]})
    (outputs / "FE-05" / "test_results.json").write_text(json.dumps({
        "exp_id": "FE-05", "split": "test", "n_seeds": 3, "n_windows": 156,
        "aggregate": {"precision": {"mean": 0.99, "std": 0.001, "n": 3, "n_total": 3},
                      "auc": {"mean": 0.95, "std": 0.01}, "recall": {"mean": 0.5, "std": 0.1}},
        "ensemble": {"auc": 0.96}, "checkpoint_epoch": 7}))
    files = write_report(outputs, tmp_path / "r" / "t.md", None, reference=False, plots=False, n_boot=50)
    text = files.markdown.read_text()
    top = _section(text, "Top Results")
    assert top.index("| 1 | **FE-06** |") < top.index("| 2 | FE-05 |")
    fe06 = next(line for line in top.splitlines() if "**FE-06**" in line)
    assert "undefined (0 predicted, 3/3 seeds)" in fe06
    assert "0.990" not in top and "0.950" not in top
    held_out = _section(text, "Held-out Test Results")
    assert "**Test split read for 2 experiment(s)**: 1 by `fembed evaluate`, 1 by `fembed run --eval-test`" in held_out
    assert "| FE-05 | fembed evaluate | 3 | 0.950 ± 0.010 |" in held_out
    assert "| FE-06 | fembed run --eval-test | 3 |" in held_out
    assert "_Not computed (`--no-reference`)._" in text


def test_quick_runs_and_other_data_are_marked_and_kept_out(tmp_path):
    registry_path = write_project(tmp_path, TINY_REGISTRY)  # FE-01/FE-02: 2 seeds, 2 and 3 epochs
    registry = load_registry(registry_path)
    outputs = tmp_path / "outputs"
    here = {"source_id": "builtin:sp500|vix=real|sha256=ab|fembed-data-v1",
            "splits": {"val": {"first_decision": "2015-04-28", "last_decision": "2016-12-29"},
                       "train": {"base_rate": 0.228}}}
    elsewhere = dict(here, source_id="prices.csv|vix=proxy|sha256=cd|fembed-data-v1")
    with RunStore(outputs / "fembed.db") as store:
        # queued with the hash the results are recorded under: recording them marks them done
        store.sync_queue([{**registry.get(i).to_dict(), "run_hash": f"hash-{i}"} for i in ("FE-01", "FE-02")])
        _synthetic_run(store, outputs, "FE-01", _seeds(0.3, k=2), tier="a20",
                       record={"hyperparameters": {"epochs": 1}, "data": here})
        _synthetic_run(store, outputs, "FE-02", _seeds(0.2, k=2), tier="a20",
                       record={"hyperparameters": {"epochs": 3}, "data": here})
        _synthetic_run(store, outputs, "LF-01", _seeds(0.25, k=2), tier="a20",
                       record={"hyperparameters": {"epochs": 2}, "data": elsewhere})
    data = collect(outputs, registry, n_boot=50)
    by_id = {e.exp_id: e for e in data.fembed}
    assert by_id["FE-01"].flags == ["quick: 1 of 2 epochs"] and by_id["FE-01"].label == "FE-01 [quick]"
    assert by_id["LF-01"].other_data and not by_id["FE-02"].flags
    assert [e.exp_id for e in data.ranked()] == ["FE-02"]
    assert data.counted_state("FE-01") == "quick" and data.counted_state("FE-02") == "done"
    text = render(data)
    assert "| FE (P1) | 2 | 1 | 1 |" in text
    not_ranked = _section(text, "Not Ranked")
    assert "| FE-01 [quick] | quick: 1 of 2 epochs |" in not_ranked
    assert "| LF-01 [other data] | other data: prices.csv, val decision days 2015-04-28 to 2016-12-29 |" in not_ranked
    included = collect(outputs, registry, n_boot=50, include_quick=True)
    assert [e.exp_id for e in included.ranked()] == ["FE-01", "FE-02"]  # other data never joins
    assert included.counted_state("FE-01") == "done"


def test_report_of_a_project_that_has_not_run_anything(tmp_path):
    (tmp_path / "registry").mkdir()
    registry_path = tmp_path / "registry" / "experiments.toml"
    registry_path.write_text(TINY_REGISTRY)
    data = collect(tmp_path / "outputs", load_registry(registry_path))
    text = render(data)
    assert not (tmp_path / "outputs" / "fembed.db").exists()  # reading never creates a store
    for section in SECTIONS:
        assert f"## {section}" in text
    assert "**Remaining: 4 experiments**" in text and "_no results yet_" in text


def test_d_embed_family_is_paired_corrected_and_other_architectures_are_not_judged(tmp_path):
    outputs = tmp_path / "outputs"
    with RunStore(outputs / "fembed.db") as store:
        _synthetic_run(store, outputs, "FE-05", _seeds(0.05))
        _synthetic_run(store, outputs, "FE-11", _seeds(0.30), d_embed=128, embedding="linear")
        _synthetic_run(store, outputs, "FE-44", _seeds(0.05, seed=99), d_embed=256, embedding="linear")
        _synthetic_run(store, outputs, "FE-35", _seeds(0.30, seed=98), d_embed=64, embedding="linear", d_model=256)
    data = collect(outputs, None, n_boot=200)
    assert not data.warnings
    rows = {r.entry.exp_id: r for r in data.judged.d_embed}
    assert rows["FE-11"].verdict == "better than no embedding" and rows["FE-11"].p_adjusted < 0.05
    assert rows["FE-44"].verdict == "no detectable difference"
    assert rows["FE-35"].verdict.startswith("not judged: other architecture") and not rows["FE-35"].in_family
    # Holm over the family of two same-architecture comparisons
    family = [rows["FE-11"], rows["FE-44"]]
    assert [r.p_adjusted for r in family] == pytest.approx(holm([r.p_value for r in family]))
    text = render(data)
    findings = text.split("### 2. Effect of d_embed")[1].split("### 3.")[0]
    assert ("1 of 2 embedded run(s) are better than no embedding and 0 worse (paired, Holm over the 2); "
            "1 compared with another architecture, not judged") in findings


def test_loss_comparisons_select_both_sides_on_the_same_metric(tmp_path):
    outputs = tmp_path / "outputs"

    def history(aucs):  # per epoch, per seed
        return [{"epoch": e, "trained": [True] * len(row), "val_auc": row} for e, row in enumerate(aucs)]

    with RunStore(outputs / "fembed.db") as store:
        base = _seeds(0.10)
        _synthetic_run(store, outputs, "FE-04", base, d_embed=32, embedding="linear",
                       record={"history": history([[0.70, 0.71, 0.72], [0.74, 0.75, 0.73]])})
        _synthetic_run(store, outputs, "LF-07", np.clip(base + 0.01, 0, 1), d_embed=32, embedding="linear",
                       loss="focal", loss_params={"gamma": 2.0})
        _synthetic_run(store, outputs, "LF-48", _seeds(0.12), d_embed=32, embedding="linear",
                       loss="entropyreg", early_stop_metric="val_loss",
                       record={"history": history([[0.71, 0.73, 0.70], [0.72, 0.74, 0.76]])})
    data = collect(outputs, None, n_boot=100)
    rows = {r.entry.exp_id: r for r in data.judged.loss}
    assert rows["LF-07"].other.exp_id == "FE-04" and rows["LF-07"].method.startswith("seed × window bootstrap")
    lf48 = rows["LF-48"]
    assert lf48.method.startswith("selected on val_loss vs val_auc: both re-selected on val AUC from the epoch history")
    from scipy.stats import ttest_rel
    best_lf, best_bce = np.array([0.72, 0.74, 0.76]), np.array([0.74, 0.75, 0.73])
    assert lf48.diff == pytest.approx(np.mean(best_lf - best_bce))
    assert lf48.p_value == pytest.approx(ttest_rel(best_lf, best_bce).pvalue)
    loss = render(data).split("### 3. Loss functions")[1].split("## Observations")[0]
    assert "| LF-07 | focal (gamma=2) | FE-04 | val_auc / val_auc |" in loss
    # The AUC columns show what the Δ compares (the history-best seeds), not the reported stats.
    assert "| LF-48 | entropyreg | FE-04 | val_loss / val_auc | 0.740 ± 0.020 | 0.740 ± 0.010 |" in loss
