"""Losses: values and gradients against hand-derived float64 formulas, the edge cases of spec §3,
masking, jit/vmap over hyperparameters, and validation."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fembed_jax import losses as L

P = np.array([0.8, 0.3, 0.6, 0.1, 0.45])
Y = np.array([1.0, 0.0, 1.0, 0.0, 0.0])


def _value_and_grad(name, p, y, **params):
    f = L.get_loss(name, **params)
    y = jnp.asarray(y, jnp.float32)
    v, g = jax.value_and_grad(lambda q: f(q, y))(jnp.asarray(p, jnp.float32))
    return float(v), np.asarray(g, dtype=np.float64)


# --------------------------------------------------------------------------- float64 references
# Each returns (loss, dloss/dp) from the closed form and its derivative worked out by hand.


def _sig(x):
    return 1.0 / (1.0 + np.exp(-x))


def ref_bce(p, y):
    n = len(p)
    return np.mean(-(y * np.log(p) + (1 - y) * np.log(1 - p))), (p - y) / (p * (1 - p)) / n


def ref_softauc(p, y, gamma):
    pos, neg = np.flatnonzero(y == 1), np.flatnonzero(y == 0)
    s = _sig(gamma * (p[neg][None, :] - p[pos][:, None]))  # [i pos, j neg]
    ds = gamma * s * (1 - s) / s.size
    g = np.zeros_like(p)
    g[pos] = -ds.sum(axis=1)
    g[neg] = ds.sum(axis=0)
    return s.mean(), g


def _focal_terms(p, y, gpos, gneg, alpha):
    # y=1: -a (1-p)^gp log p;  y=0: -(1-a) p^gn log(1-p)
    v1 = -alpha * (1 - p) ** gpos * np.log(p)
    d1 = alpha * (gpos * (1 - p) ** (gpos - 1) * np.log(p) - (1 - p) ** gpos / p)
    v0 = -(1 - alpha) * p**gneg * np.log(1 - p)
    d0 = -(1 - alpha) * (gneg * p ** (gneg - 1) * np.log(1 - p) - p**gneg / (1 - p))
    return np.where(y == 1, v1, v0), np.where(y == 1, d1, d0)


def ref_focal(p, y, gamma, alpha):
    v, d = _focal_terms(p, y, gamma, gamma, alpha)
    return v.mean(), d / len(p)


def ref_asymmetricfocal(p, y, gamma_pos, gamma_neg, alpha):
    v, d = _focal_terms(p, y, gamma_pos, gamma_neg, alpha)
    return v.mean(), d / len(p)


def ref_weightedbce(p, y, pos_weight):
    v = -(pos_weight * y * np.log(p) + (1 - y) * np.log(1 - p))
    d = -pos_weight * y / p + (1 - y) / (1 - p)
    return v.mean(), d / len(p)


def ref_weightedsum(p, y, alpha, gamma):
    (vb, gb), (vs, gs) = ref_bce(p, y), ref_softauc(p, y, gamma)
    return alpha * vb + (1 - alpha) * vs, alpha * gb + (1 - alpha) * gs


def ref_labelsmoothing(p, y, epsilon):
    return ref_bce(p, y * (1 - epsilon) + (1 - y) * epsilon)


def ref_entropyreg(p, y, lambda_entropy):
    vb, gb = ref_bce(p, y)
    h = -(p * np.log(p) + (1 - p) * np.log(1 - p))
    dh = np.log((1 - p) / p)
    n = len(p)
    return vb - lambda_entropy * h.mean(), gb - lambda_entropy * dh / n


def ref_variancereg(p, y, lambda_var):
    vb, gb = ref_bce(p, y)
    n = len(p)
    return vb - lambda_var * np.var(p, ddof=1), gb - lambda_var * 2 * (p - p.mean()) / (n - 1)


def ref_calibratedfocal(p, y, gamma, alpha, lambda_cal, temperature):
    vf, gf = ref_focal(p, y, gamma, alpha)
    gap = (p.mean() - y.mean()) / temperature
    return vf + lambda_cal * gap**2, gf + lambda_cal * 2 * gap / temperature / len(p)


CASES = [
    ("bce", {}, lambda p, y: ref_bce(p, y)),
    ("softauc", {}, lambda p, y: ref_softauc(p, y, 2.0)),
    ("softauc", {"gamma": 5.0}, lambda p, y: ref_softauc(p, y, 5.0)),
    ("focal", {}, lambda p, y: ref_focal(p, y, 2.0, 0.25)),
    ("focal", {"gamma": 3.0, "alpha": 0.75}, lambda p, y: ref_focal(p, y, 3.0, 0.75)),
    ("mildfocal", {}, lambda p, y: ref_focal(p, y, 0.75, 0.5)),
    ("weightedbce", {}, lambda p, y: ref_weightedbce(p, y, 1.0)),
    ("weightedbce", {"pos_weight": 4.0}, lambda p, y: ref_weightedbce(p, y, 4.0)),
    ("weightedsum", {}, lambda p, y: ref_weightedsum(p, y, 0.5, 2.0)),
    ("weightedsum", {"alpha": 0.3, "gamma": 3.0}, lambda p, y: ref_weightedsum(p, y, 0.3, 3.0)),
    ("labelsmoothing", {}, lambda p, y: ref_labelsmoothing(p, y, 0.1)),
    ("labelsmoothing", {"epsilon": 0.2}, lambda p, y: ref_labelsmoothing(p, y, 0.2)),
    ("asymmetricfocal", {}, lambda p, y: ref_asymmetricfocal(p, y, 1.0, 2.0, 0.5)),
    (
        "asymmetricfocal",
        {"gamma_pos": 0.75, "gamma_neg": 1.5, "alpha": 0.4},
        lambda p, y: ref_asymmetricfocal(p, y, 0.75, 1.5, 0.4),
    ),
    ("entropyreg", {}, lambda p, y: ref_entropyreg(p, y, 0.1)),
    ("entropyreg", {"lambda_entropy": -0.3}, lambda p, y: ref_entropyreg(p, y, -0.3)),
    ("variancereg", {}, lambda p, y: ref_variancereg(p, y, 0.5)),
    ("variancereg", {"lambda_var": 0.25}, lambda p, y: ref_variancereg(p, y, 0.25)),
    ("calibratedfocal", {}, lambda p, y: ref_calibratedfocal(p, y, 2.0, 0.25, 0.1, 1.0)),
    (
        "calibratedfocal",
        {"gamma": 1.0, "lambda_cal": 2.0, "temperature": 0.5},
        lambda p, y: ref_calibratedfocal(p, y, 1.0, 0.25, 2.0, 0.5),
    ),
]


@pytest.mark.parametrize("name,params,ref", CASES, ids=[f"{c[0]}-{c[1]}" for c in CASES])
def test_value_and_gradient_match_hand_formula(name, params, ref):
    value, grad = _value_and_grad(name, P, Y, **params)
    want_value, want_grad = ref(P, Y)
    assert value == pytest.approx(want_value, rel=1e-5, abs=1e-7)
    np.testing.assert_allclose(grad, want_grad, rtol=1e-4, atol=1e-6)


def test_literal_hand_values():
    # -(log .8 + log .7) / 2
    assert _value_and_grad("bce", [0.8, 0.3], [1, 0])[0] == pytest.approx(0.2899092, rel=1e-6)
    # one pair: sigmoid(2 (0.3 - 0.8)) = sigmoid(-1)
    assert _value_and_grad("softauc", [0.8, 0.3], [1, 0])[0] == pytest.approx(0.2689414, rel=1e-6)
    # focal p=.8 y=1: .25 * .2^2 * -log .8; d/dp = .25 (2 * .2 * log .8 - .2^2 / .8)
    v, g = _value_and_grad("focal", [0.8], [1])
    assert v == pytest.approx(0.25 * 0.04 * 0.22314355, rel=1e-5)
    assert g[0] == pytest.approx(0.25 * (0.4 * -0.22314355 - 0.05), rel=1e-5)
    # entropyreg p=.9 y=1 lambda=.1: -log .9 - .1 * H(.9)
    h = -(0.9 * math.log(0.9) + 0.1 * math.log(0.1))
    want = -math.log(0.9) - 0.1 * h
    assert _value_and_grad("entropyreg", [0.9], [1])[0] == pytest.approx(want, rel=1e-5)


def test_column_vectors_are_flattened():
    for name in L.LOSS_NAMES:
        f = L.get_loss(name)
        flat = f(jnp.asarray(P, jnp.float32), jnp.asarray(Y, jnp.float32))
        col = f(jnp.asarray(P, jnp.float32)[:, None], jnp.asarray(Y, jnp.float32)[:, None])
        assert col.shape == () and float(col) == pytest.approx(float(flat), rel=1e-6), name


def test_length_mismatch_raises():
    with pytest.raises(ValueError, match="targets"):
        L.get_loss("bce")(jnp.ones(3) * 0.5, jnp.ones(4))


# --------------------------------------------------------------------------- edge cases


@pytest.mark.parametrize("labels", [[1, 1, 1], [0, 0, 0]])
def test_softauc_one_class_batch_is_half_with_zero_gradient(labels):
    for name in ("softauc",):
        value, grad = _value_and_grad(name, [0.2, 0.7, 0.9], labels, gamma=3.0)
        assert value == 0.5
        np.testing.assert_array_equal(grad, 0.0)


def test_softauc_ranking_behaviour():
    assert _value_and_grad("softauc", [0.9, 0.1, 0.1], [1, 0, 0])[0] < 0.25
    assert _value_and_grad("softauc", [0.1, 0.9, 0.9], [1, 0, 0])[0] > 0.75
    lo, hi = _value_and_grad("softauc", [1.0, 0.0], [1, 0], gamma=2.0)[0], 1 / (1 + math.exp(2.0))
    assert lo == pytest.approx(hi, rel=1e-6)  # bound sigmoid(-gamma)
    # larger gamma -> larger gradient norm around the middle
    g1 = np.linalg.norm(_value_and_grad("softauc", [0.55, 0.45], [1, 0], gamma=1.0)[1])
    g5 = np.linalg.norm(_value_and_grad("softauc", [0.55, 0.45], [1, 0], gamma=5.0)[1])
    assert g5 > g1


CLAMPED = [
    "focal", "mildfocal", "weightedbce", "asymmetricfocal", "entropyreg", "variancereg",
    "calibratedfocal",
]  # fmt: skip


@pytest.mark.parametrize("name", CLAMPED)
def test_eps_clamp_keeps_extremes_finite(name):
    value, grad = _value_and_grad(name, [0.0, 1.0, 0.0, 1.0], [1, 0, 0, 1])
    assert math.isfinite(value) and np.all(np.isfinite(grad))
    # at the clamp, the loss no longer depends on p except through VarianceReg's unclamped variance
    if name != "variancereg":
        np.testing.assert_array_equal(grad, 0.0)


def test_eps_clamp_value_is_that_of_p_eps():
    # focal, y=1, p=0 behaves as p = 1e-7: .25 (1 - 1e-7)^2 (-log 1e-7)
    value = _value_and_grad("focal", [0.0], [1])[0]
    assert value == pytest.approx(0.25 * -math.log(1e-7), rel=1e-5)
    # weightedbce p=0 y=1 with pos_weight 2: -2 log 1e-7
    assert _value_and_grad("weightedbce", [0.0], [1], pos_weight=2.0)[0] == pytest.approx(
        -2 * math.log(1e-7), rel=1e-5
    )


def test_bce_clamps_logs_at_minus_100_like_torch():
    value, grad = _value_and_grad("bce", [0.0, 1.0, 0.0, 1.0], [1, 0, 0, 1])
    assert value == pytest.approx(50.0)  # (100 + 100 + 0 + 0) / 4
    assert np.all(np.isfinite(grad))
    assert _value_and_grad("labelsmoothing", [0.0], [1])[0] == pytest.approx(90.0)  # 0.9 * 100


@pytest.mark.parametrize("name", ["bce", "labelsmoothing", "weightedsum"])
def test_saturated_sigmoid_gives_finite_gradients(name):
    f = L.get_loss(name)
    logits = jnp.array([30.0, -120.0, 30.0, -120.0, 0.3])
    y = jnp.array([1.0, 0.0, 0.0, 1.0, 1.0])
    g = jax.grad(lambda x: f(jax.nn.sigmoid(x), y))(logits)
    assert np.all(np.isfinite(np.asarray(g)))


def _same(a, b, **params_b):
    name_a, params_a = a
    va, ga = _value_and_grad(name_a, P, Y, **params_a)
    vb, gb = _value_and_grad(b, P, Y, **params_b)
    assert va == pytest.approx(vb, rel=1e-6)
    np.testing.assert_allclose(ga, gb, rtol=1e-5, atol=1e-7)


def test_reductions_to_other_losses():
    _same(("entropyreg", {"lambda_entropy": 0.0}), "bce")
    _same(("variancereg", {"lambda_var": 0.0}), "bce")
    no_cal = {"lambda_cal": 0.0, "gamma": 1.5, "alpha": 0.6}
    _same(("calibratedfocal", no_cal), "focal", gamma=1.5, alpha=0.6)
    equal_gammas = {"gamma_pos": 1.5, "gamma_neg": 1.5, "alpha": 0.3}
    _same(("asymmetricfocal", equal_gammas), "focal", gamma=1.5, alpha=0.3)
    _same(("labelsmoothing", {"epsilon": 0.0}), "bce")
    _same(("weightedsum", {"alpha": 1.0}), "bce")
    _same(("weightedsum", {"alpha": 0.0, "gamma": 3.0}), "softauc", gamma=3.0)
    _same(("weightedbce", {"pos_weight": 1.0}), "bce")
    _same(("mildfocal", {"gamma": 2.0, "alpha": 0.25}), "focal")
    half_bce, _ = _value_and_grad("focal", P, Y, gamma=0.0, alpha=0.5)
    assert half_bce == pytest.approx(_value_and_grad("bce", P, Y)[0] / 2, rel=1e-6)


def test_weightedbce_pos_weight_scales_false_negatives_only():
    fn_1 = _value_and_grad("weightedbce", [0.2], [1], pos_weight=1.0)[0]
    fn_4 = _value_and_grad("weightedbce", [0.2], [1], pos_weight=4.0)[0]
    fp_1 = _value_and_grad("weightedbce", [0.8], [0], pos_weight=1.0)[0]
    fp_4 = _value_and_grad("weightedbce", [0.8], [0], pos_weight=4.0)[0]
    assert fn_4 == pytest.approx(4 * fn_1, rel=1e-6) and fp_4 == fp_1


def test_b10_larger_gamma_neg_lowers_false_positive_loss():
    low = _value_and_grad("asymmetricfocal", [0.8], [0], gamma_neg=1.0)[0]
    high = _value_and_grad("asymmetricfocal", [0.8], [0], gamma_neg=4.0)[0]
    assert high < low


def test_b9_entropyreg_pushes_toward_half():
    # y=1, p=0.9: d/dp = -1/p - lambda log((1-p)/p) > 0 for large lambda, so descent lowers p.
    _, grad = _value_and_grad("entropyreg", [0.9], [1], lambda_entropy=5.0)
    assert grad[0] == pytest.approx(-1 / 0.9 - 5.0 * math.log(0.1 / 0.9), rel=1e-5)
    assert grad[0] > 0
    # a confident correct batch still beats all-0.5 at lambda 0.1 (the original's test)
    confident = _value_and_grad("entropyreg", [0.95, 0.05], [1, 0])[0]
    undecided = _value_and_grad("entropyreg", [0.5, 0.5], [1, 0])[0]
    assert confident < undecided


def test_variancereg_batch_term():
    single, _ = _value_and_grad("variancereg", [0.7], [1])
    assert single == pytest.approx(-math.log(0.7), rel=1e-6)  # N < 2: variance 0
    diverse = _value_and_grad("variancereg", [0.9, 0.1, 0.5, 0.5], [1, 0, 1, 0])[0]
    collapsed = _value_and_grad("variancereg", [0.5, 0.5, 0.5, 0.5], [1, 0, 1, 0])[0]
    assert diverse < collapsed
    # variance uses the unclamped p: at p = 0 and 1 the gradient is the variance term's alone
    _, g = _value_and_grad("variancereg", [0.0, 1.0], [1, 0], lambda_var=0.5)
    np.testing.assert_allclose(g, [0.5 * 2 * 0.5, -0.5 * 2 * 0.5], rtol=1e-6)
    assert math.isfinite(_value_and_grad("variancereg", [0.2, 0.3], [0, 0])[0])


def test_calibratedfocal_penalises_mean_mismatch_and_temperature():
    matched = _value_and_grad("calibratedfocal", [0.5, 0.5], [1, 0], lambda_cal=1.0)[0]
    focal = _value_and_grad("focal", [0.5, 0.5], [1, 0])[0]
    assert matched == pytest.approx(focal, rel=1e-6)
    warm = _value_and_grad("calibratedfocal", P, Y, temperature=1.0)[0]
    cold = _value_and_grad("calibratedfocal", P, Y, temperature=0.5)[0]
    assert cold > warm


def test_mildfocal_gamma_ordering():
    small = _value_and_grad("mildfocal", P, Y, gamma=0.75)[0]
    large = _value_and_grad("mildfocal", P, Y, gamma=2.0)[0]
    assert small > large


# --------------------------------------------------------------------------- masking, jit, vmap


@pytest.mark.parametrize("name", L.LOSS_NAMES)
def test_masked_padded_batch_equals_unpadded(name):
    fn = L.loss_fn_from_hparams(name)
    hp = L.loss_hparams(name)
    p = jnp.asarray(P, jnp.float32)
    y = jnp.asarray(Y, jnp.float32)
    pad_p = jnp.concatenate([p, jnp.array([0.0, 1.0, jnp.nan], jnp.float32)])
    pad_y = jnp.concatenate([y, jnp.array([1.0, 0.0, 1.0], jnp.float32)])
    mask = jnp.concatenate([jnp.ones(5), jnp.zeros(3)])
    v, g = jax.value_and_grad(lambda q: fn(q, y, hp))(p)
    vm, gm = jax.value_and_grad(lambda q: fn(q, pad_y, hp, mask))(pad_p)
    assert float(vm) == pytest.approx(float(v), rel=1e-6, abs=1e-7)
    np.testing.assert_allclose(np.asarray(gm[:5]), np.asarray(g), rtol=1e-5, atol=1e-8)
    np.testing.assert_array_equal(np.asarray(gm[5:]), 0.0)
    # a mask that leaves one class only makes SoftAUC degenerate, as the unpadded batch would be
    one_class = jnp.array([1.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0])
    unpadded = float(fn(p[::2][:2], y[::2][:2], hp))
    assert float(fn(pad_p, pad_y, hp, one_class)) == pytest.approx(unpadded, rel=1e-6)


def test_fully_masked_batch_has_zero_gradient():
    for name in L.LOSS_NAMES:
        fn, hp = L.loss_fn_from_hparams(name), L.loss_hparams(name)
        g = jax.grad(lambda q: fn(q, jnp.asarray(Y), hp, jnp.zeros(5)))(jnp.asarray(P, jnp.float32))
        np.testing.assert_array_equal(np.asarray(g), 0.0)


VMAP_SETTINGS = {
    "softauc": [{"gamma": 1.0}, {"gamma": 3.0}, {"gamma": 5.0}],
    "focal": [{"gamma": 2.0, "alpha": 0.25}, {"gamma": 3.0, "alpha": 0.75}, {"alpha": 0.5}],
    "weightedsum": [{"alpha": 0.3}, {"alpha": 0.7, "gamma": 3.0}],
    "weightedbce": [{"pos_weight": 2.0}, {"pos_weight": 8.0}],
    "labelsmoothing": [{"epsilon": 0.05}, {"epsilon": 0.2}],
    "asymmetricfocal": [{"gamma_neg": 1.0, "gamma_pos": 0.75}, {"gamma_neg": 1.5}],
    "entropyreg": [{"lambda_entropy": 0.05}, {"lambda_entropy": 0.1}],
    "variancereg": [{"lambda_var": 0.25}, {"lambda_var": 0.5}],
    "calibratedfocal": [{"gamma": 1.0}, {"lambda_cal": 0.5, "temperature": 2.0}],
}


@pytest.mark.parametrize("name", sorted(VMAP_SETTINGS))
def test_jit_vmap_over_hparams_batch(name):
    settings = VMAP_SETTINGS[name]
    rows = [L.loss_hparams(name, **s) for s in settings]
    batch = {k: jnp.asarray([r[k] for r in rows], jnp.float32) for k in rows[0]}
    fn = L.loss_fn_from_hparams(name)
    p, y = jnp.asarray(P, jnp.float32), jnp.asarray(Y, jnp.float32)
    mask = jnp.ones(5)
    out = jax.jit(jax.vmap(fn, in_axes=(None, None, 0, None)))(p, y, batch, mask)
    want = [float(L.get_loss(name, **s)(p, y)) for s in settings]
    np.testing.assert_allclose(np.asarray(out), want, rtol=1e-6)
    # and gradients under vmap
    grads = jax.vmap(jax.grad(fn), in_axes=(None, None, 0))(p, y, batch)
    assert grads.shape == (len(settings), 5) and np.all(np.isfinite(np.asarray(grads)))


def test_families_share_one_function():
    assert L.loss_family("mildfocal") == "focal"
    assert L.loss_fn_from_hparams("mildfocal") is L.loss_fn_from_hparams("focal")
    assert L.loss_hparams("mildfocal") == {"gamma": 0.75, "alpha": 0.5, "eps": 1e-7}
    assert L.loss_hparams("bce") == {}
    assert L.loss_hparams("focal", gamma=3) == {"gamma": 3.0, "alpha": 0.25, "eps": 1e-7}


def test_one_program_trains_every_loss_each_member_its_own():
    """A program whose members train losses of every family (lax.switch on the member's family
    index, vmapped): each member's loss and gradient equal its own loss alone, also at p = 0 and
    p = 1 exactly, where another family's branch would be at its clamp."""
    families = tuple(dict.fromkeys(L.loss_family(n) for n in L.LOSS_NAMES))
    fn = L.program_loss_fn(families)
    members = [(n, s) for n in sorted(VMAP_SETTINGS) for s in VMAP_SETTINGS[n]] + [("bce", {}), ("mildfocal", {})]
    rows = [L.program_loss_hparams(families, n, s) for n, s in members]
    batch = {k: jnp.asarray([r[k] for r in rows], jnp.int32 if k == L.FAMILY_INDEX else jnp.float32)
             for k in rows[0]}
    p = jnp.asarray(np.r_[P, 0.0, 1.0], jnp.float32)
    y = jnp.asarray(np.r_[Y, 1.0, 0.0], jnp.float32)
    mask = jnp.ones(p.shape[0])
    values, grads = jax.jit(jax.vmap(jax.value_and_grad(fn), in_axes=(None, None, 0, None)))(p, y, batch, mask)
    for k, (name, settings) in enumerate(members):
        v, g = jax.value_and_grad(L.get_loss(name, **settings))(p, y)
        assert float(values[k]) == pytest.approx(float(v), rel=1e-6), name
        np.testing.assert_allclose(np.asarray(grads[k]), np.asarray(g), rtol=1e-5, atol=1e-7, err_msg=name)
    assert L.program_loss_fn(("bce",)) is L.loss_fn_from_hparams("bce")  # one family: no switch
    with pytest.raises(ValueError, match="not among this program's loss families"):
        L.program_loss_hparams(("bce", "focal"), "variancereg", {})


