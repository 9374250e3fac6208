"""A stop between chunks of steps: the position inside the epoch is checkpointed, and the run
resumed from it ends exactly like an uninterrupted one. Also: the selected weights a finished
experiment keeps give back its whole result."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest

from fembed_jax.checkpoint import Checkpointer
from fembed_jax.checkpoint_layout import META_FILE
from fembed_jax.train.engine import DeviceData, Engine
from fembed_jax.train.fit import Interrupted, Member, fit, fit_group

from helpers import synthetic_dataset, tiny_config


@pytest.fixture(scope="module")
def engine():
    engine = Engine(tiny_config(), DeviceData.from_dataset(synthetic_dataset()), steps_per_chunk=2)
    assert engine.n_batches == 7  # chunks end at batches 2, 4, 6 and 7
    return engine


def same(a, b) -> None:
    assert a.history == b.history
    assert a.per_seed == b.per_seed
    np.testing.assert_array_equal(a.val_probs, b.val_probs)
    np.testing.assert_array_equal(a.stop.best_epoch, b.stop.best_epoch)


def stop_at(epoch: int, step: int):
    """on_step + should_stop that make the run stop at (epoch, step): the flag is read after a
    chunk, before its step is reported, so it goes up with the report of the chunk before (2
    steps a chunk). (0, 2): up from the start."""
    seen = []

    def on_step(report):
        seen.append((report.epoch, report.step, report.stopping))

    return seen, on_step, lambda: (epoch, step) == (0, 2) or (epoch, step - 2, False) in seen


@pytest.mark.parametrize("epoch, step", [(0, 2), (2, 4), (3, 6)])
def test_a_stop_inside_an_epoch_resumes_from_that_batch_with_identical_results(engine, tmp_path,
                                                                               epoch, step):
    cfg = tiny_config(epochs=4, patience=10)
    whole = fit(cfg, engine.data, [42, 43], engine=engine)
    seen, on_step, should_stop = stop_at(epoch, step)
    with pytest.raises(Interrupted) as info:
        fit(cfg, engine.data, [42, 43], engine=engine, checkpointer=Checkpointer(tmp_path, "h"),
            on_step=on_step, should_stop=should_stop)
    assert info.value.positions == {cfg.exp_id: (epoch, step)} and info.value.steps == 7
    assert seen[-1] == (epoch, step, True)  # told that this position is being saved
    ckpt = Checkpointer(tmp_path, "h")
    assert ckpt.steps()[-1] == epoch  # the position is the step of the epoch in progress
    resumed = fit(cfg, engine.data, [42, 43], engine=engine, checkpointer=ckpt)
    assert resumed.resumed_from == epoch - 1
    same(resumed, whole)


def test_a_resumed_result_counts_the_time_of_the_run_before_the_interruption(engine, tmp_path):
    """FitResult.seconds (the record's training time) is the whole experiment's, not the last
    run's: the checkpoint carries the seconds spent up to it."""
    cfg = tiny_config(epochs=3, patience=10)
    seen, on_step, should_stop = stop_at(1, 4)

    def slow_first_step(report):  # the first run takes at least 3 s more than the second
        if not seen:
            time.sleep(3.0)
        on_step(report)

    began = time.monotonic()
    with pytest.raises(Interrupted):
        fit(cfg, engine.data, [42, 43], engine=engine, checkpointer=Checkpointer(tmp_path, "h"),
            on_step=slow_first_step, should_stop=should_stop)
    first_run = time.monotonic() - began
    ckpt = Checkpointer(tmp_path, "h")
    saved = json.loads((ckpt.step_path(ckpt.steps()[-1]) / META_FILE).read_text())["seconds"]
    assert 3.0 < saved <= first_run
    began = time.monotonic()
    resumed = fit(cfg, engine.data, [42, 43], engine=engine, checkpointer=ckpt)
    second_run = time.monotonic() - began
    assert saved < resumed.seconds <= saved + second_run


def test_a_stop_in_a_resumed_epoch_before_it_moved_saves_nothing_new(engine, tmp_path):
    cfg = tiny_config(epochs=3, patience=10)
    whole = fit(cfg, engine.data, [42, 43], engine=engine)
    _, on_step, should_stop = stop_at(1, 4)
    with pytest.raises(Interrupted):
        fit(cfg, engine.data, [42, 43], engine=engine, checkpointer=Checkpointer(tmp_path, "h"),
            on_step=on_step, should_stop=should_stop)
    # stopped again at once: the flag is up before the resumed epoch's first chunk ends
    with pytest.raises(Interrupted) as info:
        fit(cfg, engine.data, [42, 43], engine=engine, checkpointer=Checkpointer(tmp_path, "h"),
            should_stop=lambda: True)
    assert info.value.positions == {cfg.exp_id: (1, 6)}
    resumed = fit(cfg, engine.data, [42, 43], engine=engine, checkpointer=Checkpointer(tmp_path, "h"))
    same(resumed, whole)


def test_a_group_whose_members_stopped_at_different_positions_resumes_each(engine, tmp_path):
    """One experiment checkpointed inside epoch 1, the other at the end of epoch 0 (its position
    was lost): trained together again, both end as in an uninterrupted grouped run."""
    import shutil

    cfgs = [tiny_config(exp_id="G-01", epochs=3, patience=10),
            tiny_config(exp_id="G-02", epochs=3, patience=10, learning_rate=3e-4)]
    whole = fit_group([Member(c, [42, 43]) for c in cfgs], engine.data, engine=engine)
    members = lambda on_step=None: [  # noqa: E731
        Member(c, [42, 43], Checkpointer(tmp_path / c.exp_id, "h"), on_step=on_step) for c in cfgs]
    _, on_step, should_stop = stop_at(1, 4)
    with pytest.raises(Interrupted) as info:
        fit_group(members(on_step), engine.data, engine=engine, should_stop=should_stop)
    assert info.value.positions == {"G-01": (1, 4), "G-02": (1, 4)}
    shutil.rmtree(tmp_path / "G-02" / "1")  # G-02 resumes from the end of epoch 0
    resumed = fit_group(members(), engine.data, engine=engine)
    assert [r.resumed_from for r in resumed] == [0, 0]
    for got, want in zip(resumed, whole):
        same(got, want)


@pytest.mark.parametrize("selection", ["best", "last"])
def test_the_selected_weights_alone_give_back_the_result(engine, tmp_path, selection):
    """keep="best" saves the selected weights apart when the run ends; with every per-epoch
    step freed, a run of the same config finishes at once with the same result."""
    cfg = tiny_config(epochs=3, patience=10, selection=selection)
    ckpt = Checkpointer(tmp_path, "h")
    first = fit(cfg, engine.data, [42, 43], engine=engine, checkpointer=ckpt, keep="best")
    freed = ckpt.free("best")
    assert freed.kept == "best" and freed.after < freed.before / 3
    assert ckpt.steps() == [] and (tmp_path / "selected" / "2").is_dir()
    trained = []
    again = fit(cfg, engine.data, [42, 43], engine=engine, checkpointer=Checkpointer(tmp_path, "h"),
                on_epoch=trained.append)
    assert not trained and again.resumed_from == 2
    same(again, first)
