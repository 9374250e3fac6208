"""fembed_jax.resources.sample: the runner's CPU, memory and GPU use, cheap and never raising."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from fembed_jax import resources


def _busy(seconds: float) -> None:
    end = time.process_time() + seconds
    x = 0
    while time.process_time() < end:
        x += 1


def test_sample_of_this_process_is_sane():
    first = resources.sample()
    assert set(first) == set(resources.KEYS)
    if sys.platform.startswith("linux"):
        assert first["rss_mb"] is not None and 5 < first["rss_mb"] < 64 * 1024
        with open("/proc/self/status") as f:
            vm_rss = next(int(line.split()[1]) for line in f if line.startswith("VmRSS:")) / 1024
        assert first["rss_mb"] == pytest.approx(vm_rss, rel=0.2, abs=20)
    assert first["cpu_percent"] is not None and first["cpu_percent"] >= 0
    _busy(0.3)
    busy = resources.sample()  # since the previous sample: about one core busy
    assert busy["cpu_percent"] is not None and 20 <= busy["cpu_percent"] <= 100 * (os.cpu_count() or 1) + 10
    assert busy["gpu_util_percent"] is None and busy["gpu_mem_mb"] is None  # this process holds no GPU


def test_sample_is_cheap_without_a_gpu():
    resources.sample()
    start = time.perf_counter()
    for _ in range(20):
        resources.sample()
    assert (time.perf_counter() - start) / 20 < 0.005


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="other processes are read from /proc")
def test_sample_of_another_process_and_of_none():
    child = subprocess.Popen([sys.executable, "-c", "import time; print('ready', flush=True); time.sleep(30)"],
                             stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "ready"  # an interpreter now, not a fork
        got = resources.sample(child.pid)
        assert got["rss_mb"] is not None and got["rss_mb"] > 1
        assert got["cpu_percent"] is not None and got["cpu_percent"] >= 0
    finally:
        child.kill()
        child.wait()
        child.stdout.close()
    gone = resources.sample(child.pid)  # reaped: no such process
    assert gone == dict.fromkeys(resources.KEYS)
    assert resources.sample(-1) == dict.fromkeys(resources.KEYS)


def test_never_raises_on_odd_input(monkeypatch):
    assert set(resources.sample("not a pid")) == set(resources.KEYS)  # type: ignore[arg-type]

    class Broken:
        platform = "gpu"

        def memory_stats(self):
            raise RuntimeError("driver gone")

    monkeypatch.setattr(resources, "_has_nvidia_smi", lambda: False)
    got = resources.sample(device=Broken())
    assert got["gpu_util_percent"] is None and got["gpu_mem_mb"] is None and got["rss_mb"] is not None


def test_a_jax_device_gives_its_memory(monkeypatch):
    class Gpu:
        platform = "gpu"

        def memory_stats(self):
            return {"bytes_in_use": 3 * 1024 ** 3, "bytes_limit": 80 * 1024 ** 3}

    class Cpu:
        platform = "cpu"

        def memory_stats(self):
            return None

    monkeypatch.setattr(resources, "_has_nvidia_smi", lambda: False)
    assert resources.sample(device=Gpu())["gpu_mem_mb"] == 3072.0
    assert resources.sample(device=Cpu())["gpu_mem_mb"] is None


def test_nvidia_smi_output_is_parsed_and_only_asked_when_a_gpu_is_in_use(monkeypatch):
    assert resources.parse_nvidia_smi("43, 10240\n57, 2048\n") == (50.0, 12288.0)
    assert resources.parse_nvidia_smi("[N/A], 512\n") == (None, 512.0)
    assert resources.parse_nvidia_smi("") == (None, None)
    calls = []
    monkeypatch.setattr(resources, "_has_nvidia_smi", lambda: True)
    monkeypatch.setattr(resources, "_nvidia_smi", lambda: calls.append(1) or (12.0, 100.0))
    monkeypatch.setattr(resources, "_uses_nvidia", lambda pid: False)
    assert resources.sample()["gpu_util_percent"] is None and not calls  # no GPU open: no nvidia-smi
    monkeypatch.setattr(resources, "_uses_nvidia", lambda pid: True)
    got = resources.sample()
    assert (got["gpu_util_percent"], got["gpu_mem_mb"]) == (12.0, 100.0) and calls == [1]


def test_a_hung_nvidia_smi_times_out(monkeypatch):
    def hang(*args, **kwargs):
        raise subprocess.TimeoutExpired(args[0], kwargs.get("timeout"))

    monkeypatch.setattr(resources.subprocess, "run", hang)
    assert resources._nvidia_smi() == (None, None)
