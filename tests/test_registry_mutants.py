"""Registry hardening: each test reproduces a defect a mutated registry once slipped through with
(a trailing newline in an id, non-ASCII digits, integers past int64, inf/nan, absurd sizes, silent
[] from an unknown filter, [data] problems without a line) and pins the message it now gets."""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json

import pytest
from test_registry import BASE, broken, errors_of, write

from fembed_jax.config import ExperimentConfig
from fembed_jax.registry import _EMBED_INT_MAX, _INT_MAX, DATA_KEYS, MAX_FEATURES, load_registry


def problem(tmp_path, text: str, who: str | None, field: str, words: str) -> list[str]:
    """The errors of `text`; asserts one names file, line, `who` and `field` and says `words`, and
    that its line is the one holding the field."""
    errors = errors_of(tmp_path, text)
    matching = [e for e in errors if (who is None or f" {who}:" in e) and f"field '{field}'" in e
                and words in e]
    assert matching, errors
    path, line = matching[0].split(":")[:2]
    assert path == str(tmp_path / "reg.toml")
    assert field.split(".")[0] in text.splitlines()[int(line) - 1], (matching[0], text)
    return errors


# ---- 1. ids and priorities match in full, ASCII digits only ---------------------------------

@pytest.mark.parametrize("exp_id", ["FE-01\\n", "FE-\u0660\u0661", "FE-\uff10\uff11", "FE-01 ", "fe-01",
                                    "FE-\u0967"])
def test_ids_with_a_trailing_newline_or_non_ascii_digits_are_rejected(tmp_path, exp_id):
    problem(tmp_path, broken('id = "FE-01"', f'id = "{exp_id}"'), None, "id", "must look like 'FE-01'")


@pytest.mark.parametrize("priority", ["P1\\n", "P\u0661", "P\uff11", "LF-P\u0661"])
def test_priorities_with_a_trailing_newline_or_non_ascii_digits_are_rejected(tmp_path, priority):
    problem(tmp_path, broken('priority = "P1"', f'priority = "{priority}"'), "FE-01", "priority",
            "unknown priority pattern")


# ---- 2./3. integers past int64 and inf/nan, wherever they sit ------------------------------

EMB = 'd_embed = 16\n'


@pytest.mark.parametrize("old,new,who,field", [
    (EMB, f"d_embed = 16\nd_model = {2**70}\n", "FE-01", "d_model"),
    (EMB, f"d_embed = 16\nepochs = {-2**70}\n", "FE-01", "epochs"),
    (EMB, f"d_embed = 16\nlearning_rate = {2**64}\n", "FE-01", "learning_rate"),  # was accepted
    (EMB, f"d_embed = 16\nembedding = \"progressive\"\nembedding_params = {{ num_layers = {2**63} }}\n",
     "FE-01", "embedding_params.num_layers"),
    ("gamma = 2.0", f"gamma = {2**70}", "LF-01", "loss_params.gamma"),
    ("d_ff = 128\n", f"d_ff = {2**65}\n", "[defaults]", "d_ff"),
])
def test_integers_beyond_int64_are_rejected_with_line_id_and_field(tmp_path, old, new, who, field):
    problem(tmp_path, broken(old, new), who, field, "64-bit range")


@pytest.mark.parametrize("bad", ["inf", "-inf", "nan"])
@pytest.mark.parametrize("old,new,who,field", [
    (EMB, "d_embed = 16\ndropout = {bad}\n", "FE-01", "dropout"),
    (EMB, "d_embed = 16\nlearning_rate = {bad}\n", "FE-01", "learning_rate"),
    (EMB, "d_embed = 16\nembedding = \"variational\"\nembedding_params = {{ latent_dim = 8, beta = {bad} }}\n",
     "FE-01", "embedding_params.beta"),  # beta = inf passed `value >= 0`
    (EMB, "d_embed = 16\nembedding = \"bottleneck\"\nembedding_params = {{ compression_ratio = {bad} }}\n",
     "FE-01", "embedding_params.compression_ratio"),
    ("gamma = 2.0", "gamma = {bad}", "LF-01", "loss_params.gamma"),
    ("seeds = 2\n", "seeds = 2\nweight_decay = {bad}\n", "[defaults]", "weight_decay"),
    ("seeds = 2\n", "seeds = {bad}\n", "[defaults]", "seeds"),
])
def test_non_finite_floats_are_rejected_anywhere(tmp_path, bad, old, new, who, field):
    problem(tmp_path, broken(old, new.format(bad=bad)), who, field, "must be finite")


def test_a_bad_default_is_reported_once_not_once_per_experiment(tmp_path):
    errors = problem(tmp_path, broken("d_model = 64\n", f"d_model = {2**70}\n"), "[defaults]",
                     "d_model", "64-bit range")
    assert len(errors) == 1, errors


