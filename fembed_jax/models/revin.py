"""Reversible instance normalisation, normalise half only (spec §1.2)."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

REVIN_EPS = 1e-5


class RevIN(nn.Module):
    """Per-sample, per-feature normalisation over time with a learned affine map.

        mu_bf    = mean_t x_btf
        sigma_bf = sqrt( sum_t (x_btf - mu_bf)^2 / (T - 1) ) + eps      (unbiased std, eps outside)
        y_btf    = (x_btf - mu_bf) / sigma_bf * gamma_f + beta_f

    gamma (init 1) and beta (init 0) have one entry per RAW input feature. A constant feature
    gives sigma = eps and y = beta (no NaN). Same computation in train and eval.
    """

    num_features: int
    eps: float = REVIN_EPS

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:  # (B, T, F) -> (B, T, F)
        if x.shape[-1] != self.num_features:
            raise ValueError(
                f"RevIN: input has {x.shape[-1]} features, model was built for num_features="
                f"{self.num_features}"
            )
        gamma = self.param("gamma", nn.initializers.ones, (self.num_features,))
        beta = self.param("beta", nn.initializers.zeros, (self.num_features,))
        mean = jnp.mean(x, axis=1, keepdims=True)
        centered = x - mean
        var = jnp.sum(centered * centered, axis=1, keepdims=True) / (x.shape[1] - 1)
        # double where: same value as sqrt(var), but a finite gradient for constant features
        positive = var > 0
        std = jnp.where(positive, jnp.sqrt(jnp.where(positive, var, 1.0)), 0.0)
        return centered / (std + self.eps) * gamma + beta