def test_hparams_keys_are_checked():
    fn = L.loss_fn_from_hparams("focal")
    with pytest.raises(ValueError, match="alpha"):
        fn(jnp.asarray(P), jnp.asarray(Y), {"gamma": 2.0, "eps": 1e-7})
    with pytest.raises(ValueError, match="lambda_cal"):
        hp = {"gamma": 2.0, "alpha": 0.25, "eps": 1e-7, "lambda_cal": 0.1}
        fn(jnp.asarray(P), jnp.asarray(Y), hp)


# --------------------------------------------------------------------------- registry, validation


def test_names_and_early_stop_metric():
    assert set(L.LOSS_NAMES) == {
        "bce", "softauc", "focal", "weightedsum", "weightedbce", "labelsmoothing",
        "mildfocal", "asymmetricfocal", "entropyreg", "variancereg", "calibratedfocal",
    }  # fmt: skip
    val_loss = {"labelsmoothing", "entropyreg", "variancereg", "calibratedfocal"}
    for name in L.LOSS_NAMES:
        want = "val_loss" if name in val_loss else "val_auc"
        assert L.early_stop_metric(name) == want == L.EARLY_STOP_METRIC[name]
    with pytest.raises(ValueError, match="valid losses: bce"):
        L.early_stop_metric("mse")


