"""The epoch loop: train experiments' seeds together, evaluate, early-stop per seed, checkpoint.

The loop stays in Python so that every epoch can be checkpointed, reported and interrupted; the
work inside an epoch is a few compiled calls (engine.py: chunks of a few seconds of steps) over
all *members* — the seeds of one experiment, or of several experiments sharing a program
(`fit_group`). Each experiment keeps its own epoch counter, early-stopping state, checkpoint and
history, so grouping changes nothing about its results; seeds that hit patience are frozen by a
mask. An experiment resumed from the checkpoint of epoch k continues at k+1 and ends with exactly
the results of an uninterrupted run.

A stop request (`should_stop`) is answered between chunks, not only between epochs: the position
inside the epoch (next batch, the epoch's per-batch losses so far, params and optimizer state)
is checkpointed as the step of the epoch in progress, and a resumed run continues from that
batch with the same results. When an experiment finishes, the weights it selected are saved
apart (Checkpointer.save_selected, with Member.keep == "best") so that the runner can free the
per-epoch states once the result is recorded; those weights alone give back the whole result.
"""

from __future__ import annotations

import dataclasses
import functools
import time
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from fembed_jax import faults, metrics
from fembed_jax.config import ExperimentConfig
from fembed_jax.data.splits import selection_masks
from fembed_jax.train.early_stopping import StopState
from fembed_jax.train.engine import (DeviceData, Engine, StopWaiting, seed_keys,
                                     select_members)


class Interrupted(Exception):
    """Training stopped on request once every position was checkpointed. `positions`: per
    experiment id, (epoch, None) when it stopped after that epoch, (epoch, step) when inside it
    after `step` of its `steps` batches."""

    def __init__(self, positions: dict[str, tuple[int, int | None]], steps: int):
        super().__init__("interrupted: " + ", ".join(
            f"{exp_id} {'after epoch %d' % e if s is None else 'inside epoch %d at step %d/%d' % (e, s, steps)}"
            for exp_id, (e, s) in positions.items()))
        self.positions, self.steps = dict(positions), steps
        self.epoch, self.step = max(positions.values(), key=lambda p: (p[0], p[1] is None),
                                    default=(-1, None))


# How often the stop flag is read while a chunk runs (it may be a remote call, with Ray).
_STOP_POLL_S = 0.5
# How long a stop waits for the computation in flight (a chunk is sized to ~5 s, but one step of
# a large experiment on a loaded CPU can take minutes, and so can a first compilation). Past
# this, the computation is given up and the position before it is what gets saved.
STOP_WAIT_S = 15.0


class _Stopper:
    """The stop flag as the loop reads it: `stopper()` between chunks, `stopper.poll()` while
    something runs (it reads the flag every _STOP_POLL_S, so that whoever raised it hears at once
    that it was seen, and gives up on the computation STOP_WAIT_S after that)."""

    def __init__(self, should_stop: Callable[[], bool] | None):
        self.should_stop = should_stop
        self.seen_at: float | None = None
        self.read_at = 0.0

    def __call__(self) -> bool:
        if self.should_stop is None or not self.should_stop():
            return False
        self.seen_at = self.seen_at or time.monotonic()
        return True

    def poll(self) -> None:
        now = time.monotonic()
        if self.seen_at is None and now - self.read_at >= _STOP_POLL_S:
            self.read_at = now
            self()
        if self.seen_at is not None and now - self.seen_at >= STOP_WAIT_S:
            raise StopWaiting


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
class StepReport:
    """Where an experiment stands inside an epoch, after a chunk of steps."""

    epoch: int
    step: int  # batches of the epoch done
    steps: int  # batches per epoch
    active: np.ndarray  # (K,) bool: seeds still training
    stop: StopState
    stopping: bool = False  # a stop was requested: this position is being checkpointed


