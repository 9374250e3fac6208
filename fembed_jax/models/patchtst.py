"""Channel-mixing PatchTST classifier (spec §1) and the model API the engine uses.

    x (B, T, F) -> RevIN -> feature embedding (B, T, E) -> patches (B, N, P*E) -> Linear -> (B, N, D)
      -> + pos[:N] -> Dropout -> L x pre-norm encoder layer -> LayerNorm -> flatten (B, N*D)
      -> Dropout(head_dropout) -> Linear(N*D -> 1) -> sigmoid -> probs (B,)

    N = floor((T - P) / S) + 1 patches starting at 0, S, 2S, ...; no padding (trailing steps
    beyond the last full patch are not used). A patch is flattened time-major: t * E + f.

API:
    model = build_model(cfg)
    variables = model.init({"params": k1, "dropout": k2}, x, train=False)
    probs, aux = model.apply(variables, x, train=True, rngs={"dropout": k})
    count_params(cfg) -> int;  init_params(cfg, key) -> params
"""

from __future__ import annotations

import math
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from fembed_jax.models.dropout import Dropout, dropout
from fembed_jax.models.embeddings import build_embedding
from fembed_jax.models.init import (
    Linear,
    gelu,
    layer_norm,
    standard_normal,
    torch_linear_bound,
    uniform_symmetric,
    xavier_uniform_bound,
)
from fembed_jax.models.revin import RevIN

EXTRA_POSITION_ROWS = 10  # the original's table has N + 10 rows; rows N.. are never used


def num_patches(context_length: int, patch_length: int, stride: int) -> int:
    """N = floor((T - P) / S) + 1."""
    return (context_length - patch_length) // stride + 1


def patch_indices(context_length: int, patch_length: int, stride: int) -> np.ndarray:
    """(N, P) time indices of every patch: start n*S, then P consecutive steps."""
    starts = np.arange(num_patches(context_length, patch_length, stride)) * stride
    return starts[:, None] + np.arange(patch_length)[None, :]


