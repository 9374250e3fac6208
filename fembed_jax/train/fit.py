"""The epoch loop: train experiments' seeds together, evaluate, early-stop per seed, checkpoint.

The loop stays in Python so that every epoch can be checkpointed, reported and interrupted; the
work inside an epoch is one compiled call (engine.py) over all *members* — the seeds of one
experiment, or of several experiments sharing a program (`fit_group`). Each experiment keeps its
own epoch counter, early-stopping state, checkpoint and history, so grouping changes nothing
about its results; seeds that hit patience are frozen by a mask. An experiment resumed from the
checkpoint of epoch k continues at k+1 and ends with exactly the results of an uninterrupted run.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from fembed_jax import faults, metrics
from fembed_jax.config import ExperimentConfig
from fembed_jax.train.early_stopping import StopState
from fembed_jax.train.engine import DeviceData, Engine, loss_hparams_of, seed_keys, select_members


class Interrupted(Exception):
    """Training stopped on request after its last epoch was checkpointed."""

    def __init__(self, epoch: int):
        super().__init__(f"interrupted after epoch {epoch}")
        self.epoch = epoch


@dataclasses.dataclass
class EpochReport:
    epoch: int
    train_loss: np.ndarray  # (K,)
    val_loss: np.ndarray  # (K,)
    val_auc: list  # K floats or None
    trained: np.ndarray  # (K,) bool: the seed trained this epoch
    improved: np.ndarray  # (K,) bool
    stop: StopState
    seconds: float

    def rows(self) -> list[dict]:
        """One row per seed that trained this epoch, for the run store."""
        return [{"seed": k, "train_loss": float(self.train_loss[k]), "val_loss": float(self.val_loss[k]),
                 "val_auc": self.val_auc[k], "active": bool(not self.stop.stopped[k]),
                 "is_best": bool(self.improved[k])}
                for k in range(len(self.trained)) if self.trained[k]]


@dataclasses.dataclass
class FitResult:
    seeds: list[int]
    stop: StopState
    epochs_run: list[int]  # per seed: epochs it trained
    per_seed: list[dict]  # classification metrics on the selected weights, val split
    aggregate: dict
    last: list[dict]  # per seed: last epoch's train_loss / val_loss / val_auc
    history: list[dict]  # per epoch: train_loss, val_loss, val_auc lists
    val_probs: np.ndarray  # (K, n_val) on the selected weights
    test_metrics: list[dict] | None
    seconds: float
    resumed_from: int | None


@dataclasses.dataclass
class Member:
    """One experiment of a group: its config, seeds and per-experiment hooks."""

    cfg: ExperimentConfig
    seeds: list[int]
    checkpointer: Any = None  # fembed_jax.checkpoint.Checkpointer
    on_epoch: Callable[[EpochReport], None] | None = None


@dataclasses.dataclass
class _Track:
    """Host-side state of one experiment inside the loop."""

    member: Member
    lo: int  # its slice of the member axis
    hi: int
    stop: StopState
    history: list
    next_epoch: int = 0
    resumed_from: int | None = None
    started: float = 0.0
    home: tuple[int, int] = (0, 0)  # its slice in the group's first (full) program
    parked: Any = None  # host copy of (params, best) rows once it left the program

    @property
    def finished(self) -> bool:
        return self.next_epoch >= self.member.cfg.epochs or not self.stop.active.any()


def safe_auc(labels: np.ndarray, probs: np.ndarray) -> float | None:
    if len(np.unique(labels)) < 2 or not np.all(np.isfinite(probs)):
        return None
    from sklearn.metrics import roc_auc_score  # ~1 s to import: after the first epoch, not before

    return float(roc_auc_score(labels, probs))


def _state_tree(params, opt_state, best, keys, stop: StopState, epoch: int) -> dict[str, Any]:
    return {"params": params, "opt_state": opt_state, "best_params": best, "keys": keys,
            "stop": stop.to_tree(), "epoch": np.int32(epoch)}


def _rows(tree, lo: int, hi: int):
    return jax.tree.map(lambda x: x[lo:hi], tree)


def fit(cfg: ExperimentConfig, data: DeviceData, seeds: list[int], *,
        checkpointer=None,
        on_epoch: Callable[[EpochReport], None] | None = None,
        should_stop: Callable[[], bool] | None = None,
        evaluate_test: bool = False,
        engine: Engine | None = None) -> FitResult:
    """Train len(seeds) seeds of `cfg` and evaluate the selected weights on the validation split.

    `checkpointer` (fembed_jax.checkpoint.Checkpointer) gives resume and per-epoch saves;
    `should_stop` is polled after each checkpointed epoch and raises Interrupted when true.
    """
    return fit_group([Member(cfg, list(seeds), checkpointer, on_epoch)], data,
                     should_stop=should_stop, evaluate_test=evaluate_test, engine=engine)[0]


def fit_group(members: Sequence[Member], data: DeviceData, *,
              should_stop: Callable[[], bool] | None = None,
              evaluate_test: bool = False,
              engine: Engine | None = None,
              devices: Sequence | None = None) -> list[FitResult]:
    """Train several experiments that share one program structure, all seeds at once.

    Results equal those of fitting each experiment alone with the same seeds: every member has
    its own keys, epoch counter, hyperparameters and early stopping.

    On a CPU, an experiment whose seeds have all stopped leaves the program: the others go on in
    a smaller one (one more compilation, cached on disk), because there a frozen member costs
    as much as a training one. On an accelerator, where frozen members cost little and a
    compilation costs more, the program keeps its size.
    """
    engine = engine or Engine(members[0].cfg, data, devices=devices)
    seeds = [s for m in members for s in m.seeds]
    pad = (-len(seeds)) % engine.num_devices  # filler members so the axis splits over devices
    all_seeds = seeds + [seeds[-1]] * pad
    n = len(all_seeds)
    owner = [i for i, m in enumerate(members) for _ in m.seeds] + [len(members) - 1] * pad
    keys = engine.shard(seed_keys(all_seeds))
    hp = [loss_hparams_of(members[i].cfg) for i in owner]
    hparams = engine.member_hparams(hp, n)
    params, opt_state = engine.init(keys, learning_rates=[members[i].cfg.learning_rate for i in owner],
                                    weight_decays=[members[i].cfg.weight_decay for i in owner])
    best = jax.tree.map(jnp.copy, params)

    tracks, lo = [], 0
    for m in members:
        tracks.append(_Track(m, lo, lo + len(m.seeds), StopState.fresh(len(m.seeds)), [],
                             started=time.monotonic(), home=(lo, lo + len(m.seeds))))
        lo += len(m.seeds)
    params, opt_state, best = _restore(tracks, params, opt_state, best, keys, engine)
    full_n, full_hparams = n, hparams
    compact = engine.platform == "cpu"
    live = list(tracks)

    val_labels = np.asarray(data.labels["val"])
    while True:
        leaving = [t for t in live if t.finished]
        if compact and leaving and len(leaving) < len(live):
            for t in leaving:
                t.parked = jax.device_get((_rows(params, t.lo, t.hi), _rows(best, t.lo, t.hi)))
            live = [t for t in live if not t.finished]
            params, opt_state, best, keys, hparams = _compacted(live, engine, params, opt_state,
                                                                best, keys, hparams)
            n = keys.shape[0]
        active = np.zeros(n, bool)
        epochs = np.zeros(n, np.int32)
        for t in live:
            if t.next_epoch < t.member.cfg.epochs:
                active[t.lo:t.hi] = t.stop.active
                epochs[t.lo:t.hi] = t.next_epoch
        if not active.any():
            break
        t0 = time.monotonic()
        params, opt_state, train_loss = engine.train_epoch(params, opt_state, keys, epochs, active, hparams)
        faults.hit("fit.epoch_trained")
        probs, val_loss = engine.evaluate(params, "val", hparams)
        train_loss = np.asarray(train_loss)
        improved = np.zeros(n, bool)
        reports = []
        for t in live:
            trained = active[t.lo:t.hi].copy()
            if not trained.any():
                continue
            cfg, epoch = t.member.cfg, t.next_epoch
            aucs = [safe_auc(val_labels, probs[k]) for k in range(t.lo, t.hi)]
            tl, vl = train_loss[t.lo:t.hi], val_loss[t.lo:t.hi]
            up = t.stop.update(epoch, cfg.early_stop_metric, aucs, vl, tl, cfg.patience, cfg.min_delta)
            improved[t.lo:t.hi] = up & trained
            t.history.append({"epoch": epoch, "trained": trained.tolist(), "train_loss": tl.tolist(),
                              "val_loss": vl.tolist(), "val_auc": aucs})
            t.next_epoch += 1
            if t.next_epoch >= cfg.epochs:
                t.stop.finish(epoch)
            reports.append((t, EpochReport(epoch, tl, vl, aucs, trained, improved[t.lo:t.hi], t.stop,
                                           time.monotonic() - t0)))
        best = select_members(improved, params, best)
        for t, report in reports:
            # Report before checkpointing: a crash in between re-runs this epoch (same numbers)
            # instead of leaving a checkpointed epoch the run store never heard of.
            if t.member.on_epoch is not None:
                t.member.on_epoch(report)
            if t.member.checkpointer is not None:
                state = _state_tree(_rows(params, t.lo, t.hi), _rows(opt_state, t.lo, t.hi),
                                    _rows(best, t.lo, t.hi), keys[t.lo:t.hi], t.stop, report.epoch)
                faults.hit("fit.before_checkpoint")
                t.member.checkpointer.save(report.epoch, state,
                                           {"history": t.history, "seeds": t.member.seeds})
            faults.hit("fit.epoch_done")
        if should_stop is not None and should_stop() and any(not t.finished for t in live):
            raise Interrupted(max(r.epoch for _, r in reports))

    # Every experiment's selected weights back in their places of the first program, which
    # scores them all at once.
    selected = _selected(tracks, params, best, full_n, engine)
    val_probs, _ = engine.evaluate(selected, "val", full_hparams)
    test = None
    if evaluate_test and data.size("test") > 0:
        test = engine.evaluate(selected, "test", full_hparams)[0], np.asarray(data.labels["test"])
    return [_result(t, val_probs, val_labels, test) for t in tracks]


def _compacted(live, engine, params, opt_state, best, keys, hparams):
    """The state of the `live` experiments only, in a program of their size (padded to the
    device count with inactive copies of the last row); their slices are renumbered."""
    rows = [k for t in live for k in range(t.lo, t.hi)]
    rows += [rows[-1]] * ((-len(rows)) % engine.num_devices)
    lo = 0
    for t in live:
        t.lo, t.hi, lo = lo, lo + (t.hi - t.lo), lo + (t.hi - t.lo)
    index = jnp.asarray(rows)
    take = lambda tree: engine.shard(jax.tree.map(lambda x: jnp.asarray(x)[index], tree))  # noqa: E731
    return take(params), take(opt_state), take(best), take(keys), take(hparams)


def _restore(tracks, params, opt_state, best, keys, engine):
    """Load each experiment's latest intact checkpoint into its slice of the member axis."""
    restored_any = False
    host = None
    for t in tracks:
        if t.member.checkpointer is None:
            continue
        template = _state_tree(_rows(params, t.lo, t.hi), _rows(opt_state, t.lo, t.hi),
                               _rows(best, t.lo, t.hi), keys[t.lo:t.hi], t.stop, 0)
        restored = t.member.checkpointer.restore_latest(template)
        if restored is None:
            continue
        epoch, state, meta = restored
        if host is None:
            host = jax.tree.map(np.array, jax.device_get((params, opt_state, best)))  # writable copies
        for tree, part in zip(host, (state["params"], state["opt_state"], state["best_params"])):
            jax.tree.map(lambda whole, rows: whole.__setitem__(slice(t.lo, t.hi), np.asarray(rows)),
                         tree, part)
        t.stop = StopState.from_tree(state["stop"])
        t.history = list(meta.get("history", []))
        t.next_epoch, t.resumed_from = int(epoch) + 1, int(epoch)
        restored_any = True
    if not restored_any:
        return params, opt_state, best
    return tuple(engine.shard(jax.tree.map(np.asarray, tree)) for tree in host)