def test_an_integer_too_long_for_python_to_parse_is_a_registry_error(tmp_path):
    errors = errors_of(tmp_path, BASE.replace("seeds = 2", "seeds = " + "9" * 5000))
    assert len(errors) == 1 and "not valid TOML" in errors[0] and "digits" in errors[0]


# ---- 4. every size is bounded ---------------------------------------------------------------

@pytest.mark.parametrize("field", sorted(set(_INT_MAX) - {"n_heads"}))
def test_every_size_field_has_an_upper_bound(tmp_path, field):
    value = 2**62 if field == "d_model" else _INT_MAX[field] + 1  # 2**62: the reproduced traceback
    errors = problem(tmp_path, broken(EMB, f"d_embed = 16\n{field} = {value}\n".replace(
        "d_embed = 16\nd_embed", "d_embed")), "FE-01", field, f"must be at most {_INT_MAX[field]}")
    assert len(errors) == 1, errors


def test_n_heads_may_not_exceed_d_model(tmp_path):
    problem(tmp_path, broken(EMB, "d_embed = 16\nn_heads = 128\n"), "FE-01", "n_heads",
            "n_heads 128 exceeds d_model 64")


@pytest.mark.parametrize("kind,params,field", [
    ("progressive", "num_layers = 65", "num_layers"),
    ("multihead", "num_heads = 1025, head_dim = 4", "num_heads"),
    ("multihead", "num_heads = 2, head_dim = 65537", "head_dim"),
    ("variational", "latent_dim = 65537", "latent_dim"),
    ("gated_residual", "hidden_dim = 262145", "hidden_dim"),
])
def test_embedding_sizes_are_bounded(tmp_path, kind, params, field):
    text = broken(EMB, f'd_embed = 16\nembedding = "{kind}"\nembedding_params = {{ {params} }}\n')
    problem(tmp_path, text, "FE-01", f"embedding_params.{field}", f"..{_EMBED_INT_MAX[field]}")


def test_tier_features_are_bounded_and_experiments_on_a_broken_tier_stay_quiet(tmp_path):
    errors = problem(tmp_path, broken("features = 20", "features = 1000000000"), None, "features",
                     f"1..{MAX_FEATURES}")
    assert len(errors) == 1, errors  # not also "FE-01: unknown tier 'a20'"


def test_sizes_at_their_bounds_still_load(tmp_path):
    sizes = {k: v for k, v in _INT_MAX.items() if k not in ("d_embed", "n_heads", "patch_length")}
    text = broken(EMB, "d_embed = 65536\n" + "".join(f"{k} = {v}\n" for k, v in sizes.items()))
    cfg = load_registry(write(tmp_path, text)).get("FE-01")
    assert (cfg.d_model, cfg.d_ff, cfg.seeds, cfg.d_embed) == (65536, 262144, 1024, 65536)


