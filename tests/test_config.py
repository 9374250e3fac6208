"""Every config field says what it is for (config.ROLES), and the lists of fields the rest of
the code uses are derived from those roles: a new field without a role fails here, and one with
a role is grouped, hashed and cached as that role says."""

from __future__ import annotations

import dataclasses

import pytest

from fembed_jax import catalog
from fembed_jax.config import CONFIG_FIELDS, ROLES, ExperimentConfig, fields_with, roles_of, structure_key

BASE = ExperimentConfig(exp_id="FE-06", priority="P1", tier="a100", num_features=100, d_embed=32,
                        embedding="linear", loss="focal", loss_params={"gamma": 2.0})
# A different, valid value for every field (the point is only that it differs).
CHANGED = {
    "exp_id": "FE-07", "priority": "P2", "tier": "a50", "num_features": 50, "description": "x",
    "d_embed": 16, "d_model": 64, "n_layers": 2, "n_heads": 4, "d_ff": 256, "dropout": 0.3,
    "head_dropout": 0.1, "weight_decay": 0.01, "learning_rate": 3e-4, "batch_size": 64,
    "epochs": 20, "context_length": 64, "patch_length": 8, "stride": 4, "use_revin": False,
    "loss": "bce", "loss_params": {"gamma": 3.0}, "embedding": "progressive",
    "embedding_params": {"num_layers": 2}, "early_stop_metric": "val_loss", "patience": 5,
    "min_delta": 0.01, "task": "threshold_2pct", "horizon": 5, "selection": "last", "seeds": 3,
    "selection_windows": "all",
}


def test_every_field_has_a_known_role():
    for name in CONFIG_FIELDS:
        roles = roles_of(name)
        assert roles, f"config field {name} has no role"
        assert roles <= set(ROLES), (name, roles)
    assert set(CHANGED) == set(CONFIG_FIELDS), "give the new field a changed value above"


def test_unknown_roles_are_refused():
    with pytest.raises(ValueError, match="unknown config field role"):
        fields_with("shape")


@pytest.mark.parametrize("name", CONFIG_FIELDS)
def test_a_field_changes_the_program_exactly_when_its_role_says(name):
    """Experiments differing in a data, model or program field never share a compiled program;
    those differing only in member or loop values (or names) may. The loss is a program field
    by its family: focal and bce differ, focal and mildfocal would not."""
    changed = dataclasses.replace(BASE, **{name: CHANGED[name]})
    shapes_program = bool(roles_of(name) & {"data", "model", "program"})
    assert (structure_key(changed) != structure_key(BASE)) == shapes_program, name


@pytest.mark.parametrize("name", CONFIG_FIELDS)
def test_a_field_changes_the_result_identity_unless_it_only_names(name):
    changed = dataclasses.replace(BASE, **{name: CHANGED[name]})
    assert (changed.config_hash != BASE.config_hash) == (roles_of(name) != {"name"}), name


def test_parameter_counts_are_keyed_by_the_model_fields():
    assert set(catalog.SHAPE_FIELDS) == set(fields_with("model"))
