"""The softmax floor of the attention embedding at AE-19's shapes, and the embedding against it.

AE-19 (registry/experiments.toml): tier a500 -> F=500 feature tokens per row, d_embed E=16,
4 heads (hd=4), batch 128 x context 80 = 10,240 rows per training step, dropout 0.5 on the
attention weights. Per row and head the attention weights are an F x F softmax: 10,240 x 4 x
500 x 500 = 1.02e10 weights per step. Whatever the projections cost, every weight must be
exponentiated and normalised (the irreducible part); with dropout every weight also needs a
random draw, and the mask of a step is drawn twice (forward, and again when the backward pass
recomputes the weights: 41 GB could not be kept).

Timed, on `--rows` rows (lax.map over chunks of --chunk rows, as the model runs them) and scaled
linearly to the 10,240 rows of a step:

  floor_exp_sum        exp(s - 1) summed over g: the exponentials alone
  floor_softmax        max, exp, sum, every weight normalised, read once by a matvec
  floor_softmax_deferred
                       the same with the normalisation applied to the product (p @ v = (e @ v) / z),
                       as the factored path does
  ref_jax_nn_softmax   floor_softmax through jax.nn.softmax (what the plain path calls): not a
                       floor, XLA:CPU runs it ~2.5x slower than the hand-written form
  floor_softmax_vjp    softmax forward + its backward (ds = p (dp - sum_g p dp)), each read by a
                       matvec; a training step that recomputes the weights needs this plus one
                       more softmax forward
  floor_dropout_mask   the model's dropout on the attention weights (attention_embedding.drop_weights:
                       draws by dropout.hashed_uints) for F x F x H
  ref_threefry_mask    the same dropout with threefry draws (dropout.random_uints, what the other
                       dropouts use and the attention weights used before)
  embedding_{plain,factored}_{forward,grad}
                       the attention embedding module itself (train mode, dropout 0.5), value
                       and gradient of sum(sin(out)) w.r.t. all parameters

The items are interleaved (every repetition times each item once), so a changing machine load
affects all of them alike; medians over --repeats. The 1-minute load average is recorded with
every repetition. Result: bench/results/attention_floor.json.

    .venv/bin/python bench/bench_attention_floor.py                    # 160 rows, 5 repeats
    .venv/bin/python bench/bench_attention_floor.py --rows 320 --repeats 7
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchlib  # noqa: E402

PRESETS = {
    "AE-19": dict(num_features=500, d_embed=16, num_heads=4, dropout=0.5, batch=128, context=80),
    "AE-17": dict(num_features=100, d_embed=32, num_heads=4, dropout=0.5, batch=128, context=80),
}
AE19 = dict(PRESETS["AE-19"])  # rebound by --preset
STEP_ROWS = AE19["batch"] * AE19["context"]


def build_items(rows: int, chunk: int, only: set[str] | None):
    import jax
    import jax.numpy as jnp
    from jax import lax

    from fembed_jax.models import AttentionFeatureEmbedding
    from fembed_jax.models.dropout import dropout

    try:
        from fembed_jax.models.attention_embedding import drop_weights
    except ImportError:  # a checkout from before the hashed mask (an A/B run): it used dropout()
        drop_weights = dropout

    feats, heads = AE19["num_features"], AE19["num_heads"]
    keys = jax.random.split(jax.random.key(0), 7)
    block = jax.random.normal(keys[0], (heads, feats, feats))  # one row's scores (H, F, F)
    cot = jax.random.normal(keys[1], (heads, feats, feats))
    n_chunks = max(1, rows // chunk)  # the floor items time n_chunks * chunk rows
    shift = jax.random.normal(keys[2], (n_chunks, chunk))  # a per-row offset: nothing can be hoisted
    chunk_keys = jax.random.split(keys[3], n_chunks)

    def scores(r):
        return block + r[:, None, None, None]  # (c, H, F, F)

    probe = jax.random.normal(keys[4], (feats,))  # the consumer: one matvec, every weight read once

    def exp_sum(r):
        return jnp.sum(jnp.exp(scores(r) - 1.0), axis=-1)

    def stable_exp(s):
        return jnp.exp(s - jnp.max(s, axis=-1, keepdims=True))

    def softmax(r):  # max, exp, sum, every weight normalised, then read by a matvec
        e = stable_exp(scores(r))
        return jnp.einsum("chfg,g->chf", e / jnp.sum(e, axis=-1, keepdims=True), probe)

    def softmax_deferred(r):  # the same softmax with the normalisation applied after the product
        e = stable_exp(scores(r))
        return jnp.einsum("chfg,g->chf", e, probe) / jnp.sum(e, axis=-1)

    def jax_nn_softmax(r):
        return jnp.einsum("chfg,g->chf", jax.nn.softmax(scores(r), axis=-1), probe)

    def softmax_vjp(r):  # forward (p, as a training step recomputes it) + ds = p (dp - sum_g p dp)
        e = stable_exp(scores(r))
        p = e / jnp.sum(e, axis=-1, keepdims=True)
        ds = p * (cot - jnp.sum(p * cot, axis=-1, keepdims=True))
        return jnp.einsum("chfg,g->chf", p, probe), jnp.einsum("chfg,g->chf", ds, probe)

    def mask(k, drop=drop_weights):
        return jnp.sum(drop(jnp.broadcast_to(block, (chunk, *block.shape)), AE19["dropout"], k), axis=-1)

    items = {
        "floor_exp_sum": (jax.jit(lambda s: lax.map(exp_sum, s)), (shift,)),
        "floor_softmax": (jax.jit(lambda s: lax.map(softmax, s)), (shift,)),
        "floor_softmax_deferred": (jax.jit(lambda s: lax.map(softmax_deferred, s)), (shift,)),
        "ref_jax_nn_softmax": (jax.jit(lambda s: lax.map(jax_nn_softmax, s)), (shift,)),
        "floor_softmax_vjp": (jax.jit(lambda s: lax.map(softmax_vjp, s)), (shift,)),
        "floor_dropout_mask": (jax.jit(lambda k: lax.map(mask, k)), (chunk_keys,)),
        "ref_threefry_mask": (jax.jit(lambda k: lax.map(functools.partial(mask, drop=dropout), k)), (chunk_keys,)),
    }

    batch = rows // AE19["context"]
    x = jax.random.normal(keys[6], (batch, AE19["context"], feats))
    for variant, factored in (("plain", False), ("factored", True)):
        module = AttentionFeatureEmbedding(feats, AE19["d_embed"], dropout=AE19["dropout"], num_heads=heads,
                                           row_chunk=chunk, factored=factored)
        params = jax.jit(lambda k, m=module: m.init({"params": k}, x[:1], True))(keys[5])["params"]

        def forward(p, k, m=module):
            return m.apply({"params": p}, x, False, rngs={"dropout": k})[0]

        grad = jax.grad(lambda p, k, f=forward: jnp.sum(jnp.sin(f(p, k))))
        items[f"embedding_{variant}_forward"] = (jax.jit(forward), (params, keys[3]))
        items[f"embedding_{variant}_grad"] = (jax.jit(grad), (params, keys[3]))
    if only:
        items = {k: v for k, v in items.items() if k in only}
    return items


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", choices=sorted(PRESETS), default="AE-19")
    parser.add_argument("--rows", type=int, default=160, help="rows timed (a multiple of 80 and of --chunk)")
    parser.add_argument("--chunk", type=int, default=None,
                        help="rows per lax.map step (default: the model's CPU default, auto_row_chunk)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--only", nargs="*", default=None, help="item names to time (default: all)")
    parser.add_argument("--out", type=Path, default=None,
                        help="default: bench/results/attention_floor.json (AE-19), attention_floor_ae17.json")
    args = parser.parse_args()
    AE19.clear()
    AE19.update(PRESETS[args.preset])
    if args.chunk is None:
        from fembed_jax.models.attention_embedding import auto_row_chunk

        args.chunk = auto_row_chunk(AE19["num_features"], AE19["num_heads"], 4 * 2**20)
    if args.rows % AE19["context"]:
        parser.error("--rows must be a multiple of 80")

    import jax

    started = time.perf_counter()
    result = benchlib.header(
        "softmax floor of the AE-19 attention embedding vs the embedding (plain and factored) on CPU",
        repeats=args.repeats, torch=False,
    )
    items = build_items(args.rows, args.chunk, set(args.only) if args.only else None)
    for fn, fargs in items.values():  # compile and warm (first touch) outside the timings
        jax.block_until_ready(fn(*fargs))
    times = {name: [] for name in items}
    loads = []
    for _ in range(args.repeats):
        for name, (fn, fargs) in items.items():
            t0 = time.perf_counter()
            jax.block_until_ready(fn(*fargs))
            times[name].append(time.perf_counter() - t0)
        loads.append(round(os.getloadavg()[0], 2))
        print(f"repeat done, load {loads[-1]}", flush=True)

    floor_rows = max(1, args.rows // args.chunk) * args.chunk
    figures = {}
    for name, ts in times.items():
        timed = args.rows if name.startswith("embedding_") else floor_rows
        scale = STEP_ROWS / timed
        weights = timed * AE19["num_heads"] * AE19["num_features"] ** 2
        spread = benchlib.spread(ts, 4)
        figures[name] = {
            "rows_timed": timed,
            "seconds_timed_rows": spread,
            "seconds_per_step_rows": round(spread["median"] * scale, 2),
            "ns_per_weight": round(spread["median"] / weights * 1e9, 3),
        }
    result.update(
        preset=args.preset, shapes={**AE19, "step_rows": STEP_ROWS, "head_dim": AE19["d_embed"] // AE19["num_heads"]},
        timed_rows=args.rows, chunk_rows=args.chunk,
        load_average_per_repeat=loads, items=figures,
        note=("seconds_per_step_rows = median x (10240 / timed rows): linear extrapolation to one "
              "AE-19 training batch; the machine is shared, see load_average_per_repeat"),
    )
    default = "attention_floor.json" if args.preset == "AE-19" else f"attention_floor_{args.preset.lower().replace('-', '')}.json"
    benchlib.write(args.out or default, result, started)
    for name, fig in figures.items():
        print(f"{name:32s} {fig['seconds_per_step_rows']:8.2f} s/step-rows  {fig['ns_per_weight']:.3f} ns/weight")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
