"""The compiled engine and the epoch loop on small synthetic windows."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from fembed_jax.train.engine import Engine, seed_keys
from fembed_jax.train.fit import Interrupted, fit

from helpers import synthetic_dataset, tiny_config


def leaves_equal(a, b) -> bool:
    return all(np.array_equal(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


@pytest.fixture(scope="module")
def engine():
    """One compiled engine for the module: epochs, patience and selection are host-side, so
    configs differing only in them share it (as fit(engine=...) allows)."""
    from fembed_jax.train.engine import DeviceData

    return Engine(tiny_config(), DeviceData.from_dataset(synthetic_dataset()))


def test_frozen_seeds_keep_their_params_and_optimizer_state(engine):
    keys = seed_keys([42, 43])
    params, opt = engine.init(keys)
    before = jax.tree.map(np.array, (params, opt))
    params, opt, loss = engine.train_epoch(params, opt, keys, 0, np.array([True, False]))
    seed = lambda tree, k: jax.tree.map(lambda x: np.asarray(x)[k], tree)  # noqa: E731
    assert leaves_equal(seed(params, 1), seed(before[0], 1))
    assert leaves_equal(seed(opt, 1), seed(before[1], 1))
    assert not leaves_equal(seed(params, 0), seed(before[0], 0))
    assert np.all(np.isfinite(np.asarray(loss)))


def test_seeds_start_from_different_weights_and_evaluate_in_range(engine):
    params, _ = engine.init(seed_keys([1, 2]))
    leaves = [np.asarray(x) for x in jax.tree.leaves(params)]
    assert all(x.shape[0] == 2 for x in leaves)
    assert any(not np.array_equal(x[0], x[1]) for x in leaves)
    probs, loss = engine.evaluate(params, "val")
    assert probs.shape == (2, engine.data.size("val"))
    assert np.all((probs >= 0) & (probs <= 1)) and loss.shape == (2,)


def test_a_run_is_reproducible(engine):
    cfg = tiny_config(epochs=3)
    a = fit(cfg, engine.data, [42, 43], engine=engine)
    b = fit(cfg, engine.data, [42, 43], engine=engine)
    assert a.history == b.history
    assert a.per_seed == b.per_seed


def test_different_seeds_give_different_runs(engine):
    cfg = tiny_config(epochs=2)
    a = fit(cfg, engine.data, [42, 43], engine=engine)
    assert a.history[-1]["val_loss"][0] != a.history[-1]["val_loss"][1]


def test_stopping_follows_the_rule_for_each_seed(engine):
    """Replays the recorded validation AUCs through the rule and checks who trained when."""
    cfg = tiny_config(epochs=8, patience=1, min_delta=0.01)
    result = fit(cfg, engine.data, [42, 43], engine=engine)
    for k in range(2):
        best, counter, stopped_at = -np.inf, 0, None
        for h in result.history:
            assert h["trained"][k] == (stopped_at is None)
            if stopped_at is not None:
                continue
            auc = h["val_auc"][k]
            if auc is not None and auc > best + cfg.min_delta:
                best, counter = auc, 0
            else:
                counter += 1
                if counter >= cfg.patience:
                    stopped_at = h["epoch"]
        assert result.stop.stop_epoch[k] == (stopped_at if stopped_at is not None else len(result.history) - 1)
        assert result.epochs_run[k] == sum(h["trained"][k] for h in result.history)


def test_best_selection_evaluates_the_best_epoch_weights(engine):
    cfg = tiny_config(epochs=5, patience=10)
    best = fit(cfg, engine.data, [42, 43], engine=engine)
    last = fit(cfg.replace(selection="last"), engine.data, [42, 43], engine=engine)
    for k in range(2):
        best_epoch = best.per_seed[k]["best_epoch"]
        aucs = [h["val_auc"][k] for h in best.history]
        assert best.per_seed[k]["auc"] == pytest.approx(aucs[best_epoch], abs=1e-9)
        assert last.per_seed[k]["auc"] == pytest.approx(aucs[-1], abs=1e-9)


def test_should_stop_interrupts_after_the_epoch(engine):
    calls = []
    with pytest.raises(Interrupted) as info:
        fit(tiny_config(epochs=4), engine.data, [42, 43], on_epoch=calls.append, should_stop=lambda: True,
            engine=engine)
    assert info.value.epoch == 0 and len(calls) == 1
