"""The compiled part of training: many (experiment, seed) members in one jit(vmap(...)) program.

Pure functions over pytrees. A training epoch is a loop over shuffled batches run in *chunks*:
each chunk is one compiled call over batches [start, stop) of the epoch, and the epoch's order
and dropout keys depend only on (seed, epoch), never on where the chunks begin, so a chunked
epoch is the same sequence of the same step as one loop over all batches (bit-identical: checked
in tests/test_engine.py). Between chunks the host can poll a stop flag, report progress and
checkpoint the position inside the epoch; `train_epoch` sizes chunks so that one takes about
CHUNK_SECONDS. Windows are gathered from the (rows, features) matrix inside the step, so no host
round-trip happens inside a chunk and a500 never holds 80 copies of its data.

The vmapped axis holds *members*: the seeds of one experiment, or the seeds of several
experiments that share the program's static structure (same shapes, dropout, batch) and differ
only in what is an array here: the loss (its hyperparameters, and which loss when the members'
losses are of several families: losses.program_loss_fn), learning rate, weight decay (in the
optimizer state) and seeds. Every member carries its own epoch counter and draws its shuffling
and dropout from keys derived from (seed, epoch), so an epoch is reproducible on its own: a
resumed run replays exactly what an uninterrupted one would have done.

With several devices (GPUs, or CPU host devices) the member axis is sharded over a 1-D mesh and
the data replicated; the member count must then be a multiple of the device count.

Batches have a fixed size; the last, partial batch is padded and masked (the losses average over
the mask), which gives the same loss and gradient as the original's short last batch.
"""

from __future__ import annotations

import dataclasses
import math
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from fembed_jax import losses
from fembed_jax.config import ExperimentConfig
from fembed_jax.models import build_model
from fembed_jax.optim import make_optimizer, set_hyperparams

PyTree = Any
MEMBER_AXIS = "members"
# A chunk of steps aims at this many seconds: a stop request waits for at most one chunk, and
# progress is reported after each. The first chunk of an engine is one step (its time is not
# known yet, and on a CPU one step of a large experiment takes tens of seconds).
CHUNK_SECONDS = 5.0
_POLL_SECONDS = 0.05  # how often the host wakes while a chunk runs (signals are handled then)


class StopWaiting(Exception):
    """Raised by a `poll()` to give up on the computation in flight: the caller goes on with the
    state from before it (nothing of it is lost but the abandoned steps) and the computation
    runs to its end unobserved (`in_flight()`)."""


@dataclasses.dataclass(frozen=True)
class DeviceData:
    """The arrays an epoch reads, on the device: feature rows and window starts/labels per split."""

    matrix: jax.Array  # (rows, F) float32
    starts: dict[str, jax.Array]  # split -> (n,) int32 first row of each window
    labels: dict[str, jax.Array]  # split -> (n,) float32 label of each window

    @classmethod
    def from_dataset(cls, dataset) -> "DeviceData":
        return cls(matrix=jnp.asarray(dataset.matrix, jnp.float32),
                   starts={k: jnp.asarray(v, jnp.int32) for k, v in dataset.starts.items()},
                   labels={k: jnp.asarray(v, jnp.float32) for k, v in dataset.labels.items()})

    def size(self, split: str) -> int:
        return int(self.starts[split].shape[0])


def seed_keys(seeds: Sequence[int]) -> jax.Array:
    """(M, 2) uint32 raw keys, one per seed value (raw data so checkpoints can store them)."""
    return jnp.stack([jax.random.key_data(jax.random.key(s)) for s in seeds])


def _key(raw: jax.Array) -> jax.Array:
    return jax.random.wrap_key_data(raw)