@dataclasses.dataclass
class FitResult:
    seeds: list[int]
    stop: StopState
    epochs_run: list[int]  # per seed: epochs it trained
    per_seed: list[dict]  # classification metrics on the selected weights, val report windows
    aggregate: dict
    last: list[dict]  # per seed: last epoch's train_loss / val_loss / val_auc (selection windows)
    history: list[dict]  # per epoch: train_loss, val_loss, val_auc lists (selection windows)
    val_probs: np.ndarray  # (K, n_val) on the selected weights, every validation window
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
    on_step: Callable[[StepReport], None] | None = None
    # "best": when it finishes, also save the selected weights apart (what the runner keeps)
    keep: str = "all"


@dataclasses.dataclass
class _Track:
    """Host-side state of one experiment inside the loop."""

    member: Member
    lo: int  # its slice of the member axis
    hi: int
    stop: StopState
    history: list
    next_epoch: int = 0
    start: int = 0  # next batch of next_epoch (> 0 after a resume inside an epoch)
    losses: Any = None  # with start > 0: (K, n_batches) per-batch losses restored
    resumed_from: int | None = None
    selected_saved: bool = False  # its selected weights are on disk (Member.keep == "best")
    started: float = 0.0  # time.monotonic() when this run took the experiment on
    earlier_seconds: float = 0.0  # spent in earlier runs on what its checkpoint keeps
    home: tuple[int, int] = (0, 0)  # its slice in the group's first (full) program
    parked: Any = None  # host copy of (params, best) rows once it left the program

    @property
    def finished(self) -> bool:
        return self.next_epoch >= self.member.cfg.epochs or not self.stop.active.any()

    def seconds(self) -> float:
        """Wall time on this experiment: this run's, plus the earlier runs' up to the checkpoint
        it resumed from (work an interruption lost after that checkpoint is not counted)."""
        return self.earlier_seconds + time.monotonic() - self.started

    def meta(self, **extra) -> dict:
        """The checkpoint meta of its current state."""
        return {"history": self.history, "seeds": self.member.seeds, "seconds": self.seconds(), **extra}


def safe_auc(labels: np.ndarray, probs: np.ndarray) -> float | None:
    if len(np.unique(labels)) < 2 or not np.all(np.isfinite(probs)):
        return None
    from sklearn.metrics import roc_auc_score  # ~1 s to import: after the first epoch, not before

    return float(roc_auc_score(labels, probs))


def state_tree(params, opt_state, best, keys, stop: StopState, epoch: int) -> dict[str, Any]:
    """What a per-epoch checkpoint holds (also the restore target of `fembed evaluate`)."""
    return {"params": params, "opt_state": opt_state, "best_params": best, "keys": keys,
            "stop": stop.to_tree(), "epoch": np.int32(epoch)}


def _position_tree(step: int, losses) -> dict[str, Any]:
    """What a checkpoint inside an epoch adds: the next batch and the epoch's per-batch losses
    so far (the epoch's train loss is their mean, taken once the epoch is complete)."""
    return {"step": np.int32(step), "losses": losses}


def selected_key(cfg: ExperimentConfig) -> str:
    """The state entry holding the weights `cfg.selection` evaluates."""
    return "best_params" if cfg.selection == "best" else "params"


def _rows(tree, lo: int, hi: int):
    return jax.tree.map(lambda x: x[lo:hi], tree)


