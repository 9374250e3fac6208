"""Model tests: shapes, gradients, dropout, vmap, RevIN, patching, init, validation (spec §1, §2, §8.3)."""

from __future__ import annotations

import functools
import math
import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fembed_jax.models import (
    AttentionFeatureEmbedding,
    RevIN,
    build_embedding,
    build_model,
    count_params,
    dropout,
    effective_rate,
    extract_patches,
    init_params,
    num_patches,
    progressive_dims,
)
from fembed_jax.models.dropout import hashed_uints, random_uints

# Shapes are tiny, so XLA compile time dominates these tests: compile without backend optimisation.
jit = functools.partial(jax.jit, compiler_options={"xla_backend_optimization_level": 0})

# Tiny architecture: F=6 raw features, E=8, D=16, T=32, P=8, S=4 -> N=7 patches.
F, E, T, P, S = 6, 8, 32, 8, 4
N = num_patches(T, P, S)
BATCH = 3

EMBEDDINGS = [
    ("none", {}),
    ("linear", {}),
    ("progressive", {"num_layers": 2}),
    ("bottleneck", {"compression_ratio": 0.5}),
    ("variational", {}),
    ("multihead", {"num_heads": 2, "combine_method": "concat"}),
    ("multihead", {"num_heads": 4, "combine_method": "sum"}),
    ("gated_residual", {}),
    ("attention", {"num_heads": 2, "use_position": True, "row_chunk": 5}),  # chunked, padded last chunk
]
EMBEDDING_IDS = [f"{name}-{i}" for i, (name, _) in enumerate(EMBEDDINGS)]


def make_cfg(embedding: str = "linear", embedding_params=None, **overrides):
    fields = dict(
        num_features=F,
        d_embed=None if embedding == "none" else E,
        d_model=16,
        n_layers=1,
        n_heads=2,
        d_ff=24,
        dropout=0.1,
        head_dropout=0.0,
        context_length=T,
        patch_length=P,
        stride=S,
        use_revin=True,
        embedding=embedding,
        embedding_params=embedding_params or {},
    )
    fields.update(overrides)
    return types.SimpleNamespace(**fields)


def inputs(batch: int = BATCH, seed: int = 0) -> jax.Array:
    x = jax.random.normal(jax.random.key(seed), (batch, T, F))
    return x * jnp.arange(1.0, F + 1.0) + 3.0  # features on different scales and offsets


def random_params(model, x, seed: int = 0):
    """Parameters of the model's shapes drawn with numpy: no XLA compilation (init is tested apart)."""
    shapes = jax.eval_shape(lambda k: model.init({"params": k}, x, train=False)["params"], jax.random.key(0))
    rng = np.random.default_rng(seed)
    return jax.tree_util.tree_map(lambda s: rng.uniform(-0.5, 0.5, s.shape).astype(np.float32), shapes)


def bce(probs, targets):
    probs = jnp.clip(probs, 1e-7, 1 - 1e-7)
    return -jnp.mean(targets * jnp.log(probs) + (1 - targets) * jnp.log(1 - probs))


# ---------------------------------------------------------------- forward / gradients


