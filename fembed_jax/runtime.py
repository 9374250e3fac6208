"""Process-wide JAX set-up: device choice and the persistent compilation cache.

Must run before the first `import jax` of the process for the device choice to take effect.
"""

from __future__ import annotations

import os
import sys

from fembed_jax.catalog import cache_dir

DEVICES = ("auto", "cpu", "gpu")


def configure(device: str = "auto") -> None:
    """auto: JAX's own choice (a GPU when one is present, else CPU); cpu/gpu force it."""
    if device not in DEVICES:
        raise ValueError(f"--device must be one of {', '.join(DEVICES)}, got {device!r}")
    if device != "auto":
        if "jax" in sys.modules:
            import jax

            jax.config.update("jax_platforms", device if device == "cpu" else "cuda,rocm,metal")
        else:
            os.environ["JAX_PLATFORMS"] = device if device == "cpu" else "cuda,rocm,metal"
    import jax

    # Reruns and the other experiments of a priority reuse compiled programs from disk.
    jax.config.update("jax_compilation_cache_dir", str(cache_dir() / "jax"))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)


def describe_device() -> str:
    import jax

    dev = jax.devices()[0]
    return f"{dev.platform} ({getattr(dev, 'device_kind', '')}, {jax.device_count()} device(s))"