@dataclasses.dataclass(frozen=True)
class _Program:
    """The device state of one training program, stacked along the member axis: row k is one
    seed of one experiment (a _Track owns the slice [lo, hi)), plus filler rows that pad the
    axis to a multiple of the device count. The loop replaces it rather than editing it (an
    epoch trained, best weights selected, a restore, a compaction each make a new one), so a
    program held on to, such as the one an epoch began from, stays what it was."""

    params: Any
    opt_state: Any
    best: Any  # per row: the params of its best epoch so far
    keys: Any  # (n, 2) raw keys
    hparams: dict  # loss hyperparameters, (n,) each

    @property
    def n(self) -> int:
        return self.keys.shape[0]

    @classmethod
    def fresh(cls, members: Sequence[Member], engine: Engine, poll: Callable[[], None]) -> _Program:
        """Every seed of `members` in order, freshly initialised with its own hyperparameters,
        then filler copies of the last seed (raises StopWaiting when a stop gives up on init)."""
        seeds = [s for m in members for s in m.seeds]
        pad = (-len(seeds)) % engine.num_devices
        owners = [m for m in members for _ in m.seeds] + [members[-1]] * pad
        keys = engine.shard(seed_keys(seeds + [seeds[-1]] * pad))
        hparams = engine.member_hparams([m.cfg for m in owners], len(owners))
        params, opt_state = engine.init(keys, learning_rates=[m.cfg.learning_rate for m in owners],
                                        weight_decays=[m.cfg.weight_decay for m in owners],
                                        poll=poll)
        return cls(params, opt_state, jax.tree.map(jnp.copy, params), keys, hparams)

    def state_of(self, t: _Track, epoch: int) -> dict[str, Any]:
        """`t`'s rows as its per-epoch checkpoint holds them."""
        return state_tree(_rows(self.params, t.lo, t.hi), _rows(self.opt_state, t.lo, t.hi),
                          _rows(self.best, t.lo, t.hi), self.keys[t.lo:t.hi], t.stop, epoch)

    def host_rows(self, t: _Track) -> tuple:
        """`t`'s (last params, best params) rows, copied to the host."""
        return jax.device_get((_rows(self.params, t.lo, t.hi), _rows(self.best, t.lo, t.hi)))

    def with_best(self, improved: np.ndarray) -> _Program:
        """The rows that `improved` marks take their current params as their best."""
        return dataclasses.replace(self, best=select_members(improved, self.params, self.best))

    def epoch_plan(self, live: Sequence[_Track]) -> _EpochPlan:
        """What each row does in the next epoch: rows of experiments with epochs left train
        their own next epoch from their own next batch, unless early stopping froze them;
        filler rows and finished experiments do not train."""
        active = np.zeros(self.n, bool)
        epochs = np.zeros(self.n, np.int32)
        start = np.zeros(self.n, np.int32)
        for t in live:
            if t.next_epoch < t.member.cfg.epochs:
                active[t.lo:t.hi] = t.stop.active
                epochs[t.lo:t.hi] = t.next_epoch
                start[t.lo:t.hi] = t.start
        return _EpochPlan(active, epochs, start)

    def compacted(self, live: Sequence[_Track], engine: Engine) -> _Program:
        """The rows of the `live` experiments only, in a program of their size (padded to the
        device count with inactive copies of the last row); their slices are renumbered."""
        rows = [k for t in live for k in range(t.lo, t.hi)]
        rows += [rows[-1]] * ((-len(rows)) % engine.num_devices)
        lo = 0
        for t in live:
            t.lo, t.hi, lo = lo, lo + (t.hi - t.lo), lo + (t.hi - t.lo)
        index = jnp.asarray(rows)
        take = lambda tree: engine.shard(jax.tree.map(lambda x: jnp.asarray(x)[index], tree))  # noqa: E731
        return _Program(take(self.params), take(self.opt_state), take(self.best), take(self.keys),
                        take(self.hparams))


class _EpochPlan(NamedTuple):
    """Per row of a program, for one epoch (engine.train_epoch's arguments)."""

    active: np.ndarray  # (n,) bool: trains this epoch
    epochs: np.ndarray  # (n,) int32: its epoch number (its shuffle and dropout derive from it)
    start: np.ndarray  # (n,) int32: its first batch (> 0 when resumed inside the epoch)


