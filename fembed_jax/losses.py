"""The eleven training losses of the original suite, on probabilities.

Every loss takes probabilities ``p`` (model output after the sigmoid, in [0, 1]) and binary
targets ``y``; inputs of shape (N,) or (N, 1) are flattened. Unless a docstring says otherwise the
reduction is the arithmetic mean over the batch, and "clamped" means ``p`` is clipped to
``[eps, 1 - eps]`` (eps = 1e-7) before any logarithm. The formulas, defaults and edge cases are
those of the original (spec §3), including its two misnamed behaviours: EntropyReg pushes
probabilities toward 0.5, and a larger ``gamma_neg`` in AsymmetricFocal lowers the
false-positive penalty.

Two ways in:

* ``get_loss(name, **params)`` -> ``f(probs, targets)``: validated, defaults filled in.
* ``loss_fn_from_hparams(name)`` -> ``f(probs, targets, hparams, mask=None)`` with the
  hyperparameters as (possibly traced) arrays, so experiments that differ only in loss
  hyperparameters share one compiled program (``loss_family`` names the program, ``loss_hparams``
  gives the resolved values). ``mask`` (0/1 per sample) lets the engine pad batches to a fixed
  size: the masked loss equals the loss of the unpadded batch. A batch with no unmasked sample
  gives 0 for the mean terms (denominators are clamped at 1), so it contributes no gradient.
* ``program_loss_fn(families)`` with ``program_loss_hparams(families, name, params)``: the same
  for a program whose members train losses of several families (the loss is a member value).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping

import jax
import jax.numpy as jnp

# The losses' names, parameters, checks and families live apart from the math (no jax there).
from fembed_jax.loss_specs import (EARLY_STOP_METRIC, EPS, LOSS_NAMES, SPECS, early_stop_metric,
                                   loss_family, loss_hparams, validate_loss_params)

__all__ = [
    "EARLY_STOP_METRIC",
    "FAMILY_INDEX",
    "LOSS_NAMES",
    "asymmetricfocal",
    "bce",
    "calibratedfocal",
    "early_stop_metric",
    "entropyreg",
    "focal",
    "get_loss",
    "labelsmoothing",
    "loss_family",
    "loss_fn_from_hparams",
    "loss_hparams",
    "mildfocal",
    "program_loss_fn",
    "program_loss_hparams",
    "softauc",
    "validate_loss_params",
    "variancereg",
    "weightedbce",
    "weightedsum",
]

_TORCH_LOG_FLOOR = -100.0  # torch BCELoss clamps each log term at >= -100
_TORCH_BCE_GRAD_EPS = 1e-12  # torch's BCE backward divides by max(p(1-p), 1e-12)


# --------------------------------------------------------------------------- shared pieces


def _prepare(probs, targets, mask):
    """Flatten to (N,), promote to >= float32, and neutralise masked-out samples.

    Masked-out probabilities are replaced by 0.5 (and targets by 0) so that whatever the engine
    padded with (even NaN) cannot reach a logarithm or a gradient.
    """
    p = jnp.asarray(probs)
    dtype = jnp.promote_types(p.dtype, jnp.float32)
    p = p.astype(dtype).reshape(-1)
    y = jnp.asarray(targets).astype(dtype).reshape(-1)
    if p.shape != y.shape:
        raise ValueError(f"probs has {p.shape[0]} elements but targets has {y.shape[0]}")
    if mask is None:
        return p, y, jnp.ones_like(p)
    m = jnp.asarray(mask).astype(dtype).reshape(-1)
    if m.shape != p.shape:
        raise ValueError(f"mask has {m.shape[0]} elements but probs has {p.shape[0]}")
    keep = m > 0
    return jnp.where(keep, p, 0.5), jnp.where(keep, y, 0.0), jnp.where(keep, 1.0, 0.0).astype(dtype)


def _masked_mean(x, m):
    """sum(m * x) / sum(m); 0 when no sample is kept."""
    return jnp.sum(jnp.where(m > 0, x, 0.0)) / jnp.maximum(jnp.sum(m), 1.0)


def _clamp(p, eps):
    return jnp.clip(p, eps, 1.0 - eps)


@jax.custom_jvp
def _torch_bce_terms(p, y):
    """Per-sample -(y log p + (1-y) log(1-p)) with each log clamped at >= -100 (torch BCELoss)."""
    log_p = jnp.maximum(jnp.log(p), _TORCH_LOG_FLOOR)
    log_1mp = jnp.maximum(jnp.log1p(-p), _TORCH_LOG_FLOOR)
    return -(y * log_p + (1.0 - y) * log_1mp)


# torch's backward, d/dp = (p - y) / max(p(1-p), 1e-12), stays finite at p = 0 or 1 where the
# derivative of the clamped forward would be 0 * inf = NaN (a saturated sigmoid gives p = 1.0).
_torch_bce_terms.defjvps(
    lambda dp, ans, p, y: dp * (p - y) / jnp.maximum(p * (1.0 - p), _TORCH_BCE_GRAD_EPS),
    lambda dy, ans, p, y: dy
    * (jnp.maximum(jnp.log1p(-p), _TORCH_LOG_FLOOR) - jnp.maximum(jnp.log(p), _TORCH_LOG_FLOOR)),
)


def _clamped_log_terms(pc):
    """log p and log(1 - p) of an already clamped p."""
    return jnp.log(pc), jnp.log1p(-pc)


def _focal_terms(p, y, gamma, alpha, eps):
    """Per-sample a_t (1 - p_t)^gamma (-log p_t) on clamped p."""
    pc = _clamp(p, eps)
    log_p, log_1mp = _clamped_log_terms(pc)
    p_t = y * pc + (1.0 - y) * (1.0 - pc)
    a_t = y * alpha + (1.0 - y) * (1.0 - alpha)
    neg_log_p_t = -(y * log_p + (1.0 - y) * log_1mp)
    return a_t * jnp.power(1.0 - p_t, gamma) * neg_log_p_t


# --------------------------------------------------------------------------- the losses
# Hyperparameters may be Python floats or (traced) arrays; no Python branch looks at their value.


def bce(probs, targets, *, mask=None):
    """Binary cross-entropy as torch ``nn.BCELoss``.

    loss = mean_i -(y_i max(log p_i, -100) + (1 - y_i) max(log(1 - p_i), -100)); no eps clamp.
    Gradient as torch: d/dp = (p - y) / max(p (1 - p), 1e-12).
    """
    p, y, m = _prepare(probs, targets, mask)
    return _masked_mean(_torch_bce_terms(p, y), m)


def softauc(probs, targets, *, gamma=2.0, mask=None):
    """Pairwise soft AUC surrogate on probabilities (batch-level).

    With P = {i: y_i = 1} and Q = {j: y_j = 0} (unmasked samples only):
    loss = mean over (i, j) in P x Q of sigmoid(gamma (p_j - p_i)), in [sigmoid(-gamma),
    sigmoid(gamma)]. If P or Q is empty the loss is 0.5 + 0 * mean(p): constant, still a
    function of p (zero gradient).
    """
    p, y, m = _prepare(probs, targets, mask)
    pos = jnp.where(y == 1.0, m, 0.0)
    neg = jnp.where(y == 0.0, m, 0.0)
    pair_w = pos[:, None] * neg[None, :]  # [i, j]: i positive, j negative
    pair_loss = jax.nn.sigmoid(gamma * (p[None, :] - p[:, None]))
    n_pairs = jnp.sum(pair_w)
    ranked = jnp.sum(pair_w * pair_loss) / jnp.maximum(n_pairs, 1.0)
    one_class = 0.0 * _masked_mean(p, m) + 0.5
    return jnp.where(n_pairs > 0, ranked, one_class)


def focal(probs, targets, *, gamma=2.0, alpha=0.25, eps=EPS, mask=None):
    """Focal loss on clamped probabilities.

    p_t = p if y = 1 else 1 - p; a_t = alpha if y = 1 else 1 - alpha;
    loss = mean_i a_t (1 - p_t)^gamma (-log p_t). gamma = 0, alpha = 0.5 gives BCE / 2.
    """
    p, y, m = _prepare(probs, targets, mask)
    return _masked_mean(_focal_terms(p, y, gamma, alpha, eps), m)


def mildfocal(probs, targets, *, gamma=0.75, alpha=0.5, eps=EPS, mask=None):
    """Focal loss with milder defaults (gamma 0.75, alpha 0.5); same formula as ``focal``."""
    return focal(probs, targets, gamma=gamma, alpha=alpha, eps=eps, mask=mask)


def weightedbce(probs, targets, *, pos_weight=1.0, eps=EPS, mask=None):
    """Positive-weighted BCE on clamped probabilities.

    loss = mean_i -(pos_weight y_i log p_i + (1 - y_i) log(1 - p_i)); plain mean over N, not
    normalised by the weights.
    """
    p, y, m = _prepare(probs, targets, mask)
    log_p, log_1mp = _clamped_log_terms(_clamp(p, eps))
    return _masked_mean(-(pos_weight * y * log_p + (1.0 - y) * log_1mp), m)


def weightedsum(probs, targets, *, alpha=0.5, gamma=2.0, mask=None):
    """alpha BCE + (1 - alpha) SoftAUC(gamma); the BCE is torch BCELoss on unclamped p."""
    return alpha * bce(probs, targets, mask=mask) + (1.0 - alpha) * softauc(
        probs, targets, gamma=gamma, mask=mask
    )


def labelsmoothing(probs, targets, *, epsilon=0.1, mask=None):
    """BCE (torch BCELoss, no eps clamp) against smoothed targets.

    y' = y (1 - epsilon) + (1 - y) epsilon, so 1 -> 1 - epsilon and 0 -> epsilon (not the
    epsilon / 2 convention); loss = mean_i BCE(p_i, y'_i).
    """
    p, y, m = _prepare(probs, targets, mask)
    smoothed = y * (1.0 - epsilon) + (1.0 - y) * epsilon
    return _masked_mean(_torch_bce_terms(p, smoothed), m)


def asymmetricfocal(probs, targets, *, gamma_pos=1.0, gamma_neg=2.0, alpha=0.5, eps=EPS, mask=None):
    """Focal loss with separate exponents for positives and negatives, on clamped p.

    y = 1: -alpha (1 - p)^gamma_pos log p;  y = 0: -(1 - alpha) p^gamma_neg log(1 - p); mean.
    Equal gammas give ``focal``. Since p < 1, a LARGER gamma_neg SHRINKS the false-positive
    penalty (the original described the opposite).
    """
    p, y, m = _prepare(probs, targets, mask)
    pc = _clamp(p, eps)
    log_p, log_1mp = _clamped_log_terms(pc)
    pos = -alpha * jnp.power(1.0 - pc, gamma_pos) * log_p
    neg = -(1.0 - alpha) * jnp.power(pc, gamma_neg) * log_1mp
    return _masked_mean(y * pos + (1.0 - y) * neg, m)


def entropyreg(probs, targets, *, lambda_entropy=0.1, eps=EPS, mask=None):
    """BCE minus an entropy bonus, on clamped p.

    loss = mean_i [BCE(p_i, y_i) - lambda_entropy H(p_i)], H(p) = -(p log p + (1-p) log(1-p)).
    Minimising it MAXIMISES entropy for lambda_entropy > 0, i.e. pushes p toward 0.5 (the
    original described the opposite); a negative lambda_entropy rewards confident outputs.
    """
    p, y, m = _prepare(probs, targets, mask)
    pc = _clamp(p, eps)
    log_p, log_1mp = _clamped_log_terms(pc)
    bce_terms = -(y * log_p + (1.0 - y) * log_1mp)
    entropy = -(pc * log_p + (1.0 - pc) * log_1mp)
    return _masked_mean(bce_terms - lambda_entropy * entropy, m)


def variancereg(probs, targets, *, lambda_var=0.5, eps=EPS, mask=None):
    """BCE on clamped p minus lambda_var times the batch variance of the UNclamped p.

    loss = mean_i BCE(clamp(p_i), y_i) - lambda_var Var(p), Var unbiased (divides by N - 1) and
    defined as 0 when N < 2. Batch-level; the loss can be negative.
    """
    p, y, m = _prepare(probs, targets, mask)
    log_p, log_1mp = _clamped_log_terms(_clamp(p, eps))
    bce_mean = _masked_mean(-(y * log_p + (1.0 - y) * log_1mp), m)
    n = jnp.sum(m)
    mean_p = _masked_mean(p, m)
    sum_sq = jnp.sum(jnp.where(m > 0, jnp.square(p - mean_p), 0.0))
    var = jnp.where(n >= 2, sum_sq / jnp.maximum(n - 1.0, 1.0), 0.0)
    return bce_mean - lambda_var * var


def calibratedfocal(
    probs, targets, *, gamma=2.0, alpha=0.25, lambda_cal=0.1, temperature=1.0, eps=EPS, mask=None
):
    """Focal loss plus a batch calibration penalty, on clamped p.

    loss = focal(p, y; gamma, alpha) + lambda_cal ((mean(p) - mean(y)) / temperature)^2, with
    batch means over the (clamped) probabilities and the targets.
    """
    p, y, m = _prepare(probs, targets, mask)
    focal_mean = _masked_mean(_focal_terms(p, y, gamma, alpha, eps), m)
    gap = (_masked_mean(_clamp(p, eps), m) - _masked_mean(y, m)) / temperature
    return focal_mean + lambda_cal * jnp.square(gap)


# --------------------------------------------------------------------------- registry

_FNS: dict[str, Callable] = {
    "bce": bce, "softauc": softauc, "focal": focal, "weightedsum": weightedsum,
    "weightedbce": weightedbce, "labelsmoothing": labelsmoothing, "mildfocal": mildfocal,
    "asymmetricfocal": asymmetricfocal, "entropyreg": entropyreg, "variancereg": variancereg,
    "calibratedfocal": calibratedfocal,
}
assert set(_FNS) == set(LOSS_NAMES), "every loss of loss_specs has its function here"


def _family_fn(family: str):
    spec = SPECS[family]  # every family is named after its defining loss
    keys = tuple(spec.params)

    def loss_fn(probs, targets, hparams: Mapping, mask=None):
        missing = [k for k in keys if k not in hparams]
        extra = [k for k in hparams if k not in keys]
        if missing or extra:
            raise ValueError(
                f"hparams for loss family {family!r} must have exactly the keys {list(keys)}; "
                f"missing {missing}, unexpected {extra}"
            )
        return _FNS[family](probs, targets, mask=mask, **{k: hparams[k] for k in keys})

    loss_fn.__name__ = f"{family}_from_hparams"
    loss_fn.__doc__ = _FNS[family].__doc__
    return loss_fn


_FAMILY_FNS = {family: _family_fn(family) for family in {s.family for s in SPECS.values()}}


def loss_fn_from_hparams(name: str) -> Callable:
    """``f(probs, targets, hparams, mask=None) -> scalar`` for the family of ``name``.

    ``hparams`` maps each key of ``loss_hparams(name)`` to a scalar (array or float); the same
    function object is returned for every loss of a family, so it can be a static jit argument.
    """
    return _FAMILY_FNS[loss_family(name)]


FAMILY_INDEX = "family"  # the hparams entry of a mixed program: the member's index into its families


@functools.cache
def program_loss_fn(families: tuple[str, ...]) -> Callable:
    """``f(probs, targets, hparams, mask=None)`` for the members of one program, whose losses
    span ``families`` (distinct family names, in the program's order).

    One family: that family's function; hparams are its keys (``loss_hparams``). Several:
    hparams are ``program_loss_hparams``: every family's keys as "family.key" and "family", the
    member's index into ``families``; ``lax.switch`` on it gives the member's own loss. Under
    vmap the switch computes every branch and selects, so each member's value and gradient are
    those of its own loss: the other branches get a zero cotangent and, since they read valid
    values (their defaults), finite partials, so they add exactly zero.
    """
    if len(families) == 1:
        return _FAMILY_FNS[families[0]]
    branches = [_branch(f) for f in families]

    def loss_fn(probs, targets, hparams: Mapping, mask=None):
        return jax.lax.switch(hparams[FAMILY_INDEX], branches, probs, targets, hparams, mask)

    loss_fn.__name__ = "_or_".join(families) + "_from_hparams"
    return loss_fn


def _branch(family: str) -> Callable:
    """`family`'s loss reading its own "family.key" entries of a mixed program's hparams."""
    fn, keys = _FAMILY_FNS[family], tuple(SPECS[family].params)

    def branch(probs, targets, hparams, mask):
        return fn(probs, targets, {k: hparams[f"{family}.{k}"] for k in keys}, mask)

    return branch


def program_loss_hparams(families: tuple[str, ...], name: str, params: Mapping) -> dict[str, float]:
    """One member's loss hyperparameters for ``program_loss_fn(families)``: ``loss_hparams``
    with one family; with several, every family's keys (the member's values for its own family,
    defaults for the others) and its family's index."""
    family = loss_family(name)
    if family not in families:
        raise ValueError(f"loss {name!r} (family {family!r}) is not among this program's loss "
                         f"families {list(families)}")
    own = loss_hparams(name, **dict(params))
    if len(families) == 1:
        return own
    out: dict[str, float] = {FAMILY_INDEX: families.index(family)}
    for f in families:
        values = own if f == family else loss_hparams(f)
        out.update({f"{f}.{k}": v for k, v in values.items()})
    return out


def get_loss(name: str, /, **params) -> Callable:
    """``f(probs, targets) -> scalar`` for loss ``name``; ValueError on unknown/invalid params."""
    hparams = loss_hparams(name, **params)
    fn = loss_fn_from_hparams(name)

    def loss(probs, targets):
        return fn(probs, targets, hparams)

    loss.__name__ = name
    loss.__doc__ = _FNS[name].__doc__
    return loss