@pytest.mark.parametrize(("embedding", "params"), EMBEDDINGS, ids=EMBEDDING_IDS)
def test_forward_shape_range_and_every_parameter_trained(embedding, params):
    model = build_model(make_cfg(embedding, params))
    x = inputs()
    targets = jnp.array([0.0, 1.0, 1.0])

    @jit
    def grad(params, dropout_key):
        def loss(p):
            probs, aux = model.apply({"params": p}, x, train=True, rngs={"dropout": dropout_key})
            return bce(probs, targets) + aux, (probs, aux)

        return jax.grad(loss, has_aux=True)(params)

    grads, (probs, aux) = grad(random_params(model, x), jax.random.key(7))
    assert probs.shape == (BATCH,) and probs.dtype == jnp.float32
    assert bool(jnp.all((probs >= 0) & (probs <= 1)))
    assert aux.shape == () and bool(jnp.isfinite(aux))
    assert (float(aux) > 0) == (embedding == "variational")

    pos_grad = grads.pop("pos_table")
    # rows N.. of the positional table are never used (the original's N+10 rows): zero by design
    assert bool(jnp.all(jnp.any(pos_grad[:N] != 0, axis=-1)))
    assert bool(jnp.all(pos_grad[N:] == 0))
    if embedding == "attention":
        # softmax is invariant to q.k_bias (constant along each attention row): the key bias has a
        # zero gradient in exact arithmetic (as in the original); only rounding noise is left.
        grads["embedding"].pop("key_bias")
    untrained = [
        jax.tree_util.keystr(path)
        for path, g in jax.tree_util.tree_leaves_with_path(grads)
        if not bool(jnp.any(g != 0))
    ]
    assert untrained == []
    if embedding != "none":
        assert "embedding" in grads  # the advanced embeddings are part of the trained params (B2 fixed)


def test_no_embedding_patches_raw_features():
    params = random_params(build_model(make_cfg("none")), inputs())
    assert "embedding" not in params
    assert params["patch_proj"]["kernel"].shape == (P * F, 16)


def test_embedding_sets_patch_width():
    params = random_params(build_model(make_cfg("linear")), inputs())
    assert params["patch_proj"]["kernel"].shape == (P * E, 16)


# ---------------------------------------------------------------- dropout


def test_dropout_train_differs_from_eval_and_eval_is_deterministic():
    model = build_model(make_cfg("linear", dropout=0.5))
    x = inputs()
    variables = {"params": random_params(model, x)}
    apply = jit(model.apply, static_argnames="train")  # also: the model works under jit
    train_apply = lambda k: apply(variables, x, train=True, rngs={"dropout": k})[0]
    eval_apply = lambda k: apply(variables, x, train=False, rngs={"dropout": k})[0]
    eval_a, eval_b = eval_apply(jax.random.key(1)), eval_apply(jax.random.key(3))
    np.testing.assert_array_equal(eval_a, eval_b)
    train_1, train_1_again = train_apply(jax.random.key(1)), train_apply(jax.random.key(1))
    train_2 = train_apply(jax.random.key(2))
    np.testing.assert_array_equal(train_1, train_1_again)
    assert not np.allclose(train_1, eval_a)
    assert not np.allclose(train_1, train_2)


@pytest.mark.parametrize("uints", [random_uints, hashed_uints], ids=["threefry", "hashed"])
@pytest.mark.parametrize("rate", [0.5, 0.6, 0.3])
def test_dropout_rate_and_unbiased_scaling(rate, uints):
    x = jnp.ones((200_000,))
    y = jit(lambda x, k: dropout(x, rate, k, uints=uints))(x, jax.random.key(0))
    dropped = float(jnp.mean(y == 0))
    assert abs(dropped - effective_rate(rate)) < 0.005
    assert abs(effective_rate(rate) - rate) <= 1 / 512
    assert abs(float(jnp.mean(y)) - 1.0) < 0.01  # inverted scaling by 1/keep_actual
    kept = y[y != 0]
    np.testing.assert_allclose(kept, 1.0 / (1.0 - effective_rate(rate)), rtol=1e-6)


def test_dropout_exact_at_half_and_edge_rates():
    assert effective_rate(0.5) == 0.5
    x = jnp.arange(1.0, 11.0)
    np.testing.assert_array_equal(dropout(x, 0.0, jax.random.key(0)), x)
    np.testing.assert_array_equal(dropout(x, 1.0, jax.random.key(0)), jnp.zeros_like(x))


