"""The prepared GPU check (issue 17 item 6): a short GPU window, partial results as it goes.

    python bench/bench_gpu.py                       # on the GPU machine (bench/gpu_check.sh calls it)
    python bench/bench_gpu.py --smoke               # the same sections at tiny sizes on this CPU (< 3 min)
    python bench/bench_gpu.py --smoke --simulate-missing arch,talib   # ... through the no-arch fallback
    python bench/bench_gpu.py --plan-only           # the projection alone (no training)

Sections, in this order, each in fresh processes with its own time limit (a section that runs
past it is killed and what it finished is kept); each writes its own JSON as soon as it ends,
into --results (default bench/results/gpu/) and, when $OUT is set, into $OUT as well:

  env         gpu_env.json         card (nvidia-smi, jax device_kind), versions, data used
  seeds       gpu_seeds.json       FE-06 and FE-50 epoch at K = 1, 8, 32 seeds (one jit(vmap) program)
  lf          gpu_lf.json          `fembed run --priority LF-P2 --seeds 5 --epochs 2` (grouped: 12
                                   experiments, 2 shared programs) with its epochs and compilations
  ae19        gpu_ae19.json        AE-19 (attention embedding, a500): steps of a cut epoch at K = 1, 5,
                                   scaled to the full epoch; GPU peak memory
  projection  gpu_projection.json  the projected time of `fembed run --all --seeds 5`: the total of
                                   `fembed run --all --seeds 5 --dry-run --json` when fembed has that
                                   option, and always fembed's own formula from the sections above
                                   (the formula and every input are written into the file)

Time limits (seconds; GPU / --smoke): seeds 190/80, lf 120/55, ae19 70/40, projection 40/30; the
whole run stops starting sections at --budget (450 / 215) minus what the projection needs.
Expected on an H200: about 7 minutes (see docs/gpu.md for the per-section estimates).

Data: the built-in S&P 500 needs the `arch` package (and every tier build `TA-Lib`). The GPU
machine has neither and no network: bench/gpu_check.sh installs them from wheels carried in
.cache/gpu-wheels when present. Without `arch`, the sections read the ready tier files in
.cache/gpu-tiers (the built-in tiers, built here by `bash bench/gpu_check.sh --prepare`) through
`--data DIR`; without `TA-Lib` too, a stub `talib` module lets fembed import (no tier is built
from raw data then). env.json says which path was taken.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
import benchlib  # noqa: E402

TAG = "GPU_RESULT "
TIER_DIR_DEFAULT = ROOT / ".cache" / "gpu-tiers"
LF_PRIORITY = "LF-P2"
PROJECTION_SEEDS = 5

# name -> (limit on a GPU, limit in --smoke)
LIMITS = {"seeds": (190, 80), "lf": (120, 55), "ae19": (70, 40), "projection": (40, 30)}
BUDGET = (450, 215)

GPU_SIZES = {
    "seeds": {"models": ["FE-06", "FE-50"], "seeds_list": [1, 8, 32], "repeats": 3, "max_windows": None},
    "ae19": {"seeds_list": [1, 5], "repeats": 2, "max_windows": 512, "batch_size": None},
    "lf": {"priority": LF_PRIORITY, "seeds": 5, "epochs": 2},
}
SMOKE_SIZES = {
    "seeds": {"models": ["FE-06", "FE-50"], "seeds_list": [1, 2], "repeats": 1, "max_windows": 256,
              "seeds_by_model": {"FE-50": [1]}},
    # AE-19 takes ~85 s a step of 128 windows on 2 CPU cores: the smoke trains 8-window batches.
    "ae19": {"seeds_list": [1], "repeats": 1, "max_windows": 16, "batch_size": 8},
    "lf": {"priority": "LF-P11", "seeds": 1, "epochs": 1},
}


def say(msg: str) -> None:
    print(f"[bench_gpu {time.strftime('%H:%M:%S')}] {msg}", flush=True)


# ---- data and environment ----------------------------------------------------------------------
def have(module: str, hidden: set[str]) -> bool:
    return module not in hidden and importlib.util.find_spec(module) is not None


def prepare_env(args, scratch: Path) -> tuple[dict, dict]:
    """(environment for every child, the data record): which data path the run takes."""
    hidden = {m.strip() for m in (args.simulate_missing or "").split(",") if m.strip()}
    env = dict(os.environ)
    env["PYTHONUNBUFFERED"] = "1"
    shims = scratch / "shims"
    paths = []
    data = {"arch": have("arch", hidden), "talib": have("talib", hidden), "hidden_for_test": sorted(hidden)}
    if data["arch"] and data["talib"]:
        data.update(mode="builtin", data_args=[],
                    note="built-in S&P 500 from the arch package (tiers built here)")
    else:
        tier_dir = Path(args.tier_dir)
        files = sorted(p.name for p in tier_dir.glob("*.parquet")) if tier_dir.is_dir() else []
        if not files:
            raise SystemExit(f"bench_gpu: arch {'found' if data['arch'] else 'missing'}, TA-Lib "
                             f"{'found' if data['talib'] else 'missing'}, and no ready tier files in "
                             f"{tier_dir}: run `bash bench/gpu_check.sh --prepare` on a machine with "
                             "PyPI first (wheels into .cache/gpu-wheels, tiers into .cache/gpu-tiers)")
        data.update(mode="tier_dir", tier_dir=str(tier_dir), tier_files=files,
                    data_args=["--data", str(tier_dir)],
                    note="the built-in tiers as ready tier files (built elsewhere by gpu_check.sh "
                         "--prepare; arch " + ("missing" if not data["arch"] else "found") + ")")
        try:
            data["prepared"] = json.loads((tier_dir / "prepared.json").read_text())
        except (OSError, ValueError):
            pass
        env["FEMBED_GPU_TIER_DIR"] = str(tier_dir)
        if not data["talib"]:
            stub = scratch / "stub" / "talib"
            stub.mkdir(parents=True, exist_ok=True)
            (stub / "__init__.py").write_text(
                '"""Stub written by bench/bench_gpu.py: TA-Lib is missing; nothing here computes."""\n'
                "def __getattr__(name):\n    def missing(*a, **k):\n"
                "        raise RuntimeError('TA-Lib is not installed (bench_gpu stub): tiers cannot be built here')\n"
                "    return missing\n")
            paths.insert(0, str(stub.parent))
            data["note"] += "; TA-Lib missing: a stub talib module lets fembed import"
    still_hidden = hidden - ({"talib"} if paths else set())  # the stub stands in for talib
    if still_hidden:
        # a sitecustomize that makes the hidden modules unimportable in every child (smoke only)
        shims.mkdir(parents=True, exist_ok=True)
        (shims / "sitecustomize.py").write_text(
            "import sys\nclass _Hide:\n    def find_spec(self, name, path=None, target=None):\n"
            f"        if name.split('.')[0] in {sorted(still_hidden)!r}:\n"
            "            raise ImportError(f'{name} hidden by bench_gpu --simulate-missing')\n"
            "        return None\nsys.meta_path.insert(0, _Hide())\n")
        paths.append(str(shims))
    if paths:
        env["PYTHONPATH"] = os.pathsep.join(paths + [env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return env, data


def card_name() -> str | None:
    if not shutil.which("nvidia-smi"):
        return None
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=name,memory.total,driver_version",
                              "--format=csv,noheader"], capture_output=True, text=True, timeout=15)
        return out.stdout.strip().splitlines()[0] if out.returncode == 0 and out.stdout.strip() else None
    except (OSError, subprocess.SubprocessError, IndexError):
        return None


# ---- running children with a deadline -----------------------------------------------------------
def run_child(cmd: list[str], env: dict, limit: float, log: Path) -> tuple[list[dict], dict]:
    """Run cmd (own process group) for at most `limit` s; returns (its GPU_RESULT lines, status).
    Output goes to `log`; result lines are collected as they come, so a kill keeps them."""
    results: list[dict] = []
    started = time.time()
    with open(log, "a") as fh:
        fh.write(f"\n$ {' '.join(cmd)}\n")
        fh.flush()
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                env=env, cwd=ROOT, start_new_session=True)

        def reader():
            for line in proc.stdout:
                fh.write(line)
                fh.flush()
                if line.startswith(TAG):
                    try:
                        results.append(json.loads(line[len(TAG):]))
                    except ValueError:
                        pass

        thread = threading.Thread(target=reader, daemon=True)
        thread.start()
        try:
            proc.wait(timeout=max(1.0, limit))
            timed_out = False
        except subprocess.TimeoutExpired:
            timed_out = True
            # SIGINT first: fembed stops cleanly (checkpoint, store, its timing record); then KILL.
            for sig, wait in ((signal.SIGINT, 8.0), (signal.SIGKILL, None)):
                try:
                    os.killpg(proc.pid, sig)  # the child we started, and its own children
                except ProcessLookupError:
                    break
                try:
                    proc.wait(timeout=wait)
                    break
                except subprocess.TimeoutExpired:
                    continue
        thread.join(timeout=10)
    status = {"returncode": proc.returncode, "timed_out": timed_out, "limit_seconds": round(limit, 1),
              "wall_seconds": round(time.time() - started, 1)}
    if proc.returncode and not timed_out:
        status["log_tail"] = _tail(log)
    return results, status


def _tail(log: Path, n: int = 1500) -> str:
    try:
        return log.read_text()[-n:]
    except OSError:
        return ""


def fembed_cmd(*argv: str) -> list[str]:
    return [sys.executable, "-c", "import sys; from fembed_jax.cli.main import main; sys.exit(main(sys.argv[1:]))",
            *argv]


# ---- the sections (parent side) -----------------------------------------------------------------
class Runner:
    def __init__(self, args):
        self.args = args
        self.smoke = args.smoke
        self.platform = "cpu" if args.smoke else args.platform
        self.sizes = SMOKE_SIZES if args.smoke else GPU_SIZES
        self.t0 = time.time()
        self.budget = args.budget or BUDGET[1 if args.smoke else 0]
        self.results_dir = Path(args.results)
        self.results_dir.mkdir(parents=True, exist_ok=True)
        self.out_dir = Path(os.environ["OUT"]) if os.environ.get("OUT") else None
        self.scratch = Path(tempfile.mkdtemp(prefix="fembed-gpu-check-"))
        self.log = Path(args.log) if args.log else self.results_dir / "gpu_check_children.log"
        self.log.write_text("")
        self.env, self.data = prepare_env(args, self.scratch)
        # one FEMBED_CACHE for every section (tier cache, parameter counts, compiled programs,
        # throughput figures that real runs leave for `--dry-run --json`), fresh unless given
        self.cache = Path(args.cache) if args.cache else self.scratch / "cache"
        self.env["FEMBED_CACHE"] = str(self.cache)
        # parameter counts of all 183 models take ~30 s to compute on 2 cores: start from a copy
        # (prepared next to the tier files, or this checkout's cache); a stale entry is recomputed
        for counts in (Path(args.tier_dir) / "param_counts.json", ROOT / ".cache" / "param_counts.json"):
            if counts.is_file() and not (self.cache / "param_counts.json").exists():
                self.cache.mkdir(parents=True, exist_ok=True)
                shutil.copy(counts, self.cache / "param_counts.json")
        self.project = self.scratch / "project"  # outputs/checkpoints of the fembed runs
        self.written: dict[str, dict] = {}

    def limit(self, name: str) -> float:
        own = LIMITS[name][1 if self.smoke else 0]
        reserve = 0 if name == "projection" else LIMITS["projection"][1 if self.smoke else 0]
        left = self.budget - (time.time() - self.t0) - reserve
        return min(own, left)

    def write(self, name: str, result: dict) -> None:
        result.setdefault("machine", benchlib.machine())
        result["smoke"] = self.smoke
        result["platform"] = self.platform
        result["generated_at"] = time.strftime("%Y-%m-%d %H:%M:%S %z")
        result["since_start_seconds"] = round(time.time() - self.t0, 1)
        text = json.dumps(result, indent=2) + "\n"
        for folder in filter(None, (self.results_dir, self.out_dir)):
            folder.mkdir(parents=True, exist_ok=True)
            (folder / f"gpu_{name}.json").write_text(text)
        self.written[name] = result
        say(f"wrote gpu_{name}.json ({result.get('status', {}).get('wall_seconds', '-')} s)")

    def worker(self, spec: dict, limit: float) -> tuple[list[dict], dict]:
        spec = {**spec, "platform": self.platform, "deadline": time.time() + limit - 3}
        return run_child([sys.executable, str(Path(__file__)), "--worker", json.dumps(spec)],
                         self.env, limit, self.log)

    # env: card, versions, data path
    def env_section(self) -> None:
        code = ("import json, jax, importlib.metadata as m\n"
                "d = jax.devices()\n"
                "v = {}\n"
                "for p in ('jax','jaxlib','flax','optax','orbax-checkpoint','numpy','pandas','arch','ta-lib',"
                "'fembed','jax-cuda12-plugin','jax-cuda13-plugin'):\n"
                "    try: v[p] = m.version(p)\n"
                "    except Exception: v[p] = None\n"
                f"print({TAG!r} + json.dumps({{'backend': jax.default_backend(), 'devices': [str(x) for x in d],"
                " 'device_kind': getattr(d[0], 'device_kind', None), 'versions': v}))\n")
        env = dict(self.env)
        if self.platform == "cpu":
            env["JAX_PLATFORMS"] = "cpu"
        lines, status = run_child([sys.executable, "-c", code], env, 120, self.log)
        info = lines[0] if lines else {}
        card = card_name()
        result = {"benchmark": "GPU check: machine, versions, data", "card": card,
                  "device_kind": info.get("device_kind"), "backend": info.get("backend"),
                  "devices": info.get("devices"), "versions": info.get("versions"),
                  "python": sys.version.split()[0], "data": {k: v for k, v in self.data.items() if k != "data_args"},
                  "budget_seconds": self.budget, "limits": {k: v[1 if self.smoke else 0] for k, v in LIMITS.items()},
                  "sizes": self.sizes, "status": status}
        result["card_name"] = card.split(",")[0].strip() if card else (info.get("device_kind") or "unknown")
        self.write("env", result)
        if not self.smoke and info.get("backend") not in ("gpu", "cuda"):
            say(f"warning: JAX backend is {info.get('backend')!r}, not a GPU")

    def seeds_section(self) -> None:
        sizes = self.sizes["seeds"]
        limit = self.limit("seeds")
        rows, statuses = [], {}
        started = time.time()
        for i, exp in enumerate(sizes["models"]):
            share = (limit - (time.time() - started)) / (len(sizes["models"]) - i)
            if share < 10:
                statuses[exp] = {"skipped": "no time left"}
                continue
            ks = (sizes.get("seeds_by_model") or {}).get(exp, sizes["seeds_list"])
            say(f"seeds: {exp} K={ks} (limit {share:.0f} s)")
            lines, statuses[exp] = self.worker({"exp": exp, "seeds_list": ks,
                                                "repeats": sizes["repeats"], "warmup": 1,
                                                "max_windows": sizes["max_windows"]}, share)
            base = next((r for r in lines if r.get("seeds") == 1 and "epoch_seconds" in r), None)
            for r in lines:
                if "epoch_seconds" in r and r["epoch_seconds"]:
                    r["epoch"] = benchlib.spread(r["epoch_seconds"])
                    r["per_seed_epoch"] = benchlib.spread([s / r["seeds"] for s in r["epoch_seconds"]])
                    if base and base is not r:
                        r["per_seed_vs_k1"] = benchlib.ratio(r["per_seed_epoch"], base["per_seed_epoch"])
                rows.append(r)
            self.write("seeds", {"benchmark": "K seeds in one jit(vmap) program on the GPU (engine level)",
                                 "rows": rows, "status": {"workers": statuses, "limit_seconds": round(limit, 1),
                                                          "wall_seconds": round(time.time() - started, 1)}})

    def ae19_section(self) -> None:
        sizes = self.sizes["ae19"]
        limit = self.limit("ae19")
        if limit < 15:
            self.write("ae19", {"benchmark": "AE-19", "rows": [], "status": {"skipped": "no time left"}})
            return
        say(f"ae19: K={sizes['seeds_list']} cut epoch of {sizes['max_windows']} windows (limit {limit:.0f} s)")
        lines, status = self.worker({"exp": "AE-19", "seeds_list": sizes["seeds_list"], "repeats": sizes["repeats"],
                                     "warmup": 1, "max_windows": sizes["max_windows"],
                                     "batch_size": sizes["batch_size"], }, limit)
        for r in lines:
            if r.get("epoch_seconds"):
                r["step"] = benchlib.spread([s / r["batches_per_epoch"] for s in r["epoch_seconds"]], 4)
                r["full_epoch_projected_seconds"] = round(r["step"]["median"] * r["full_batches_per_epoch"], 2)
        self.write("ae19", {"benchmark": "AE-19 (attention embedding over 500 features): training steps of a "
                                         "cut epoch, scaled to the full epoch",
                            "rows": lines, "status": status,
                            "how": "one Engine per K; the first (cut) epoch compiles, the next are timed; "
                                   "step = epoch / batches; full epoch = step x the full split's batches"})

    def lf_section(self) -> None:
        sizes = self.sizes["lf"]
        limit = self.limit("lf")
        if limit < 20:
            self.write("lf", {"benchmark": "grouped LF priority", "status": {"skipped": "no time left"}})
            return
        timings = self.scratch / "lf_timings.json"
        argv = ["run", "--priority", sizes["priority"], "--seeds", str(sizes["seeds"]), "--epochs",
                str(sizes["epochs"]), "--device", "cpu" if self.platform == "cpu" else "gpu",
                "--outputs", str(self.project / "outputs"), "--checkpoints", str(self.project / "checkpoints"),
                *self.data["data_args"]]
        env = {**self.env, "FEMBED_BENCH_TIMINGS": str(timings)}
        say(f"lf: fembed {' '.join(argv)} (limit {limit:.0f} s)")
        launched = time.time()
        _, status = run_child([sys.executable, str(HERE / "fembed_timed.py"), *argv], env, limit, self.log)
        result = {"benchmark": f"`fembed run --priority {sizes['priority']}` grouped on the GPU",
                  "command": "fembed " + " ".join(argv[:8]) + " --outputs TMP --checkpoints TMP"
                             + (" --data TIERS" if self.data["data_args"] else ""),
                  "priority": sizes["priority"], "seeds": sizes["seeds"], "epochs": sizes["epochs"],
                  "status": status}
        try:
            rec = json.loads(timings.read_text())
        except (OSError, ValueError):
            rec = None
        if rec:
            rel = lambda t: round(t - launched, 2)  # noqa: E731
            epochs = [{"exp": e["exp"], "members": e.get("seeds"), "start": rel(e["start"]), "end": rel(e["end"]),
                       "seconds": round(e["end"] - e["start"], 3)} for e in rec["epochs"]]
            compiles = [c for c in rec["compiles"] if c.get("cache") is not None or c["seconds"] > 0.2]
            result.update(
                wall_seconds=round(rec.get("exited", time.time()) - launched, 1),
                jax_configured_seconds=rel(rec["configured"]) if rec.get("configured") else None,
                epoch_timings=epochs,
                train_program_compilations=sum(1 for c in rec["compiles"] if "epoch" in c["fun"]),
                programs_compiled=len(compiles),
                compile_seconds=round(sum(c["seconds"] for c in compiles), 2),
                cache_hits=rec["cache_events"].count("cache_hits"),
                cache_misses=rec["cache_events"].count("cache_misses"),
                between_epochs_seconds=_between_epochs(epochs))
        result["store"] = _store_summary(self.project / "outputs" / "fembed.db")
        self.write("lf", result)

    def projection_section(self) -> None:
        limit = self.limit("projection")
        spec = {"seeds": PROJECTION_SEEDS, "results": str(self.results_dir), "data_args": self.data["data_args"],
                "outputs": str(self.project / "outputs"), "checkpoints": str(self.project / "checkpoints"),
                "deadline": time.time() + limit - 3}
        env = {**self.env, "JAX_PLATFORMS": "cpu"}  # parameter counts only: leave the GPU alone
        say(f"projection: `fembed run --all --seeds {PROJECTION_SEEDS}` (limit {limit:.0f} s)")
        lines, status = run_child([sys.executable, str(Path(__file__)), "--project", json.dumps(spec)],
                                  env, max(limit, 15), self.log)
        result = lines[-1] if lines else {"error": "the projection process gave no result"}
        result["benchmark"] = f"projected time of `fembed run --all --seeds {PROJECTION_SEEDS}`"
        result["status"] = status
        self.write("projection", result)

    def run(self, sections: list[str]) -> int:
        say(f"{'smoke (CPU, tiny sizes)' if self.smoke else 'GPU'} check; budget {self.budget} s; "
            f"data: {self.data['note']}; results {self.results_dir}")
        self.env_section()
        for name in sections:
            try:
                getattr(self, f"{name}_section")()
            except Exception as exc:  # noqa: BLE001 - one broken section must not lose the others
                say(f"{name}: failed: {exc!r}")
                self.write(name, {"benchmark": name, "status": {"error": repr(exc)}})
        say(f"done in {time.time() - self.t0:.0f} s")
        if self.out_dir and self.log.exists():
            shutil.copy(self.log, self.out_dir / "gpu_children.log")
        shutil.rmtree(self.scratch, ignore_errors=True)
        return 0


def _between_epochs(epochs: list[dict]) -> dict | None:
    """Seconds from the end of one train epoch to the start of the next one of the same program:
    validation, store writes, checkpoint (what an epoch costs beyond its training steps)."""
    gaps = []
    for a, b in zip(epochs, epochs[1:]):
        if a["exp"] == b["exp"] and b["start"] >= a["end"]:
            gaps.append(b["start"] - a["end"])
    return benchlib.spread(gaps, 3) if gaps else None


def _store_summary(db: Path) -> dict | None:
    import sqlite3

    if not db.exists():
        return None
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        rows = con.execute("SELECT state, count(*) FROM experiments GROUP BY state").fetchall()
        con.close()
        return {"states": {s: n for s, n in rows}}
    except sqlite3.Error as exc:
        return {"error": str(exc)}


# ---- the engine worker (child side) -------------------------------------------------------------
def data_config():
    """The registry's [data] as `fembed run` builds it, with the prepared tier dir when given."""
    from fembed_jax.data.config import DataConfig
    from fembed_jax.registry import load_registry

    reg = load_registry()
    table = dict(reg.data)
    files = {n: s.file for n, s in reg.tiers.items() if s.file}
    if files and "tier_files" not in table:
        table["tier_files"] = files
    cfg = DataConfig.from_mapping(table, reg.path)
    if os.environ.get("FEMBED_GPU_TIER_DIR"):
        cfg = cfg.with_data_path(os.environ["FEMBED_GPU_TIER_DIR"])
    return reg, cfg


