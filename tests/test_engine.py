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
    # The original's protocol: the epoch is chosen and scored on every validation window.
    cfg = tiny_config(epochs=5, patience=10, selection_windows="all")
    best = fit(cfg, engine.data, [42, 43], engine=engine)
    last = fit(cfg.replace(selection="last"), engine.data, [42, 43], engine=engine)
    for k in range(2):
        best_epoch = best.per_seed[k]["best_epoch"]
        aucs = [h["val_auc"][k] for h in best.history]
        assert best.per_seed[k]["auc"] == pytest.approx(aucs[best_epoch], abs=1e-9)
        assert last.per_seed[k]["auc"] == pytest.approx(aucs[-1], abs=1e-9)


def test_the_epoch_is_chosen_on_selection_windows_and_scored_on_the_others():
    """Default rule "alternate": early stopping never reads the report windows, so relabelling
    them changes no epoch choice, only the scores; the scores are those of the report windows."""
    from fembed_jax.data.splits import selection_masks
    from fembed_jax.train.engine import DeviceData
    from fembed_jax.train.fit import safe_auc

    cfg = tiny_config(epochs=5, patience=10)
    assert cfg.selection_windows == "alternate"
    dataset = synthetic_dataset()
    select, scored = selection_masks(dataset.labels["val"].size, "alternate")
    assert select.any() and scored.any() and not (select & scored).any()
    flipped = dict(dataset.labels, val=np.where(scored, 1 - dataset.labels["val"], dataset.labels["val"]))
    runs = []
    for labels in (dataset.labels, flipped):
        data = DeviceData.from_dataset(type(dataset)(matrix=dataset.matrix, starts=dataset.starts, labels=labels))
        runs.append(fit(cfg, data, [42, 43]))
    a, b = runs
    assert a.history == b.history  # training and selection saw the same windows
    assert [m["best_epoch"] for m in a.per_seed] == [m["best_epoch"] for m in b.per_seed]
    for k in range(2):
        assert a.per_seed[k]["n_samples"] == int(scored.sum())
        assert a.per_seed[k]["auc"] == pytest.approx(safe_auc(dataset.labels["val"][scored], a.val_probs[k][scored]))
        assert a.per_seed[k]["auc"] != pytest.approx(b.per_seed[k]["auc"])
        best_epoch = a.per_seed[k]["best_epoch"]
        aucs = [h["val_auc"][k] for h in a.history]
        assert aucs[best_epoch] == pytest.approx(safe_auc(dataset.labels["val"][select], a.val_probs[k][select]))
    assert a.val_probs.shape[1] == dataset.labels["val"].size  # predictions keep every window


def test_should_stop_interrupts_after_the_epoch(engine):
    calls = []
    with pytest.raises(Interrupted) as info:
        fit(tiny_config(epochs=4), engine.data, [42, 43], on_epoch=calls.append, should_stop=lambda: True,
            engine=engine)
    assert info.value.epoch == 0 and len(calls) == 1


def _train(engine, keys, active, epochs: int, chunk: int | None):
    engine.steps_per_chunk = chunk
    params, opt = engine.init(keys)
    losses = []
    for epoch in range(epochs):
        params, opt, loss = engine.train_epoch(params, opt, keys, epoch, active)
        losses.append(np.asarray(loss))
    return jax.tree.map(np.asarray, (params, opt)), losses


def test_an_epoch_in_chunks_equals_one_loop_over_all_its_batches(engine):
    """Chunks run the same step on the same batches and keys in the same order: bit-identical
    params, optimizer state and mean loss whatever the chunk size (the whole epoch in one chunk
    is the loop of before chunks existed)."""
    keys, active = seed_keys([42, 43, 44]), np.array([True, True, False])
    whole = _train(engine, keys, active, 2, engine.n_batches)
    try:
        for chunk in (1, 2, 3):
            got = _train(engine, keys, active, 2, chunk)
            assert leaves_equal(got[0], whole[0]), chunk
            for a, b in zip(got[1], whole[1]):
                np.testing.assert_array_equal(a, b)
    finally:
        engine.steps_per_chunk = None


