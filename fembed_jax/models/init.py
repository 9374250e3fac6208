"""PyTorch-default initialisers and the two building blocks that need them (spec §1.8).

Flax's defaults (lecun-normal kernels, zero biases, LayerNorm eps 1e-6, tanh GELU) differ from
the original's PyTorch defaults; everything here restores the PyTorch behaviour:

    Linear(in -> out):   W, b ~ U(-1/sqrt(in), +1/sqrt(in))      (kaiming_uniform with a=sqrt(5))
    packed MHA in_proj:  W (3D x D) ~ U(-sqrt(6/(D + 3D)), +...)  (xavier_uniform on the packed matrix)
    LayerNorm:           scale 1, bias 0, eps 1e-5 (variance one-pass, see layer_norm)
    learned tables:      N(0, 1)
"""

from __future__ import annotations

import math

import flax.linen as nn
import jax
import jax.numpy as jnp

LAYER_NORM_EPS = 1e-5


def uniform_symmetric(bound: float) -> nn.initializers.Initializer:
    """U(-bound, +bound), whatever the shape."""

    def init(key, shape, dtype=jnp.float32):
        return jax.random.uniform(key, shape, dtype, minval=-bound, maxval=bound)

    return init


def torch_linear_bound(fan_in: int) -> float:
    """Bound of PyTorch's default Linear init for both weight and bias: 1/sqrt(fan_in)."""
    return 1.0 / math.sqrt(fan_in) if fan_in > 0 else 0.0


def xavier_uniform_bound(fan_in: int, fan_out: int) -> float:
    """Bound of xavier_uniform (gain 1): sqrt(6 / (fan_in + fan_out))."""
    return math.sqrt(6.0 / (fan_in + fan_out))


standard_normal = nn.initializers.normal(stddev=1.0)


class Linear(nn.Module):
    """y = x @ kernel + bias over the last axis, PyTorch init (kernel stored as (in, out)).

    `fan_in` defaults to the input width; the initialisation bound is 1/sqrt(fan_in) for both
    kernel and bias, as torch.nn.Linear does.
    """

    features: int
    use_bias: bool = True

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        fan_in = x.shape[-1]
        init = uniform_symmetric(torch_linear_bound(fan_in))
        kernel = self.param("kernel", init, (fan_in, self.features))
        y = jnp.dot(x, kernel)
        if self.use_bias:
            y = y + self.param("bias", init, (self.features,))
        return y


def layer_norm(name: str | None = None) -> nn.LayerNorm:
    """torch.nn.LayerNorm defaults: eps 1e-5, affine (scale 1, bias 0).

    The variance is Flax's one-pass E[x^2] - E[x]^2 (torch: two-pass): ~15% faster training
    steps on the 2-core CPU, equal within float32 rounding for activations whose mean is not
    large against their spread (true inside the network; RevIN, which sees raw price levels,
    keeps the two-pass form).
    """
    return nn.LayerNorm(epsilon=LAYER_NORM_EPS, use_fast_variance=True, name=name)


def gelu(x: jax.Array) -> jax.Array:
    """Exact (erf) GELU, torch's default; Flax's default is the tanh approximation."""
    return jax.nn.gelu(x, approximate=False)
