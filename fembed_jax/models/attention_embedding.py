"""Attention feature embedding (spec §2.6) in bounded memory, factored.

Every scalar feature value becomes a token and the F tokens of one time step attend to each
other. Per row r = (b, t):

    tok_f   = x_rf * w + b + pos_f                      w, b, pos_f in R^E      (Linear(1 -> E))
    q, k, v = tok Wq + bq, tok Wk + bk, tok Wv + bv      (F, E), split into H heads of E/H
    A_h     = Dropout(softmax_g(q_h k_h^T / sqrt(E/H)))  (F, F) per head, dropout on the weights
    c       = concat_h(A_h v_h)                          (F, E), no per-token output projection
    e_r     = flatten(c) W_out + b_out                   Linear(F*E -> E)
    out     = Dropout(LayerNorm(e))                      (B, T, E)

Factoring (factored=True, the default). A token is affine in its scalar, tok_f = x_f w + c_f with
c_f = b + pos_f, so per head (1/sqrt(hd) folded into the query side)

    q_f = x_f a_q + c_q,f      a_q = w Wq  (hd; the same for every feature),  c_q,f = c_f Wq + bq
    k_f = x_f a_k + c_k,f      v_f = x_f a_v + c_v,f                          (likewise)

a and c (H, 1, hd) and (H, F|1, hd) are computed once per call from the parameters; per row the
projections are a broadcast multiply-add, with no (F, E) tokens and no (F, E) x (E, E) products.
The attention itself (`_attend`) is s = q k^T, e = exp(s - max_g s), z = sum_g e and
(Dropout(e) v) / z: the softmax normalisation applied to the (F, hd) product instead of to every
weight, and dropout on e instead of on e / z (its scaling commutes with 1/z) with the same mask
(same key, same (c, H, F, F) shape). `_attend` carries a hand-written VJP that recomputes the
weights from q, k, v (nothing F x F is kept) and needs fewer F x F passes than autodiff of the
direct form. The output projection, LayerNorm and Dropout are unchanged, and so are the
parameters. factored=False runs the direct computation above (the tests' reference and the
benchmarks' "before"); both agree to float32 rounding.

The scores are bilinear in x as well, s_fg = u_f x_g + x_f beta_g + delta_fg with a per-call
(H, F, F) delta = c_q c_k^T, and the output is sum_g A_fg x_g a_v + A c_v. Evaluated that way (an
earlier version of this module, same VJP scheme) the embedding was no faster on the 2-core CPU
(AE-19 value+grad 44.9 s vs 44.6 s per step's rows, AE-17 4.6 s vs 3.8 s, load 1.4): reading
the F x F delta costs more than the hd-wide product q k^T, which YNNPACK fuses with the exp.

The attention tensor is (B*T, H, F, F): 41 GB at AE-19 (B=128, T=80, F=500, H=4) if
materialised. Rows are therefore processed in chunks by `lax.map` over a rematerialised
(`jax.checkpoint`) chunk function: the backward pass keeps only each chunk's inputs and
recomputes its attention, so peak memory is a few chunk-sized buffers. Chunking changes the
order of nothing within a row, so values and gradients equal the unchunked computation; in
training each chunk draws its dropout mask from its own key (split from one 'dropout' key), and
the rematerialised forward redraws the identical mask.
"""

from __future__ import annotations

import functools
import math

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax

from fembed_jax.models.dropout import Dropout, dropout, hashed_uints
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


def drop_weights(weights: jax.Array, rate: float, key: jax.Array) -> jax.Array:
    """Dropout on attention weights. The mask is drawn by hashed_uints: 10^10 draws per AE-19
    step, twice (forward, and the backward's recomputation), where threefry made the mask ~40% of
    the embedding's gradient time on the 2-core CPU (BENCHMARKS.md, attention embedding)."""
    return dropout(weights, rate, key, uints=hashed_uints)


def _attention_weights(q, k):
    """Unnormalised weights e = exp(s - max_g s), s = q k^T, and their sums z (c, H, F, 1)."""
    scores = jnp.einsum("chfd,chgd->chfg", q, k)
    weights = jnp.exp(scores - jnp.max(scores, axis=-1, keepdims=True))
    return weights, jnp.sum(weights, axis=-1, keepdims=True)


