"""The compiled part of training: K seeds of one experiment in one jit(vmap(...)) program.

Pure functions over pytrees. A training epoch is one `lax.scan` over shuffled batches; windows are
gathered from the (rows, features) matrix inside the step, so no host round-trip happens inside
an epoch and a500 never holds 80 copies of its data. Every seed draws its shuffling and dropout
from keys derived from (seed, epoch), so an epoch is reproducible on its own: a resumed run
replays exactly what an uninterrupted one would have done.

Batches have a fixed size; the last, partial batch is padded and masked (the losses average over
the mask), which gives the same loss and gradient as the original's short last batch.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from fembed_jax import losses
from fembed_jax.config import ExperimentConfig
from fembed_jax.models import build_model
from fembed_jax.optim import make_optimizer

PyTree = Any


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


def seed_keys(seeds: list[int]) -> jax.Array:
    """(K, 2) uint32 raw keys, one per seed value (raw data so checkpoints can store them)."""
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
    """Compiled init / train-epoch / evaluate functions for one experiment config and K seeds."""

    def __init__(self, cfg: ExperimentConfig, data: DeviceData):
        self.cfg = cfg
        self.data = data
        self.model = build_model(cfg)
        self.loss_fn = losses.loss_fn_from_hparams(cfg.loss)
        self.hparams = {k: jnp.float32(v)
                        for k, v in losses.loss_hparams(cfg.loss, **dict(cfg.loss_params)).items()}
        self.tx = make_optimizer(cfg.learning_rate, cfg.weight_decay)
        self._window = jnp.arange(cfg.context_length, dtype=jnp.int32)
        self._init = jax.jit(jax.vmap(self._init_one))
        # Params and optimizer state are donated: an epoch updates them in place.
        self._epoch = jax.jit(
            jax.vmap(self._epoch_one, in_axes=(0, 0, 0, 0, None, None, None, None, None)),
            donate_argnums=(0, 1))
        self._eval = jax.jit(jax.vmap(self._eval_one, in_axes=(0, None, None, None, None)))

    # ---- per-seed pure functions (vmapped above) --------------------------------------------
    def _gather(self, matrix: jax.Array, starts: jax.Array) -> jax.Array:
        """(B,) window starts -> (B, T, F) windows, gathered on the device."""
        return matrix[starts[:, None] + self._window[None, :]]

    def _init_one(self, raw_key: jax.Array) -> tuple[PyTree, PyTree]:
        key = jax.random.fold_in(_key(raw_key), 0)
        k_params, k_dropout = jax.random.split(key)
        dummy = jnp.zeros((1, self.cfg.context_length, self.cfg.num_features), jnp.float32)
        params = self.model.init({"params": k_params, "dropout": k_dropout}, dummy, train=False)["params"]
        return params, self.tx.init(params)

    def _epoch_one(self, params, opt_state, active, raw_key, epoch, matrix, starts, labels, hparams):
        """One seed, one epoch: shuffle, scan over batches; returns params, opt state, mean loss.

        A seed that early stopping froze (active=False) gets its inputs back unchanged.
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

    def _eval_one(self, params, matrix, starts, labels, hparams):
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

    # ---- public API (all seeds at once) ----------------------------------------------------
    def init(self, keys: jax.Array) -> tuple[PyTree, PyTree]:
        return self._init(keys)

    def train_epoch(self, params, opt_state, keys, epoch: int, active: np.ndarray):
        """Train every seed one epoch; seeds with active=False keep their params and state.

        `params` and `opt_state` are donated: use the returned ones.
        """
        return self._epoch(params, opt_state, jnp.asarray(active), keys, jnp.int32(epoch),
                           self.data.matrix, self.data.starts["train"], self.data.labels["train"],
                           self.hparams)

    def evaluate(self, params, split: str = "val") -> tuple[np.ndarray, np.ndarray]:
        """(K, n) probabilities and (K,) mean batch loss on a split."""
        probs, loss = self._eval(params, self.data.matrix, self.data.starts[split],
                                 self.data.labels[split], self.hparams)
        return np.asarray(probs), np.asarray(loss)


def select_seeds(mask: np.ndarray, new: PyTree, old: PyTree) -> PyTree:
    """Per seed (leading axis): take `new` where mask else `old`."""
    mask = jnp.asarray(mask)

    def pick(n, o):
        return jnp.where(mask.reshape((-1,) + (1,) * (n.ndim - 1)), n, o)

    return jax.tree.map(pick, new, old)