INVALID = [
    ("weightedsum", {"alpha": 1.5}, "weightedsum.alpha must be in [0, 1]"),
    ("weightedsum", {"alpha": -0.1}, "weightedsum.alpha must be in [0, 1]"),
    ("labelsmoothing", {"epsilon": 1.2}, "labelsmoothing.epsilon must be in [0, 1]"),
    ("softauc", {"gamma": -1.0}, "softauc.gamma must be >= 0"),
    ("focal", {"gamma": -0.5}, "focal.gamma must be >= 0"),
    ("focal", {"alpha": 2.0}, "focal.alpha must be in [0, 1]"),
    ("mildfocal", {"alpha": -0.2}, "mildfocal.alpha must be in [0, 1]"),
    ("asymmetricfocal", {"gamma_pos": -1.0}, "asymmetricfocal.gamma_pos must be >= 0"),
    ("asymmetricfocal", {"gamma_neg": -1.0}, "asymmetricfocal.gamma_neg must be >= 0"),
    ("asymmetricfocal", {"alpha": 1.01}, "asymmetricfocal.alpha must be in [0, 1]"),
    ("weightedbce", {"pos_weight": 0.0}, "weightedbce.pos_weight must be > 0"),
    ("calibratedfocal", {"temperature": 0.0}, "calibratedfocal.temperature must be > 0"),
    ("calibratedfocal", {"alpha": 3}, "calibratedfocal.alpha must be in [0, 1]"),
    ("focal", {"eps": 0.5}, "focal.eps must be in [0, 0.5)"),
    ("entropyreg", {"lambda_entropy": float("nan")}, "entropyreg.lambda_entropy must be finite"),
    ("variancereg", {"lambda_var": "0.5"}, "variancereg.lambda_var must be a number"),
    ("focal", {"gamma": True}, "focal.gamma must be a number"),
    ("focal", {"beta": 1.0}, "unknown parameter 'beta' for loss 'focal'; valid parameters: gamma"),
    ("bce", {"gamma": 1.0}, "unknown parameter 'gamma' for loss 'bce'; valid parameters: none"),
    ("mse", {}, "unknown loss 'mse'; valid losses: bce, softauc"),
]


