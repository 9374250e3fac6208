"""The registry: all 183 experiments agree with the reference matrix; every bad input is caught."""

from __future__ import annotations

import csv
import json
import textwrap
from collections import Counter
from pathlib import Path

import pytest

from fembed_jax.config import ExperimentConfig
from fembed_jax.registry import RegistryError, load_registry

MATRIX = Path(__file__).parent / "data" / "experiment_matrix.csv"

PRIORITY_COUNTS = {
    "P1": 6, "P2": 3, "P3": 3, "P4": 5, "P5": 19, "P6": 8, "P7": 6, "P8": 8, "P9": 6, "P10": 6,
    "P11": 14, "P12": 8, "LF-P1": 8, "LF-P2": 12, "LF-P3": 8, "LF-P4": 6, "LF-P5": 6, "LF-P6": 8,
    "LF-P7": 6, "LF-P8": 6, "LF-P9": 4, "LF-P10": 4, "LF-P11": 2, "AE-P1": 4, "AE-P2": 4,
    "AE-P3": 4, "AE-P4": 4, "AE-P5": 5,
}


@pytest.fixture(scope="module")
def registry():
    return load_registry()


def matrix_rows() -> list[dict]:
    with MATRIX.open() as fh:
        return list(csv.DictReader(fh))


def test_all_183_experiments_with_the_matrix_priority_counts(registry):
    assert len(registry.experiments) == 183
    assert Counter(cfg.priority for cfg in registry.experiments) == PRIORITY_COUNTS
    assert [cfg.exp_id for cfg in registry.experiments] == [r["exp_id"] for r in matrix_rows()]


def test_every_field_of_every_experiment_matches_the_matrix(registry):
    mismatches = []
    for row in matrix_rows():
        cfg = registry.get(row["exp_id"])
        expected = {
            "priority": row["priority"],
            "tier": row["tier"],
            "num_features": int(row["num_features"]),
            "d_embed": int(row["d_embed"]) if row["d_embed"] else None,
            "d_model": int(row["d_model"]),
            "n_layers": int(row["n_layers"]),
            "n_heads": int(row["n_heads"]),
            "d_ff": int(row["d_ff"]),
            "dropout": float(row["dropout"]),
            "weight_decay": float(row["weight_decay"]),
            "loss": row["loss_fn"],
            "loss_params": json.loads(row["loss_params"]),
            "embedding": row["embedding_type"],
            "embedding_params": json.loads(row["embedding_params"]),
            "early_stop_metric": row["early_stop_metric"],
        }
        actual = {k: getattr(cfg, k) for k in expected}
        actual["loss_params"] = dict(cfg.loss_params)
        actual["embedding_params"] = dict(cfg.embedding_params)
        for key in expected:
            if actual[key] != expected[key]:
                mismatches.append((row["exp_id"], key, actual[key], expected[key]))
    assert mismatches == []


def test_defaults_hold_the_original_fixed_config(registry):
    cfg = registry.get("FE-06")
    assert (cfg.context_length, cfg.patch_length, cfg.stride, cfg.num_patches) == (80, 16, 8, 9)
    assert (cfg.learning_rate, cfg.batch_size, cfg.epochs, cfg.use_revin) == (1e-4, 128, 50, True)
    assert (cfg.head_dropout, cfg.patience, cfg.min_delta) == (0.0, 15, 0.001)
    assert (cfg.task, cfg.horizon, cfg.selection, cfg.seeds) == ("threshold_1pct", 1, "best", 5)
    assert {name: spec.features for name, spec in registry.tiers.items()} == {
        "a20": 20, "a50": 50, "a100": 100, "a200": 206, "a500": 500}


def test_descriptions_tell_the_truth_about_entropyreg_and_asymmetricfocal(registry):
    for cfg in registry.select(losses=["entropyreg"]):
        assert "toward 0.5" in cfg.description
    for cfg in registry.select(losses=["asymmetricfocal"]):
        assert "LOWERS the false-positive penalty" in cfg.description
    assert all(cfg.description for cfg in registry.experiments)