@pytest.mark.parametrize(
    "key",
    [jax.random.key(5), jax.random.PRNGKey(5), jax.random.key(5, impl="rbg")],
    ids=["typed-threefry", "raw-threefry", "rbg"],
)
@pytest.mark.parametrize("uints", [random_uints, hashed_uints], ids=["threefry", "hashed"])
def test_dropout_accepts_key_kinds(key, uints):
    y = jit(lambda k: dropout(jnp.ones((4001,)), 0.5, k, uints=uints))(key)
    assert y.shape == (4001,)
    assert 0.45 < float(jnp.mean(y == 0)) < 0.55


def _chi_square_z(counts: np.ndarray) -> float:
    """(chi^2 - df) / sqrt(2 df) of counts against equal cells: ~N(0, 1) for uniform draws."""
    expected = counts.sum() / counts.size
    chi2 = float(np.sum((counts - expected) ** 2) / expected)
    return (chi2 - (counts.size - 1)) / math.sqrt(2 * (counts.size - 1))


def test_hashed_uints_are_uniform_and_independent():
    """The attention mask's draws: byte frequencies, byte pairs inside a 32-bit word and one word
    apart, and the same positions under a sibling key all look uniform (|z| < 5 at 2^22 bytes;
    the bare counter scores z ~ 10^5-10^6 on the byte and next-word tests)."""
    n = 1 << 22
    draw = jax.jit(lambda k: hashed_uints(k, n))
    key_a, key_b = jax.random.split(jax.random.key(11))
    a, b = (np.asarray(draw(k)).astype(np.int64) for k in (key_a, key_b))
    assert abs(_chi_square_z(np.bincount(a, minlength=256))) < 5
    for lag in (1, 4):  # neighbours in one word; the same byte of the next word
        first = a[: n - lag : 4]
        pairs = first * 256 + a[lag::4][: len(first)]
        assert abs(_chi_square_z(np.bincount(pairs, minlength=65536))) < 5, lag
    across_keys = a[: n // 4] * 256 + b[: n // 4]
    assert abs(_chi_square_z(np.bincount(across_keys, minlength=65536))) < 5
    np.testing.assert_array_equal(np.asarray(draw(key_a)), a)  # the same key, the same draws


def test_hashed_uints_keys_with_nearby_first_words_are_unrelated():
    """Keys whose first words differ by d would give the same words shifted by d if only the first
    word entered (one fmix32 round over i + s0); the second word's round makes them unrelated."""
    n, shift = 1 << 20, 1000  # shift in words
    a = np.asarray(hashed_uints(jnp.array([5, 7], jnp.uint32), n)).view(np.uint32)
    b = np.asarray(hashed_uints(jnp.array([5 + shift, 9], jnp.uint32), n)).view(np.uint32)
    assert np.mean(a[shift:] == b[: len(a) - shift]) < 1e-3


def test_hashed_uints_sixteen_bit_and_bad_width():
    draws = np.asarray(hashed_uints(jax.random.key(2), 100_001, 16))
    assert draws.dtype == np.uint16 and draws.shape == (100_001,)
    assert abs(draws.mean() / 65535 - 0.5) < 0.01
    with pytest.raises(ValueError, match="bit width"):
        hashed_uints(jax.random.key(2), 10, 4)


def test_attention_embedding_applies_dropout_to_attention_weights():
    """The LayerNorm input depends only on the attention weights' dropout (the final Dropout is after it)."""
    module = AttentionFeatureEmbedding(F, E, dropout=0.5, num_heads=2, row_chunk=7)
    x = inputs(2)
    variables = jit(lambda k: module.init({"params": k}, x, True))(jax.random.key(0))

    @functools.partial(jit, static_argnums=0)
    def norm_output(deterministic, key):
        _, state = module.apply(
            variables, x, deterministic, rngs={"dropout": key}, capture_intermediates=True
        )
        return state["intermediates"]["norm"]["__call__"][0]

    eval_out = norm_output(True, jax.random.key(1))
    np.testing.assert_array_equal(eval_out, norm_output(True, jax.random.key(2)))
    assert not np.allclose(norm_output(False, jax.random.key(1)), eval_out)
    assert not np.allclose(norm_output(False, jax.random.key(1)), norm_output(False, jax.random.key(2)))


# ---------------------------------------------------------------- attention embedding chunking


def test_attention_embedding_chunked_equals_unchunked():
    x = inputs(2)  # 64 rows; chunks of 5 leave a padded last chunk
    plain = AttentionFeatureEmbedding(F, E, dropout=0.5, num_heads=2, row_chunk=10_000)
    chunked = AttentionFeatureEmbedding(F, E, dropout=0.5, num_heads=2, row_chunk=5)
    params = jit(lambda k: plain.init({"params": k}, x, True))(jax.random.key(0))["params"]

    def loss(module, p):
        out, _ = module.apply({"params": p}, x, True)
        return jnp.sum(jnp.sin(out)), out

    value_and_grad = lambda m: jit(jax.value_and_grad(lambda p: loss(m, p), has_aux=True))
    (loss_plain, out_plain), grad_plain = value_and_grad(plain)(params)
    (loss_chunk, out_chunk), grad_chunk = value_and_grad(chunked)(params)
    for grads in (grad_plain, grad_chunk):  # zero in exact arithmetic (softmax shift invariance)
        grads.pop("key_bias")
    np.testing.assert_allclose(out_chunk, out_plain, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(loss_chunk, loss_plain, rtol=1e-5)
    jax.tree_util.tree_map(
        lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6), grad_chunk, grad_plain
    )


# ---------------------------------------------------------------- seeds under vmap


def test_vmapped_init_gives_distinct_models_with_identical_shapes():
    cfg = make_cfg("linear")
    keys = jax.random.split(jax.random.key(0), 4)
    stacked = jit(jax.vmap(lambda k: init_params(cfg, k)))(keys)
    single = jax.eval_shape(lambda k: init_params(cfg, k), keys[0])
    shapes = jax.tree_util.tree_map(lambda a: a.shape, single)
    assert jax.tree_util.tree_map(lambda a: a.shape[1:], stacked) == shapes
    kernels = np.asarray(stacked["patch_proj"]["kernel"])
    for i in range(4):
        for j in range(i + 1, 4):
            assert not np.allclose(kernels[i], kernels[j])

    model = build_model(cfg)
    x = inputs()
    apply = jit(
        jax.vmap(lambda p, k: model.apply({"params": p}, x, train=True, rngs={"dropout": k}))
    )
    probs, aux = apply(stacked, keys)
    assert probs.shape == (4, BATCH) and aux.shape == (4,)
    assert len({tuple(np.round(np.asarray(row), 6)) for row in probs}) == 4


def test_vmapped_train_forward_equals_per_seed_forward():
    """Seeds under vmap see the same dropout masks as alone (chunked attention embedding included)."""
    model = build_model(make_cfg("attention", {"num_heads": 2, "row_chunk": 5}, dropout=0.5))
    x = inputs()
    keys = jax.random.split(jax.random.key(3), 2)
    params = [random_params(model, x, seed) for seed in range(2)]
    stacked = jax.tree_util.tree_map(lambda *a: np.stack(a), *params)
    forward = lambda p, k: model.apply({"params": p}, x, train=True, rngs={"dropout": k})[0]
    together = jit(jax.vmap(forward))(stacked, keys)
    alone = jit(forward)(params[1], keys[1])
    np.testing.assert_allclose(together[1], alone, rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------- RevIN


def test_revin_normalises_each_instance():
    x = inputs(4) * jnp.array([1.0, 100.0, 0.01, 5.0])[:, None, None]  # very different scales per sample
    revin = RevIN(F)
    variables = revin.init(jax.random.key(0), x)
    y = jit(revin.apply)(variables, x)
    assert y.shape == x.shape
    np.testing.assert_allclose(jnp.mean(y, axis=1), 0.0, atol=1e-4)
    np.testing.assert_allclose(jnp.std(y, axis=1, ddof=1), 1.0, atol=1e-3)  # unbiased std
    # eps is added to the std: y = (x - mu) / (std + 1e-5)
    expected = (x - x.mean(1, keepdims=True)) / (jnp.std(x, axis=1, ddof=1, keepdims=True) + 1e-5)
    np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-5)


def test_revin_constant_feature_gives_beta_without_nan():
    x = jnp.concatenate([jnp.full((2, T, 1), 7.0), inputs(2)[..., 1:]], axis=-1)
    revin = RevIN(F)
    params = {"params": {"gamma": jnp.full((F,), 2.0), "beta": jnp.full((F,), 0.25)}}
    y = jit(revin.apply)(params, x)
    assert bool(jnp.all(jnp.isfinite(y)))
    np.testing.assert_allclose(y[..., 0], 0.25)
    grad_x = jit(jax.grad(lambda x: jnp.sum(revin.apply(params, x) ** 2)))(x)
    assert bool(jnp.all(jnp.isfinite(grad_x)))


# ---------------------------------------------------------------- patching


def test_patch_flatten_is_time_major():
    x = (np.arange(T)[:, None] * 100 + np.arange(F)[None, :]).astype(np.float32)[None]  # x[t, f] = 100t + f
    patches = np.asarray(jit(extract_patches, static_argnums=(1, 2))(x, P, S))
    assert patches.shape == (1, N, P * F)
    for n in range(N):
        for j in (0, 1, F, P * F - 1):
            t, f = divmod(j, F)
            assert patches[0, n, j] == 100 * (n * S + t) + f


@pytest.mark.parametrize(("patch_length", "stride"), [(16, 8), (8, 4), (5, 3), (7, 7), (10, 5), (6, 4)])
def test_patch_fast_path_matches_definition(patch_length, stride):
    x = np.asarray(jax.random.normal(jax.random.key(0), (2, T, 3)))
    patches = jit(extract_patches, static_argnums=(1, 2))(x, patch_length, stride)
    n = (T - patch_length) // stride + 1
    expected = np.stack([x[:, i * stride : i * stride + patch_length].reshape(2, -1) for i in range(n)], 1)
    np.testing.assert_array_equal(patches, expected)


# ---------------------------------------------------------------- initialisation


def test_initialisation_matches_pytorch_defaults():
    cfg = make_cfg("multihead", {"num_heads": 4, "combine_method": "sum"}, d_model=64, d_ff=128, num_features=40)
    params = jit(lambda k: init_params(cfg, k))(jax.random.key(0))

    def check_linear(layer, fan_in):
        bound = 1 / math.sqrt(fan_in)
        for name in ("kernel", "bias"):
            assert np.all(np.abs(np.asarray(layer[name])) <= bound)
        w = np.asarray(layer["kernel"])
        assert np.abs(w).max() > 0.8 * bound
        assert abs(w.std() - bound / math.sqrt(3)) < 0.1 * bound  # U(-b, b) has std b/sqrt(3)

    check_linear(params["patch_proj"], P * E)
    check_linear(params["layer_0"]["ff1"], 64)
    check_linear(params["layer_0"]["ff2"], 128)
    check_linear(params["head"], N * 64)
    attention = params["layer_0"]["attention"]
    xavier = math.sqrt(6 / (64 + 3 * 64))
    in_w = np.asarray(attention["in_proj_kernel"])
    assert in_w.shape == (64, 192) and np.all(np.abs(in_w) <= xavier) and np.abs(in_w).max() > 0.9 * xavier
    assert np.all(np.asarray(attention["in_proj_bias"]) == 0)
    assert np.all(np.asarray(attention["out_proj_bias"]) == 0)
    assert np.all(np.abs(np.asarray(attention["out_proj_kernel"])) <= 1 / 8)
    for norm in (params["layer_0"]["norm1"], params["final_norm"], params["embedding"]["combine_norm"]):
        assert np.all(np.asarray(norm["scale"]) == 1) and np.all(np.asarray(norm["bias"]) == 0)
    assert abs(float(np.asarray(params["pos_table"]).std()) - 1.0) < 0.1
    np.testing.assert_array_equal(params["revin"]["gamma"], 1.0)
    np.testing.assert_array_equal(params["revin"]["beta"], 0.0)
    np.testing.assert_allclose(params["embedding"]["head_weights"], 0.25)
    heads = np.asarray(params["embedding"]["heads_kernel"])
    assert heads.shape == (40, 4, 2) and np.all(np.abs(heads) <= 1 / math.sqrt(40))


def test_attention_embedding_initialisation():
    module = AttentionFeatureEmbedding(60, E, dropout=0.1, num_heads=2)
    x = jnp.zeros((1, 2, 60))
    params = jit(lambda k: module.init({"params": k}, x, True))(jax.random.key(1))["params"]
    assert abs(float(np.asarray(params["feature_pos"]).std()) - 1.0) < 0.1  # N(0, 1)
    assert np.all(np.abs(np.asarray(params["token_kernel"])) <= 1.0)  # Linear(1 -> E): fan_in 1
    assert np.all(np.abs(np.asarray(params["out_kernel"])) <= 1 / math.sqrt(60 * E))


# ---------------------------------------------------------------- dims and counts of the spec


def test_progressive_dims_of_the_experiments():
    assert progressive_dims(100, 32, 2) == [100, 56, 32]
    assert progressive_dims(100, 32, 3) == [100, 68, 46, 32]
    assert progressive_dims(500, 16, 2) == [500, 89, 16]
    assert progressive_dims(500, 16, 3) == [500, 158, 50, 16]
    assert progressive_dims(100, 32, 1) == [100, 32]


def test_count_params_reference_architectures():
    fe06 = make_cfg("linear", num_features=100, d_embed=32, d_model=128, n_layers=4, n_heads=8, d_ff=512,
                    context_length=80, patch_length=16, stride=8)
    assert count_params(fe06) == 865_889 + 2 * 100  # spec §1.9 estimate + RevIN
    fe05 = make_cfg("none", num_features=100, d_model=128, n_layers=4, n_heads=8, d_ff=512,
                    context_length=80, patch_length=16, stride=8)
    assert count_params(fe05) == 1_001_857 + 200
    assert count_params(make_cfg("none", use_revin=False)) == count_params(make_cfg("none")) - 2 * F


# ---------------------------------------------------------------- validation errors (spec §2)


@pytest.mark.parametrize(
    ("embedding", "params", "match"),
    [
        ("bottleneck", {"compression_ratio": 0.0}, "compression_ratio"),
        ("bottleneck", {"compression_ratio": 1.0}, "compression_ratio"),
        ("multihead", {"combine_method": "mean"}, "combine_method"),
        ("multihead", {"num_heads": 2, "feature_groups": [[0, 1]]}, "feature_groups"),
        ("attention", {"num_heads": 3}, "divisible by num_heads"),
        ("progressive", {"num_layers": 0}, "num_layers"),
        ("warp_drive", {}, "unknown embedding type 'warp_drive'; valid: attention, bottleneck"),
        ("gated_residual", {"hiden_dim": 4}, "unknown embedding_params \\['hiden_dim'\\]"),
    ],
)
def test_embedding_validation_errors(embedding, params, match):
    with pytest.raises(ValueError, match=match):
        build_model(make_cfg(embedding, params))
    if embedding != "warp_drive":
        with pytest.raises(ValueError, match=match):
            build_embedding(embedding, F, E, 0.1, params)


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        ({"embedding": "bottleneck", "d_embed": None}, "requires d_embed"),
        ({"embedding": "none", "d_embed": 8}, "contradicts d_embed"),
        ({"d_model": 18, "n_heads": 4}, "divisible by n_heads"),
        ({"patch_length": 40}, "patch_length"),
    ],
)
def test_model_validation_errors(overrides, match):
    fields = {"embedding": "linear", **overrides}
    with pytest.raises(ValueError, match=match):
        build_model(make_cfg(**fields))