def _selected(tracks, params, best, n, engine):
    """(n, ...) selected weights ("best" or "last" per experiment) in the first program's order;
    filler rows repeat the last experiment's last row."""
    live_params, live_best = jax.device_get((params, best))
    parts = []
    for t in tracks:
        last, best_rows = t.parked if t.parked is not None else (
            _rows(live_params, t.lo, t.hi), _rows(live_best, t.lo, t.hi))
        parts.append(best_rows if t.member.cfg.selection == "best" else last)
    whole = jax.tree.map(lambda *xs: np.concatenate(xs), *parts)
    filler = n - sum(t.home[1] - t.home[0] for t in tracks)
    if filler:
        whole = jax.tree.map(lambda x: np.concatenate([x, np.repeat(x[-1:], filler, axis=0)]), whole)
    return engine.shard(whole)


def _result(t: _Track, val_probs, val_labels, test) -> FitResult:
    seeds, k_all = t.member.seeds, range(*t.home)
    per_seed = []
    for i, k in enumerate(k_all):
        m = metrics.classification_metrics(val_probs[k], val_labels)
        m.update(seed=seeds[i], best_epoch=int(t.stop.best_epoch[i]),
                 stop_epoch=int(t.stop.stop_epoch[i]), diverged=bool(t.stop.diverged[i]))
        per_seed.append(m)
    test_metrics = None
    if test is not None:
        test_probs, test_labels = test
        test_metrics = [metrics.classification_metrics(test_probs[k], test_labels) for k in k_all]
    last, epochs_run = [], []
    for i in range(len(seeds)):
        rows = [h for h in t.history if h["trained"][i]]
        last.append({"train_loss": rows[-1]["train_loss"][i], "val_loss": rows[-1]["val_loss"][i],
                     "val_auc": rows[-1]["val_auc"][i]} if rows else {})
        epochs_run.append(len(rows))
    healthy = [m for m in per_seed if not m["diverged"]] or per_seed  # a diverged seed says nothing
    return FitResult(seeds=list(seeds), stop=t.stop, epochs_run=epochs_run, per_seed=per_seed,
                     aggregate=metrics.aggregate_seeds(healthy), last=last, history=t.history,
                     val_probs=val_probs[t.home[0]:t.home[1]], test_metrics=test_metrics,
                     seconds=time.monotonic() - t.started, resumed_from=t.resumed_from)