def fit(cfg: ExperimentConfig, data: DeviceData, seeds: list[int], *,
        checkpointer=None,
        on_epoch: Callable[[EpochReport], None] | None = None,
        on_step: Callable[[StepReport], None] | None = None,
        should_stop: Callable[[], bool] | None = None,
        evaluate_test: bool = False,
        engine: Engine | None = None,
        keep: str = "all") -> FitResult:
    """Train len(seeds) seeds of `cfg` and evaluate the selected weights on the validation split.

    `checkpointer` (fembed_jax.checkpoint.Checkpointer) gives resume and per-epoch saves;
    `should_stop` is polled between chunks of steps and after each checkpointed epoch; when true,
    the position is checkpointed and Interrupted raised.
    """
    return fit_group([Member(cfg, list(seeds), checkpointer, on_epoch, on_step, keep)], data,
                     should_stop=should_stop, evaluate_test=evaluate_test, engine=engine)[0]


def fit_group(members: Sequence[Member], data: DeviceData, *,
              should_stop: Callable[[], bool] | None = None,
              evaluate_test: bool = False,
              engine: Engine | None = None,
              devices: Sequence | None = None,
              steps_per_chunk: int | None = None,
              on_pace: Callable[[Engine, int], None] | None = None) -> list[FitResult]:
    """Train several experiments that share one program structure, all seeds at once.

    Results equal those of fitting each experiment alone with the same seeds: every member has
    its own keys, epoch counter, hyperparameters and early stopping.

    On a CPU, an experiment whose seeds have all stopped leaves the program: the others go on in
    a smaller one (one more compilation, cached on disk), because there a frozen member costs
    as much as a training one. On an accelerator, where frozen members cost little and a
    compilation costs more, the program keeps its size.

    `steps_per_chunk` fixes the steps between two stop checks (default: a few seconds' worth,
    measured); the results do not depend on it. `on_pace(engine, members)` is called once, after
    the first epoch trained, when the engine's step time is measured.
    """
    engine = engine or Engine(members[0].cfg, data, devices=devices, steps_per_chunk=steps_per_chunk,
                              loss_names=[m.cfg.loss for m in members])
    stopper = _Stopper(should_stop)
    try:
        program = _Program.fresh(members, engine, stopper.poll)
    except StopWaiting:  # stopped while compiling: nothing trained, nothing to save
        raise Interrupted({}, engine.n_batches) from None
    tracks = _tracks_of(members)
    program = _restore(tracks, program, engine)
    # The final evaluation scores every experiment in its rows of this first, full program.
    full_n, full_hparams = program.n, program.hparams
    compact = engine.platform == "cpu"
    live = list(tracks)

    val_labels = np.asarray(data.labels["val"])
    # Early stopping reads the selection windows, the result is scored on the report windows
    # (data/splits.py; one rule per program, structure_key keeps it apart).
    select, scored = selection_masks(val_labels.size, members[0].cfg.selection_windows)
    select_labels = val_labels[select]
    select_windows = None if select.all() else select
    paced = False
    while True:
        if compact:
            live, program = _leave_finished(live, program, engine)
        plan = program.epoch_plan(live)
        if not plan.active.any():
            break
        t0 = time.monotonic()
        program, losses = _train_epoch(tracks, live, plan, program, engine, stopper)
        if on_pace is not None and not paced:
            paced = True
            on_pace(engine, program.n)
        probs, val_loss = _validate(tracks, live, plan, program, losses, engine, stopper,
                                    select_windows)
        improved, reports = _judge(live, plan, np.asarray(engine.mean_loss(losses)), probs,
                                   val_loss, select_labels, t0)
        program = program.with_best(improved)
        _report_and_checkpoint(reports, program)
        if stopper() and any(not t.finished for t in live):
            raise Interrupted(_after_epochs(tracks), engine.n_batches)

    _save_selected_left(tracks, program)
    # Every experiment's selected weights back in their places of the first program, which
    # scores them all at once.
    selected = _selected(tracks, program, full_n, engine)
    try:
        val_probs, _ = engine.evaluate(selected, "val", full_hparams, poll=stopper.poll)
        test = None
        if evaluate_test and data.size("test") > 0:
            test = (engine.evaluate(selected, "test", full_hparams, poll=stopper.poll)[0],
                    np.asarray(data.labels["test"]))
    except StopWaiting:  # every epoch is checkpointed: a rerun only evaluates
        raise Interrupted(_after_epochs(tracks), engine.n_batches) from None
    return [_result(t, val_probs[:, scored], val_labels[scored], test, val_probs) for t in tracks]