def test_config_hash_is_stable_and_tracks_what_changes_results(registry):
    cfg = registry.get("FE-06")
    again = load_registry().get("FE-06")
    assert cfg.config_hash == again.config_hash
    assert cfg.replace(description="other words", priority="P99").config_hash == cfg.config_hash
    assert cfg.replace(dropout=0.4).config_hash != cfg.config_hash
    assert cfg.replace(loss_params={"gamma": 1.0}).config_hash != cfg.config_hash
    assert cfg.replace(seeds=2).config_hash != cfg.config_hash
    # Pinned value: the hash must not drift between versions or machines without notice.
    assert cfg.config_hash == HASH_FE06


HASH_FE06 = ExperimentConfig(exp_id="FE-06", priority="P1", tier="a100", num_features=100,
                             d_embed=32, embedding="linear").config_hash


def test_selection_filters_combine(registry):
    assert [c.exp_id for c in registry.select(priorities=["AE-P5"])] == [
        "AE-17", "AE-18", "AE-19", "AE-20", "AE-21"]
    assert len(registry.select(tiers=["a500"], losses=["focal"])) == 6
    with pytest.raises(KeyError, match="XX-P9"):
        registry.select(priorities=["XX-P9"])


# ---- validation: a small registry, broken one field at a time --------------------------------