def worker(spec: dict) -> int:
    from fembed_jax import runtime

    runtime.configure(spec.get("platform", "cpu"), devices=1)
    import jax
    import jax.monitoring
    import jax.numpy as jnp
    import numpy as np

    from fembed_jax.data import load_dataset
    from fembed_jax.models import count_params
    from fembed_jax.train.engine import DeviceData, Engine, seed_keys

    events: dict[str, float] = {}
    hits = {"hits": 0, "misses": 0}

    def on_duration(event, duration, **kwargs):
        name = event.rsplit("/", 1)[-1]
        events[name] = events.get(name, 0.0) + duration

    def on_event(event, **kwargs):
        name = event.rsplit("/", 1)[-1]
        if name in ("cache_hits", "cache_misses"):
            hits[name[6:]] += 1

    jax.monitoring.register_event_duration_secs_listener(on_duration)
    jax.monitoring.register_event_listener(on_event)
    reg, dcfg = data_config()
    base = reg.get(spec["exp"])
    if spec.get("batch_size"):
        base = base.replace(batch_size=int(spec["batch_size"]))
    t0 = time.perf_counter()
    ds = load_dataset(base.tier, dcfg, task=base.task, horizon=base.horizon, context_length=base.context_length)
    starts, labels = dict(ds.starts), dict(ds.labels)
    full_train = int(starts["train"].shape[0])
    if spec.get("max_windows"):
        m = int(spec["max_windows"])
        starts = {k: v[:m] for k, v in starts.items()}
        labels = {k: v[:m] for k, v in labels.items()}
    data = DeviceData(matrix=jnp.asarray(ds.matrix, jnp.float32),
                      starts={k: jnp.asarray(v, jnp.int32) for k, v in starts.items()},
                      labels={k: jnp.asarray(v, jnp.float32) for k, v in labels.items()})
    data_s = time.perf_counter() - t0
    device = jax.devices()[0]
    last_wall = None
    for k in spec["seeds_list"]:
        left = float(spec.get("deadline", 1e18)) - time.time()
        if last_wall is not None and left < 1.3 * last_wall * max(1.0, k / max(1, prev_k) * 0.5):
            print(TAG + json.dumps({"exp": base.exp_id, "seeds": k, "skipped": f"{left:.0f} s left"}), flush=True)
            continue
        started = time.perf_counter()
        events.clear()
        hits.update(hits=0, misses=0)
        cfg = base.replace(seeds=k)
        engine = Engine(cfg, data, devices=[device])
        keys = seed_keys([42 + i for i in range(k)])
        t = time.perf_counter()
        params, opt_state = engine.init(keys)
        jax.block_until_ready(params)
        init_s = time.perf_counter() - t
        active = np.ones(k, bool)
        epoch_s, losses = [], []
        warmup, repeats = int(spec.get("warmup", 1)), int(spec.get("repeats", 1))
        for epoch in range(warmup + repeats):
            t = time.perf_counter()
            params, opt_state, loss = engine.train_epoch(params, opt_state, keys, epoch, active)
            loss = np.asarray(jax.block_until_ready(loss))
            epoch_s.append(time.perf_counter() - t)
            losses.append(round(float(np.mean(loss)), 5))
        t = time.perf_counter()
        jax.block_until_ready(engine.evaluate(params, "val"))
        eval_first = time.perf_counter() - t
        t = time.perf_counter()
        jax.block_until_ready(engine.evaluate(params, "val"))
        eval_s = time.perf_counter() - t
        try:
            mem = device.memory_stats() or {}
        except Exception:  # noqa: BLE001 - CPU devices may not report
            mem = {}
        n_train = int(starts["train"].shape[0])
        row = {"exp": base.exp_id, "seeds": k, "params": int(count_params(cfg)), "batch_size": cfg.batch_size,
               "train_windows": n_train, "batches_per_epoch": -(-n_train // cfg.batch_size),
               "full_train_windows": full_train, "full_batches_per_epoch": -(-full_train // cfg.batch_size),
               "val_windows": int(starts["val"].shape[0]), "data_seconds": round(data_s, 3),
               "init_seconds": round(init_s, 3), "first_epoch_seconds": round(epoch_s[0], 4),
               "epoch_seconds": [round(s, 4) for s in epoch_s[warmup:]], "losses": losses,
               "eval_first_seconds": round(eval_first, 4), "eval_seconds": round(eval_s, 4),
               "compile_events_seconds": {n: round(v, 3) for n, v in events.items()},
               "compile_seconds": round(sum(v for n, v in events.items() if n in (
                   "jaxpr_trace_duration", "jaxpr_to_mlir_module_duration", "backend_compile_duration")), 3),
               "cache": dict(hits), "device": str(device), "device_kind": getattr(device, "device_kind", None),
               "peak_device_memory_mb": round(mem["peak_bytes_in_use"] / 2**20, 1) if "peak_bytes_in_use" in mem else None,
               "wall_seconds": round(time.perf_counter() - started, 2)}
        print(TAG + json.dumps(row), flush=True)
        last_wall, prev_k = row["wall_seconds"], k
        del engine, params, opt_state
    return 0


# ---- the projection (child side) ----------------------------------------------------------------
def forward_flops(cfg, total_params: int) -> dict:
    """Multiply-adds x 2 of one window's forward pass (channel-mixing PatchTST), split into the
    dense part and the attention embedding's F x F part. Embeddings other than linear/attention
    are counted as 2 T x (their parameters): every row goes through each of their weights once."""
    T, F, P, S = cfg.context_length, cfg.num_features, cfg.patch_length, cfg.stride
    E = cfg.d_embed or F
    D, L, dff = cfg.d_model, cfg.n_layers, cfg.d_ff
    N = (T - P) // S + 1
    backbone = (P * E * D + D + (N + 10) * D + L * (4 * D * D + 4 * D + 4 * D + 2 * D * dff + dff + D)
                + 2 * D + N * D + 1 + 2 * F)
    emb_params = max(0, total_params - backbone)
    dense = (2 * T * emb_params + 2 * N * P * E * D
             + L * (2 * N * 4 * D * D + 4 * N * N * D + 4 * N * D * dff) + 2 * N * D)
    attention = 4 * T * F * F * E if cfg.embedding == "attention" else 0
    return {"dense": float(dense), "attention": float(attention)}


def _fit(points: list[tuple[float, float]]) -> dict:
    """Least squares y = c + x / R (y: seconds per step, x: FLOP per step)."""
    n = len(points)
    if n == 0:
        return {"c": 0.0, "rate": None, "how": "no measurement"}
    if n >= 2:
        mx = sum(x for x, _ in points) / n
        my = sum(y for _, y in points) / n
        sxx = sum((x - mx) ** 2 for x, _ in points)
        if sxx > 0:
            slope = sum((x - mx) * (y - my) for x, y in points) / sxx
            c = my - slope * mx
            if slope > 0 and c >= 0:
                return {"c": c, "rate": 1 / slope, "how": f"least squares over {n} measurements"}
    rate = sum(x for x, _ in points) / sum(y for _, y in points)
    return {"c": 0.0, "rate": rate, "how": f"proportional (no per-step constant) over {n} measurements"}


def project(spec: dict) -> int:
    out: dict = {"seeds": spec["seeds"]}
    # 1. fembed's own estimate, when it has one
    help_text = subprocess.run(fembed_cmd("run", "--help"), capture_output=True, text=True, cwd=ROOT).stdout
    if "--json" in help_text:
        cmd = fembed_cmd("run", "--all", "--seeds", str(spec["seeds"]), "--dry-run", "--json",
                         "--outputs", spec["outputs"], "--checkpoints", spec["checkpoints"], *spec["data_args"])
        left = max(5.0, float(spec["deadline"]) - time.time() - 10)
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=left / 2)
            dry = json.loads(proc.stdout)
            exps = dry.get("experiments", [])
            sources: dict[str, int] = {}
            for e in exps:
                src = str((e.get("estimate") or {}).get("source"))
                sources[src] = sources.get(src, 0) + 1
            out["fembed_dry_run"] = {"command": f"fembed run --all --seeds {spec['seeds']} --dry-run --json",
                                     "total": dry.get("total"), "experiments": len(exps),
                                     "estimate_sources": sources,
                                     "unestimated": sum(1 for e in exps if (e.get("estimate") or {}).get("seconds") is None)}
        except (subprocess.TimeoutExpired, ValueError, AttributeError) as exc:
            out["fembed_dry_run"] = {"error": repr(exc)[:500]}
    else:
        out["fembed_dry_run"] = {"available": False, "note": "`fembed run` has no --json yet: own formula only"}
    # 2. fembed's own formula from this run's measurements
    try:
        out["formula"] = own_projection(spec)
    except Exception as exc:  # noqa: BLE001
        import traceback

        out["formula"] = {"error": repr(exc), "traceback": traceback.format_exc()[-1500:]}
    total = (out.get("fembed_dry_run") or {}).get("total") or {}
    out["projected_seconds"] = total.get("seconds") if isinstance(total, dict) else None
    out["projected_source"] = "fembed --dry-run --json" if out["projected_seconds"] else "formula"
    if not out["projected_seconds"]:
        out["projected_seconds"] = (out.get("formula") or {}).get("total_seconds")
    print(TAG + json.dumps(out), flush=True)
    return 0


def own_projection(spec: dict) -> dict:
    from fembed_jax.catalog import param_counts
    from fembed_jax.config import structure_key
    from fembed_jax.train.schedule import make_groups

    reg, dcfg = data_config()
    results = Path(spec["results"])

    def load(name):
        try:
            return json.loads((results / name).read_text())
        except (OSError, ValueError):
            return {}

    seeds_rows = [r for r in load("gpu_seeds.json").get("rows", []) if r.get("epoch")]
    ae_rows = [r for r in load("gpu_ae19.json").get("rows", []) if r.get("step")]
    lf = load("gpu_lf.json")
    configs = [cfg.replace(seeds=spec["seeds"]) for cfg in reg.experiments]
    counts = param_counts(configs)
    flops = {c.exp_id: forward_flops(c, counts[c.exp_id]) for c in configs}
    by_id = {c.exp_id: c for c in configs}

    def step_flops(exp_id, members, batch, part):
        return 3.0 * batch * members * flops[exp_id][part]  # forward + backward ~ 3 x forward

    # dense rate and per-step constant from the linear-embedding models (FE-06, FE-50 at each K)
    pts = [(step_flops(r["exp"], r["seeds"], r["batch_size"], "dense"), r["epoch"]["median"] / r["batches_per_epoch"])
           for r in seeds_rows]
    fit = _fit(pts)
    c, rate = fit["c"], fit["rate"] or 1e12
    # the attention embedding's F x F work from AE-19: step = c + dense / R + attention / R_att
    att_rates = []
    for r in ae_rows:
        rest = r["step"]["median"] - c - step_flops("AE-19", r["seeds"], r["batch_size"], "dense") / rate
        if rest > 0:
            att_rates.append(step_flops("AE-19", r["seeds"], r["batch_size"], "attention") / rest)
    att_rate = min(att_rates) if att_rates else rate
    compile_s = [r["compile_seconds"] for r in seeds_rows + ae_rows if r.get("compile_seconds")]
    compile_per_group = sorted(compile_s)[len(compile_s) // 2] if compile_s else 30.0
    between = (lf.get("between_epochs_seconds") or {}).get("median")
    # train/val windows per tier (the built-in split), loaded once per tier when possible
    windows: dict[str, tuple[int, int]] = {}
    for tier in sorted({c.tier for c in configs}):
        try:
            from fembed_jax.data import load_dataset

            ds = load_dataset(tier, dcfg)
            windows[tier] = (int(ds.starts["train"].shape[0]), int(ds.starts["val"].shape[0]))
        except Exception:  # noqa: BLE001
            windows[tier] = (3693, 424)
    groups = make_groups(configs, cfg_of=lambda x: x, params_of=lambda x: counts[x.exp_id])
    per_group, total = [], 0.0
    for g in groups:
        members = sum(x.seeds for x in g)
        batch = g[0].batch_size
        train_w, val_w = windows[g[0].tier]
        steps, val_steps = math.ceil(train_w / batch), math.ceil(val_w / batch)
        dense = sum(step_flops(x.exp_id, x.seeds, batch, "dense") for x in g)
        att = sum(step_flops(x.exp_id, x.seeds, batch, "attention") for x in g)
        step = c + dense / rate + att / att_rate
        val = val_steps * (c + (dense / rate + att / att_rate) / 3)
        overhead = between if between is not None else val + 0.6
        epochs = max(x.epochs for x in g)
        seconds = compile_per_group + epochs * (steps * step + max(val, overhead))
        total += seconds
        per_group.append({"experiments": [x.exp_id for x in g], "members": members, "epochs": epochs,
                          "step_seconds": round(step, 5), "epoch_seconds": round(steps * step, 3),
                          "seconds": round(seconds, 1)})
    per_group.sort(key=lambda x: -x["seconds"])
    return {
        "formula": ("total = sum over groups g (experiments sharing one program: schedule.make_groups, "
                    "structure_key) of compile_g + epochs_g x (steps_g x step_g + max(val_g, between_g)); "
                    "step_g = c + F_dense_g / R + F_att_g / R_att, F = 3 x batch x members x forward FLOP "
                    "per window (bench_gpu.forward_flops); c and R fitted to the FE-06/FE-50 epochs "
                    "(gpu_seeds.json), R_att from AE-19 (gpu_ae19.json); compile_g = median measured "
                    "cold compile of a program set; between_g = measured gap between two epochs of the "
                    "grouped LF run (validation + store + checkpoint; else val_g + 0.6 s); epochs_g = "
                    "registry epochs (50): an upper bound, early stopping ends most runs sooner"),
        "fit": {"c_seconds_per_step": round(c, 6), "dense_flops_per_second": rate, "how": fit["how"],
                "attention_flops_per_second": att_rate, "points": len(pts), "attention_points": len(att_rates)},
        "compile_seconds_per_group": compile_per_group, "between_epochs_seconds": between,
        "experiments": len(configs), "groups": len(groups),
        "distinct_structures": len({structure_key(c) for c in configs}),
        "windows": windows,
        "total_seconds": round(total, 1), "total_hours": round(total / 3600, 2),
        "compile_share": round(compile_per_group * len(groups) / total, 3) if total else None,
        "largest_groups": per_group[:10],
    }


# ---- entry point -------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="CPU, tiny sizes, < 3 minutes")
    parser.add_argument("--platform", default="gpu", choices=("gpu", "cpu"))
    parser.add_argument("--results", help="default bench/results/gpu (smoke: a temporary folder)")
    parser.add_argument("--sections", default="seeds,lf,ae19,projection")
    parser.add_argument("--plan-only", action="store_true", help="only the projection")
    parser.add_argument("--budget", type=float, help="seconds for the whole run")
    parser.add_argument("--tier-dir", default=str(TIER_DIR_DEFAULT), help="ready tiers when arch is missing")
    parser.add_argument("--simulate-missing", help="comma list of modules to hide (test the fallback)")
    parser.add_argument("--cache", help="FEMBED_CACHE for the sections (default: a fresh folder)")
    parser.add_argument("--log", help="children's output (default: RESULTS/gpu_check_children.log)")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--project", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        return worker(json.loads(args.worker))
    if args.project:
        return project(json.loads(args.project))
    if not args.results:
        args.results = (tempfile.mkdtemp(prefix="fembed-gpu-smoke-") if args.smoke
                        else str(HERE / "results" / "gpu"))
    sections = ["projection"] if args.plan_only else [s for s in args.sections.split(",") if s]
    return Runner(args).run(sections)


if __name__ == "__main__":
    sys.exit(main())
