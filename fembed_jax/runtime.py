"""Process-wide JAX set-up: platform, device count and the persistent compilation cache.

Must run before JAX first touches a device (importing jax is fine; jax.devices() is not).
"""

from __future__ import annotations

import os

from fembed_jax.catalog import cache_dir

PLATFORMS = ("auto", "cpu", "gpu")
# On a CPU, several XLA host devices with the member axis sharded over them run ~1.5x faster
# than one device (measured: 2 seeds in 0.67x the time of two single-seed runs on 2 cores).
MAX_CPU_DEVICES = 8


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
    # Reruns and the other experiments of a priority reuse compiled programs from disk.
    jax.config.update("jax_compilation_cache_dir", str(cache_dir() / "jax"))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)


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

