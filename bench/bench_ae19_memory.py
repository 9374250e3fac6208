"""Peak host memory and time of one training step of AE-19 (attention embedding, a500) on CPU.

AE-19: F=500 raw features, E=16, attention embedding with 4 heads over the 500 feature tokens of
every time step, D=64, L=4, H=4, d_ff=256, dropout 0.5, batch 128, T=80. The original
materialised the (B*T, H, F, F) attention tensor (~41 GB float32); fembed processes the rows in
rematerialised chunks. Target: a whole jitted training step (forward, BCE, gradient, Adam
update) under 4 GB of resident memory.

The step runs in a fresh worker process (this script re-invoked with --worker) so that peak RSS
(getrusage ru_maxrss: the process's high-water mark, compilation included) belongs to the step
alone. Result: bench/results/ae19_memory.json.

    .venv/bin/python bench/bench_ae19_memory.py                 # AE-19, batch 128, 2 timed steps
    .venv/bin/python bench/bench_ae19_memory.py --preset FE-06 --out /tmp/fe06.json
    .venv/bin/python bench/bench_ae19_memory.py --plain --out bench/results/attention_step_ae19_plain.json

--plain builds the attention embedding with factored=False (the direct q/k/v computation, the
"before" of the factoring); the default is the factored computation the model uses.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
import types
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchlib  # noqa: E402

TARGET_MB = 4096
PRESETS = {
    "AE-19": dict(
        num_features=500, d_embed=16, d_model=64, n_layers=4, n_heads=4, d_ff=256, dropout=0.5,
        embedding="attention", embedding_params={"num_heads": 4, "use_position": True},
    ),
    "AE-17": dict(
        num_features=100, d_embed=32, d_model=128, n_layers=4, n_heads=8, d_ff=512, dropout=0.5,
        embedding="attention", embedding_params={"num_heads": 4, "use_position": True},
    ),
    "FE-06": dict(
        num_features=100, d_embed=32, d_model=128, n_layers=4, n_heads=8, d_ff=512, dropout=0.5,
        embedding="linear", embedding_params={},
    ),
}


def peak_rss_mb() -> float:
    """High-water resident set size of this process (ru_maxrss: KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(peak / (2**20 if sys.platform == "darwin" else 2**10), 1)


def worker(preset: str, batch: int, steps: int, row_chunk: int | None, plain: bool = False) -> dict:
    import jax
    import jax.numpy as jnp
    import optax

    from fembed_jax.losses import bce
    from fembed_jax.models import build_model, count_params
    from fembed_jax.models.attention_embedding import auto_row_chunk
    from fembed_jax.optim import make_optimizer

    fields = dict(PRESETS[preset], head_dropout=0.0, context_length=80, patch_length=16, stride=8, use_revin=True)
    if row_chunk is not None:
        fields["embedding_params"] = {**fields["embedding_params"], "row_chunk": row_chunk}
    if plain:
        fields["embedding_params"] = {**fields["embedding_params"], "factored": False}
    cfg = types.SimpleNamespace(**fields)
    model = build_model(cfg)
    rss_after_import = peak_rss_mb()

    x = jax.random.normal(jax.random.key(1), (batch, 80, cfg.num_features), jnp.float32)
    y = (jax.random.uniform(jax.random.key(2), (batch,)) < 0.18).astype(jnp.float32)
    params = jax.jit(lambda k: model.init({"params": k}, x[:1], train=False)["params"])(jax.random.key(0))
    optimizer = make_optimizer(1e-4, 0.0)
    opt_state = optimizer.init(params)

    @jax.jit
    def train_step(params, opt_state, key):
        def loss_fn(p):
            probs, aux = model.apply({"params": p}, x, train=True, rngs={"dropout": key})
            return bce(probs, y) + aux

        loss, grads = jax.value_and_grad(loss_fn)(params)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    started = time.perf_counter()
    compiled = train_step.lower(params, opt_state, jax.random.key(3)).compile()
    compile_s = time.perf_counter() - started
    times = []
    for i in range(steps + 1):  # the first call also pays first-touch allocation: not timed
        started = time.perf_counter()
        params, opt_state, loss = compiled(params, opt_state, jax.random.key(10 + i))
        jax.block_until_ready(loss)
        if i:
            times.append(time.perf_counter() - started)
    result = {
        "preset": preset,
        "batch": batch,
        "params": count_params(cfg),
        "loss_finite": bool(jnp.isfinite(loss)),
        "compile_seconds": round(compile_s, 2),
        "step_seconds": benchlib.spread(times, 3),
        "rss_after_import_mb": rss_after_import,
        "peak_rss_mb": peak_rss_mb(),
    }
    if cfg.embedding == "attention":
        heads = cfg.embedding_params["num_heads"]
        result["row_chunk"] = row_chunk or auto_row_chunk(cfg.num_features, heads)
        result["attention_factored"] = not plain
        result["unchunked_attention_tensor_gb"] = round(batch * 80 * heads * cfg.num_features**2 * 4 / 1e9, 1)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", choices=sorted(PRESETS), default="AE-19")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--steps", type=int, default=2, help="timed steps after one untimed warm step")
    parser.add_argument("--row-chunk", type=int, default=None, help="attention rows per chunk (default: auto)")
    parser.add_argument("--plain", action="store_true",
                        help="attention embedding without the factoring (factored=False)")
    parser.add_argument("--out", type=Path, default=None, help="default: bench/results/ae19_memory.json")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.worker:
        benchlib.emit(worker(args.preset, args.batch, args.steps, args.row_chunk, args.plain))
        return 0

    started = time.perf_counter()
    load_before, steal_before = benchlib.load_average(), benchlib.cpu_steal_seconds()
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", "--preset", args.preset,
           "--batch", str(args.batch), "--steps", str(args.steps)]
    if args.row_chunk is not None:
        cmd += ["--row-chunk", str(args.row_chunk)]
    if args.plain:
        cmd += ["--plain"]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=benchlib.ROOT)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith(benchlib.RESULT_TAG)]
    if proc.returncode != 0 or not lines:
        print(proc.stderr[-3000:], file=sys.stderr)
        print(f"worker failed with exit code {proc.returncode}", file=sys.stderr)
        return 1
    measured = json.loads(lines[-1][len(benchlib.RESULT_TAG):])

    result = benchlib.header(
        f"one jitted training step (forward, BCE, grad, Adam) of {args.preset} at batch {args.batch} on CPU",
        repeats=args.steps, torch=False,
    )
    result["load_average_start"] = load_before  # header() runs after the worker
    result["cpu_steal_start"] = steal_before
    result.update(measured)
    result["target_peak_rss_mb"] = TARGET_MB
    result["within_target"] = measured["peak_rss_mb"] < TARGET_MB
    result["note"] = ("peak RSS is the worker's high-water mark (ru_maxrss), compilation included; "
                      "the machine is shared, so step times vary with its load")
    benchlib.write(args.out or "ae19_memory.json", result, started)
    print(json.dumps({k: result[k] for k in ("peak_rss_mb", "step_seconds", "compile_seconds")}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
