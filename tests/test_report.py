"""`fembed report` on a store holding real tiny runs (with predictions) and the 29 legacy records.

The runs are made once per session (``tiny_project``, shared with test_compare.py and
test_evaluate.py): FE-01 (BCE, d_embed 8, 2 seeds x 2 epochs, test_runner.py's TT-01) and FE-02
(the same for 3 epochs: it reuses FE-01's compiled programs) on the built-in a20 data; LF-01 and
AE-01 stay pending. Findings that need other experiments (d_embed effect, loss vs BCE, ranking)
are checked on synthetic records, which cost no training.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fembed_jax import stats
from fembed_jax.cli.main import main
from fembed_jax.predictions import load_predictions, predictions_path, write_predictions
from fembed_jax.registry import load_registry
from fembed_jax.report import SECTIONS, collect, render, write_report
from fembed_jax.report import fmt
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


def test_report_has_every_section_of_the_tracker(report):
    text = report.read_text()
    for section in SECTIONS:
        assert f"## {section}" in text, section
    assert text.startswith("# Feature Embedding Experiment Tracker")


def test_report_shows_the_numbers_of_the_runs(report, tiny_project):
    text = report.read_text()
    results = _results(tiny_project)
    for exp_id in ("FE-01", "FE-02"):
        s = stats.experiment_stats(results[exp_id]["record"])
        assert results[exp_id]["legacy"] is False
        assert f"| {exp_id} |" in text
        assert fmt.pm(s["auc"]) in text and fmt.pm(s["precision"]) in text
        assert fmt.mean_counts(s["tp_mean"], s["pred_pos_mean"]) in text
        # the seed ensemble comes from val_predictions.npz
        pred = load_predictions(tiny_project / "outputs", exp_id)
        ens = stats.bootstrap_auc(pred.probs, pred.labels, n_boot=300)
        assert f"{fmt.num(ens['auc'])} {fmt.interval(ens['low'], ens['high'])}" in text


def test_report_overview_status_and_pending_come_from_the_registry_and_store(report):
    text = report.read_text()
    assert "| FE (P1) | 2 | 2 |" in text and "| LF (LF-P1) | 1 | 0 |" in text and "| AE (AE-P1) | 1 | 0 |" in text
    assert "| **Total** | **4** | **2** |" in text
    status = text.split("## Run Status")[1].split("## Pending")[0]
    assert "| P1 | FE-01 to FE-02 | 2 | 2 | 0 | 0 | 0 | complete | FE-0" in status
    assert "| AE-P1 | AE-01 | 1 | 0 | 0 | 1 | 0 | pending | - |" in status
    pending = text.split("## Pending")[1].split("## Top Results")[0]
    assert "| LF-P1 | LF-01 | 1 | focal | 1 pending | `fembed run --priority LF-P1` |" in pending
    assert "| AE-P1 | AE-01 | 1 | bce; embedding progressive |" in pending
    assert "**Remaining: 2 experiments**" in pending


def test_report_findings_reference_and_collapse(report):
    text = report.read_text()
    findings = text.split("## Key Findings")[1].split("## Observations")[0]
    # d_embed effect: the runs are listed; a20 has no fembed no-embedding baseline here
    assert "| a20 | FE-01 | fembed | 8 | 16/1/2/32 |" in findings and "no baseline" in findings
    assert "no loss experiment has a BCE run with an otherwise identical config yet" in findings
    # the one-feature reference appears in every results table
    assert text.count("volatility only (ATR14/Close, logistic regression)") >= 3
    reference = text.split("## Volatility-only Reference")[1].split("## Legacy Results")[0]
    assert "builtin:sp500 [a20]" in reference and "paired bootstrap" in reference
    assert "| FE-01 |" in reference and "| FE-02 |" in reference
    collapse = text.split("## Observations on Probability Collapse")[1].split("## Volatility")[0]
    for exp_id in ("FE-69", "FE-70", "FE-72"):
        assert f"| {exp_id} (legacy) | legacy | 1/1 |" in collapse


def test_legacy_records_appear_beside_fembed_results(report, tiny_project):
    text = report.read_text()
    assert "legacy (1 seed, final-epoch weights)" in text
    legacy = text.split("## Legacy Results")[1].split("## Held-out")[0]
    assert legacy.count("(legacy) |") == 29
    assert "| LF-48 (legacy) | a200_dembed_64 | a200 | 64 | labelsmoothing (epsilon=0.1) | 0.600 | 6/10 |" in legacy
    # FE-01 and FE-02 have fembed results now: their legacy records live on beside them
    results = _results(tiny_project)
    assert not results["FE-01"]["legacy"] and "| FE-01 (legacy) | a500_dembed_none |" in legacy
    assert not results["FE-02"]["legacy"] and "| FE-02 (legacy) | a500_dembed_64 |" in legacy
    top = text.split("## Top Results")[1].split("## Key Findings")[0]
    assert "FE-26 (legacy)" in top and "| ref |" in top


def test_results_table_csv_parquet_and_plots(report, tiny_project):
    csv = pd.read_csv(report.with_name("tracker_results.csv"))
    parquet = pd.read_parquet(report.with_name("tracker_results.parquet"))
    assert len(csv) == len(parquet) == 2 + 29
    assert set(csv.loc[~csv["legacy"], "exp_id"]) == {"FE-01", "FE-02"}
    results = _results(tiny_project)
    row = parquet[(parquet.exp_id == "FE-02") & (parquet.source == "fembed")].iloc[0]
    assert row["auc_mean"] == pytest.approx(results["FE-02"]["auc_mean"])
    assert row["n_seeds"] == 2 and row["loss"] == "bce" and not np.isnan(row["ensemble_auc"])
    lf48 = csv[csv.exp_id == "LF-48"].iloc[0]
    assert (lf48["tp_mean"], lf48["pred_pos_mean"], lf48["source"]) == (6, 10, "legacy")
    for name in ("precision_recall.png", "auc.png"):
        png = report.parent / "tracker_plots" / name
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000
        assert f"tracker_plots/{name}" in report.read_text()


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


def _synthetic_record(exp_id, tp, pp, auc, **config):
    seeds = [{"seed": 42 + k, "precision": tp / pp, "recall": tp / 76, "auc": auc + 0.01 * k,
              "true_positives": tp, "n_positive_preds": pp, "n_samples": 422, "pred_range": 0.7,
              "pred_max": 0.8, "collapsed": False, "diverged": False} for k in range(3)]
    cfg = {"exp_id": exp_id, "priority": "P1", "tier": "a100", "d_embed": None, "loss": "bce",
           "embedding": "none", "d_model": 128, "n_layers": 4, "n_heads": 8, "d_ff": 512, **config}
    return {"exp_id": exp_id, "val_metrics_per_seed": seeds, "seeds": [42, 43, 44], "config": cfg,
            "selection": "best", "timestamp": "2026-01-01T00:00:00"}


def test_ranking_uses_the_precision_lower_bound_and_never_the_test_split(tmp_path):
    outputs = tmp_path / "outputs"
    with RunStore(outputs / "fembed.db") as store:
        store.record_result("FE-05", "h5", _synthetic_record("FE-05", 6, 7, 0.70))  # 86% of 7
        store.record_result("FE-06", "h6", _synthetic_record("FE-06", 60, 100, 0.71, d_embed=32))
    (outputs / "FE-05").mkdir(parents=True, exist_ok=True)
    (outputs / "FE-05" / "test_results.json").write_text(json.dumps({
        "exp_id": "FE-05", "split": "test", "n_seeds": 3, "n_windows": 156,
        "aggregate": {"precision": {"mean": 0.99, "std": 0.001}, "auc": {"mean": 0.95, "std": 0.01},
                      "recall": {"mean": 0.5, "std": 0.1}},
        "typical": {"ci_low": 0.9, "ci_high": 1.0}, "ensemble": {"auc": 0.96}, "checkpoint_epoch": 7}))
    files = write_report(outputs, tmp_path / "r" / "t.md", None, reference=False, plots=False, n_boot=50)
    text = files.markdown.read_text()
    top = text.split("## Top Results")[1].split("## Key Findings")[0]
    assert top.index("| 1 | **FE-06** |") < top.index("| 2 | FE-05 |")  # 60/100 outranks 6/7
    assert "0.990" not in top and "0.950" not in top
    held_out = text.split("## Held-out Test Results")[1].split("## Commands")[0]
    assert "| FE-05 | 3 | 0.990 ± 0.001 |" in held_out
    assert "_Not computed (`--no-reference`)._" in text


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


def _synthetic_run(store, outputs, exp_id, probs, labels, **config):
    """A fembed-like result whose per-seed metrics come from ``probs`` (saved as its predictions)."""
    from fembed_jax.metrics import classification_metrics

    seeds = [42 + k for k in range(len(probs))]
    per_seed = [dict(classification_metrics(p, labels), seed=s, diverged=False)
                for s, p in zip(seeds, probs, strict=True)]
    cfg = {"exp_id": exp_id, "priority": "P1", "tier": "a100", "d_embed": None, "loss": "bce",
           "loss_params": {}, "embedding": "none", "d_model": 128, "n_layers": 4, "n_heads": 8, "d_ff": 512,
           **config}
    store.record_result(exp_id, f"hash-{exp_id}", {"exp_id": exp_id, "val_metrics_per_seed": per_seed,
                                                   "seeds": seeds, "config": cfg, "selection": "best"})
    dates = np.datetime64("2023-01-03") + np.arange(labels.size)
    write_predictions(predictions_path(outputs, exp_id), probs, labels, np.arange(labels.size), seeds, dates)


def test_d_embed_effect_is_judged_against_seed_noise_and_a_paired_bootstrap(tmp_path):
    rng = np.random.default_rng(0)
    labels = (rng.random(400) < 0.2).astype(np.float32)

    def seeds(signal, k=3):
        return np.clip(rng.normal(0.25, 0.15, (k, labels.size)) + signal * labels, 0, 1).astype(np.float32)

    outputs = tmp_path / "outputs"
    with RunStore(outputs / "fembed.db") as store:
        _synthetic_run(store, outputs, "FE-05", seeds(0.05), labels)
        _synthetic_run(store, outputs, "FE-11", seeds(0.30), labels, d_embed=128, embedding="linear")
        fe44 = seeds(0.05)
        _synthetic_run(store, outputs, "FE-44", fe44, labels, d_embed=256, embedding="linear")
        lf07 = np.clip(fe44 + rng.normal(0, 0.01, fe44.shape), 0, 1).astype(np.float32)  # as good as FE-44
        _synthetic_run(store, outputs, "LF-07", lf07, labels, d_embed=256, embedding="linear",
                       loss="focal", loss_params={"gamma": 2.0})
    data = collect(outputs, None, n_boot=200)
    assert not data.warnings
    text = render(data)
    findings = text.split("### 2. Effect of d_embed")[1].split("### 3.")[0]
    rows = {line.split(" | ")[1]: line for line in findings.splitlines() if line.startswith("| a100 |")}
    assert "baseline" in rows["FE-05"]
    assert "vs FE-05" in rows["FE-11"] and "| beyond seed noise |" in rows["FE-11"]
    assert "| within seed noise |" in rows["FE-44"] and "LF-07" not in rows  # focal is not a d_embed run
    fe11, fe05 = (next(e for e in data.fembed if e.exp_id == i) for i in ("FE-11", "FE-05"))
    paired = stats.paired_bootstrap(fe11.predictions.probs, fe05.predictions.probs, labels, n_boot=200)["auc"]
    assert paired["low"] > 0
    assert f"{fmt.signed(paired['diff'])} {fmt.signed_interval(paired['low'], paired['high'])}" in rows["FE-11"]
    assert "of 2 embedded run(s) against no embedding, 1 better and 0 worse beyond seed noise, 1 within it" in findings
    loss = text.split("### 3. Loss functions")[1].split("## Observations")[0]
    assert "| LF-07 | focal (gamma=2) | FE-44 |" in loss and "| within seed noise |" in loss
