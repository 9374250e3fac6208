"""The compiled part of training: many (experiment, seed) members in one jit(vmap(...)) program.

Pure functions over pytrees. A training epoch is one `lax.scan` over shuffled batches; windows are
gathered from the (rows, features) matrix inside the step, so no host round-trip happens inside
an epoch and a500 never holds 80 copies of its data.

The vmapped axis holds *members*: the seeds of one experiment, or the seeds of several
experiments that share the program's static structure (same shapes, loss family, dropout) and
differ only in what is an array here: loss hyperparameters, learning rate, weight decay (in the
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
from collections.abc import Sequence
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


def structure_key(cfg: ExperimentConfig) -> tuple:
    """Experiments with equal keys can share one compiled program (one Engine)."""
    return (cfg.tier, cfg.task, cfg.horizon, cfg.num_features, cfg.context_length,
            cfg.patch_length, cfg.stride, cfg.d_embed, cfg.d_model, cfg.n_layers, cfg.n_heads,
            cfg.d_ff, cfg.dropout, cfg.head_dropout, cfg.use_revin, cfg.embedding,
            tuple(sorted(cfg.embedding_params.items())), losses.loss_family(cfg.loss),
            cfg.batch_size)


def loss_hparams_of(cfg: ExperimentConfig) -> dict[str, float]:
    return losses.loss_hparams(cfg.loss, **dict(cfg.loss_params))


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

    def __init__(self, cfg: ExperimentConfig, data: DeviceData, devices: Sequence | None = None):
        self.cfg = cfg
        self.model = build_model(cfg)
        self.loss_fn = losses.loss_fn_from_hparams(cfg.loss)
        self.hparams = {k: np.float32(v) for k, v in loss_hparams_of(cfg).items()}
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
        self._init = jax.jit(jax.vmap(self._init_one))
        # Params and optimizer state are donated: an epoch updates them in place.
        self._epoch = jax.jit(
            jax.vmap(self._epoch_one, in_axes=(0, 0, 0, 0, 0, 0, None, None, None)),
            donate_argnums=(0, 1))
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

    def member_hparams(self, per_member: Sequence[dict[str, float]] | None, n: int) -> dict:
        """Loss hyperparameters as (M,) arrays; None repeats the engine config's values."""
        if per_member is None:
            per_member = [self.hparams] * n
        keys = self.hparams.keys()
        return self.shard({k: np.asarray([float(h[k]) for h in per_member], np.float32) for k in keys})

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

    def _epoch_one(self, params, opt_state, active, raw_key, epoch, hparams, matrix, starts, labels):
        """One member, one epoch: shuffle, scan over batches; returns params, opt state, mean loss.

        A member that early stopping froze (active=False) gets its inputs back unchanged.
        """
        key = jax.random.fold_in(_key(raw_key), epoch + 1)
        k_perm, k_drop = jax.random.split(key)
        order = jax.random.permutation(k_perm, starts.shape[0])
        batches, masks = _padded_batches(order, self.cfg.batch_size)
        drop_keys = jax.random.split(k_drop, batches.shape[0])

        def step(carry, batch):
            params, opt_state = carry
            idx, mask, k = batch
            x = self._gather(matrix, starts[idx])
            y = labels[idx]

            def objective(p):
                probs, aux = self.model.apply({"params": p}, x, train=True, rngs={"dropout": k})
                return self.loss_fn(probs, y, hparams, mask) + aux

            loss, grads = jax.value_and_grad(objective)(params)
            updates, opt_state = self.tx.update(grads, opt_state, params)
            return (optax.apply_updates(params, updates), opt_state), loss

        (new_params, new_opt), batch_losses = jax.lax.scan(step, (params, opt_state),
                                                           (batches, masks, drop_keys))
        keep = lambda new, old: jnp.where(active, new, old)  # noqa: E731
        params = jax.tree.map(keep, new_params, params)
        opt_state = jax.tree.map(keep, new_opt, opt_state)
        # The original reports the unweighted mean of per-batch losses.
        return params, opt_state, batch_losses.mean()

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
             weight_decays: Sequence[float] | None = None) -> tuple[PyTree, PyTree]:
        """Fresh params and optimizer state for each member; per-member lr / weight decay."""
        self._check_members(keys.shape[0])
        params, opt_state = self._init(self.shard(keys))
        if learning_rates is not None or weight_decays is not None:
            opt_state = set_hyperparams(
                opt_state,
                learning_rate=None if learning_rates is None else np.asarray(learning_rates, np.float32),
                weight_decay=None if weight_decays is None else np.asarray(weight_decays, np.float32))
            opt_state = self.shard(opt_state)
        return params, opt_state

    def train_epoch(self, params, opt_state, keys, epoch, active: np.ndarray, hparams: dict | None = None):
        """Train every member one epoch; members with active=False keep their params and state.

        `epoch` is an int or a per-member (M,) array; `params` and `opt_state` are donated: use
        the returned ones. Returns (params, opt_state, (M,) mean train loss).
        """
        n = keys.shape[0]
        epochs = np.broadcast_to(np.asarray(epoch, np.int32), (n,))
        hparams = hparams if hparams is not None else self.member_hparams(None, n)
        return self._epoch(params, opt_state, self.shard(np.asarray(active, bool)),
                           self.shard(keys), self.shard(epochs), hparams,
                           self.data.matrix, self.data.starts["train"], self.data.labels["train"])

    def evaluate(self, params, split: str = "val", hparams: dict | None = None):
        """(M, n) probabilities and (M,) mean batch loss on a split."""
        n = jax.tree.leaves(params)[0].shape[0]
        hparams = hparams if hparams is not None else self.member_hparams(None, n)
        probs, loss = self._eval(params, hparams, self.data.matrix, self.data.starts[split],
                                 self.data.labels[split])
        return np.asarray(probs), np.asarray(loss)


def select_members(mask: np.ndarray, new: PyTree, old: PyTree) -> PyTree:
    """Per member (leading axis): take `new` where mask else `old`."""
    mask = jnp.asarray(mask)

    def pick(n, o):
        return jnp.where(mask.reshape((-1,) + (1,) * (n.ndim - 1)), n, o)

    return jax.tree.map(pick, new, old)


select_seeds = select_members  # the single-experiment name used by fit.py
