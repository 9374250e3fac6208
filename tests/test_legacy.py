"""`fembed import-legacy`: the original's 29 surviving results.json files as legacy records."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest

from fembed_jax.cli.main import main
from fembed_jax.legacy import LegacyFormatError, import_legacy, legacy_copies, load_legacy_file
from fembed_jax.registry import DEFAULT_REGISTRY, load_registry
from fembed_jax.stats import LEGACY_LABEL
from fembed_jax.store import RunStore

LEGACY_DIR = Path(__file__).parent / "data" / "legacy_results"

# data_and_features.md A10(a): directory -> (exp_id, TP, predicted positives, precision, recall, AUC)
EXPECTED = {
    "a100_dembed_128": ("FE-11", 10, 18, 0.556, 0.132, 0.700),
    "a100_dembed_16": ("FE-90", 1, 3, 0.333, 0.013, 0.700),
    "a100_dembed_24": ("FE-80", 8, 15, 0.533, 0.105, 0.734),
    "a100_dembed_256": ("FE-44", 9, 20, 0.450, 0.118, 0.692),
    "a100_dembed_32": ("AE-14", 6, 11, 0.545, 0.079, 0.711),
    "a100_dembed_512": ("FE-42", 14, 34, 0.412, 0.184, 0.667),
    "a100_dembed_64": ("FE-16", 14, 28, 0.500, 0.184, 0.680),
    "a100_dembed_8": ("FE-72", 0, 0, 0.000, 0.000, 0.687),
    "a100_dembed_none": ("FE-05", 8, 18, 0.444, 0.105, 0.700),
    "a200_dembed_128": ("FE-26", 12, 20, 0.600, 0.158, 0.710),
    "a200_dembed_16": ("FE-89", 6, 15, 0.400, 0.079, 0.712),
    "a200_dembed_32": ("FE-35", 8, 14, 0.571, 0.105, 0.724),
    "a200_dembed_64": ("LF-48", 6, 10, 0.600, 0.079, 0.723),
    "a200_dembed_8": ("FE-40", 9, 19, 0.474, 0.118, 0.689),
    "a200_dembed_none": ("FE-03", 8, 23, 0.348, 0.105, 0.671),
    "a20_dembed_16": ("FE-69", 0, 0, 0.000, 0.000, 0.705),
    "a20_dembed_32": ("FE-70", 0, 0, 0.000, 0.000, 0.710),
    "a20_dembed_none": ("FE-68", 4, 8, 0.500, 0.053, 0.724),
    "a500_dembed_128": ("FE-07", 11, 30, 0.367, 0.145, 0.669),
    "a500_dembed_16": ("AE-16", 2, 4, 0.500, 0.026, 0.684),
    "a500_dembed_256": ("FE-10", 9, 29, 0.310, 0.118, 0.624),
    "a500_dembed_32": ("FE-36", 9, 20, 0.450, 0.118, 0.702),
    "a500_dembed_512": ("FE-43", 8, 27, 0.296, 0.105, 0.599),
    "a500_dembed_64": ("FE-02", 10, 30, 0.333, 0.132, 0.697),
    "a500_dembed_8": ("FE-87", 10, 31, 0.323, 0.132, 0.694),
    "a500_dembed_none": ("FE-01", 11, 33, 0.333, 0.145, 0.627),
    "a50_dembed_16": ("FE-66", 3, 9, 0.333, 0.039, 0.721),
    "a50_dembed_32": ("FE-67", 3, 10, 0.300, 0.039, 0.729),
    "a50_dembed_none": ("FE-65", 11, 26, 0.423, 0.145, 0.724),
}


@pytest.fixture(scope="module")
def registry():
    return load_registry(DEFAULT_REGISTRY)


def _import(tmp_path, capsys, directory=LEGACY_DIR):
    """Exit code and (stdout, stderr) with whitespace folded (rich wraps long lines)."""
    code = main(["--registry", str(DEFAULT_REGISTRY), "import-legacy", str(directory),
                 "--outputs", str(tmp_path / "outputs")])
    captured = capsys.readouterr()
    return code, SimpleNamespace(out=" ".join(captured.out.split()), err=" ".join(captured.err.split()))


def test_all_29_legacy_files_import_with_their_recorded_numbers(tmp_path, capsys):
    code, out = _import(tmp_path, capsys)
    assert code == 0 and "29 imported" in out.out
    with RunStore(tmp_path / "outputs" / "fembed.db", readonly=True) as store:
        results = {r["exp_id"]: r for r in store.results()}
    assert len(results) == 29 and all(r["legacy"] for r in results.values())
    for directory, (exp_id, tp, pp, precision, recall, auc) in EXPECTED.items():
        row = results[exp_id]
        assert (row["tp_total"], row["pred_pos_total"]) == (tp, pp), exp_id
        if pp == 0:  # the original wrote 0; with nothing predicted positive precision is undefined
            assert row["precision_mean"] is None and row["record"]["val_metrics"]["precision"] is None, exp_id
            assert row["record"]["original"]["val_metrics"]["precision"] == 0.0
        else:
            assert row["precision_mean"] == pytest.approx(precision, abs=5e-4), exp_id
        assert row["recall_mean"] == pytest.approx(recall, abs=5e-4), exp_id
        assert row["auc_mean"] == pytest.approx(auc, abs=5e-4), exp_id
        assert row["precision_std"] is None and row["run_hash"] is None
        record = row["record"]
        assert record["legacy"] is True and record["legacy_label"] == LEGACY_LABEL
        assert record["legacy_source"]["directory"] == directory
        assert record["val_metrics"]["true_positives"] == tp and len(record["val_metrics_per_seed"]) == 1
        assert record["selection"] == "last" and record["original"]["exp_id"] == exp_id
    # the two the brief names, exactly as recorded
    lf48 = results["LF-48"]["record"]["val_metrics"]
    assert (lf48["precision"], lf48["recall"], lf48["auc"]) == (0.6, 0.07894736842105263, 0.7226954669911774)
    assert (lf48["n_positive_preds"], lf48["true_positives"]) == (10, 6)
    assert results["LF-48"]["record"]["config"]["loss_params"] == {"epsilon": 0.1}
    ae16 = results["AE-16"]["record"]["val_metrics"]
    assert (ae16["precision"], ae16["recall"], ae16["auc"]) == (0.5, 0.02631578947368421, 0.6840203833282629)
    assert (ae16["n_positive_preds"], ae16["true_positives"]) == (4, 2)
    assert results["AE-16"]["record"]["config"]["embedding"] == "gated_residual"  # from the registry
    # collapsed = no positive prediction, as fembed counts it
    assert {e for e, r in results.items() if r["collapsed"]} == {"FE-69", "FE-70", "FE-72"}
    assert set(legacy_copies(tmp_path / "outputs")) == set(results)


def test_reimport_is_idempotent(tmp_path, capsys):
    _import(tmp_path, capsys)
    with RunStore(tmp_path / "outputs" / "fembed.db", readonly=True) as store:
        before = {r["exp_id"]: (r["record"], r["precision_mean"]) for r in store.results()}
    code, out = _import(tmp_path, capsys)
    assert code == 0 and "0 imported, 29 unchanged" in out.out
    with RunStore(tmp_path / "outputs" / "fembed.db", readonly=True) as store:
        after = {r["exp_id"]: (r["record"], r["precision_mean"]) for r in store.results()}
    assert after == before


def test_the_original_default_architecture_in_six_files_is_corrected_from_the_registry(registry):
    record = load_legacy_file(LEGACY_DIR / "a100_dembed_64" / "results.json", registry)
    assert record["architecture"]["d_model"] == 128  # as recorded
    assert (record["config"]["d_model"], record["config"]["d_ff"]) == (512, 2048)  # as run
    assert any("d_model recorded as 128" in note for note in record["notes"])
    plain = load_legacy_file(LEGACY_DIR / "a100_dembed_64" / "results.json")
    assert plain["config"]["d_model"] == 128 and plain["config"]["embedding"] is None


def test_a_registry_whose_experiment_of_that_id_differs_is_not_used(registry):
    other = load_registry(DEFAULT_REGISTRY)
    other = type(other)(other.path, tuple(c.replace(tier="a20") if c.exp_id == "FE-16" else c
                                          for c in other.experiments), other.tiers, other.data, other.defaults)
    record = load_legacy_file(LEGACY_DIR / "a100_dembed_64" / "results.json", other)
    assert record["config"]["d_model"] == 128 and record["config"]["embedding"] is None
    assert any("another experiment" in note for note in record["notes"])


def _bad_files(root: Path) -> dict[str, str]:
    """Malformed copies of real files, and what their error must mention."""
    good = json.loads((LEGACY_DIR / "a200_dembed_64" / "results.json").read_text())
    cases = {
        "truncated": ("{\"exp_id\": \"FE-01\", ", "not valid JSON"),
        "no_metrics": (json.dumps({k: v for k, v in good.items() if k != "val_metrics"}), "val_metrics"),
        "bad_counts": (json.dumps({**good, "val_metrics": {**good["val_metrics"], "n_positive_preds": 7}}),
                       "not a whole number of true positives"),
        "bad_id": (json.dumps({**good, "exp_id": "../x"}), "exp_id"),
        "text_precision": (json.dumps({**good, "val_metrics": {**good["val_metrics"], "precision": "0.6"}}),
                           "val_metrics.precision"),
    }
    for name, (text, _) in cases.items():
        (root / name).mkdir(parents=True)
        (root / name / "results.json").write_text(text)
    return {name: why for name, (_, why) in cases.items()}


def test_malformed_files_are_reported_by_path_and_skipped(tmp_path, capsys):
    source = tmp_path / "feature_embedding"
    shutil.copytree(LEGACY_DIR, source)
    expected = _bad_files(source)
    (source / "summary").mkdir()
    (source / "summary" / "results.json").write_text("ignored: the original's analysis folder")
    code, out = _import(tmp_path, capsys, source)
    assert code == 0 and "29 imported" in out.out and "5 skipped" in out.out
    err = out.err
    for name, why in expected.items():
        assert f"{name}/results.json" in err and why in err
    assert "5 warning(s)" in err and "summary" not in err
    with RunStore(tmp_path / "outputs" / "fembed.db", readonly=True) as store:
        assert len(store.results()) == 29


def test_only_malformed_files_exit_1_and_a_missing_folder_exits_2(tmp_path, capsys):
    _bad_files(tmp_path / "bad")
    code, _ = _import(tmp_path, capsys, tmp_path / "bad")
    assert code == 1
    code, out = _import(tmp_path, capsys, tmp_path / "nowhere")
    assert code == 2 and "nowhere" in out.err
    (tmp_path / "empty").mkdir()
    code, out = _import(tmp_path, capsys, tmp_path / "empty")
    assert code == 2 and "no results.json" in out.err


def test_a_fembed_result_is_never_replaced_and_the_legacy_copy_is_kept(tmp_path, registry):
    outputs = tmp_path / "outputs"
    with RunStore(outputs / "fembed.db") as store:
        store.record_result("FE-05", "hash-1", {"exp_id": "FE-05", "summary": {"precision_mean": 0.5}})
        report = import_legacy(store, LEGACY_DIR / "a100_dembed_none", outputs, registry)
        assert report.beside_fembed == ["FE-05"] and not report.imported
        row = store.result("FE-05")
    assert not row["legacy"] and row["precision_mean"] == 0.5
    assert legacy_copies(outputs)["FE-05"]["val_metrics"]["n_positive_preds"] == 18


def test_duplicate_ids_keep_the_later_file(tmp_path, registry):
    root = tmp_path / "dup"
    for name in ("a", "b"):
        shutil.copytree(LEGACY_DIR / "a200_dembed_64", root / name)
    later = json.loads((root / "b" / "results.json").read_text())
    later["timestamp"] = "2026-03-01T00:00:00"
    (root / "b" / "results.json").write_text(json.dumps(later))
    with RunStore(tmp_path / "fembed.db") as store:
        report = import_legacy(store, root, tmp_path, registry)
        assert report.imported == ["LF-48"] and len(report.duplicates) == 1
        assert store.result("LF-48")["record"]["timestamp"] == "2026-03-01T00:00:00"


def test_load_legacy_file_errors_name_the_file(tmp_path):
    path = tmp_path / "results.json"
    path.write_text("[1, 2]")
    with pytest.raises(LegacyFormatError, match=str(path)):
        load_legacy_file(path)
