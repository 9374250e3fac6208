"""Shared helpers of the bench/ scripts: machine and version records, statistics, worker processes.

Every result file has the same top-level layout as bench/results/data_build.json: "benchmark",
"machine", "versions", "threads", "repeats", "statistic", then the figures. Timings are medians
over repeats with their spread (min, max) and the raw values.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from importlib.metadata import version
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
# A benchmark measures the checkout it belongs to (a worktree of an older commit included), not
# whichever fembed the virtual environment has installed in editable mode.
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
RESULTS = HERE / "results"
RESULT_TAG = "BENCH_RESULT "  # a worker prints its result on one line that starts with this


def machine() -> dict:
    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory_gb = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                memory_gb = round(int(line.split()[1]) / 1024**2, 1)
                break
    except OSError:
        pass
    return {"platform": platform.platform(), "cpu": cpu, "cpu_count": os.cpu_count(),
            "schedulable_cpus": len(os.sched_getaffinity(0)), "memory_gb": memory_gb,
            "python": sys.version.split()[0]}


def versions(torch: bool = True) -> dict:
    out = {}
    for pkg in ("fembed", "jax", "jaxlib", "flax", "optax", "numpy") + (("torch",) if torch else ()):
        try:
            out[pkg] = version(pkg)
        except Exception:  # noqa: BLE001
            out[pkg] = None
    return out


def jax_threads() -> int:
    """Threads XLA's CPU client runs an op with: its Eigen pool spans every schedulable core."""
    return len(os.sched_getaffinity(0))


def threads(torch_threads: int | None = None) -> dict:
    """The thread-related settings a timing depends on (environment as the workers see it)."""
    env = {k: os.environ.get(k) for k in ("XLA_FLAGS", "JAX_PLATFORMS", "OMP_NUM_THREADS",
                                          "MKL_NUM_THREADS", "LD_PRELOAD")}
    return {"jax_effective_threads": jax_threads(),
            "jax_note": "XLA:CPU runs ops on one Eigen pool over all schedulable cores; "
                        "no thread flag is set by fembed",
            "torch_threads": torch_threads if torch_threads is not None else jax_threads(),
            "torch_note": "torch.set_num_threads(torch_threads) in the torch worker (interop "
                          "threads left at torch's default; eager training does not use them)",
            "env": env}


def load_average() -> list[float]:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return []


def cpu_steal_seconds() -> float | None:
    """CPU time the hypervisor gave other guests so far, all cores (/proc/stat 'steal'; Linux)."""
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()
        return int(fields[8]) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


def spread(values: list[float], digits: int = 4) -> dict:
    """median, min, max and the raw values."""
    if not values:
        return {"median": None, "min": None, "max": None, "values": []}
    return {"median": round(statistics.median(values), digits), "min": round(min(values), digits),
            "max": round(max(values), digits), "values": [round(v, digits) for v in values]}


def ratio(num: dict, den: dict, digits: int = 3) -> dict:
    """Ratio of medians, with the widest range the spreads allow (min/max .. max/min)."""
    if not num.get("median") or not den.get("median"):
        return {"median": None, "min": None, "max": None}
    return {"median": round(num["median"] / den["median"], digits),
            "min": round(num["min"] / den["max"], digits),
            "max": round(num["max"] / den["min"], digits)}


def header(benchmark: str, repeats: int, torch_threads: int | None = None, torch: bool = True) -> dict:
    return {"benchmark": benchmark, "machine": machine(), "versions": versions(torch),
            "threads": threads(torch_threads), "repeats": repeats, "statistic": "median",
            "load_average_start": load_average(), "cpu_steal_start": cpu_steal_seconds()}


def write(name: str | Path, result: dict, started: float) -> Path:
    """Finish `result` (load, steal and wall time since `started`) and write it: a bare name goes to
    bench/results/, a path (a scratch location, possibly outside the repository) is used as is."""
    result["load_average_end"] = load_average()
    steal_start, steal_end = result.pop("cpu_steal_start", None), cpu_steal_seconds()
    if steal_start is not None and steal_end is not None:
        # a noisy neighbour on the VM shows here and not in the load average
        result["cpu_steal_seconds"] = round(steal_end - steal_start, 1)
    result["wall_seconds"] = round(time.perf_counter() - started, 1)
    result["generated_at"] = time.strftime("%Y-%m-%d %H:%M:%S %z")
    path = name if isinstance(name, Path) else RESULTS / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {path}", flush=True)
    return path


def previous(name: str) -> dict | None:
    try:
        return json.loads((RESULTS / name).read_text())
    except (OSError, ValueError):
        return None


def run_worker(spec: dict, timeout: float | None = None, env: dict | None = None,
               scratch_cache: bool = False) -> dict:
    """Run bench/workers.py with `spec` in a fresh Python process; returns its result dict.

    scratch_cache: FEMBED_CACHE is a new empty folder, removed afterwards (the measurement
    neither uses nor fills the user's cache). A worker that fails or runs past `timeout` gives
    {"error": ...} instead of raising, so one bad measurement does not lose the others.
    """
    spec = {**spec, "launched_at": spec.get("launched_at") or time.time()}
    cmd = [sys.executable, str(HERE / "workers.py"), json.dumps(spec)]
    full_env = {**os.environ, **(env or {})}
    scratch = tempfile.mkdtemp(prefix="fembed-bench-cache-") if scratch_cache else None
    if scratch:
        full_env["FEMBED_CACHE"] = scratch
    spec_launch = time.time()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=full_env,
                              cwd=ROOT)
    except subprocess.TimeoutExpired as exc:
        return {"error": f"timed out after {timeout:.0f} s", "stderr_tail": _tail(exc.stderr)}
    finally:
        if scratch:
            shutil.rmtree(scratch, ignore_errors=True)
    for line in proc.stdout.splitlines():
        if line.startswith(RESULT_TAG):
            out = json.loads(line[len(RESULT_TAG):])
            out.setdefault("launched_at", spec_launch)
            return out
    return {"error": f"worker exited {proc.returncode} without a result",
            "stderr_tail": _tail(proc.stderr)}


def _tail(text, n: int = 1500) -> str:
    if isinstance(text, bytes):
        text = text.decode(errors="replace")
    return (text or "")[-n:]


def emit(result: dict) -> None:
    """Worker side: print the result line the parent looks for."""
    print(RESULT_TAG + json.dumps(result), flush=True)