@functools.partial(jax.custom_vjp, nondiff_argnums=(4,))
def _attend(q, k, v, key, rate):
    """Dropout(softmax_g(q k^T)) v per row and head: (c, H, F, hd) x 3 -> (c, H, F, hd).

    Computed as (Dropout(e) v) / z with e = exp(s - max_g s), z = sum_g e: dropout scales each
    weight, which commutes with 1/z, and the mask is drop_weights()'s for the same key and the same
    (c, H, F, F) shape, so this is the plain computation up to rounding. key None: no dropout.

    The VJP keeps only the inputs and recomputes e in the backward pass (the same mask from the
    same key). With M = mask / keep (so ed = M e), N = ed v, t_fg = dO_f . v_g:

        r_f = sum_d dO_fd N_fd / z_f      ds_fg = (ed_fg t_fg - e_fg r_f) / z_f
        dq = ds k      dk = ds^T q      dv = ed^T (dO / z)

    (the softmax backward p (w - sum_g p w) with p = e / z and w = M t, without forming p or w).
    """
    weights, norm = _attention_weights(q, k)
    if key is not None:
        weights = drop_weights(weights, rate, key)
    return jnp.einsum("chfg,chgd->chfd", weights, v) / norm


def _attend_fwd(q, k, v, key, rate):
    return _attend(q, k, v, key, rate), (q, k, v, key)


def _attend_bwd(rate, residuals, grad_out):
    q, k, v, key = residuals
    weights, norm = _attention_weights(q, k)
    dropped = weights if key is None else drop_weights(weights, rate, key)
    mixed = jnp.einsum("chfg,chgd->chfd", dropped, v)  # N, the forward's product (shared by CSE)
    grad_n = grad_out / norm
    resid = jnp.sum(grad_n * mixed, axis=-1, keepdims=True)  # r
    grad_dropped = jnp.einsum("chfd,chgd->chfg", grad_out, v)  # t
    grad_scores = (dropped * grad_dropped - weights * resid) / norm
    grad_q = jnp.einsum("chfg,chgd->chfd", grad_scores, k)
    # Contractions over f are written with f leading on both operands and the (hd, F) result
    # transposed back: XLA:CPU runs the (F, hd)-output form several times slower.
    grad_k = jnp.einsum("chfd,chfg->chdg", q, grad_scores).swapaxes(-1, -2)
    grad_v = jnp.einsum("chfd,chfg->chdg", grad_n, dropped).swapaxes(-1, -2)
    return grad_q, grad_k, grad_v, None


_attend.defvjp(_attend_fwd, _attend_bwd)


class AttentionFeatureEmbedding(nn.Module):
    """See module docstring. `row_chunk`: rows per chunk (None: `auto_row_chunk`); `factored`:
    the factored computation (default) or the direct one (reference; same parameters and values)."""

    num_features: int
    d_embed: int
    dropout: float
    num_heads: int = 4
    use_position: bool = True
    return_attention: bool = False
    row_chunk: int | None = None
    factored: bool = True

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

    def _factored_rows_fn(self, token_w, token_b, pos, query, key_, value, out_w, out_b, rate):
        """rows (c, F) -> (c, E) through the factored projections (module docstring)."""
        feats, embed = self.num_features, self.d_embed
        base = (token_b if pos is None else token_b + pos).reshape(-1, embed)  # (F or 1, E)

        def project(w, b):  # tok_f W + b = x_f (w W) + (c_f W + b): (H, 1, hd) and (H, F|1, hd)
            return jnp.einsum("e,ehd->hd", token_w, w)[:, None, :], jnp.einsum("fe,ehd->hfd", base, w) + b

        (a_q, c_q), (a_k, c_k), (a_v, c_v) = project(*query), project(*key_), project(*value)

        def rows_to_embedding(rows: jax.Array, key: jax.Array | None) -> jax.Array:
            x = rows[:, None, :, None]  # (c, 1, F, 1)
            context = _attend(x * a_q + c_q, x * a_k + c_k, x * a_v + c_v, key, rate)  # (c, H, F, hd)
            context = context.transpose(0, 2, 1, 3)  # (c, F, H, hd): heads concatenated
            return context.reshape(rows.shape[0], feats * embed) @ out_w + out_b

        return rows_to_embedding

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

        if self.factored:
            rows_to_embedding = self._factored_rows_fn(
                token_w[0], token_b, pos, (q_w, q_b), (k_w, k_b), (v_w, v_b), out_w, out_b, rate
            )
        else:
            def rows_to_embedding(rows: jax.Array, key: jax.Array | None) -> jax.Array:  # (c, F) -> (c, E)
                tokens = rows[..., None] * token_w[0] + token_b  # (c, F, E)
                if pos is not None:
                    tokens = tokens + pos
                q = jnp.einsum("cfe,ehd->chfd", tokens, q_w) + q_b
                k = jnp.einsum("cfe,ehd->chfd", tokens, k_w) + k_b
                v = jnp.einsum("cfe,ehd->chfd", tokens, v_w) + v_b
                weights = jax.nn.softmax(jnp.einsum("chfd,chgd->chfg", q, k), axis=-1)
                if key is not None:
                    weights = drop_weights(weights, rate, key)
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
