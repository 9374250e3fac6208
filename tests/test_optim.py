"""Adam with coupled L2 (torch.optim.Adam(weight_decay=wd)) against a hand-written update.

Tolerances are 1e-5 relative: in float32, 1 - 0.999 carries a 1e-5 relative error into Adam's
bias correction (torch in float32 has the same).
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from fembed_jax.optim import make_optimizer, set_hyperparams

PARAMS = {"w": np.array([1.0, -2.0]), "b": np.array(0.5)}
GRADS = [  # gradients of two steps, given (not derived from a loss) to keep the check by hand
    {"w": np.array([0.3, -0.1]), "b": np.array(0.2)},
    {"w": np.array([-0.2, 0.4]), "b": np.array(0.0)},
]


def _torch_adam_l2(params, grads, lr, wd, b1=0.9, b2=0.999, eps=1e-8):
    """torch.optim.Adam's documented algorithm, float64, one parameter array at a time."""
    out = {}
    for key, w in params.items():
        w, m, v = w.astype(np.float64), 0.0, 0.0
        for t, g in enumerate((gs[key] for gs in grads), start=1):
            g = g + wd * w
            m = b1 * m + (1 - b1) * g
            v = b2 * v + (1 - b2) * g * g
            w = w - lr * (m / (1 - b1**t)) / (np.sqrt(v / (1 - b2**t)) + eps)
        out[key] = w
    return out


def _run(opt, params, grads):
    params = jax.tree.map(lambda x: jnp.asarray(x, jnp.float32), params)
    state = opt.init(params)
    for g in grads:
        g = jax.tree.map(lambda x: jnp.asarray(x, jnp.float32), g)
        updates, state = opt.update(g, state, params)
        params = optax.apply_updates(params, updates)
    return params, state


def test_two_steps_match_hand_computed_adam_with_coupled_l2():
    got, _ = _run(make_optimizer(learning_rate=0.1, weight_decay=0.05), PARAMS, GRADS)
    want = _torch_adam_l2(PARAMS, GRADS, lr=0.1, wd=0.05)
    for key in PARAMS:
        np.testing.assert_allclose(np.asarray(got[key]), want[key], rtol=1e-5, atol=1e-6)


def test_first_step_by_hand():
    # Step 1: m_hat = g', v_hat = g'^2, so the step is -lr * g' / (|g'| + eps) ~ -lr * sign(g').
    # w[0]: g' = 0.3 + 0.05 * 1 = 0.35 -> 1 - 0.1;  w[1]: g' = -0.1 + 0.05 * -2 = -0.2 -> -2 + 0.1
    got, _ = _run(make_optimizer(learning_rate=0.1, weight_decay=0.05), PARAMS, GRADS[:1])
    np.testing.assert_allclose(np.asarray(got["w"]), [0.9, -1.9], rtol=1e-5)
    np.testing.assert_allclose(float(got["b"]), 0.4, rtol=1e-5)


def test_defaults_are_the_originals():
    opt = make_optimizer()
    state = opt.init({"w": jnp.zeros(2)})
    assert float(state.hyperparams["learning_rate"]) == pytest.approx(1e-4)
    assert float(state.hyperparams["weight_decay"]) == 0.0
    got, _ = _run(opt, PARAMS, GRADS)
    ref, _ = _run(optax.adam(1e-4, b1=0.9, b2=0.999, eps=1e-8), PARAMS, GRADS)
    for key in PARAMS:
        np.testing.assert_array_equal(np.asarray(got[key]), np.asarray(ref[key]))


def test_decay_reaches_every_parameter_and_is_not_adamw():
    zero = [{"w": np.zeros(2), "b": np.array(0.0)}]
    got, _ = _run(make_optimizer(learning_rate=0.1, weight_decay=0.01), PARAMS, zero)
    # the L2 gradient alone moves each parameter by lr against its sign (step 1 of Adam)
    np.testing.assert_allclose(np.asarray(got["w"]), [0.9, -1.9], rtol=1e-5)
    np.testing.assert_allclose(float(got["b"]), 0.4, rtol=1e-5)
    adamw, _ = _run(optax.adamw(0.1, weight_decay=0.01), PARAMS, zero)
    assert not np.allclose(np.asarray(adamw["w"]), np.asarray(got["w"]))


def test_set_hyperparams_per_seed_under_vmap_and_jit():
    opt = make_optimizer(learning_rate=0.1, weight_decay=0.0)
    k = 3
    stacked = jax.tree.map(lambda x: jnp.stack([jnp.asarray(x, jnp.float32)] * k), PARAMS)
    state = jax.vmap(opt.init)(stacked)
    wds = [0.0, 0.05, 0.2]
    state = set_hyperparams(state, weight_decay=jnp.asarray(wds))
    assert state.hyperparams["weight_decay"].shape == (k,)
    step = jax.jit(jax.vmap(opt.update))
    params = stacked
    for g in GRADS:
        gs = jax.tree.map(lambda x: jnp.stack([jnp.asarray(x, jnp.float32)] * k), g)
        updates, state = step(gs, state, params)
        params = optax.apply_updates(params, updates)
    for i, wd in enumerate(wds):
        want = _torch_adam_l2(PARAMS, GRADS, lr=0.1, wd=wd)
        np.testing.assert_allclose(np.asarray(params["w"][i]), want["w"], rtol=1e-5, atol=1e-6)
    # a scalar is broadcast to the stored shape; the dtype is kept
    state = set_hyperparams(state, learning_rate=0.5)
    assert state.hyperparams["learning_rate"].shape == (k,)
    assert state.hyperparams["learning_rate"].dtype == jnp.float32


@pytest.mark.parametrize(
    "kwargs,name",
    [
        ({"learning_rate": 0.0}, "learning_rate"),
        ({"learning_rate": -1e-3}, "learning_rate"),
        ({"learning_rate": math.inf}, "learning_rate"),
        ({"weight_decay": -0.1}, "weight_decay"),
        ({"weight_decay": math.nan}, "weight_decay"),
        ({"weight_decay": True}, "weight_decay"),
        ({"learning_rate": "1e-4"}, "learning_rate"),
    ],
)
def test_invalid_settings_name_the_parameter(kwargs, name):
    with pytest.raises(ValueError, match=name):
        make_optimizer(**kwargs)
