"""The original's optimizer: torch.optim.Adam with coupled L2 weight decay, as an optax transform.

Per step t (1-based) and parameter w with gradient g:

    g' = g + weight_decay * w                      (coupled L2, on ALL parameters)
    m  = b1 m + (1 - b1) g'          v = b2 v + (1 - b2) g'^2
    w <- w - learning_rate * (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)

with b1 = 0.9, b2 = 0.999, eps = 1e-8, constant learning rate, no clipping: the same arithmetic
as torch's Adam(weight_decay=wd) (not AdamW, whose decay bypasses the moments).

learning_rate and weight_decay live in the optimizer state (``optax.inject_hyperparams``), not in
the compiled program: experiments or seeds that differ only in them share one program, and
``set_hyperparams`` changes them, also per seed for a seed-stacked state.
"""

from __future__ import annotations

import math

import jax.numpy as jnp
import optax

__all__ = ["ADAM_B1", "ADAM_B2", "ADAM_EPS", "make_optimizer", "set_hyperparams"]

ADAM_B1 = 0.9
ADAM_B2 = 0.999
ADAM_EPS = 1e-8


def _adam_with_l2(learning_rate, weight_decay) -> optax.GradientTransformation:
    return optax.chain(
        optax.add_decayed_weights(weight_decay),
        optax.adam(learning_rate, b1=ADAM_B1, b2=ADAM_B2, eps=ADAM_EPS),
    )


def _check(name: str, value, *, allow_zero: bool) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name} must be a number, got {value!r}")
    if not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be finite and {bound}, got {value!r}")


def make_optimizer(
    learning_rate: float = 1e-4, weight_decay: float = 0.0
) -> optax.GradientTransformationExtraArgs:
    """Adam(lr, b1 .9, b2 .999, eps 1e-8) after coupled L2 decay; ``update`` needs ``params``.

    The state is an ``optax.InjectStatefulHyperparamsState`` whose ``hyperparams`` dict holds
    ``learning_rate`` and ``weight_decay`` as arrays (dtype of the params).
    """
    _check("learning_rate", learning_rate, allow_zero=False)
    _check("weight_decay", weight_decay, allow_zero=True)
    return optax.inject_hyperparams(_adam_with_l2)(
        learning_rate=float(learning_rate), weight_decay=float(weight_decay)
    )


def set_hyperparams(opt_state, *, learning_rate=None, weight_decay=None):
    """A copy of ``opt_state`` (from ``make_optimizer``) with new hyperparameter values.

    Values may be scalars or arrays, e.g. shape (K,) for a state vmapped over K seeds; they are
    cast and broadcast to the stored dtype and shape, so the state's structure (and with it the
    compiled program) stays the same. No range check: the values may be traced.
    """
    new = dict(opt_state.hyperparams)
    for name, value in (("learning_rate", learning_rate), ("weight_decay", weight_decay)):
        if value is not None:
            old = jnp.asarray(new[name])
            new[name] = jnp.broadcast_to(jnp.asarray(value, dtype=old.dtype), old.shape)
    return opt_state._replace(hyperparams=new)