def test_the_real_registry_sits_well_inside_every_bound():
    registry = load_registry()
    for cfg in registry.experiments:
        for field, limit in _INT_MAX.items():
            assert (getattr(cfg, field) or 0) <= limit // 2, (cfg.exp_id, field)
        for key, value in cfg.embedding_params.items():
            assert key not in _EMBED_INT_MAX or value <= _EMBED_INT_MAX[key] // 2, (cfg.exp_id, key)
    assert all(spec.features <= MAX_FEATURES // 2 for spec in registry.tiers.values())


# ---- 5. "did you mean" ----------------------------------------------------------------------

@pytest.mark.parametrize("old,new,who,field,words", [
    (EMB, "d_embed = 16\ndropuot = 0.1\n", "FE-01", "dropuot", "unknown key; did you mean 'dropout'"),
    ("seeds = 2\n", "seeds = 2\nbatchsize = 64\n", "[defaults]", "batchsize", "did you mean 'batch_size'"),
    ('tier = "a20"', 'tier = "A20"', "FE-01", "tier", "unknown tier 'A20'; did you mean 'a20'?"),
    ('loss = "focal"', 'loss = "Focal"', "LF-01", "loss", "did you mean 'focal'?"),
    (EMB, 'd_embed = 16\nembedding = "bottlenek"\n', "FE-01", "embedding", "did you mean 'bottleneck'?"),
    (EMB, 'd_embed = 16\nembedding = "attention"\nembedding_params = { num_head = 4 }\n', "FE-01",
     "embedding_params.num_head", "did you mean 'num_heads'?"),
    (EMB, 'd_embed = 16\ntask = "threshold_1pc"\n', "FE-01", "task", "did you mean 'threshold_1pct'"),
    ("features = 20\n", "features = 20\nfeature = 3\n", None, "feature", "did you mean 'features'?"),
])
def test_unknown_names_get_a_did_you_mean_and_keep_the_known_list(tmp_path, old, new, who, field, words):
    errors = problem(tmp_path, broken(old, new), who, field, words)
    assert any(words in e and "(known: " in e for e in errors), errors


def test_no_hint_when_nothing_is_close(tmp_path):
    errors = errors_of(tmp_path, broken(EMB, "d_embed = 16\nzzqqxx = 1\n"))
    assert len(errors) == 1 and "did you mean" not in errors[0] and "(known: " in errors[0]


def test_a_misspelt_top_level_table_gets_a_hint(tmp_path):
    errors = errors_of(tmp_path, BASE + "\n[tier.a50]\nfeatures = 50\n")
    assert any("'tier'" in e and "did you mean 'tiers'?" in e for e in errors), errors


# ---- 5./6. Registry.select ------------------------------------------------------------------

@pytest.fixture
def small(tmp_path):
    return load_registry(write(tmp_path, BASE))


@pytest.mark.parametrize("kwargs,words", [
    ({"priorities": ["p1"]}, "p1 (did you mean P1?)"),
    ({"priorities": ["lf-p1"]}, "lf-p1 (did you mean LF-P1?)"),
    ({"exp_ids": ["fe-01"]}, "fe-01 (did you mean FE-01?)"),
    ({"tiers": ["a99"]}, "tier filter: unknown tier 'a99'"),
    ({"tiers": ["A20"]}, "unknown tier 'A20'; did you mean 'a20'? (known: a20, a100)"),
    ({"losses": ["nosuch"]}, "loss filter: unknown loss 'nosuch'"),
    ({"embeddings": ["Linear"]}, "embedding filter: unknown embedding 'Linear'; did you mean 'linear'?"),
])
def test_select_rejects_values_nothing_could_match_and_hints_instead_of_case_folding(small, kwargs, words):
    with pytest.raises(KeyError) as info:
        small.select(**kwargs)
    assert words in info.value.args[0] and str(small.path) in info.value.args[0]


def test_select_names_every_unknown_value_at_once(small):
    with pytest.raises(KeyError) as info:
        small.select(priorities=["XX-P9"], tiers=["a99"], losses=["nosuch"], embeddings=["spiral"])
    message = info.value.args[0]
    assert all(v in message for v in ("XX-P9", "'a99'", "'nosuch'", "'spiral'", "(known: bce"))


def test_select_gives_an_empty_list_when_valid_filters_share_no_experiment(small):
    assert small.select(tiers=["a20"], losses=["focal"]) == []
    assert small.select(losses=["softauc"]) == []  # a known loss no experiment uses
    assert small.select(embeddings=["attention"], priorities=["P1"]) == []
    assert [c.exp_id for c in small.select(tiers=["a100"], losses=["focal"])] == ["LF-01"]


def test_the_cli_exits_2_on_an_unknown_filter_and_prints_an_empty_selection(tmp_path, capsys):
    from fembed_jax.cli.main import main

    path = str(write(tmp_path, BASE))
    assert main(["--registry", path, "list", "--tier", "a99"]) == 2
    err = capsys.readouterr().err.replace("\n", "")
    assert "a99" in err and "tier filter" in err
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["--registry", path, "list", "--json", "--tier", "a20", "--loss", "focal"]) == 0
    assert json.loads(out.getvalue()) == []


# ---- 7. [data] problems carry a line ----------------------------------------------------------

@pytest.mark.parametrize("new,field,words", [
    ('val_strat = "2015-01-01"\n', "val_strat", "unknown key; did you mean 'val_start'?"),
    ('val_start = "2015-13-01"\n', "val_start", "is not a date"),
    ('val_start = "2018-01-01"\ntest_start = 2017-01-01\n', "val_start", "must be before test_start"),
    ('test_start = "2017-01-01"\ntest_end = 2016-06-01\n', "test_end", "must be after test_start"),
    ('test_end = "2018-02-30"\n', "test_end", "is not a date"),
    ("source = 3\n", "source", "must be a string"),
])
def test_data_table_problems_name_the_line(tmp_path, new, field, words):
    text = broken('source = "builtin"\n', new) if field == "source" else \
        broken('source = "builtin"\n', 'source = "builtin"\n' + new)
    problem(tmp_path, text, "[data]", field, words)


@pytest.mark.parametrize("dates", ['val_start = 2015-01-01\ntest_start = 2017-01-01',
                                   'val_start = "2015/01/01"\ntest_start = "2017-01-01"'])
def test_dates_the_data_config_reads_are_accepted(tmp_path, dates):
    load_registry(write(tmp_path, broken('source = "builtin"\n', f'source = "builtin"\n{dates}\n')))


def test_data_keys_are_the_data_config_fields():
    from fembed_jax.data.config import DataConfig

    assert DATA_KEYS == tuple(f.name for f in dataclasses.fields(DataConfig))


def test_int_bounds_cover_every_integer_config_field():
    ints = {f.name for f in dataclasses.fields(ExperimentConfig) if f.type in ("int", "int | None")}
    assert ints - {"num_features"} == set(_INT_MAX)