def _tracks_of(members: Sequence[Member]) -> list[_Track]:
    """A fresh track per member, owning its seeds' consecutive rows of the first program."""
    tracks, lo = [], 0
    for m in members:
        tracks.append(_Track(m, lo, lo + len(m.seeds), StopState.fresh(len(m.seeds)), [],
                             started=time.monotonic(), home=(lo, lo + len(m.seeds))))
        lo += len(m.seeds)
    return tracks


def _after_epochs(tracks) -> dict[str, tuple[int, None]]:
    """Interrupted's positions when every experiment stands after its last epoch trained."""
    return {t.member.cfg.exp_id: (t.next_epoch - 1, None) for t in tracks}


def _leave_finished(live, program: _Program, engine: Engine) -> tuple[list, _Program]:
    """The live experiments and their program once those that finished have left it (their
    last and best weights parked on the host for the final evaluation). The last ones to
    finish stay: the loop then ends, and there is nothing smaller to compile."""
    leaving = [t for t in live if t.finished]
    if not leaving or len(leaving) == len(live):
        return live, program
    for t in leaving:
        t.parked = program.host_rows(t)
    live = [t for t in live if not t.finished]
    return live, program.compacted(live, engine)


def _train_epoch(tracks, live, plan: _EpochPlan, program: _Program, engine: Engine,
                 stopper: _Stopper):
    """`program` after one epoch of its active rows, and the epoch's (n, n_batches) per-batch
    losses. Between chunks, positions are reported (and saved on a stop: _between)."""
    between = functools.partial(_between, tracks, live, plan.active, engine, stopper, program)
    params, opt_state, losses = engine.train_epoch(
        program.params, program.opt_state, program.keys, plan.epochs, plan.active,
        program.hparams, start=plan.start, losses=_resumed_losses(live, program.n, engine),
        between=between, poll=stopper.poll, per_batch=True)
    faults.hit("fit.epoch_trained")
    return dataclasses.replace(program, params=params, opt_state=opt_state), losses


def _validate(tracks, live, plan: _EpochPlan, program: _Program, losses, engine: Engine,
              stopper: _Stopper, windows):
    """(n, windows) validation probabilities and (n,) loss of the epoch just trained. A stop
    that gives up on them saves the epoch as trained, not evaluated: its position is then its
    last batch, and a resumed run only evaluates it."""
    try:
        return engine.evaluate(program.params, "val", program.hparams, poll=stopper.poll,
                               windows=windows)
    except StopWaiting:
        _between(tracks, live, plan.active, engine, stopper, program,
                 np.full(program.n, engine.n_batches), program.params, program.opt_state, losses)
        raise


def _judge(live, plan: _EpochPlan, train_loss, probs, val_loss, select_labels,
           t0: float) -> tuple[np.ndarray, list]:
    """Early stopping and history of each experiment that trained this epoch, which then moves
    on to its next epoch. Returns the (n,) rows that improved (their weights become their
    best) and each such experiment's (track, EpochReport)."""
    improved = np.zeros(plan.active.shape[0], bool)
    reports = []
    for t in live:
        trained = plan.active[t.lo:t.hi].copy()
        if not trained.any():
            continue
        cfg, epoch = t.member.cfg, t.next_epoch
        aucs = [safe_auc(select_labels, probs[k]) for k in range(t.lo, t.hi)]
        tl, vl = train_loss[t.lo:t.hi], val_loss[t.lo:t.hi]
        up = t.stop.update(epoch, cfg.early_stop_metric, aucs, vl, tl, cfg.patience, cfg.min_delta)
        improved[t.lo:t.hi] = up & trained
        # A seed that did not train this epoch has no train loss (its weights are its best).
        t.history.append({"epoch": epoch, "trained": trained.tolist(),
                          "train_loss": [float(x) if tr else None for x, tr in zip(tl, trained)],
                          "val_loss": vl.tolist(), "val_auc": aucs})
        t.next_epoch += 1
        t.start, t.losses = 0, None
        if t.next_epoch >= cfg.epochs:
            t.stop.finish(epoch)
        reports.append((t, EpochReport(epoch, tl, vl, aucs, trained, improved[t.lo:t.hi], t.stop,
                                       time.monotonic() - t0)))
    return improved, reports


