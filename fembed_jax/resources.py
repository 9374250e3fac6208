"""What a runner process costs the machine right now: CPU %, resident memory, GPU use.

``sample(pid)`` is what the runner records once per epoch in the run store (and what the TUI
shows in its header line); it is cheap (a few /proc reads, well under 5 ms without a GPU) and
never raises: a value that cannot be read is None.

- ``cpu_percent``: CPU time over wall time since the previous ``sample`` of the same process in
  this one (the first one: over the process's life), in percent of one core (200 = two busy
  cores, as top shows it). Linux /proc; elsewhere only for this process (os.times).
- ``rss_mb``: resident memory (MiB) from /proc/<pid>/statm; elsewhere None.
- ``gpu_util_percent``, ``gpu_mem_mb``: only when a GPU is in use. Given a jax ``device``, its
  ``memory_stats()`` gives the memory (bytes in use by this process); otherwise, when the process
  has an NVIDIA device open (/proc/<pid>/fd), ``nvidia-smi --query-gpu`` (2 s timeout) gives the
  utilisation (mean over the GPUs) and the memory used (sum over the GPUs; on a shared machine
  that includes other processes). None without a GPU.

No psutil (not a dependency of fembed's own); no jax import (a device is passed in by a caller
that has jax already).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time
from typing import Any

KEYS = ("cpu_percent", "rss_mb", "gpu_util_percent", "gpu_mem_mb")
NVIDIA_SMI_TIMEOUT_S = 2.0
_NVIDIA_QUERY = ("--query-gpu=utilization.gpu,memory.used", "--format=csv,noheader,nounits")
_MIB = 1024.0 * 1024.0

# (pid, process start ticks) -> (cpu seconds, monotonic time) of the previous sample: a pid
# reused by another process starts afresh.
_last_cpu: dict[tuple[int, int], tuple[float, float]] = {}
_lock = threading.Lock()


def sample(pid: int | None = None, device: Any = None) -> dict[str, float | None]:
    """CPU %, RSS (MiB) and GPU utilisation/memory of process ``pid`` (default: this one);
    ``device``: a jax device whose ``memory_stats()`` gives the GPU memory. Never raises."""
    out: dict[str, float | None] = dict.fromkeys(KEYS)
    try:
        pid = os.getpid() if pid is None else int(pid)
        out["cpu_percent"] = _guard(_cpu_percent, pid)
        out["rss_mb"] = _guard(_rss_mb, pid)
        util, mem = _guard(_gpu, pid, device) or (None, None)
        out["gpu_util_percent"], out["gpu_mem_mb"] = util, mem
    except Exception:  # noqa: BLE001 - a sample must never take the runner down
        pass
    return out


def _guard(fn, *args):
    try:
        return fn(*args)
    except Exception:  # noqa: BLE001
        return None


# -- CPU ------------------------------------------------------------------------------------

def _cpu_percent(pid: int) -> float | None:
    now = time.monotonic()
    got = _proc_cpu(pid)
    if got is None:
        if pid != os.getpid():
            return None
        t = os.times()  # not Linux: this process only
        cpu, start, since_start = t.user + t.system, 0, None
    else:
        cpu, start, since_start = got
    key = (pid, start)
    with _lock:
        previous = _last_cpu.get(key)
        _last_cpu[key] = (cpu, now)
        if len(_last_cpu) > 256:  # many pids sampled over a long TUI session: forget the oldest
            for old in list(_last_cpu)[:128]:
                _last_cpu.pop(old, None)
    if previous is not None and now - previous[1] > 0.05:
        return _round(100.0 * max(0.0, cpu - previous[0]) / (now - previous[1]))
    if since_start and since_start > 0:
        return _round(100.0 * cpu / since_start)
    return None


def _proc_cpu(pid: int) -> tuple[float, int, float | None] | None:
    """(user+system seconds, start time in ticks, seconds since the start) from /proc."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read().decode("ascii", "replace")
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2:].split()  # the name may hold spaces and parentheses
    ticks = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    utime, stime, start = int(fields[11]), int(fields[12]), int(fields[19])
    since_start = None
    try:
        with open("/proc/uptime", "rb") as f:
            since_start = float(f.read().split()[0]) - start / ticks
    except (OSError, ValueError, IndexError):
        pass
    return (utime + stime) / ticks, start, since_start


# -- memory ---------------------------------------------------------------------------------

def _rss_mb(pid: int) -> float | None:
    try:
        with open(f"/proc/{pid}/statm", "rb") as f:
            pages = int(f.read().split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return _round(pages * os.sysconf("SC_PAGE_SIZE") / _MIB)


# -- GPU ------------------------------------------------------------------------------------

def _gpu(pid: int, device: Any) -> tuple[float | None, float | None] | None:
    if device is not None:
        if str(getattr(device, "platform", "")).lower() not in ("gpu", "cuda", "rocm"):
            return None  # a CPU device: no GPU in use
        mem = None
        stats = device.memory_stats() if hasattr(device, "memory_stats") else None
        if isinstance(stats, dict) and stats.get("bytes_in_use") is not None:
            mem = _round(float(stats["bytes_in_use"]) / _MIB)
        util, smi_mem = _nvidia_smi() if _has_nvidia_smi() else (None, None)
        return util, mem if mem is not None else smi_mem
    if not _uses_nvidia(pid) or not _has_nvidia_smi():
        return None
    return _nvidia_smi()


def _uses_nvidia(pid: int) -> bool:
    """Has process ``pid`` an NVIDIA device file open (/dev/nvidia0, /dev/nvidiactl, ...)?"""
    if not sys.platform.startswith("linux"):
        return False
    folder = f"/proc/{pid}/fd"
    try:
        names = os.listdir(folder)
    except OSError:
        return False
    for name in names:
        try:
            if os.readlink(f"{folder}/{name}").startswith("/dev/nvidia"):
                return True
        except OSError:
            continue
    return False


def _has_nvidia_smi() -> bool:
    return shutil.which("nvidia-smi") is not None


def _nvidia_smi() -> tuple[float | None, float | None]:
    try:
        done = subprocess.run(["nvidia-smi", *_NVIDIA_QUERY], capture_output=True, text=True,
                              timeout=NVIDIA_SMI_TIMEOUT_S, check=False)
    except (OSError, subprocess.SubprocessError):
        return None, None
    if done.returncode != 0:
        return None, None
    return parse_nvidia_smi(done.stdout)


def parse_nvidia_smi(text: str) -> tuple[float | None, float | None]:
    """(mean utilisation %, total memory used MiB) from ``utilization.gpu,memory.used`` lines
    ("43, 10240"); "[N/A]" fields are skipped."""
    utils, mems = [], []
    for line in text.splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) < 2:
            continue
        for value, into in ((parts[0], utils), (parts[1], mems)):
            try:
                into.append(float(value))
            except ValueError:
                pass
    util = _round(sum(utils) / len(utils)) if utils else None
    mem = _round(sum(mems)) if mems else None
    return util, mem


def _round(value: float) -> float:
    return round(float(value), 1)
