"""Measurement workers, each run in a fresh process by the bench scripts (never imported by them).

    python bench/workers.py '{"kind": "jax", "exp": "FE-06", "data": "builtin", "seeds": 1, ...}'

kind "jax":   fembed's Engine (jit(vmap) over K seeds, one lax.scan per epoch), set up as
              `fembed run` sets it up (fembed_jax.runtime.configure("cpu"), persistent cache in
              $FEMBED_CACHE/jax). Times engine.init, every train_epoch call (the first includes
              compilation), the compile events JAX reports, and the peak RSS.
kind "torch": bench/torch_reference.py, eager, torch.set_num_threads(threads).

Spec fields: exp, data ("builtin" | "random": 7,168 random windows, the original's train size),
seeds (jax), devices (jax: CPU host devices the seeds are sharded over; seeds must be a
multiple), warmup (epochs not counted, >= 1 for jax: the first call compiles), repeats,
max_windows (truncate the training windows: a few batches are enough for peak memory),
threads (torch), launched_at (parent's time.time() just before it started this process).
The result goes to stdout on one line starting with BENCH_RESULT.
"""

from __future__ import annotations

import collections
import json
import os
import resource
import sys
import time

ENTERED = time.time()

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib  # noqa: E402

RANDOM_WINDOWS = 7168  # the original's training windows (56 batches of 128)
MAIN_FUNCTIONS = ("_init_one", "_epoch_one", "_eval_one")