BASE = """\
[defaults]
d_model = 64
n_heads = 4
d_ff = 128
seeds = 2

[tiers.a20]
features = 20

[tiers.a100]
features = 100

[data]
source = "builtin"

[[experiments]]
id = "FE-01"
priority = "P1"
tier = "a20"
d_embed = 16
description = "ok"

[[experiments]]
id = "LF-01"
priority = "LF-P1"
tier = "a100"
d_embed = 32
loss = "focal"
loss_params = { gamma = 2.0, alpha = 0.25 }
description = "ok too"
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "reg.toml"
    path.write_text(textwrap.dedent(text))
    return path


def errors_of(tmp_path: Path, text: str) -> list[str]:
    with pytest.raises(RegistryError) as info:
        load_registry(write(tmp_path, text))
    return info.value.errors


def test_the_small_base_registry_is_valid(tmp_path):
    reg = load_registry(write(tmp_path, BASE))
    assert [c.exp_id for c in reg.experiments] == ["FE-01", "LF-01"]
    assert reg.get("FE-01").embedding == "linear" and reg.get("FE-01").d_model == 64
    assert reg.get("LF-01").early_stop_metric == "val_auc"


def broken(old: str, new: str) -> str:
    assert old in BASE
    return BASE.replace(old, new, 1)


@pytest.mark.parametrize("old,new,exp_id,field,words", [
    ('description = "ok"\n', 'description = "ok"\nd_embedd = 3\n', "FE-01", "d_embedd", "unknown key"),
    ('id = "LF-01"', 'id = "FE-01"', "FE-01", "id", "duplicate id"),
    ('priority = "P1"', 'priority = "Prio1"', "FE-01", "priority", "unknown priority pattern"),
    ('tier = "a20"', 'tier = "a30"', "FE-01", "tier", "unknown tier"),
    ('loss = "focal"', 'loss = "fokal"', "LF-01", "loss", "unknown loss"),
    ('d_embed = 16\n', 'd_embed = 16\nembedding = "spiral"\n', "FE-01", "embedding",
     "unknown embedding type"),
    ('gamma = 2.0, alpha = 0.25', 'gamma = -1.0, alpha = 0.25', "LF-01", "loss_params", "gamma"),
    ('loss = "focal"\nloss_params = { gamma = 2.0, alpha = 0.25 }',
     'loss = "labelsmoothing"\nloss_params = { epsilon = 1.5 }', "LF-01", "loss_params", "epsilon"),
    ('loss = "focal"\nloss_params = { gamma = 2.0, alpha = 0.25 }',
     'loss = "weightedsum"\nloss_params = { alpha = 1.2 }', "LF-01", "loss_params", "alpha"),
    ('loss = "focal"\nloss_params = { gamma = 2.0, alpha = 0.25 }',
     'loss = "weightedbce"\nloss_params = { pos_weight = 0.0 }', "LF-01", "loss_params", "pos_weight"),
    ('d_embed = 16\n', 'd_embed = 16\nd_model = 60\nn_heads = 8\n', "FE-01", "n_heads", "not divisible"),
    ('d_embed = 16\n', 'd_embed = 18\nembedding = "attention"\nembedding_params = { num_heads = 4 }\n',
     "FE-01", "embedding_params.num_heads", "not divisible"),
    ('d_embed = 16\n', 'embedding = "bottleneck"\n', "FE-01", "embedding", "requires d_embed"),
    ('d_embed = 16\n', 'd_embed = 16\nembedding = "bottleneck"\nembedding_params = { compression_ratio = 1.0 }\n',
     "FE-01", "embedding_params.compression_ratio", "(0, 1)"),
    ('d_embed = 16\n', 'd_embed = 0\n', "FE-01", "d_embed", "positive"),
    ('d_embed = 16\n', 'd_embed = 16\nn_layers = -2\n', "FE-01", "n_layers", "positive"),
    ('d_embed = 16\n', 'd_embed = 16\ndropout = 1.0\n', "FE-01", "dropout", "[0, 1)"),
    ('d_embed = 16\n', 'd_embed = 16\ndropout = -0.1\n', "FE-01", "dropout", "[0, 1)"),
    ('d_embed = 16\n', 'd_embed = "sixteen"\n', "FE-01", "d_embed", "integer"),
    ('d_embed = 16\n', 'd_embed = 16\nselection = "median"\n', "FE-01", "selection", "'best' or 'last'"),
])
def test_each_validation_error_names_file_line_experiment_and_field(tmp_path, old, new, exp_id,
                                                                   field, words):
    errors = errors_of(tmp_path, broken(old, new))
    matching = [e for e in errors if f" {exp_id}:" in e and f"'{field}'" in e and words in e]
    assert matching, errors
    assert matching[0].startswith(f"{tmp_path / 'reg.toml'}:")
    line = int(matching[0].split(":")[1])
    assert line > 0


def test_all_errors_are_reported_at_once(tmp_path):
    text = broken('tier = "a20"', 'tier = "a30"')
    text = text.replace('gamma = 2.0, alpha = 0.25', 'gamma = -1.0, alpha = 0.25')
    errors = errors_of(tmp_path, text)
    assert any("FE-01" in e and "tier" in e for e in errors)
    assert any("LF-01" in e and "gamma" in e for e in errors)


def test_line_numbers_point_at_the_offending_line(tmp_path):
    text = broken('priority = "LF-P1"', 'priority = "LF-Px"')
    errors = errors_of(tmp_path, text)
    line = int(errors[0].split(":")[1])
    assert text.splitlines()[line - 1].strip() == 'priority = "LF-Px"'


def test_unknown_keys_in_defaults_tiers_and_top_level(tmp_path):
    text = BASE.replace("seeds = 2\n", "seeds = 2\nbatchsize = 64\n").replace(
        "[tiers.a20]\nfeatures = 20\n", "[tiers.a20]\nfeatures = 20\ncolumns = 3\n") + "\n[extra]\nx = 1\n"
    errors = errors_of(tmp_path, text)
    assert any("'batchsize'" in e and "[defaults]" in e for e in errors)
    assert any("'columns'" in e and "a20" in e for e in errors)
    assert any("'extra'" in e for e in errors)


def test_syntax_errors_and_missing_files_are_registry_errors(tmp_path):
    errors = errors_of(tmp_path, BASE + "\n[[experiments]\n")
    assert "not valid TOML" in errors[0] and "line" in errors[0]
    with pytest.raises(RegistryError, match="cannot read"):
        load_registry(tmp_path / "absent.toml")
