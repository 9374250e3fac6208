"""Process-wide JAX set-up: platform, device count and the persistent compilation cache.

Must run before JAX first touches a device (importing jax is fine; jax.devices() is not).
"""

from __future__ import annotations

import os
from pathlib import Path

from fembed_jax.catalog import cache_dir

PLATFORMS = ("auto", "cpu", "gpu")
# On a CPU, several XLA host devices with the member axis sharded over them run ~1.5x faster
# than one device (measured: 2 seeds in 0.67x the time of two single-seed runs on 2 cores).
MAX_CPU_DEVICES = 8

# The persistent compilation cache (on by default): compiled programs are kept in
# $FEMBED_CACHE/jax, so a rerun, a resumed run and the other experiments of a priority that share
# a program load it from disk instead of compiling again (section 3 of BENCHMARKS.md; on a GPU
# the XLA autotuning results are kept too, JAX's jax_persistent_cache_enable_xla_caches default).
# FEMBED_COMPILATION_CACHE=0 (or off/false/no) turns it off for a process; any other value, or
# none, leaves it on.
COMPILATION_CACHE_ENV = "FEMBED_COMPILATION_CACHE"
# Programs that compile faster than this are not written (JAX's own default is 1 s; fembed's
# init and evaluate programs compile in ~0.5-2 s on a CPU and are worth keeping).
CACHE_MIN_COMPILE_SECONDS = 0.5


def cpu_device_count(requested: str | int = "auto") -> int:
    if requested in ("auto", "all"):
        return max(1, min(os.cpu_count() or 1, MAX_CPU_DEVICES))
    count = int(requested)
    if count < 1:
        raise ValueError(f"--devices must be a positive number or 'all', got {requested}")
    return count


def configure(device: str = "auto", devices: str | int = 1) -> None:
    """auto: JAX's own choice (a GPU when one is present, else CPU); cpu/gpu force it.

    `devices`: how many CPU host devices to create ('auto'/'all' = one per core, at most
    MAX_CPU_DEVICES); the runner shards the (experiment, seed) axis over
    training_devices(devices). On a GPU machine it does not matter here (GPUs are what they are).
    """
    if device not in PLATFORMS:
        raise ValueError(f"--device must be one of {', '.join(PLATFORMS)}, got {device!r}")
    import jax

    if device == "cpu":
        jax.config.update("jax_platforms", "cpu")
    elif device == "gpu":
        jax.config.update("jax_platforms", "cuda,rocm")
    try:
        jax.config.update("jax_num_cpu_devices", cpu_device_count(devices))
    except RuntimeError:
        pass  # JAX already ran in this process (tests, notebooks): keep its devices
    configure_compilation_cache()


def compilation_cache_dir() -> Path | None:
    """Where compiled programs are kept: $FEMBED_CACHE/jax (see catalog.cache_dir), or None when
    FEMBED_COMPILATION_CACHE turns the cache off."""
    if os.environ.get(COMPILATION_CACHE_ENV, "").strip().lower() in ("0", "off", "false", "no"):
        return None
    return cache_dir() / "jax"


def configure_compilation_cache() -> Path | None:
    """Point JAX's persistent compilation cache at compilation_cache_dir() (or turn it off).

    Takes effect for programs compiled after it in this process as long as JAX has not
    compiled anything yet (JAX initialises its cache once, at the first compilation). Options
    used (jax 0.10 and 0.11 alike): jax_compilation_cache_dir, jax_enable_compilation_cache,
    jax_persistent_cache_min_compile_time_secs. Returns the folder, or None when off.
    """
    import jax

    folder = compilation_cache_dir()
    if folder is None:
        jax.config.update("jax_enable_compilation_cache", False)
        return None
    jax.config.update("jax_enable_compilation_cache", True)
    jax.config.update("jax_compilation_cache_dir", str(folder))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", CACHE_MIN_COMPILE_SECONDS)
    return folder


def training_devices(devices: str | int = "auto") -> list:
    """The devices an experiment's member axis is sharded over."""
    import jax

    try:
        available = jax.devices()
    except RuntimeError as exc:  # e.g. "Unable to initialize backend 'rocm'" on a CPU-only jaxlib
        if "cuda" in (jax.config.jax_platforms or ""):
            raise ValueError("JAX sees no GPU (this jaxlib has no GPU support): on an NVIDIA "
                             "machine install it with pip install 'jax[cuda12]' in the venv, or "
                             "use --device cpu") from exc
        raise ValueError(f"JAX cannot start a device: {str(exc).splitlines()[0]}") from exc
    if devices in ("auto", "all"):
        return available
    count = int(devices)
    if count > len(available):
        raise ValueError(f"--devices {count}: only {len(available)} {available[0].platform} "
                         "device(s) available")
    return available[:count]


def describe_device(devices: list | None = None) -> str:
    import jax

    devices = devices or jax.devices()
    dev = devices[0]
    return f"{dev.platform} ({getattr(dev, 'device_kind', '')}, {len(devices)} device(s))"

