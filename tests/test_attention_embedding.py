"""The factored attention embedding equals the plain computation (values and gradients).

`AttentionFeatureEmbedding(factored=True)` (the default) forms q, k, v per row as x a + c (no (F, E)
tokens, no (E, E) projections) and runs the attention with a hand-written VJP; `factored=False`
is the direct computation of spec §2.6. Both share
the parameter tree, the chunking and the dropout masks (same key, same (c, H, F, F) shape), so
with the same parameters and dropout key they must agree to float32 rounding, in eval and in
train mode, with and without the feature position table, chunked and unchunked.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fembed_jax.models import AttentionFeatureEmbedding
from fembed_jax.models.attention_embedding import _attend, _attention_weights, drop_weights

jit = functools.partial(jax.jit, compiler_options={"xla_backend_optimization_level": 0})

F, E, T = 7, 8, 6


def inputs(batch: int = 2, seed: int = 0) -> jax.Array:
    x = jax.random.normal(jax.random.key(seed), (batch, T, F))
    return x * jnp.linspace(0.5, 3.0, F) + jnp.linspace(-2.0, 2.0, F)  # scales and offsets differ


def random_params(module, x, seed: int = 0):
    shapes = jax.eval_shape(lambda k: module.init({"params": k}, x, True)["params"], jax.random.key(0))
    rng = np.random.default_rng(seed)
    return jax.tree_util.tree_map(lambda s: rng.uniform(-0.6, 0.6, s.shape).astype(np.float32), shapes)


def value_and_grad(module, params, x, deterministic, key):
    def loss(p):
        out, _ = module.apply({"params": p}, x, deterministic, rngs={"dropout": key})
        return jnp.sum(jnp.sin(3.0 * out)), out

    return jit(jax.value_and_grad(loss, has_aux=True))(params)


def assert_grads_close(got, want):
    """Gradients agree to float32 rounding. key_bias is zero in exact arithmetic (softmax shift
    invariance) in both, so it is compared against the scale of the other gradients."""
    got, want = dict(got), dict(want)
    scale = max(float(jnp.max(jnp.abs(g))) for g in jax.tree_util.tree_leaves(want))
    np.testing.assert_allclose(got.pop("key_bias"), want.pop("key_bias"), atol=1e-5 * scale)
    jax.tree_util.tree_map(
        lambda a, b: np.testing.assert_allclose(a, b, rtol=2e-4, atol=2e-6 * scale), got, want
    )


@pytest.mark.parametrize("use_position", [True, False], ids=["pos", "nopos"])
@pytest.mark.parametrize("deterministic", [True, False], ids=["eval", "train"])
@pytest.mark.parametrize("row_chunk", [5, 10_000], ids=["chunked", "unchunked"])
def test_factored_equals_plain(use_position, deterministic, row_chunk):
    x = inputs()
    make = lambda factored: AttentionFeatureEmbedding(
        F, E, dropout=0.5, num_heads=2, use_position=use_position, row_chunk=row_chunk, factored=factored
    )
    plain, factored = make(False), make(True)
    params = random_params(plain, x)
    key = jax.random.key(3)
    (loss_p, out_p), grad_p = value_and_grad(plain, params, x, deterministic, key)
    (loss_f, out_f), grad_f = value_and_grad(factored, params, x, deterministic, key)
    np.testing.assert_allclose(out_f, out_p, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(loss_f, loss_p, rtol=1e-5, atol=1e-5)
    assert_grads_close(grad_f, grad_p)
    if not deterministic:  # dropout on the weights really acts (and identically in both)
        (_, out_eval), _ = value_and_grad(factored, params, x, True, key)
        assert not np.allclose(out_f, out_eval, atol=1e-3)


def test_factored_train_mode_different_keys_differ_same_key_repeats():
    x = inputs()
    module = AttentionFeatureEmbedding(F, E, dropout=0.5, num_heads=2, row_chunk=5)
    params = random_params(module, x)
    apply = jit(lambda p, k: module.apply({"params": p}, x, False, rngs={"dropout": k})[0])
    a, a_again, b = apply(params, jax.random.key(1)), apply(params, jax.random.key(1)), apply(params, jax.random.key(2))
    np.testing.assert_array_equal(a, a_again)
    assert not np.allclose(a, b)


def test_factored_and_plain_share_the_parameter_tree():
    x = inputs()
    shapes = [
        jax.eval_shape(
            lambda k, f=f: AttentionFeatureEmbedding(F, E, dropout=0.1, num_heads=2, factored=f).init(
                {"params": k}, x, True
            )["params"],
            jax.random.key(0),
        )
        for f in (False, True)
    ]
    assert jax.tree_util.tree_structure(shapes[0]) == jax.tree_util.tree_structure(shapes[1])
    assert jax.tree_util.tree_map(lambda s: s.shape, shapes[0]) == jax.tree_util.tree_map(lambda s: s.shape, shapes[1])
    # spec §2.7: 2E + F*E + 3(E^2 + E) + (F*E*E + E) + 2E
    count = sum(int(np.prod(s.shape)) for s in jax.tree_util.tree_leaves(shapes[1]))
    assert count == 2 * E + F * E + 3 * (E * E + E) + (F * E * E + E) + 2 * E


@pytest.mark.parametrize("dropout_on", [True, False], ids=["dropout", "nodropout"])
def test_attend_vjp_matches_autodiff_of_reference(dropout_on):
    """The hand-written VJP of the attention core equals autodiff of the direct softmax formula."""
    c, heads, hd = 3, 2, 3
    ks = jax.random.split(jax.random.key(0), 5)
    q, k, v = (jax.random.normal(ks[i], (c, heads, F, hd)) * 1.5 for i in range(3))
    key = ks[3] if dropout_on else None
    rate = 0.5

    def reference(q, k, v):
        p = jax.nn.softmax(jnp.einsum("chfd,chgd->chfg", q, k), axis=-1)
        if key is not None:
            p = drop_weights(p, rate, key)
        return jnp.einsum("chfg,chgd->chfd", p, v)

    cot = jax.random.normal(ks[4], q.shape)
    out_r, vjp_r = jax.vjp(reference, q, k, v)
    out_f, vjp_f = jax.vjp(lambda q, k, v: _attend(q, k, v, key, rate), q, k, v)
    np.testing.assert_allclose(out_f, out_r, rtol=1e-5, atol=1e-5)
    for got, want in zip(vjp_f(cot), vjp_r(cot)):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def test_attention_weights_are_stable_for_large_scores():
    """The max shift keeps exp finite when scores are large (here up to ~1e4)."""
    q = jnp.linspace(-100.0, 100.0, F)[None, None, :, None]
    weights, norm = _attention_weights(q, q)
    assert bool(jnp.all(jnp.isfinite(weights))) and bool(jnp.all(norm >= 1.0))