def extract_patches(x: jax.Array, patch_length: int, stride: int) -> jax.Array:
    """(B, T, F) -> (B, N, P*F), time-major within a patch (flat index t * F + f).

    When the stride divides the patch length (the experiments: P=16, S=8) a patch is P/S
    consecutive blocks of S steps, so the patches are P/S static slices of the block view;
    otherwise a static-index gather.
    """
    batch, time, feats = x.shape
    n = num_patches(time, patch_length, stride)
    if patch_length % stride == 0:
        used = (n - 1) * stride + patch_length  # steps after the last full patch are dropped
        blocks = x[:, :used].reshape(batch, used // stride, stride * feats)  # block j = steps jS..jS+S-1
        parts = [blocks[:, j : j + n] for j in range(patch_length // stride)]
        return jnp.concatenate(parts, axis=-1)
    return x[:, patch_indices(time, patch_length, stride)].reshape(batch, n, patch_length * feats)


class SelfAttention(nn.Module):
    """torch.nn.MultiheadAttention (batch_first, no mask) as self-attention.

    Packed in_proj (D -> 3D, xavier-uniform on the (3D, D) matrix, bias 0), softmax(q k^T /
    sqrt(D/H)), dropout on the attention weights, out_proj (torch Linear init, bias 0).
    Parameters: 4D^2 + 4D.
    """

    num_heads: int
    dropout: float

    @nn.compact
    def __call__(self, x: jax.Array, deterministic: bool) -> jax.Array:  # (B, N, D)
        d_model = x.shape[-1]
        head_dim = d_model // self.num_heads
        in_kernel = self.param(
            "in_proj_kernel",
            uniform_symmetric(xavier_uniform_bound(d_model, 3 * d_model)),
            (d_model, 3 * d_model),
        )
        in_bias = self.param("in_proj_bias", nn.initializers.zeros, (3 * d_model,))
        out_kernel = self.param(
            "out_proj_kernel", uniform_symmetric(torch_linear_bound(d_model)), (d_model, d_model)
        )
        out_bias = self.param("out_proj_bias", nn.initializers.zeros, (d_model,))

        qkv = (x @ in_kernel + in_bias).reshape(*x.shape[:-1], 3, self.num_heads, head_dim)
        q, k, v = qkv[..., 0, :, :], qkv[..., 1, :, :], qkv[..., 2, :, :]  # (B, N, H, hd)
        scores = jnp.einsum("bqhd,bkhd->bhqk", q * (1.0 / math.sqrt(head_dim)), k)
        weights = jax.nn.softmax(scores, axis=-1)
        if not deterministic and self.dropout > 0.0:
            weights = dropout(weights, self.dropout, self.make_rng("dropout"))
        context = jnp.einsum("bhqk,bkhd->bqhd", weights, v).reshape(x.shape)
        return context @ out_kernel + out_bias


class EncoderLayer(nn.Module):
    """Pre-norm: h = x + MHA(LN1(x));  y = h + Dropout(W2 Dropout(GELU(W1 LN2(h))))."""

    num_heads: int
    d_ff: int
    dropout: float

    @nn.compact
    def __call__(self, x: jax.Array, deterministic: bool) -> jax.Array:
        d_model = x.shape[-1]
        h = x + SelfAttention(self.num_heads, self.dropout, name="attention")(
            layer_norm("norm1")(x), deterministic
        )
        f = gelu(Linear(self.d_ff, name="ff1")(layer_norm("norm2")(h)))
        f = Dropout(self.dropout)(f, deterministic)
        f = Dropout(self.dropout)(Linear(d_model, name="ff2")(f), deterministic)
        return h + f


class PatchTST(nn.Module):
    """The classifier of the module docstring; returns (probs (B,), aux_loss scalar)."""

    num_features: int
    d_model: int
    n_layers: int
    n_heads: int
    d_ff: int
    dropout: float
    head_dropout: float = 0.0
    context_length: int = 80
    patch_length: int = 16
    stride: int = 8
    use_revin: bool = True
    d_embed: int | None = None
    embedding: str = "linear"
    embedding_params: tuple[tuple[str, Any], ...] = ()  # sorted (name, value) pairs: hashable

    def __post_init__(self):
        _validate(self)
        super().__post_init__()

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> tuple[jax.Array, jax.Array]:
        deterministic = not train
        batch, time, _ = x.shape
        if time != self.context_length:
            raise ValueError(f"PatchTST: input has {time} time steps, context_length is {self.context_length}")
        if self.use_revin:
            x = RevIN(self.num_features, name="revin")(x)
        aux = jnp.zeros((), jnp.float32)
        if self.d_embed is not None:
            embed = build_embedding(
                self.embedding, self.num_features, self.d_embed, self.dropout, dict(self.embedding_params)
            )
            x, embed_aux = embed(x, deterministic)
            if embed_aux is not None:
                aux = aux + embed_aux

        n = num_patches(self.context_length, self.patch_length, self.stride)
        tokens = Linear(self.d_model, name="patch_proj")(extract_patches(x, self.patch_length, self.stride))
        pos = self.param("pos_table", standard_normal, (n + EXTRA_POSITION_ROWS, self.d_model))
        tokens = Dropout(self.dropout)(tokens + pos[:n], deterministic)

        for i in range(self.n_layers):
            tokens = EncoderLayer(self.n_heads, self.d_ff, self.dropout, name=f"layer_{i}")(tokens, deterministic)
        tokens = layer_norm("final_norm")(tokens)

        flat = Dropout(self.head_dropout)(tokens.reshape(batch, n * self.d_model), deterministic)
        logit = Linear(1, name="head")(flat)[:, 0]
        return jax.nn.sigmoid(logit).astype(jnp.float32), aux


def _validate(m: PatchTST) -> None:
    """Architecture checks, with the field name in every message (embedding checks run later)."""
    if m.d_model % m.n_heads != 0:
        raise ValueError(f"d_model={m.d_model} must be divisible by n_heads={m.n_heads}")
    if m.patch_length < 1 or m.stride < 1 or m.context_length < m.patch_length:
        raise ValueError(
            f"need 1 <= patch_length ({m.patch_length}) <= context_length ({m.context_length}) and stride >= 1 "
            f"(got stride={m.stride})"
        )
    if m.d_embed is None and m.embedding not in ("none", "linear"):
        raise ValueError(f"embedding={m.embedding!r} requires d_embed (got d_embed=None)")
    if m.d_embed is not None and m.embedding == "none":
        raise ValueError(f"embedding='none' contradicts d_embed={m.d_embed}; use 'linear' or d_embed=None")
    for field in ("dropout", "head_dropout"):
        rate = getattr(m, field)
        if not 0.0 <= rate < 1.0:
            raise ValueError(f"{field}={rate} must be in [0, 1)")


def build_model(cfg: Any) -> PatchTST:
    """PatchTST from an ExperimentConfig (or any object with its model fields and dropouts).

    Embedding validation errors (spec §2) are raised here, not at first use.
    """
    model = PatchTST(
        num_features=int(cfg.num_features),
        d_model=int(cfg.d_model),
        n_layers=int(cfg.n_layers),
        n_heads=int(cfg.n_heads),
        d_ff=int(cfg.d_ff),
        dropout=float(cfg.dropout),
        head_dropout=float(cfg.head_dropout),
        context_length=int(cfg.context_length),
        patch_length=int(cfg.patch_length),
        stride=int(cfg.stride),
        use_revin=bool(cfg.use_revin),
        d_embed=None if cfg.d_embed is None else int(cfg.d_embed),
        embedding=str(cfg.embedding),
        embedding_params=tuple(sorted(dict(cfg.embedding_params or {}).items())),
    )
    if model.d_embed is not None:
        build_embedding(  # constructs (and so validates) the embedding now
            model.embedding, model.num_features, model.d_embed, model.dropout, dict(model.embedding_params), name=None
        )
    return model


def _example_input(model: PatchTST, batch: int = 1) -> jax.ShapeDtypeStruct:
    return jax.ShapeDtypeStruct((batch, model.context_length, model.num_features), jnp.float32)


def init_params(cfg: Any, key: jax.Array) -> Any:
    """Freshly initialised parameters (the 'params' collection) for one seed; vmappable over key."""
    model = build_model(cfg)
    params_key, dropout_key = jax.random.split(key)
    x = jnp.zeros((1, model.context_length, model.num_features), jnp.float32)
    return model.init({"params": params_key, "dropout": dropout_key}, x, train=False)["params"]


def count_params(cfg: Any) -> int:
    """Number of trainable scalars, RevIN included, computed from shapes only (no allocation)."""
    model = build_model(cfg)
    key = jax.random.key(0)
    shapes = jax.eval_shape(
        lambda k: model.init({"params": k, "dropout": k}, jnp.zeros(_example_input(model).shape), train=False),
        key,
    )
    return int(sum(math.prod(leaf.shape) for leaf in jax.tree_util.tree_leaves(shapes["params"])))