def _padded_batches(order: jax.Array, batch_size: int) -> tuple[jax.Array, jax.Array]:
    """Split an index vector into (n_batches, batch_size) plus a 0/1 mask for the padding."""
    n = order.shape[0]
    n_batches = math.ceil(n / batch_size)
    pad = n_batches * batch_size - n
    padded = jnp.concatenate([order, jnp.zeros(pad, order.dtype)]).reshape(n_batches, batch_size)
    mask = (jnp.arange(n_batches * batch_size) < n).astype(jnp.float32).reshape(n_batches, batch_size)
    return padded, mask


class Engine:
    """Compiled init / train-epoch / evaluate for one program structure and any member count."""

    def __init__(self, cfg: ExperimentConfig, data: DeviceData, devices: Sequence | None = None,
                 steps_per_chunk: int | None = None, loss_names: Sequence[str] = ()):
        """`loss_names`: the losses of the members it will train besides `cfg`'s (their
        families are compiled in; a program of one family computes only that loss)."""
        self.cfg = cfg
        self.model = build_model(cfg)
        self.loss_families = tuple(dict.fromkeys(losses.loss_family(n) for n in (cfg.loss, *loss_names)))
        self.loss_fn = losses.program_loss_fn(self.loss_families)
        self.tx = make_optimizer(cfg.learning_rate, cfg.weight_decay)
        self._window = jnp.arange(cfg.context_length, dtype=jnp.int32)
        devices = list(devices) if devices else [jax.devices()[0]]
        self.num_devices = len(devices)
        self.platform = devices[0].platform  # "cpu", "gpu", "tpu"
        self.mesh = None
        if self.num_devices > 1:
            # Auto axes: the default explicit axes reject the reshapes inside the model (jax 0.10).
            self.mesh = jax.sharding.Mesh(np.array(devices), (MEMBER_AXIS,),
                                          axis_types=(jax.sharding.AxisType.Auto,))
        self.data = self._replicated(data)
        self._subsets: dict[tuple, tuple] = {}  # (split, window mask) -> its starts and labels
        self.n_batches = math.ceil(self.data.size("train") / cfg.batch_size)
        # None: sized from the measured step time (CHUNK_SECONDS); a number fixes it (tests).
        self.steps_per_chunk = steps_per_chunk
        self.step_seconds: float | None = None  # measured; shared by every epoch of this engine
        self._init = jax.jit(jax.vmap(self._init_one))
        # Not donated: the state before a chunk stays valid while the chunk runs, so a stop that
        # cannot wait for a long chunk still saves every step done before it. The chunk's
        # bounds are not vmapped: every member runs the same batch indices.
        self._chunk = jax.jit(
            jax.vmap(self._chunk_one, in_axes=(0, 0, 0, 0, 0, 0, 0, 0, None, None, None, None, None)))
        self._mean = jax.jit(jax.vmap(jnp.mean))
        self._eval = jax.jit(jax.vmap(self._eval_one, in_axes=(0, 0, None, None, None)))

    # ---- placement ---------------------------------------------------------------------------
    def _replicated(self, data: DeviceData) -> DeviceData:
        if self.mesh is None:
            return data
        spec = jax.sharding.NamedSharding(self.mesh, jax.sharding.PartitionSpec())
        put = lambda x: jax.device_put(x, spec)  # noqa: E731
        return DeviceData(put(data.matrix), {k: put(v) for k, v in data.starts.items()},
                          {k: put(v) for k, v in data.labels.items()})

    def shard(self, tree: PyTree) -> PyTree:
        """Place member-stacked arrays along the mesh (a no-op on one device)."""
        if self.mesh is None:
            return tree
        spec = jax.sharding.NamedSharding(self.mesh, jax.sharding.PartitionSpec(MEMBER_AXIS))
        return jax.device_put(tree, spec)

    def _check_members(self, n: int) -> None:
        if n % self.num_devices:
            raise ValueError(f"{n} members cannot be split over {self.num_devices} devices; "
                             "pad the member list to a multiple of the device count")

    def member_hparams(self, per_member: Sequence[ExperimentConfig] | None, n: int) -> dict:
        """The members' loss hyperparameters (losses.program_loss_hparams) as (M,) arrays, from
        their configs; None repeats the engine config's."""
        rows = [losses.program_loss_hparams(self.loss_families, c.loss, c.loss_params)
                for c in (per_member if per_member is not None else [self.cfg] * n)]
        return self.shard({k: np.asarray([r[k] for r in rows], np.int32 if k == losses.FAMILY_INDEX else np.float32)
                           for k in rows[0]})

    # ---- per-member pure functions (vmapped above) -------------------------------------------
    def _gather(self, matrix: jax.Array, starts: jax.Array) -> jax.Array:
        """(B,) window starts -> (B, T, F) windows, gathered on the device."""
        return matrix[starts[:, None] + self._window[None, :]]

    def _init_one(self, raw_key: jax.Array) -> tuple[PyTree, PyTree]:
        key = jax.random.fold_in(_key(raw_key), 0)
        k_params, k_dropout = jax.random.split(key)
        dummy = jnp.zeros((1, self.cfg.context_length, self.cfg.num_features), jnp.float32)
        params = self.model.init({"params": k_params, "dropout": k_dropout}, dummy, train=False)["params"]
        return params, self.tx.init(params)

    def _chunk_one(self, params, opt_state, losses, active, running, raw_key, epoch, hparams,
                   start, stop, matrix, starts, labels):
        """One member, batches [start, stop) of one epoch; returns params, opt state and the
        (n_batches,) buffer of per-batch losses with entries [start, stop) filled in.

        The epoch's shuffle and dropout keys are drawn whole from (seed, epoch) and indexed, so a
        batch gets the same indices and key whichever chunk runs it. A member that is not
        learning in this chunk (early stopping froze it: active=False; or it resumes at a later
        batch: running=False) gets its params, optimizer state and losses back unchanged. The
        choice is made once, after the chunk's loop, not at every step: `learning` is constant
        within a chunk, and a per-step select of every parameter and moment cost ~8 % of an
        FE-06 epoch on a CPU (bench/bench_epoch.py).
        """
        key = jax.random.fold_in(_key(raw_key), epoch + 1)
        k_perm, k_drop = jax.random.split(key)
        order = jax.random.permutation(k_perm, starts.shape[0])
        batches, masks = _padded_batches(order, self.cfg.batch_size)
        drop_keys = jax.random.split(k_drop, batches.shape[0])
        learning = jnp.logical_and(active, running)

        def step(i, carry):
            params, opt_state, losses = carry
            idx, mask, k = batches[i], masks[i], drop_keys[i]
            x = self._gather(matrix, starts[idx])
            y = labels[idx]

            def objective(p):
                probs, aux = self.model.apply({"params": p}, x, train=True, rngs={"dropout": k})
                return self.loss_fn(probs, y, hparams, mask) + aux

            loss, grads = jax.value_and_grad(objective)(params)
            updates, new_opt = self.tx.update(grads, opt_state, params)
            return optax.apply_updates(params, updates), new_opt, losses.at[i].set(loss)

        new = jax.lax.fori_loop(start, stop, step, (params, opt_state, losses))
        keep = lambda new, old: jnp.where(learning, new, old)  # noqa: E731
        return jax.tree.map(keep, new, (params, opt_state, losses))

    def _eval_one(self, params, hparams, matrix, starts, labels):
        """Probabilities for every window of a split, and the mean of per-batch losses."""
        order = jnp.arange(starts.shape[0], dtype=jnp.int32)
        batches, masks = _padded_batches(order, self.cfg.batch_size)

        def one(batch):
            idx, mask = batch
            x = self._gather(matrix, starts[idx])
            probs, _ = self.model.apply({"params": params}, x, train=False)
            return probs, self.loss_fn(probs, labels[idx], hparams, mask)

        probs, batch_losses = jax.lax.map(one, (batches, masks))
        return probs.reshape(-1)[: starts.shape[0]], batch_losses.mean()

    # ---- public API (all members at once) ----------------------------------------------------
    def init(self, keys: jax.Array, learning_rates: Sequence[float] | None = None,
             weight_decays: Sequence[float] | None = None,
             poll: Callable[[], None] | None = None) -> tuple[PyTree, PyTree]:
        """Fresh params and optimizer state for each member; per-member lr / weight decay.
        `poll` as in train_epoch (compiling this may take a minute)."""
        self._check_members(keys.shape[0])
        params, opt_state = _call(self._init, (self.shard(keys),), poll)
        if learning_rates is not None or weight_decays is not None:
            opt_state = set_hyperparams(
                opt_state,
                learning_rate=None if learning_rates is None else np.asarray(learning_rates, np.float32),
                weight_decay=None if weight_decays is None else np.asarray(weight_decays, np.float32))
            opt_state = self.shard(opt_state)
        return params, opt_state

    def train_epoch(self, params, opt_state, keys, epoch, active: np.ndarray, hparams: dict | None = None,
                    *, start: int | np.ndarray = 0, losses=None,
                    between: Callable[..., None] | None = None,
                    poll: Callable[[], None] | None = None, per_batch: bool = False):
        """Train every member one epoch; members with active=False keep their params and state.

        `epoch` is an int or a per-member (M,) array. Returns (params, opt_state, (M,) mean
        train loss), or with `per_batch` the (M, n_batches) per-batch losses (`mean_loss`
        gives the mean).

        Resuming inside an epoch: `start` is the next batch of each member (an int or (M,)) and
        `losses` the (M, n_batches) per-batch losses of the batches already done. A member
        trains only from its own start (it sits out the chunks before it). After every chunk
        that does not end the epoch, `between(steps, params, opt_state, losses)` is called with
        each member's next batch (it may checkpoint that state, or raise to stop). While a chunk
        compiles or runs, `poll()` is called every _POLL_SECONDS (signals are handled then); when
        it raises StopWaiting, `between` is called once more with the state before that chunk
        (to save it) and StopWaiting propagates unless `between` raised something else.
        """
        n, total = keys.shape[0], self.n_batches
        epochs = self.shard(np.broadcast_to(np.asarray(epoch, np.int32), (n,)).copy())
        hparams = hparams if hparams is not None else self.member_hparams(None, n)
        active = np.asarray(active, bool)
        active_on = self.shard(active)
        begin = np.broadcast_to(np.asarray(start, np.int64), (n,)).copy()
        if losses is None:
            losses = self.shard(jnp.zeros((n, total), jnp.float32))
        keys = self.shard(keys)
        # Chunk boundaries include every member's start, so each member joins at a boundary.
        joins = sorted({int(b) for b in begin[active]} | {total}) if active.any() else [total]
        at = joins[0]
        while at < total:
            stop = min(at + self._chunk_steps(), total, next(j for j in joins if j > at))
            running = self.shard(begin <= at)
            t0 = time.monotonic()
            try:
                params, opt_state, losses = _call(self._chunk, (
                    params, opt_state, losses, active_on, running, keys, epochs, hparams,
                    np.int32(at), np.int32(stop), self.data.matrix, self.data.starts["train"],
                    self.data.labels["train"]), poll)
            except StopWaiting:
                if between is not None:
                    between(np.maximum(begin, at), params, opt_state, losses)
                raise
            self._measured(time.monotonic() - t0, stop - at)
            at = stop
            if at < total and between is not None:
                between(np.maximum(begin, at), params, opt_state, losses)
        return params, opt_state, losses if per_batch else self.mean_loss(losses)

    def mean_loss(self, losses) -> jax.Array:
        """(M,) epoch train loss from the (M, n_batches) per-batch losses: their unweighted
        mean, as the original reports it."""
        return self._mean(losses)

    def _chunk_steps(self) -> int:
        if self.steps_per_chunk:
            return self.steps_per_chunk
        if self.step_seconds is None:
            return 1
        return max(1, int(CHUNK_SECONDS / max(self.step_seconds, 1e-6)))

    def _measured(self, seconds: float, steps: int) -> None:
        """Step time from the latest chunk. The first call's includes compiling (or loading) the
        program: it only makes the next chunk too short, and that one corrects it."""
        self.step_seconds = seconds / steps

    def evaluate(self, params, split: str = "val", hparams: dict | None = None,
                 poll: Callable[[], None] | None = None, windows: np.ndarray | None = None):
        """(M, n) probabilities and (M,) mean batch loss on a split, or on the split's windows
        where the boolean mask `windows` is true (batches are cut from those alone); `poll` as
        in train_epoch."""
        n = jax.tree.leaves(params)[0].shape[0]
        hparams = hparams if hparams is not None else self.member_hparams(None, n)
        starts, labels = self._windows(split, windows)
        probs, loss = _call(self._eval, (params, hparams, self.data.matrix, starts, labels), poll)
        return np.asarray(probs), np.asarray(loss)

    def _windows(self, split: str, windows: np.ndarray | None):
        if windows is None:
            return self.data.starts[split], self.data.labels[split]
        key = (split, np.asarray(windows, bool).tobytes())
        if key not in self._subsets:
            index = np.flatnonzero(windows)
            self._subsets[key] = (self.data.starts[split][index], self.data.labels[split][index])
        return self._subsets[key]


