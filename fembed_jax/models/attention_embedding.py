"""Attention feature embedding (spec §2.6) in bounded memory.

Every scalar feature value becomes a token and the F tokens of one time step attend to each
other. Per row r = (b, t):

    tok_f   = x_rf * w + b + pos_f                      w, b, pos_f in R^E      (Linear(1 -> E))
    q, k, v = tok Wq + bq, tok Wk + bk, tok Wv + bv      (F, E), split into H heads of E/H
    A_h     = Dropout(softmax_g(q_h k_h^T / sqrt(E/H)))  (F, F) per head, dropout on the weights
    c       = concat_h(A_h v_h)                          (F, E), no per-token output projection
    e_r     = flatten(c) W_out + b_out                   Linear(F*E -> E)
    out     = Dropout(LayerNorm(e))                      (B, T, E)

The attention tensor is (B*T, H, F, F): 41 GB at AE-19 (B=128, T=80, F=500, H=4) if
materialised. Rows are therefore processed in chunks by `lax.map` over a rematerialised
(`jax.checkpoint`) chunk function: the backward pass keeps only each chunk's inputs and
recomputes its attention, so peak memory is a few chunk-sized buffers. Chunking changes the
order of nothing within a row, so values and gradients equal the plain computation; in training
each chunk draws its dropout mask from its own key (split from one 'dropout' key), and the
rematerialised forward redraws the identical mask.
"""

from __future__ import annotations

import math

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax

from fembed_jax.models.dropout import Dropout, dropout
from fembed_jax.models.init import layer_norm, standard_normal, torch_linear_bound, uniform_symmetric

# Bytes of one (rows, H, F, F) float32 attention buffer per chunk when row_chunk is automatic.
# CPU: the work is memory-bound and small buffers stay in cache (AE-19, one row = 4 MB, measured
# fastest at 1-2 rows per chunk); accelerators: large chunks keep the scan short.
CHUNK_BYTES = {"cpu": 4 * 2**20}
ACCELERATOR_CHUNK_BYTES = 256 * 2**20


def auto_row_chunk(num_features: int, num_heads: int, chunk_bytes: int | None = None) -> int:
    """Rows per chunk such that one attention buffer stays within chunk_bytes (at least 1)."""
    if chunk_bytes is None:
        chunk_bytes = CHUNK_BYTES.get(jax.default_backend(), ACCELERATOR_CHUNK_BYTES)
    return max(1, chunk_bytes // (num_heads * num_features * num_features * 4))


class AttentionFeatureEmbedding(nn.Module):
    """See module docstring. `row_chunk`: rows per chunk (None: `auto_row_chunk`)."""

    num_features: int
    d_embed: int
    dropout: float
    num_heads: int = 4
    use_position: bool = True
    return_attention: bool = False
    row_chunk: int | None = None

    def __post_init__(self):
        if self.num_heads < 1 or self.d_embed % self.num_heads != 0:
            raise ValueError(
                f"attention embedding: d_embed={self.d_embed} must be divisible by num_heads={self.num_heads}"
            )
        if self.return_attention:
            raise ValueError("attention embedding: return_attention is not supported (weights are never stored)")
        super().__post_init__()

    def _linear_params(self, name: str, fan_in: int, shape_out: tuple[int, ...]):
        init = uniform_symmetric(torch_linear_bound(fan_in))
        kernel = self.param(f"{name}_kernel", init, (fan_in, *shape_out))
        bias = self.param(f"{name}_bias", init, shape_out)
        return kernel, bias

    @nn.compact
    def __call__(self, x: jax.Array, deterministic: bool) -> tuple[jax.Array, None]:
        batch, time, feats = x.shape
        if feats != self.num_features:
            raise ValueError(
                f"attention embedding: input has {feats} features, built for num_features={self.num_features}"
            )
        embed, heads = self.d_embed, self.num_heads
        head_dim = embed // heads

        token_w, token_b = self._linear_params("token", 1, (embed,))
        pos = self.param("feature_pos", standard_normal, (feats, embed)) if self.use_position else None
        q_w, q_b = self._linear_params("query", embed, (embed,))
        k_w, k_b = self._linear_params("key", embed, (embed,))
        v_w, v_b = self._linear_params("value", embed, (embed,))
        out_w, out_b = self._linear_params("out", feats * embed, (embed,))
        # 1/sqrt(head_dim) folded into the query projection: (E, E) work instead of (H, F, F).
        scale = 1.0 / math.sqrt(head_dim)
        rate = 0.0 if deterministic else self.dropout

        # Heads-first layouts (c, H, F, hd): the (F, F) products then run as plain batched
        # matmuls, ~5x faster on CPU than with H between F and hd.
        heads_first = lambda w: w.reshape(embed, heads, head_dim)
        q_w, k_w, v_w = heads_first(q_w * scale), heads_first(k_w), heads_first(v_w)
        q_b, k_b, v_b = (b.reshape(heads, 1, head_dim) for b in (q_b * scale, k_b, v_b))

        def rows_to_embedding(rows: jax.Array, key: jax.Array | None) -> jax.Array:  # (c, F) -> (c, E)
            tokens = rows[..., None] * token_w[0] + token_b  # (c, F, E)
            if pos is not None:
                tokens = tokens + pos
            q = jnp.einsum("cfe,ehd->chfd", tokens, q_w) + q_b
            k = jnp.einsum("cfe,ehd->chfd", tokens, k_w) + k_b
            v = jnp.einsum("cfe,ehd->chfd", tokens, v_w) + v_b
            weights = jax.nn.softmax(jnp.einsum("chfd,chgd->chfg", q, k), axis=-1)
            if key is not None:
                weights = dropout(weights, rate, key)
            context = jnp.einsum("chfg,chgd->chfd", weights, v).transpose(0, 2, 1, 3)  # (c, F, H, hd)
            return context.reshape(rows.shape[0], feats * embed) @ out_w + out_b  # heads concatenated

        rows = x.reshape(batch * time, feats)
        n_rows = rows.shape[0]
        chunk = min(self.row_chunk or auto_row_chunk(feats, heads), n_rows)
        use_dropout = rate > 0.0
        key = self.make_rng("dropout") if use_dropout else None
        if chunk >= n_rows:
            embedded = rows_to_embedding(rows, key)
        else:
            n_chunks = -(-n_rows // chunk)
            padded = jnp.pad(rows, ((0, n_chunks * chunk - n_rows), (0, 0)))
            chunks = padded.reshape(n_chunks, chunk, feats)
            body = jax.checkpoint(rows_to_embedding)
            if use_dropout:
                keys = jax.random.split(key, n_chunks)
                embedded = lax.map(lambda args: body(*args), (chunks, keys))
            else:
                embedded = lax.map(lambda c: body(c, None), chunks)
            embedded = embedded.reshape(n_chunks * chunk, embed)[:n_rows]

        out = layer_norm("norm")(embedded.reshape(batch, time, embed))
        return Dropout(self.dropout)(out, deterministic), None