def test_an_epoch_resumed_at_a_batch_ends_as_an_uninterrupted_one(engine):
    keys, active = seed_keys([42, 43]), np.array([True, True])
    engine.steps_per_chunk = 2
    try:
        params, opt = engine.init(keys)
        uninterrupted = engine.train_epoch(params, opt, keys, 1, active)
        saved = {}

        def between(steps, params, opt_state, losses):  # what a checkpoint of the position holds
            saved.update(steps=steps.copy(), state=jax.device_get((params, opt_state, losses)))
            raise KeyboardInterrupt

        params, opt = engine.init(keys)
        with pytest.raises(KeyboardInterrupt):
            engine.train_epoch(params, opt, keys, 1, active, between=between)
        assert saved["steps"].tolist() == [2, 2]
        p, o, losses = saved["state"]
        resumed = engine.train_epoch(p, o, keys, 1, active, start=saved["steps"], losses=losses)
        assert leaves_equal(resumed, uninterrupted)
    finally:
        engine.steps_per_chunk = None


def test_members_resuming_at_different_batches_join_at_their_own(engine):
    """A group's members may stand at different batches (separate checkpoints): each trains
    only from its own; the result equals the uninterrupted epoch for both."""
    keys, active = seed_keys([42, 43]), np.array([True, True])
    engine.steps_per_chunk = 2
    try:
        params, opt = engine.init(keys)
        uninterrupted = engine.train_epoch(params, opt, keys, 0, active)
        states = {}

        def between(steps, params, opt_state, losses):
            states[int(steps[0])] = jax.device_get((params, opt_state, losses))
            if steps[0] == 4:
                raise KeyboardInterrupt

        params, opt = engine.init(keys)
        with pytest.raises(KeyboardInterrupt):
            engine.train_epoch(params, opt, keys, 0, active, between=between)
        # member 0 as it was at batch 4, member 1 as it was at batch 2
        rows = [jax.tree.map(lambda x, k=k: x[k], states[b]) for k, b in ((0, 4), (1, 2))]
        p, o, losses = jax.tree.map(lambda *xs: np.stack(xs), *rows)
        resumed = engine.train_epoch(p, o, keys, 0, active, start=np.array([4, 2]), losses=losses)
        assert leaves_equal(resumed, uninterrupted)
    finally:
        engine.steps_per_chunk = None


def test_step_time_sizes_the_chunks(engine):
    from fembed_jax.train import engine as engine_module

    fresh = Engine(tiny_config(), engine.data)
    assert fresh._chunk_steps() == 1  # not measured yet: one step
    fresh.step_seconds = engine_module.CHUNK_SECONDS / 3
    assert fresh._chunk_steps() == 3
    fresh.step_seconds = 10 * engine_module.CHUNK_SECONDS
    assert fresh._chunk_steps() == 1
    fresh.steps_per_chunk = 5
    assert fresh._chunk_steps() == 5


def test_a_compacted_program_keeps_the_live_rows_and_plans_their_epoch(engine):
    """fit_group's program state: compacting to the live experiments takes their rows and
    renumbers their slices; the epoch plan trains a live experiment's active seeds from its
    own epoch and batch, and no row of one with no epoch left."""
    from fembed_jax.train.early_stopping import StopState
    from fembed_jax.train.fit import Member, _Program, _Track

    rows = np.arange(5, dtype=np.float32)
    program = _Program({"w": rows}, {"m": rows * 2}, {"w": rows * 3}, np.stack([rows, -rows], 1),
                       {"a": rows * 4})
    cfg = tiny_config(epochs=4)
    gone, a, b = (_Track(Member(cfg, [1]), 0, 1, StopState.fresh(1), []),
                  _Track(Member(cfg, [2, 3]), 1, 3, StopState.fresh(2), []),
                  _Track(Member(cfg, [4, 5]), 3, 5, StopState.fresh(2), []))
    small = program.compacted([a, b], engine)
    assert small.n == 4 and [(t.lo, t.hi) for t in (a, b)] == [(0, 2), (2, 4)]
    for tree, scale in ((small.params, 1), (small.opt_state, 2), (small.best, 3), (small.hparams, 4)):
        np.testing.assert_array_equal(jax.tree.leaves(tree)[0], scale * np.arange(1, 5))
    np.testing.assert_array_equal(np.asarray(small.keys)[:, 1], -np.arange(1, 5))
    assert program.n == 5 and (gone.lo, gone.hi) == (0, 1)  # the rest is left as it was

    a.next_epoch, a.start = 2, 3
    a.stop.stopped[1] = True
    b.next_epoch = 4  # no epoch left
    plan = small.epoch_plan([a, b])
    np.testing.assert_array_equal(plan.active, [True, False, False, False])
    np.testing.assert_array_equal(plan.epochs, [2, 2, 0, 0])
    np.testing.assert_array_equal(plan.start, [3, 3, 0, 0])