@pytest.mark.parametrize("name,params,message", INVALID, ids=[f"{n}-{p}" for n, p, _ in INVALID])
def test_invalid_params_are_named(name, params, message):
    errors = L.validate_loss_params(name, params)
    assert len(errors) == 1 and message in errors[0]
    with pytest.raises(ValueError) as info:
        L.get_loss(name, **params)
    assert message in str(info.value)


def test_validation_collects_all_errors_and_accepts_the_valid():
    errors = L.validate_loss_params("calibratedfocal", {"gamma": -1, "temperature": -2, "x": 1})
    assert len(errors) == 3
    assert L.validate_loss_params("focal", None) == []
    assert L.validate_loss_params("focal", {"gamma": np.float32(2.0), "alpha": 1}) == []
    # regularisation strengths may be any finite number (negative flips the regulariser)
    lambdas = [
        ("entropyreg", "lambda_entropy"), ("variancereg", "lambda_var"),
        ("calibratedfocal", "lambda_cal"),
    ]  # fmt: skip
    for name, key in lambdas:
        assert L.validate_loss_params(name, {key: -3.0}) == []
    assert "must be a mapping" in L.validate_loss_params("focal", [("gamma", 1.0)])[0]


def test_every_registry_setting_of_the_original_is_valid():
    settings = [
        ("asymmetricfocal", {"gamma_pos": 0.75, "gamma_neg": 1.0, "alpha": 0.5}),
        ("calibratedfocal", {"gamma": 1.0, "alpha": 0.25, "lambda_cal": 0.1}),
        ("entropyreg", {"lambda_entropy": 0.05}),
        ("focal", {"gamma": 3.0, "alpha": 0.75}),
        ("labelsmoothing", {"epsilon": 0.2}),
        ("mildfocal", {"gamma": 0.5, "alpha": 0.5}),
        ("softauc", {"gamma": 5.0}),
        ("variancereg", {"lambda_var": 0.25}),
        ("weightedbce", {"pos_weight": 8.0}),
        ("weightedsum", {"alpha": 0.7, "gamma": 2.0}),
    ]
    for name, params in settings:
        assert L.validate_loss_params(name, params) == []
