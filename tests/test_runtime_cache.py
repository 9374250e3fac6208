"""The persistent compilation cache is on by default (runtime.configure, as `fembed run` calls
it): a second process loads a program the first one compiled from $FEMBED_CACHE/jax;
FEMBED_COMPILATION_CACHE=0 turns it off.

Each case runs a tiny jitted function in fresh processes (the cache is initialised once per
process, at its first compilation, so this cannot run inside the test process). JAX reports a
hit with the monitoring event /jax/compilation_cache/cache_hits and a miss with .../cache_misses.
The child lowers fembed's write threshold (0.5 s) to 0 after configure: the function compiles in
milliseconds, and the threshold is not what is under test.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from fembed_jax import runtime

CHILD = textwrap.dedent("""
    import json, sys
    from fembed_jax import runtime
    runtime.configure("cpu", 1)
    import jax, jax.monitoring, jax.numpy as jnp
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
    events = []
    jax.monitoring.register_event_listener(lambda name, **kw: events.append(name.rsplit("/", 1)[-1]))
    f = jax.jit(lambda x: jnp.sin(x) * 3.0 + jnp.cos(x) ** 2)
    float(f(jnp.arange(7.0)).sum())
    print("RESULT " + json.dumps({"hits": events.count("cache_hits"),
                                  "misses": events.count("cache_misses"),
                                  "dir": jax.config.jax_compilation_cache_dir,
                                  "enabled": jax.config.jax_enable_compilation_cache}))
""")


def _child(cache: Path, **env: str) -> dict:
    full_env = {k: v for k, v in os.environ.items() if k != runtime.COMPILATION_CACHE_ENV}
    full_env.update(FEMBED_CACHE=str(cache), JAX_PLATFORMS="cpu", **env)
    proc = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True,
                          env=full_env, timeout=240)
    assert proc.returncode == 0, proc.stderr[-2000:]
    line = next(x for x in proc.stdout.splitlines() if x.startswith("RESULT "))
    return json.loads(line[len("RESULT "):])


def _entries(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file()] if folder.is_dir() else []


@pytest.mark.slow
def test_second_process_loads_the_program_from_the_cache(tmp_path):
    first = _child(tmp_path)
    assert first["enabled"] and first["dir"] == str(tmp_path / "jax")
    assert first["hits"] == 0 and first["misses"] >= 1
    written = _entries(tmp_path / "jax")
    assert written, "the first process wrote nothing into $FEMBED_CACHE/jax"
    second = _child(tmp_path)
    assert second["hits"] >= 1 and second["misses"] == 0
    assert sorted(_entries(tmp_path / "jax")) == sorted(written)  # loaded, nothing new written


@pytest.mark.slow
def test_env_var_turns_the_cache_off(tmp_path):
    for _ in range(2):
        out = _child(tmp_path, FEMBED_COMPILATION_CACHE="0")
        assert out["enabled"] is False and out["hits"] == 0
    assert _entries(tmp_path / "jax") == []


def test_cache_dir_follows_fembed_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("FEMBED_CACHE", str(tmp_path))
    monkeypatch.delenv(runtime.COMPILATION_CACHE_ENV, raising=False)
    assert runtime.compilation_cache_dir() == tmp_path / "jax"
    for off in ("0", "off", "False", "no"):
        monkeypatch.setenv(runtime.COMPILATION_CACHE_ENV, off)
        assert runtime.compilation_cache_dir() is None
    monkeypatch.setenv(runtime.COMPILATION_CACHE_ENV, "1")
    assert runtime.compilation_cache_dir() == tmp_path / "jax"
