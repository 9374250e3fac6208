"""Feature embeddings: per time step maps from F raw features to E (spec §1.3 and §2).

Every embedding maps x (B, T, F) -> (embedded (B, T, E), aux_loss | None) and acts pointwise
over time. `build_embedding` is the factory (registry names of the original plus "linear").
Validation happens at construction, so a bad registry entry fails when the model is built.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from fembed_jax.models.attention_embedding import AttentionFeatureEmbedding
from fembed_jax.models.dropout import Dropout
from fembed_jax.models.init import LAYER_NORM_EPS, Linear, gelu, layer_norm, torch_linear_bound, uniform_symmetric

EmbeddingOutput = tuple[jax.Array, jax.Array | None]


class LinearEmbedding(nn.Module):
    """The simple embedding (§1.3): Linear(F -> E) -> LayerNorm(E) -> Dropout. Params F*E + 3E."""

    num_features: int
    d_embed: int
    dropout: float

    @nn.compact
    def __call__(self, x: jax.Array, deterministic: bool) -> EmbeddingOutput:
        h = layer_norm("norm")(Linear(self.d_embed, name="proj")(x))
        return Dropout(self.dropout)(h, deterministic), None


def progressive_dims(num_features: int, d_embed: int, num_layers: int) -> list[int]:
    """Stage widths of the progressive embedding (§2.1), integer truncation as the original.

    r = (E/F)^(1/L); starting at F, (L-1) times: cur = max(int(cur * r), E); then E.
    """
    if num_layers < 1:
        raise ValueError(f"progressive embedding: num_layers must be >= 1, got {num_layers}")
    dims = [num_features]
    if num_layers > 1:
        ratio = (d_embed / num_features) ** (1.0 / num_layers)
        current = num_features
        for _ in range(num_layers - 1):
            current = max(int(current * ratio), d_embed)
            dims.append(current)
    dims.append(d_embed)
    return dims


class ProgressiveEmbedding(nn.Module):
    """Stages Linear -> LayerNorm -> GELU -> Dropout through `progressive_dims` (the last too)."""

    num_features: int
    d_embed: int
    dropout: float
    num_layers: int = 3

    def __post_init__(self):
        progressive_dims(self.num_features, self.d_embed, self.num_layers)  # validates
        super().__post_init__()

    @nn.compact
    def __call__(self, x: jax.Array, deterministic: bool) -> EmbeddingOutput:
        dims = progressive_dims(self.num_features, self.d_embed, self.num_layers)
        for i, width in enumerate(dims[1:]):
            x = gelu(layer_norm(f"norm_{i}")(Linear(width, name=f"proj_{i}")(x)))
            x = Dropout(self.dropout)(x, deterministic)
        return x, None


def bottleneck_width(num_features: int, d_embed: int, compression_ratio: float) -> int:
    """b = max(4, int(min(F, E) * ratio))."""
    return max(4, int(min(num_features, d_embed) * compression_ratio))


class BottleneckEmbedding(nn.Module):
    """Encoder F->b (LN, GELU, Dropout), decoder b->E (LN, Dropout), optional skip (§2.2).

    out = LN_skip(decoder + skip(x)) with skip = Linear(F->E), identity when F == E.
    """

    num_features: int
    d_embed: int
    dropout: float
    compression_ratio: float = 0.25
    use_skip: bool = True

    def __post_init__(self):
        if not 0.0 < self.compression_ratio < 1.0:
            raise ValueError(
                f"bottleneck embedding: compression_ratio must be in (0, 1), got {self.compression_ratio}"
            )
        super().__post_init__()

    @nn.compact
    def __call__(self, x: jax.Array, deterministic: bool) -> EmbeddingOutput:
        width = bottleneck_width(self.num_features, self.d_embed, self.compression_ratio)
        h = gelu(layer_norm("encoder_norm")(Linear(width, name="encoder")(x)))
        h = Dropout(self.dropout)(h, deterministic)
        h = layer_norm("decoder_norm")(Linear(self.d_embed, name="decoder")(h))
        h = Dropout(self.dropout)(h, deterministic)
        if not self.use_skip:
            return h, None
        skip = x if self.num_features == self.d_embed else Linear(self.d_embed, name="skip")(x)
        return layer_norm("skip_norm")(h + skip), None


class VariationalEmbedding(nn.Module):
    """Variational bottleneck (§2.3); returns the KL term as aux loss (the original dropped it, B12).

        h = Dropout(GELU(LN(Linear(F -> F//2)(x))));  mu, logvar = Linear(F//2 -> latent)(h)
        z = mu + exp(logvar / 2) * eps  (train, eps ~ N(0,1) from the 'dropout' stream);  z = mu (eval)
        out = Dropout(LN(Linear(latent -> E)(z)))
        aux = beta * (-1/2) * mean(1 + logvar - mu^2 - exp(logvar))     (mean over all elements)
    """

    num_features: int
    d_embed: int
    dropout: float
    latent_dim: int | None = None
    compression_ratio: float = 0.25
    beta: float = 0.1

    @nn.compact
    def __call__(self, x: jax.Array, deterministic: bool) -> EmbeddingOutput:
        latent = self.latent_dim or bottleneck_width(self.num_features, self.d_embed, self.compression_ratio)
        h = gelu(layer_norm("encoder_norm")(Linear(self.num_features // 2, name="encoder")(x)))
        h = Dropout(self.dropout)(h, deterministic)
        mu = Linear(latent, name="mu")(h)
        logvar = Linear(latent, name="logvar")(h)
        if deterministic:
            z = mu
        else:
            noise = jax.random.normal(self.make_rng("dropout"), mu.shape, mu.dtype)
            z = mu + jnp.exp(0.5 * logvar) * noise
        out = layer_norm("decoder_norm")(Linear(self.d_embed, name="decoder")(z))
        out = Dropout(self.dropout)(out, deterministic)
        kl = -0.5 * jnp.mean(1.0 + logvar - mu**2 - jnp.exp(logvar))
        return out, self.beta * kl


class MultiHeadEmbedding(nn.Module):
    """H parallel heads Linear(F -> hd) -> LN -> GELU -> Dropout, combined (§2.4).

    The heads are one (F, H, hd) kernel with per-head LayerNorm parameters (same parameters and
    init as H separate torch Linear/LayerNorm modules, one matmul instead of H).
        concat: Linear(H*hd -> E) -> LN -> Dropout
        sum:    s = softmax(w) (w init 1/H);  sum_h s_h * P(head_h) -> LN -> Dropout,
                P = Linear(hd -> E) shared by all heads (identity when hd == E). Because P is
                affine and sum_h s_h = 1 this equals P(sum_h s_h head_h), computed that way.
    """

    num_features: int
    d_embed: int
    dropout: float
    num_heads: int = 4
    head_dim: int | None = None
    combine_method: str = "concat"
    feature_groups: Any = None

    def __post_init__(self):
        if self.combine_method not in ("concat", "sum"):
            raise ValueError(
                f"multihead embedding: combine_method must be 'concat' or 'sum', got {self.combine_method!r}"
            )
        if self.feature_groups is not None:
            if len(self.feature_groups) != self.num_heads:
                raise ValueError(
                    f"multihead embedding: feature_groups has {len(self.feature_groups)} groups, "
                    f"num_heads is {self.num_heads}"
                )
            raise ValueError("multihead embedding: feature_groups is not supported (no experiment uses it)")
        if self.num_heads < 1 or self._head_dim < 1:
            raise ValueError(
                f"multihead embedding: num_heads={self.num_heads} and head_dim={self._head_dim} must be >= 1"
            )
        super().__post_init__()

    @property
    def _head_dim(self) -> int:
        return self.head_dim or self.d_embed // self.num_heads

    @nn.compact
    def __call__(self, x: jax.Array, deterministic: bool) -> EmbeddingOutput:
        heads, head_dim = self.num_heads, self._head_dim
        init = uniform_symmetric(torch_linear_bound(self.num_features))
        kernel = self.param("heads_kernel", init, (self.num_features, heads, head_dim))
        bias = self.param("heads_bias", init, (heads, head_dim))
        h = jnp.einsum("...f,fhd->...hd", x, kernel) + bias
        h = nn.LayerNorm(
            epsilon=LAYER_NORM_EPS, use_fast_variance=True, feature_axes=(-2, -1), name="heads_norm"
        )(h)
        h = Dropout(self.dropout)(gelu(h), deterministic)  # (..., H, hd)
        if self.combine_method == "concat":
            out = Linear(self.d_embed, name="combine")(h.reshape(*h.shape[:-2], heads * head_dim))
        else:
            logits = self.param("head_weights", nn.initializers.constant(1.0 / heads), (heads,))
            out = jnp.einsum("...hd,h->...d", h, jax.nn.softmax(logits))
            if head_dim != self.d_embed:
                out = Linear(self.d_embed, name="head_proj")(out)
        out = layer_norm("combine_norm")(out)
        return Dropout(self.dropout)(out, deterministic), None


class GatedResidualEmbedding(nn.Module):
    """Gated residual network (§2.5).

        h = ELU(Linear(F -> hidden)(x));  value, gate = split(Linear(hidden -> 2E)(h))
        out = LN(Dropout(value * sigmoid(gate)) + skip(x)),  skip = Linear(F -> E) (identity if F == E)
    """

    num_features: int
    d_embed: int
    dropout: float
    hidden_dim: int | None = None
    context_dim: int | None = None

    def __post_init__(self):
        if self.context_dim is not None:
            raise ValueError("gated_residual embedding: context_dim is not supported (no experiment passes a context)")
        super().__post_init__()

    @nn.compact
    def __call__(self, x: jax.Array, deterministic: bool) -> EmbeddingOutput:
        hidden = self.hidden_dim or 2 * self.d_embed
        h = jax.nn.elu(Linear(hidden, name="hidden")(x))
        value, gate = jnp.split(Linear(2 * self.d_embed, name="gate")(h), 2, axis=-1)
        gated = Dropout(self.dropout)(value * jax.nn.sigmoid(gate), deterministic)
        skip = x if self.num_features == self.d_embed else Linear(self.d_embed, name="skip")(x)
        return layer_norm("norm")(gated + skip), None


EMBEDDINGS: dict[str, type[nn.Module]] = {
    "linear": LinearEmbedding,
    "progressive": ProgressiveEmbedding,
    "bottleneck": BottleneckEmbedding,
    "variational": VariationalEmbedding,
    "multihead": MultiHeadEmbedding,
    "gated_residual": GatedResidualEmbedding,
    "attention": AttentionFeatureEmbedding,
}

_FIXED_FIELDS = ("num_features", "d_embed", "dropout", "parent", "name")


def embedding_param_names(embedding_type: str) -> list[str]:
    """The embedding_params keys a type accepts (its constructor fields beyond F, E, dropout)."""
    cls = EMBEDDINGS[embedding_type]
    return [f for f in cls.__dataclass_fields__ if f not in _FIXED_FIELDS]


def build_embedding(
    embedding_type: str,
    num_features: int,
    d_embed: int,
    dropout: float,
    params: Mapping[str, Any] | None = None,
    name: str | None = "embedding",
) -> nn.Module:
    """Instantiate an embedding by registry name; ValueError for unknown names or parameters."""
    if embedding_type not in EMBEDDINGS:
        raise ValueError(
            f"unknown embedding type {embedding_type!r}; valid: {', '.join(sorted(EMBEDDINGS))}"
        )
    params = dict(params or {})
    accepted = embedding_param_names(embedding_type)
    unknown = sorted(set(params) - set(accepted))
    if unknown:
        raise ValueError(
            f"{embedding_type} embedding: unknown embedding_params {unknown}; accepted: {accepted}"
        )
    return EMBEDDINGS[embedding_type](
        num_features=num_features, d_embed=d_embed, dropout=dropout, name=name, **params
    )
