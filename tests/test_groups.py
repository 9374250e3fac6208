"""Experiments sharing a program train together and end exactly as they would alone."""

from __future__ import annotations

import numpy as np
import pytest

from fembed_jax.config import structure_key
from fembed_jax.train.engine import DeviceData, Engine
from fembed_jax.train.fit import Member, fit, fit_group
from helpers import synthetic_dataset, tiny_config


def close(a, b, tol=1e-5):
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(close(a[k], b[k], tol) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(close(x, y, tol) for x, y in zip(a, b))
    if isinstance(a, float) and isinstance(b, float):
        return a == pytest.approx(b, rel=tol, abs=tol)
    return a == b


def test_structure_key_groups_losses_not_shapes():
    focal = tiny_config(loss="focal", loss_params={"gamma": 2.0, "alpha": 0.25})
    assert structure_key(focal) == structure_key(focal.replace(loss_params={"gamma": 3.0, "alpha": 0.75}))
    assert structure_key(focal) == structure_key(focal.replace(loss="mildfocal", loss_params={}))
    assert structure_key(focal) == structure_key(focal.replace(weight_decay=0.01, learning_rate=3e-4))
    # the loss is a member value, of any family (losses.program_loss_fn)
    assert structure_key(focal) == structure_key(focal.replace(loss="bce", loss_params={}))
    assert structure_key(focal) != structure_key(focal.replace(d_model=32))
    assert structure_key(focal) != structure_key(focal.replace(dropout=0.3))


def test_a_group_ends_exactly_like_each_experiment_alone():
    data = DeviceData.from_dataset(synthetic_dataset())
    cfgs = [tiny_config(exp_id="G-01", loss="focal", loss_params={"gamma": 2.0, "alpha": 0.25},
                        epochs=3),
            tiny_config(exp_id="G-02", loss="focal", loss_params={"gamma": 1.0, "alpha": 0.5},
                        epochs=4, weight_decay=0.01, patience=1),
            tiny_config(exp_id="G-03", loss="mildfocal", loss_params={}, epochs=2, learning_rate=1e-3)]
    seeds = [[42, 43], [42, 43], [7, 8]]
    grouped = fit_group([Member(c, s) for c, s in zip(cfgs, seeds)], data)
    # One engine for the runs alone: what differs between the configs is data to the program.
    engine = Engine(cfgs[0], data)
    for cfg, s, got in zip(cfgs, seeds, grouped):
        alone = fit(cfg, data, s, engine=engine)
        assert got.seeds == s
        assert got.epochs_run == alone.epochs_run
        assert close(got.history, alone.history)
        assert close(got.per_seed, alone.per_seed)
        np.testing.assert_allclose(got.val_probs, alone.val_probs, rtol=1e-5, atol=1e-6)
    # each experiment ran its own number of epochs inside the shared loop
    assert [len(r.history) for r in grouped][0] == 3 and [len(r.history) for r in grouped][2] == 2


def test_a_group_of_several_loss_families_ends_like_each_alone():
    """BCE, focal and VarianceReg members in one program (the loss switched per member): each
    experiment ends as it does alone in a program that computes only its own loss."""
    data = DeviceData.from_dataset(synthetic_dataset())
    cfgs = [tiny_config(exp_id="M-01", epochs=2),
            tiny_config(exp_id="M-02", loss="focal", loss_params={"gamma": 3.0}, epochs=3, patience=1),
            tiny_config(exp_id="M-03", loss="variancereg", loss_params={"lambda_var": 0.25},
                        early_stop_metric="val_loss", epochs=2)]
    grouped = fit_group([Member(c, [42, 43]) for c in cfgs], data)
    for cfg, got in zip(cfgs, grouped):
        alone = fit(cfg, data, [42, 43])
        assert got.epochs_run == alone.epochs_run
        assert close(got.history, alone.history) and close(got.per_seed, alone.per_seed)
        np.testing.assert_allclose(got.val_probs, alone.val_probs, rtol=1e-5, atol=1e-6)


def test_lf_p2_forms_two_groups_one_per_architecture():
    from fembed_jax.catalog import param_counts
    from fembed_jax.registry import load_registry
    from fembed_jax.train.schedule import make_groups

    cfgs = load_registry().select(priorities=["LF-P2"])
    counts = param_counts(cfgs)
    groups = make_groups(cfgs, lambda c: c, lambda c: counts[c.exp_id])
    assert [[c.exp_id for c in g] for g in groups] == [
        [f"LF-{i:02d}" for i in range(9, 15)], [f"LF-{i:02d}" for i in range(15, 21)]]
    assert len(make_groups(cfgs, lambda c: c, lambda c: counts[c.exp_id], enabled=False)) == 12
    # the memory cap splits a group
    capped = make_groups(cfgs, lambda c: c, lambda c: counts[c.exp_id], max_params=3 * 866_089 * 5)
    assert [len(g) for g in capped] == [3, 3, 6]


def test_finished_experiments_leave_the_program_on_cpu(monkeypatch):
    """Once an experiment's seeds have all stopped, the others train in a smaller program (on a
    CPU a frozen member costs as much as a training one); the results stay those of alone."""
    data = DeviceData.from_dataset(synthetic_dataset())
    cfgs = [tiny_config(exp_id="C-01", epochs=1), tiny_config(exp_id="C-02", epochs=3)]
    sizes = []
    original = Engine.train_epoch

    def counting(self, params, opt_state, keys, *args, **kwargs):
        sizes.append(int(keys.shape[0]))
        return original(self, params, opt_state, keys, *args, **kwargs)

    monkeypatch.setattr(Engine, "train_epoch", counting)
    grouped = fit_group([Member(c, [42, 43]) for c in cfgs], data)
    assert sizes == [4, 2, 2]  # C-01 left after its only epoch
    monkeypatch.setattr(Engine, "train_epoch", original)
    engine = Engine(cfgs[0], data)
    for cfg, got in zip(cfgs, grouped):
        alone = fit(cfg, data, [42, 43], engine=engine)
        assert close(got.history, alone.history) and close(got.per_seed, alone.per_seed)
        np.testing.assert_allclose(got.val_probs, alone.val_probs, rtol=1e-5, atol=1e-6)
