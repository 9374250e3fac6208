"""The original's early-stopping rule, per seed (spec §4), on hand-made metric sequences."""

import numpy as np

from fembed_jax.train.early_stopping import StopState


def feed(stop: StopState, epochs_of_auc, metric="val_auc", patience=2, min_delta=0.001, losses=None):
    improved_log = []
    for epoch, aucs in enumerate(epochs_of_auc):
        k = len(aucs)
        val_loss = np.asarray(losses[epoch] if losses else [0.5] * k, float)
        improved_log.append(stop.update(epoch, metric, list(aucs), val_loss, np.zeros(k),
                                        patience, min_delta).tolist())
    return improved_log


def test_epoch_zero_always_improves_and_patience_counts_non_improving_epochs():
    stop = StopState.fresh(2)
    log = feed(stop, [[0.60, 0.60], [0.6005, 0.70], [0.61, 0.69], [0.62, 0.68], [0.63, 0.67]])
    # seed 0: +0.0005 is within min_delta (no), then 0.61/0.62/0.63 improve
    assert [row[0] for row in log] == [True, False, True, True, True]
    # seed 1: improves at 1, then two epochs without -> stops at epoch 3 and stays stopped
    assert [row[1] for row in log] == [True, True, False, False, False]
    assert stop.stopped.tolist() == [False, True]
    assert stop.stop_epoch.tolist() == [-1, 3]
    assert stop.best_epoch.tolist() == [4, 1]


def test_val_loss_mode_wants_a_drop_larger_than_min_delta():
    stop = StopState.fresh(1)
    log = feed(stop, [[None]] * 4, metric="val_loss", patience=2,
               losses=[[0.50], [0.4995], [0.40], [0.3995]])
    assert [row[0] for row in log] == [True, False, True, False]
    assert not stop.stopped[0]


def test_undefined_auc_never_improves_and_nonfinite_loss_diverges():
    stop = StopState.fresh(2)
    stop.update(0, "val_auc", [None, 0.6], np.array([0.5, np.nan]), np.zeros(2), 15, 0.001)
    assert stop.best_epoch.tolist() == [-1, -1]
    assert stop.diverged.tolist() == [False, True] and stop.stopped.tolist() == [False, True]


def test_finish_stops_the_rest_at_the_last_epoch_and_tree_round_trip():
    stop = StopState.fresh(3)
    feed(stop, [[0.5, 0.5, 0.5]])
    stop.finish(0)
    assert stop.stopped.all() and stop.stop_epoch.tolist() == [0, 0, 0]
    again = StopState.from_tree(stop.to_tree())
    assert all(np.array_equal(getattr(again, k), getattr(stop, k)) for k in stop.to_tree())