def rss_mb() -> float:
    """Peak resident set size of this process so far (ru_maxrss is in KiB on Linux)."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def current_rss_mb() -> float | None:
    try:
        with open("/proc/self/statm") as fh:
            return round(int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20, 1)
    except OSError:
        return None


def arrays(spec: dict, cfg):
    """(matrix, {split: starts}, {split: labels}) as numpy, built-in tier or random data."""
    import numpy as np

    if spec["data"] == "builtin":
        from fembed_jax.data import load_dataset

        ds = load_dataset(cfg.tier, task=cfg.task, horizon=cfg.horizon, context_length=cfg.context_length)
        matrix, starts, labels = ds.matrix, dict(ds.starts), dict(ds.labels)
    elif spec["data"] == "random":
        rng = np.random.default_rng(0)
        n = RANDOM_WINDOWS
        matrix = rng.standard_normal((n + cfg.context_length - 1, cfg.num_features)).astype(np.float32)
        all_starts = np.arange(n, dtype=np.int32)
        all_labels = (rng.random(n) < 0.2).astype(np.float32)
        starts = {"train": all_starts, "val": all_starts[:512], "test": all_starts[:512]}
        labels = {"train": all_labels, "val": all_labels[:512], "test": all_labels[:512]}
    else:
        raise ValueError(f"data must be 'builtin' or 'random', got {spec['data']!r}")
    if spec.get("max_windows"):
        m = int(spec["max_windows"])
        starts = {k: v[:m] for k, v in starts.items()}
        labels = {k: v[:m] for k, v in labels.items()}
    return matrix, starts, labels


def config(spec: dict):
    from fembed_jax.registry import load_registry

    cfg = load_registry().get(spec["exp"])
    return cfg.replace(seeds=int(spec.get("seeds", 1)))


def jax_worker(spec: dict) -> dict:
    from fembed_jax import runtime

    n_devices = int(spec.get("devices", 1))
    platform = spec.get("platform", "cpu")  # "gpu" on a GPU machine (bench/gpu_check.sh)
    runtime.configure(platform, devices=n_devices)
    import jax
    import jax.monitoring
    import jax.numpy as jnp
    import numpy as np

    events: dict[str, dict[str, float]] = collections.defaultdict(lambda: collections.defaultdict(float))
    counts: collections.Counter = collections.Counter()

    def on_duration(event, duration, **kwargs):
        name = str(kwargs.get("fun_name") or "")
        for main in MAIN_FUNCTIONS:
            if main in name:
                name = main
                break
        else:
            name = "other" if name else "cache"
        events[event.rsplit("/", 1)[-1]][name] += duration

    jax.monitoring.register_event_duration_secs_listener(on_duration)
    jax.monitoring.register_event_listener(lambda event, **kw: counts.update([event.rsplit("/", 1)[-1]]))
    imported = time.time()

    from fembed_jax.models import count_params
    from fembed_jax.train.engine import DeviceData, Engine, seed_keys

    cfg = config(spec)
    matrix, starts, labels = arrays(spec, cfg)
    data = DeviceData(matrix=jnp.asarray(matrix, jnp.float32),
                      starts={k: jnp.asarray(v, jnp.int32) for k, v in starts.items()},
                      labels={k: jnp.asarray(v, jnp.float32) for k, v in labels.items()})
    data_ready = time.time()
    rss_before_compile = rss_mb()

    k = int(spec.get("seeds", 1))
    engine = Engine(cfg, data, devices=jax.devices()[:n_devices])
    keys = seed_keys([42 + i for i in range(k)])
    t0 = time.perf_counter()
    params, opt_state = engine.init(keys)
    jax.block_until_ready(params)
    init_s = time.perf_counter() - t0
    active = np.ones(k, bool)
    epoch_s, losses, first_epoch_done = [], [], None
    first_epoch_call = time.time()
    cpu_s, faults = [], []  # CPU time and minor page faults per epoch: less noisy than wall time
    for epoch in range(int(spec.get("warmup", 1)) + int(spec.get("repeats", 0))):
        t0, r0 = time.perf_counter(), resource.getrusage(resource.RUSAGE_SELF)
        params, opt_state, loss = engine.train_epoch(params, opt_state, keys, epoch, active)
        loss = np.asarray(jax.block_until_ready(loss))
        epoch_s.append(time.perf_counter() - t0)
        r1 = resource.getrusage(resource.RUSAGE_SELF)
        cpu_s.append(round(r1.ru_utime + r1.ru_stime - r0.ru_utime - r0.ru_stime, 3))
        faults.append(r1.ru_minflt - r0.ru_minflt)
        losses.append([round(float(x), 5) for x in loss])
        if first_epoch_done is None:
            first_epoch_done = time.time()
    if spec.get("evaluate"):
        t0 = time.perf_counter()
        engine.evaluate(params, "val")
        eval_first_s = time.perf_counter() - t0
    else:
        eval_first_s = None
    warmup = int(spec.get("warmup", 1))
    launched = float(spec.get("launched_at") or ENTERED)
    return {
        "kind": "jax", "exp": cfg.exp_id, "data": spec["data"], "seeds": k, "n_devices": n_devices,
        "params": int(count_params(cfg)), "train_windows": int(starts["train"].shape[0]),
        "batches_per_epoch": -(-int(starts["train"].shape[0]) // cfg.batch_size),
        "devices": [str(d) for d in jax.devices()],
        "init_seconds": round(init_s, 4),
        "first_epoch_seconds": round(epoch_s[0], 4) if epoch_s else None,
        "epoch_seconds": [round(s, 4) for s in epoch_s[warmup:]],
        "epoch_cpu_seconds": cpu_s[warmup:], "epoch_minor_faults": faults[warmup:],
        "losses": losses,
        "eval_first_seconds": None if eval_first_s is None else round(eval_first_s, 4),
        "since_launch": {"python_started": round(ENTERED - launched, 3),
                         "jax_imported": round(imported - launched, 3),
                         "data_ready": round(data_ready - launched, 3),
                         "first_epoch_called": round(first_epoch_call - launched, 3),
                         "first_epoch_done": None if first_epoch_done is None else round(first_epoch_done - launched, 3)},
        "compile_events_seconds": {e: {n: round(s, 3) for n, s in v.items()} for e, v in events.items()},
        "cache_events": dict(counts),
        "peak_rss_mb": rss_mb(), "rss_before_compile_mb": rss_before_compile,
        "rss_now_mb": current_rss_mb(),
    }


def torch_worker(spec: dict) -> dict:
    import torch

    threads = int(spec.get("threads") or benchlib.jax_threads())
    torch.set_num_threads(threads)
    import torch_reference

    cfg = config(spec)
    matrix, starts, labels = arrays(spec, cfg)
    rss_before = rss_mb()
    trainer = torch_reference.Trainer(cfg, matrix, starts["train"], labels["train"])
    epoch_s, losses = [], []
    for _ in range(int(spec.get("warmup", 1)) + int(spec.get("repeats", 0))):
        t0 = time.perf_counter()
        losses.append(round(trainer.train_epoch(), 5))
        epoch_s.append(time.perf_counter() - t0)
    warmup = int(spec.get("warmup", 1))
    return {
        "kind": "torch", "exp": cfg.exp_id, "data": spec["data"], "seeds": 1,
        "params": torch_reference.count_params(trainer.model),
        "train_windows": int(starts["train"].shape[0]),
        "torch_threads": torch.get_num_threads(), "torch_interop_threads": torch.get_num_interop_threads(),
        "first_epoch_seconds": round(epoch_s[0], 4) if epoch_s else None,
        "epoch_seconds": [round(s, 4) for s in epoch_s[warmup:]],
        "losses": losses,
        "peak_rss_mb": rss_mb(), "rss_before_model_mb": rss_before, "rss_now_mb": current_rss_mb(),
    }


def main() -> int:
    spec = json.loads(sys.argv[1])
    worker = {"jax": jax_worker, "torch": torch_worker}[spec["kind"]]
    result = worker(spec)
    result["worker_seconds"] = round(time.time() - ENTERED, 2)
    benchlib.emit(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