# Computations started by _call that may still run: [dispatching thread, output leaves].
_pending: list[list] = []


def in_flight() -> bool:
    """Whether a computation given up on (StopWaiting, or a KeyboardInterrupt while waiting)
    may still be compiling or running. The interpreter's exit waits for it to finish; a command
    that means to quit at once leaves with os._exit instead (cli/cmd_run.py)."""
    _pending[:] = [entry for entry in _pending
                   if entry[0].is_alive() or not all(x.is_ready() for x in entry[1])]
    return bool(_pending)


def _call(fn: Callable, args: tuple, poll: Callable[[], None] | None):
    """fn(*args), its outputs computed, while this thread stays responsive.

    A jitted call compiles (minutes, for a large experiment on a CPU, the first time) and then
    runs asynchronously. Both are waited for here in Python sleeps, not inside XLA, so signal
    handlers run at once (a second Ctrl-C aborts mid-compile) and `poll()` may give up by
    raising StopWaiting: the call then goes on in its daemon thread, unobserved."""
    if poll is None:
        out = fn(*args)
        jax.block_until_ready(out)
        return out
    box: dict[str, Any] = {}

    def dispatch() -> None:
        try:
            box["out"] = fn(*args)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
            box["error"] = exc

    thread = threading.Thread(target=dispatch, daemon=True, name="fembed-dispatch")
    entry = [thread, []]
    _pending.append(entry)
    thread.start()
    pause = [0.0005]  # short calls (small experiments) must not wait a whole poll period

    def wait(busy: Callable[[], bool]) -> None:
        while busy():
            poll()
            time.sleep(pause[0])
            pause[0] = min(2 * pause[0], _POLL_SECONDS)

    wait(thread.is_alive)
    if "error" in box:
        _pending.remove(entry)
        raise box["error"]
    entry[1] = [x for x in jax.tree.leaves(box["out"]) if isinstance(x, jax.Array)]
    wait(lambda: not all(x.is_ready() for x in entry[1]))
    _pending.remove(entry)
    return box["out"]


def select_members(mask: np.ndarray, new: PyTree, old: PyTree) -> PyTree:
    """Per member (leading axis): take `new` where mask else `old`."""
    mask = jnp.asarray(mask)

    def pick(n, o):
        return jnp.where(mask.reshape((-1,) + (1,) * (n.ndim - 1)), n, o)

    return jax.tree.map(pick, new, old)


select_seeds = select_members  # the single-experiment name used by fit.py