def _report_and_checkpoint(reports, program: _Program) -> None:
    """Each experiment's epoch report, then its checkpoint (and once it finished, with
    Member.keep == "best", its selected weights apart: what the runner keeps once the result is
    recorded, when it frees the rest). Reported first: a crash in between re-runs this epoch
    (same numbers) instead of leaving a checkpointed epoch the run store never heard of."""
    for t, report in reports:
        if t.member.on_epoch is not None:
            t.member.on_epoch(report)
        if t.member.checkpointer is not None:
            state = program.state_of(t, report.epoch)
            faults.hit("fit.before_checkpoint")
            meta = t.meta()
            t.member.checkpointer.save(report.epoch, state, meta)
            if t.finished and t.member.keep == "best":
                _save_selected(t, state, meta)
        faults.hit("fit.epoch_done")


def _save_selected_left(tracks, program: _Program) -> None:
    """Save the selected weights of the experiments that finished before this run (resumed
    from their last epoch) and have none saved apart yet."""
    for t in tracks:
        if t.member.keep == "best" and t.member.checkpointer is not None and not t.selected_saved:
            last, best_rows = t.parked if t.parked is not None else program.host_rows(t)
            _save_selected(t, {"params": last, "best_params": best_rows, "stop": t.stop.to_tree(),
                               "epoch": np.int32(t.next_epoch - 1)},
                           t.meta())


def _between(tracks, live, active, engine, stopper, program: _Program, steps, params, opt_state,
             losses) -> None:
    """After a chunk that did not end the epoch: report each experiment's step; on a stop
    request, checkpoint every position that moved and raise Interrupted. `params`, `opt_state`
    and `losses` are those of the epoch in progress; `program` the state the epoch began from
    (its best weights and keys do not change within an epoch).

    Also called with the state from before a chunk that a stop gave up on (StopWaiting), while
    that chunk may still run: a new device computation would queue behind it, so the state is
    copied to the host (ready buffers copy at once) and cut there."""
    faults.hit("fit.chunk_trained")
    training = [t for t in live if active[t.lo:t.hi].any()]
    stopping = stopper()
    report = lambda t: t.member.on_step is not None and t.member.on_step(StepReport(  # noqa: E731
        t.next_epoch, int(steps[t.lo]), engine.n_batches, t.stop.active.copy(), t.stop, stopping))
    if not stopping:
        for t in training:
            report(t)
        return
    host = None
    for t in training:
        step = int(steps[t.lo])
        if t.member.checkpointer is None or step <= t.start:
            continue  # nothing trained since its checkpoint (e.g. stopped while compiling)
        report(t)  # "saving the position inside epoch ..."
        if host is None:
            host = jax.device_get((params, opt_state, program.best, program.keys, losses))
        h_params, h_opt, h_best, h_keys, h_losses = (_rows(x, t.lo, t.hi) for x in host)
        state = state_tree(h_params, h_opt, h_best, h_keys, t.stop, t.next_epoch)
        state["position"] = _position_tree(step, h_losses)
        t.member.checkpointer.save(t.next_epoch, state,
                                   t.meta(position={"step": step, "steps": engine.n_batches}))
        faults.hit("fit.position_saved")
    positions = _after_epochs(tracks)
    positions.update({t.member.cfg.exp_id: (t.next_epoch, int(steps[t.lo])) for t in training
                      if steps[t.lo] > 0})
    raise Interrupted(positions, engine.n_batches)


