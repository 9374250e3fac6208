"""Cheap inverted dropout.

`jax.random.bernoulli` draws one 32-bit threefry word per element and converts it to a float;
on the 2-core CPU this costs ~5x a memory-bound elementwise op. Here one threefry *block*
(64 random bits) yields 8 byte-sized draws, and the mask is a byte comparison:

    u_i ~ U{0, ..., 2^w - 1}   (w = 8 bits by default, 16 optional)
    threshold = round(keep * 2^w),  keep_actual = threshold / 2^w
    y_i = x_i / keep_actual  if u_i < threshold  else 0          =>  E[y_i] = x_i exactly

Resolution: the drop probability is realised in steps of 1/256 (w = 8): exact for p = 0.5
(174 of the 183 experiments), otherwise off by at most 1/512 (p = 0.6 -> 0.6016,
p = 0.7 -> 0.6992, p = 0.3 -> 0.3008, p = 0.4 -> 0.3984). The scaling uses keep_actual, so the
expectation is unbiased in all cases. w = 16 gives 1/65536 steps at ~1.4x the cost.

Measured on the 2-core CPU for a (128, 80, 32) float32 tensor at p = 0.5 (medians, jit):
bernoulli 1.5 ms, 8-bit via jax.random.bits 0.67 ms, 16-bit via jax.random.bits 0.93 ms,
8-bit from the raw threefry words (this module) 0.47 ms; an elementwise op ~0.25 ms.

Where the mask itself is the cost (the attention embedding's 10^10 weights per AE-19 step),
`hashed_uints` replaces threefry by a keyed counter hash at a fraction of its integer work;
every other dropout keeps threefry (`random_uints`), so their results are unchanged.
"""

from __future__ import annotations

from collections.abc import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax

try:  # public since jax 0.4.x; guarded so a future removal only costs speed, not correctness
    from jax.extend.random import threefry_2x32 as _threefry_2x32
except ImportError:  # pragma: no cover
    _threefry_2x32 = None

_UINT_BY_WIDTH = {8: jnp.uint8, 16: jnp.uint16}


def _threefry_key_data(key: jax.Array) -> jax.Array | None:
    """The (2,) uint32 data of a threefry key (typed or raw), or None for other PRNG impls."""
    if jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        if str(jax.random.key_impl(key)) != "threefry2x32":
            return None
        return jax.random.key_data(key)
    if key.dtype == jnp.uint32 and key.shape == (2,):
        return key
    return None


def random_uints(key: jax.Array, n: int, width: int = 8) -> jax.Array:
    """n uniform unsigned integers of `width` bits (8 or 16), flat, from one PRNG key.

    With a threefry key every 32-bit word of the hash output is used (the partitionable
    `jax.random.bits` path spends a full 64-bit block per word).
    """
    key_data = _threefry_key_data(key) if _threefry_2x32 is not None else None

    def words(count: int) -> jax.Array:
        if key_data is not None:
            return _threefry_2x32(key_data, lax.iota(jnp.uint32, count))
        return jax.random.bits(key, (count,), jnp.uint32)

    return _cut_words(words, n, width)


def _cut_words(words: Callable[[int], jax.Array], n: int, width: int) -> jax.Array:
    """n `width`-bit unsigned integers, flat, cut from the uint32 words `words(count)` makes."""
    if width not in _UINT_BY_WIDTH:
        raise ValueError(f"dropout bit width must be 8 or 16, got {width}")
    count = -(-n * width // 32)
    return lax.bitcast_convert_type(words(count), _UINT_BY_WIDTH[width]).reshape(-1)[:n]


def _fmix32(h: jax.Array) -> jax.Array:
    """MurmurHash3's 32-bit finaliser: a bijection of uint32 with full avalanche."""
    h = h ^ (h >> 16)
    h = h * jnp.uint32(0x85EBCA6B)
    h = h ^ (h >> 13)
    h = h * jnp.uint32(0xC2B2AE35)
    return h ^ (h >> 16)


def hashed_uints(key: jax.Array, n: int, width: int = 8) -> jax.Array:
    """n uniform unsigned integers of `width` bits from a keyed counter hash, flat.

    word_i = fmix32(fmix32(i + s0) ^ s1): two rounds of MurmurHash3's finaliser with a key word
    injected before each, (s0, s1) the threefry key's own data (other key kinds: drawn from it by
    jax.random.bits). The key's data rather than a draw from it: XLA then sees the same seed in
    the rematerialised forward and the VJP and computes the backward's mask once. ~8 integer ops
    a word against threefry's ~60 (20 rounds on two words for 64 bits): on the 2-core CPU the
    mask costs ~2.5x less (bench/bench_attention_floor.py, floor_dropout_mask against
    ref_threefry_mask). For dropout masks, not cryptography: tests/test_models.py checks the
    byte frequencies, adjacent and word-apart byte pairs, and that other keys, nearby ones
    included, give unrelated words.
    """
    seed = _threefry_key_data(key)  # already random words (split keys); no op to draw them
    if seed is None:
        seed = jax.random.bits(key, (2,), jnp.uint32)
    return _cut_words(lambda count: _fmix32(_fmix32(lax.iota(jnp.uint32, count) + seed[0]) ^ seed[1]),
                      n, width)


def keep_threshold(rate: float, width: int = 8) -> int:
    """Integer threshold t with keep_actual = t / 2^width closest to 1 - rate."""
    levels = 1 << width
    return min(levels, max(0, round((1.0 - rate) * levels)))


def effective_rate(rate: float, width: int = 8) -> float:
    """The drop probability actually realised for a nominal `rate`."""
    return 1.0 - keep_threshold(rate, width) / (1 << width)


def dropout(x: jax.Array, rate: float, key: jax.Array, width: int = 8,
            uints: Callable[[jax.Array, int, int], jax.Array] = random_uints) -> jax.Array:
    """Inverted dropout of x with a mask drawn from `key` (see module docstring); `uints` makes
    the draws (random_uints, or hashed_uints where the mask is the cost: attention weights)."""
    levels = 1 << width
    threshold = keep_threshold(rate, width)
    if threshold >= levels:  # rate below half a step: nothing is dropped
        return x
    if threshold == 0:
        return jnp.zeros_like(x)
    draws = uints(key, x.size, width).reshape(x.shape)
    keep = draws < jnp.asarray(threshold, draws.dtype)
    scale = jnp.asarray(levels / threshold, x.dtype)
    return jnp.where(keep, x * scale, jnp.zeros((), x.dtype))


class Dropout(nn.Module):
    """Linen dropout drawing from the 'dropout' RNG stream; identity when deterministic or rate 0."""

    rate: float
    width: int = 8
    rng_collection: str = "dropout"

    @nn.compact
    def __call__(self, x: jax.Array, deterministic: bool) -> jax.Array:
        if deterministic or self.rate <= 0.0:
            return x
        return dropout(x, self.rate, self.make_rng(self.rng_collection), self.width)