def _save_selected(t: _Track, state: dict, meta: dict) -> None:
    """Save the weights `t` selected (and its stopping state) apart from its per-epoch steps."""
    key = selected_key(t.member.cfg)
    t.member.checkpointer.save_selected(int(state["epoch"]), {
        key: state[key], "stop": state["stop"], "epoch": state["epoch"]}, meta)
    t.selected_saved = True


def _resumed_losses(live, n, engine):
    """(n, n_batches) per-batch losses of the epoch in progress: those restored for the
    experiments resumed inside it, zeros elsewhere; None when none was."""
    if not any(t.start for t in live):
        return None
    losses = np.zeros((n, engine.n_batches), np.float32)
    for t in live:
        if t.start:
            losses[t.lo:t.hi] = t.losses
    return engine.shard(losses)


def _restore(tracks, program: _Program, engine) -> _Program:
    """Load each experiment's latest intact checkpoint into its slice of the member axis.

    Three kinds: the end of an epoch (resume at the next one), a position inside an epoch
    (resume at its next batch, with the epoch's losses so far), or the selected weights alone
    of a finished experiment (nothing left to train: they take the place of both params and
    best params, which is all the final evaluation reads)."""
    restored_any = False
    host = None
    for t in tracks:
        if t.member.checkpointer is None:
            continue
        template = program.state_of(t, 0)

        def target(meta, template=template, k=t.hi - t.lo):
            if not meta.get("position"):
                return template
            losses = jax.ShapeDtypeStruct((k, engine.n_batches), jnp.float32)
            return {**template, "position": _position_tree(0, losses)}

        restored = t.member.checkpointer.restore_latest(target)
        if restored is None:
            continue
        epoch, state, meta = restored
        selected_only = "opt_state" not in state
        stop = StopState.from_tree(state["stop"])
        if selected_only and stop.active.any():  # cannot happen: saved once every seed stopped
            continue
        if host is None:  # writable copies
            host = jax.tree.map(np.array, jax.device_get((program.params, program.opt_state,
                                                          program.best)))
        parts = ((state["params"], state["opt_state"], state["best_params"]) if not selected_only
                 else (state[selected_key(t.member.cfg)], None, state[selected_key(t.member.cfg)]))
        for tree, part in zip(host, parts):
            if part is not None:
                jax.tree.map(lambda whole, rows: whole.__setitem__(slice(t.lo, t.hi), np.asarray(rows)),
                             tree, part)
        t.stop = stop
        t.selected_saved = selected_only
        t.history = list(meta.get("history", []))
        t.earlier_seconds = float(meta.get("seconds", 0.0))  # 0: saved before fembed kept it
        if "position" in state:  # inside epoch `epoch`: its earlier batches are done
            t.next_epoch, t.resumed_from = int(epoch), int(epoch) - 1
            t.start, t.losses = int(state["position"]["step"]), np.asarray(state["position"]["losses"])
        else:
            t.next_epoch, t.resumed_from = int(epoch) + 1, int(epoch)
        restored_any = True
    if not restored_any:
        return program
    params, opt_state, best = (engine.shard(jax.tree.map(np.asarray, tree)) for tree in host)
    return dataclasses.replace(program, params=params, opt_state=opt_state, best=best)


def _selected(tracks, program: _Program, n, engine):
    """(n, ...) selected weights ("best" or "last" per experiment) in the first program's order;
    filler rows repeat the last experiment's last row."""
    live_params, live_best = jax.device_get((program.params, program.best))
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


def _result(t: _Track, val_probs, val_labels, test, all_val_probs) -> FitResult:
    """`val_probs`/`val_labels`: the report windows the metrics are scored on; `all_val_probs`:
    every validation window (what the predictions file keeps)."""
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
                     val_probs=all_val_probs[t.home[0]:t.home[1]], test_metrics=test_metrics,
                     seconds=t.seconds(), resumed_from=t.resumed_from)
