"""Estimates before work: wall time, checkpoint disk and peak memory of a run, per program shape.

The cost model. A program shape (the fields that change the compiled step: `structure_key`) on
one machine (CPU model and cores, or GPU kind and count), jax version and model/engine code
(`code_digest`) has, per member count M (experiments x seeds in the program):

    step_s(M)     seconds per training step, measured (a few timed steps) or recorded by a run;
                  between measured M, linear in M; beyond them, the line through the two
                  nearest points (one point: proportional to M, as on a CPU)
    eval_s        seconds per validation window (scaled like the step: proportional to M)
    compile_s     compile (or cache-load) seconds of the train and eval programs
    flops(M)      FLOPs of one step (XLA cost analysis of the lowered step; attention rows
                  unchunked, since XLA counts a loop's body once)
    memory(M)     XLA's memory analysis of the compiled train chunk (arguments, outputs, temps)
    checkpoint    bytes of one per-epoch step and of selected/ per member, plus fixed overhead

An experiment of E epochs, S = ceil(train windows / batch) steps and V validation windows then takes

    compile_s + E x (S x step_s(M) + V x eval_s + save_s) + V x eval_s      (final scoring)

assuming no seed stops early (an upper bound). Experiments sharing one program (a group) train
together; each is given its share K/M of the group's time, so shares add up to the group's wall.
The GPU projection of a long run uses the same model: FLOPs / an effective GPU rate, taken from a
recorded GPU measurement (bench/results/gpu*.json) or else an assumed rate, labelled "assumed".

Where a figure comes from (`Estimate.source`): "measured" (timed here now), "measured (scaled)"
(timed at a cut batch, scaled by FLOPs: a step that would take longer than MAX_MEASURED_STEP_S),
"cached" (an earlier measurement), "recorded by a run" (Engine.step_seconds of real training,
`record_engine`), "flops model" (nothing timed: FLOPs / this machine's measured rate, or an
assumed one).

Importing this module does not import jax (`fembed status` and the TUI read the cache); only
measuring and lowering do. The cache is one JSON file in the fembed cache folder, written
atomically; a damaged one is ignored with one warning.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
import os
import platform as _platform
import statistics
import tempfile
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from fembed_jax.config import ExperimentConfig, structure_key

log = logging.getLogger(__name__)

CACHE_NAME = "estimates.json"
SCHEMA = 1
DAY_S = 86_400.0
MEASURE_BUDGET_S = 20.0  # timed steps per shape, after compiling (a step is never cut midway)
PLAN_MEASURE_S = 120.0  # a plan measures new shapes until this much time went (then FLOPs only)
PLAN_LOWER_S = 120.0  # ... and lowers for FLOPs until this much (then: no time estimate)
MIN_TIMED_S = 3.0  # steady steps timed before a measurement stops (beyond the first chunk)
MAX_MEASURED_STEP_S = 4.0  # slower steps are timed at a cut batch and scaled by FLOPs
MAX_SAVED_BYTES = 256 * 2**20  # larger states: checkpoint bytes from the leaf sizes, not saved
ASSUMED_CPU_FLOPS = 2e10  # flop/s when nothing was measured on this machine yet ("assumed")
ASSUMED_GPU_FLOPS = 1e13  # effective flop/s of a GPU when none is recorded ("assumed")
KEPT_STEPS = 2  # per-epoch steps kept while training (Checkpointer's max_to_keep in group.py)
# orbax metadata per checkpointed array (files _METADATA, _sharding, array_metadatas), measured
# on orbax 0.12 (about 2 kB a leaf, plus a few kB per step); used only when no step was saved.
LEAF_OVERHEAD_BYTES = 2_100
STEP_OVERHEAD_BYTES = 16_000
_CODE_FILES = ("models/*.py", "train/engine.py", "losses.py", "optim.py")
_ROOT = Path(__file__).resolve().parent


# ---- keys -------------------------------------------------------------------------------------

def code_digest() -> str:
    """Measurements are stale once the model or engine code changes."""
    digest = hashlib.sha256()
    for pattern in _CODE_FILES:
        for path in sorted(_ROOT.glob(pattern)):
            digest.update(path.name.encode() + path.read_bytes())
    return digest.hexdigest()[:12]


def jax_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("jax")
    except PackageNotFoundError:
        return "?"


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return _platform.processor() or _platform.machine() or "cpu"


def machine(platform: str = "cpu", device_kind: str | None = None, count: int = 1) -> str:
    """'cpu:AMD EPYC 7B13 x2 cores' or 'gpu:NVIDIA H200 x1' (count: the devices a run uses)."""
    if platform == "cpu":
        return f"cpu:{cpu_name()} x{os.cpu_count() or 1} cores, {count} device(s)"
    return f"{platform}:{device_kind or '?'} x{count}"


def devices_machine(devices: Sequence) -> str:
    dev = devices[0]
    return machine(dev.platform, getattr(dev, "device_kind", None), len(devices))


def shape_id(cfg: ExperimentConfig, machine_id: str) -> str:
    blob = json.dumps([machine_id, jax_version(), code_digest(), repr(structure_key(cfg))])
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


# ---- the cache file -----------------------------------------------------------------------------

def cache_path() -> Path:
    from fembed_jax.catalog import cache_dir

    return cache_dir() / CACHE_NAME


_warned: set[str] = set()


def load_cache(path: Path | None = None) -> dict:
    """The cache, or an empty one (missing, or damaged: then one warning, and it is rebuilt)."""
    path = path or cache_path()
    empty = {"schema": SCHEMA, "shapes": {}, "runs": {}}
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return empty
    except (OSError, ValueError) as exc:
        if str(path) not in _warned:
            _warned.add(str(path))
            log.warning("estimate cache %s is unreadable (%s): ignored, it will be rebuilt", path,
                        type(exc).__name__)
        return empty
    if not isinstance(data, dict) or data.get("schema") != SCHEMA or not isinstance(data.get("shapes"), dict) \
            or not isinstance(data.get("runs"), dict):
        if str(path) not in _warned:
            _warned.add(str(path))
            log.warning("estimate cache %s has an unknown layout: ignored, it will be rebuilt", path)
        return empty
    return data


def save_cache(cache: dict, path: Path | None = None) -> None:
    from fembed_jax.atomic import atomic_write

    try:
        atomic_write(path or cache_path(), json.dumps(cache, indent=1, sort_keys=True).encode())
    except OSError as exc:  # a read-only cache only costs measuring again
        log.debug("estimate cache not written: %s", exc)


def _update_cache(change, path: Path | None = None) -> dict:
    """Read, change, write (the newest file: several processes may measure)."""
    cache = load_cache(path)
    change(cache)
    save_cache(cache, path)
    return cache


# ---- measuring ----------------------------------------------------------------------------------

class _Captured(Exception):
    pass


class _Capture:
    """Stands in for a jitted function: records the arguments of a call (and forwards it unless
    `stop`), so the program can be lowered and analysed with the arguments the Engine passes."""

    def __init__(self, fn, stop: bool):
        self.fn, self.stop, self.args = fn, stop, None

    def __call__(self, *args):
        self.args = args
        if self.stop:
            raise _Captured
        return self.fn(*args)


def _cost(analysis) -> float | None:
    if isinstance(analysis, (list, tuple)):  # older/newer jax: one dict per module
        analysis = analysis[0] if analysis else None
    if not isinstance(analysis, Mapping):
        return None
    flops = analysis.get("flops")
    return float(flops) if flops is not None and flops > 0 else None


def _memory(compiled) -> int | None:
    try:
        stats = compiled.memory_analysis()
    except (NotImplementedError, AttributeError):
        return None
    if stats is None:
        return None
    peak = getattr(stats, "peak_memory_in_bytes", 0) or 0
    total = (stats.argument_size_in_bytes + stats.output_size_in_bytes + stats.temp_size_in_bytes
             - stats.alias_size_in_bytes)
    return int(max(peak, total))


def _flops_cfg(cfg: ExperimentConfig) -> ExperimentConfig:
    """The config whose lowered step counts every FLOP: XLA's cost analysis counts a loop body
    once, and the attention embedding loops over row chunks (lowering allocates nothing, so the
    unchunked form costs nothing to analyse)."""
    if cfg.embedding == "attention":
        return cfg.replace(embedding_params={**dict(cfg.embedding_params), "row_chunk": 2**30})
    return cfg


def _lowered_chunk(cfg, data, members: int, devices):
    """(engine, lowered train chunk, abstract state) without compiling or running anything."""
    import jax

    from fembed_jax.train.engine import Engine, seed_keys

    engine = Engine(cfg, data, devices=devices)
    keys = engine.shard(seed_keys(list(range(members))))
    params, opt_state = jax.eval_shape(engine._init, keys)
    jitted = engine._chunk
    engine._chunk = capture = _Capture(jitted, stop=True)
    try:
        engine.train_epoch(params, opt_state, keys, 0, _ones(members))
    except _Captured:
        pass
    finally:
        engine._chunk = jitted
    return engine, jitted.lower(*capture.args), (params, opt_state)


def _ones(n):
    import numpy as np

    return np.ones(n, bool)


def step_flops(cfg: ExperimentConfig, data, members: int, devices=None) -> float | None:
    """FLOPs of one training step of `members` members (lowered, not compiled)."""
    try:
        return _cost(_lowered_chunk(_flops_cfg(cfg), data, members, devices)[1].cost_analysis())
    except Exception as exc:  # noqa: BLE001 - an analysis that fails leaves the figure unknown
        log.debug("no FLOPs for %s: %s", cfg.exp_id, exc)
        return None


def _cut_data(data, val_windows: int):
    from fembed_jax.train.engine import DeviceData

    starts = dict(data.starts)
    labels = dict(data.labels)
    starts["val"], labels["val"] = starts["val"][:val_windows], labels["val"][:val_windows]
    return DeviceData(data.matrix, starts, labels)


def measure(cfg: ExperimentConfig, data, members: int, devices=None, *,
            budget_s: float = MEASURE_BUDGET_S, cache_file: Path | None = None) -> dict:
    """Time a few training steps of `cfg`'s program with `members` members on `devices` and
    store the point in the cache; returns it.

    Compiles the train and eval programs (the persistent compilation cache keeps them for the
    run), times the steps after the first chunk until MIN_TIMED_S (or budget_s) has passed,
    evaluates a cut validation split twice (the second timed), saves one checkpoint step and
    selected/ to a temporary folder (their bytes), and reads XLA's FLOPs and memory analyses.
    A step predicted slower than MAX_MEASURED_STEP_S is timed at a cut batch and scaled by the
    FLOPs ratio ("measured (scaled)")."""
    import jax
    import numpy as np

    from fembed_jax.train.engine import DeviceData, Engine, seed_keys

    devices = list(devices) if devices else [jax.devices()[0]]
    members += (-members) % len(devices)
    if not isinstance(data, DeviceData):
        data = DeviceData.from_dataset(data)
    machine_id = devices_machine(devices)
    cache = load_cache(cache_file)
    flops = step_flops(cfg, data, members, devices)
    rate = machine_rate(cache, machine_id) or ASSUMED_CPU_FLOPS
    run_cfg, scale, source = cfg, 1.0, "measured"
    if flops and flops / rate > MAX_MEASURED_STEP_S and cfg.batch_size > 1:
        batch = max(1, 2 ** int(math.log2(max(1.0, cfg.batch_size * MAX_MEASURED_STEP_S * rate / flops))))
        if batch < cfg.batch_size:
            run_cfg = cfg.replace(batch_size=batch)
            cut_flops = step_flops(run_cfg, data, members, devices)
            scale = flops / cut_flops if cut_flops else cfg.batch_size / batch
            source = "measured (scaled)"
    val_windows = min(data.size("val"), 2 * run_cfg.batch_size)
    engine = Engine(run_cfg, _cut_data(data, val_windows), devices=devices)
    keys = engine.shard(seed_keys(list(range(members))))
    t0 = time.monotonic()
    params, opt_state = engine.init(keys)
    compile_s = time.monotonic() - t0
    chunks: list[tuple[float, int]] = []
    measured = engine._measured

    def note(seconds: float, steps: int) -> None:
        chunks.append((seconds, steps))
        measured(seconds, steps)

    class Enough(Exception):
        pass

    started = time.monotonic()

    def between(*_args) -> None:
        timed = sum(s for s, _ in chunks[1:])
        if len(chunks) >= 2 and (timed >= MIN_TIMED_S or time.monotonic() - started > budget_s):
            raise Enough

    engine._measured = note
    capture = _Capture(engine._chunk, stop=False)
    jitted, engine._chunk = engine._chunk, capture
    try:
        params, opt_state, _ = engine.train_epoch(params, opt_state, keys, 0, np.ones(members, bool),
                                                  between=between)
    except Enough:
        pass
    finally:
        engine._chunk, engine._measured = jitted, measured
    steady = chunks[1:] or chunks  # the first chunk includes compiling
    step_s = sum(s for s, _ in steady) / sum(n for _, n in steady)
    compile_s += max(0.0, chunks[0][0] - chunks[0][1] * step_s)
    if scale == 1.0:
        memory = _memory(jitted.lower(*capture.args).compile())  # in-process cache: no recompile
    else:  # the full batch's program, compiled (not run) for its memory analysis
        memory = _memory(_lowered_chunk(cfg, data, members, devices)[1].compile())
    t0 = time.monotonic()
    engine.evaluate(params, "val")
    first_eval = time.monotonic() - t0
    t0 = time.monotonic()
    engine.evaluate(params, "val")
    eval_s = time.monotonic() - t0
    compile_s += max(0.0, first_eval - eval_s)
    point = {"members": members, "step_seconds": step_s * scale, "source": source,
             "eval_seconds_per_window": eval_s / max(val_windows, 1),  # per window: batch-independent
             "compile_seconds": compile_s, "flops_per_step": flops, "peak_memory_bytes": memory,
             "timed_batch": run_cfg.batch_size,
             "measured_at": time.time()}
    point.update(_checkpoint_sizes(cfg, params, opt_state, keys, members))

    def store(c: dict) -> None:
        _shape_entry(c, cfg, machine_id)["points"][str(members)] = point

    _update_cache(store, cache_file)
    return point


def _shape_entry(cache: dict, cfg: ExperimentConfig, machine_id: str) -> dict:
    return cache["shapes"].setdefault(shape_id(cfg, machine_id), {
        "machine": machine_id, "jax": jax_version(), "code": code_digest(),
        "shape": repr(structure_key(cfg)), "points": {}})


def _remember_flops(cfg: ExperimentConfig, machine_id: str, members: int, flops: float,
                    cache_file: Path | None) -> None:
    def store(c: dict) -> None:
        _shape_entry(c, cfg, machine_id).setdefault("flops", {})[str(members)] = flops

    _update_cache(store, cache_file)


def cached_flops(entry: dict | None, members: int) -> float | None:
    """A shape's FLOPs per step at `members`, from a FLOPs count lowered earlier (a plan that
    timed nothing) or a measured point, scaled in proportion to M from the nearest count (a
    step's FLOPs are the members' sum)."""
    if not entry:
        return None
    counts = {int(m): f for m, f in entry.get("flops", {}).items() if f}
    counts.update({p["members"]: p["flops_per_step"] for p in entry.get("points", {}).values()
                   if p.get("flops_per_step")})
    if not counts:
        return None
    nearest = min(counts, key=lambda m: abs(m - members))
    return counts[nearest] * members / nearest


def _checkpoint_sizes(cfg, params, opt_state, keys, members: int) -> dict:
    """Bytes per member and fixed bytes of one per-epoch checkpoint step and of selected/:
    saved for real (tree_bytes) when small enough, else from the leaves' sizes."""
    import jax
    import numpy as np

    from fembed_jax.train.early_stopping import StopState
    from fembed_jax.train.fit import selected_key, state_tree

    state = state_tree(params, opt_state, params, keys, StopState.fresh(members), 0)
    selected = {selected_key(cfg): params, "stop": state["stop"], "epoch": state["epoch"]}
    nbytes = lambda tree: sum(int(np.asarray(x).nbytes) for x in jax.tree.leaves(tree))  # noqa: E731
    leaves = lambda tree: len(jax.tree.leaves(tree))  # noqa: E731
    raw_step, raw_sel = nbytes(state), nbytes(selected)
    sizes = {"step_member_bytes": raw_step / members, "selected_member_bytes": raw_sel / members,
             "step_fixed_bytes": STEP_OVERHEAD_BYTES + LEAF_OVERHEAD_BYTES * leaves(state),
             "selected_fixed_bytes": STEP_OVERHEAD_BYTES + LEAF_OVERHEAD_BYTES * leaves(selected),
             "save_seconds": None, "checkpoint_source": "leaf sizes"}
    if raw_step > MAX_SAVED_BYTES:
        return sizes
    from fembed_jax.checkpoint import Checkpointer

    # orbax compresses the arrays (zstd): a fresh state's zero Adam moments shrink to nothing,
    # trained ones hardly (measured: 96% of raw). So the arrays count at their raw size and
    # only orbax's metadata (every file but the array chunks) is taken from the saved step.
    with tempfile.TemporaryDirectory(prefix="fembed-estimate-") as tmp:
        root = Path(tmp) / "x"
        meta = {"history": [], "seeds": list(range(members))}
        with Checkpointer(root, "estimate", fsync=False) as checkpointer:
            t0 = time.monotonic()
            checkpointer.save(0, state, meta)
            sizes["save_seconds"] = time.monotonic() - t0
            step = _metadata_bytes(root / "0")
            checkpointer.save_selected(0, selected, meta)
            sel = _metadata_bytes(root / "selected")
    sizes.update(step_fixed_bytes=step, selected_fixed_bytes=sel, checkpoint_source="saved")
    return sizes


def _metadata_bytes(root: Path) -> int:
    """Bytes of a saved step's files other than its array chunks (ocdbt.process_*/d/*)."""
    return sum(p.stat().st_size for p in root.rglob("*")
               if p.is_file() and not (p.parent.name == "d" and p.parent.parent.name.startswith("ocdbt.process_")))


def record_engine(engine, members: int, cache_file: Path | None = None) -> None:
    """What a real run observed: `engine.step_seconds` (the last chunk's, so call it after the
    first epoch, when at least two chunks ran) for `members` members. Later estimates of the
    shape use it ("recorded by a run"); the other figures of a measured point are kept."""
    if not engine.step_seconds:
        return
    import jax

    devices = engine.mesh.devices.ravel().tolist() if engine.mesh is not None else [jax.devices()[0]]
    machine_id = devices_machine(devices)

    def store(c: dict) -> None:
        entry = c["shapes"].setdefault(shape_id(engine.cfg, machine_id), {
            "machine": machine_id, "jax": jax_version(), "code": code_digest(),
            "shape": repr(structure_key(engine.cfg)), "points": {}})
        point = entry["points"].setdefault(str(members), {"members": members})
        point.update(step_seconds=float(engine.step_seconds), source="recorded by a run",
                     recorded_at=time.time())

    _update_cache(store, cache_file)


# ---- rates --------------------------------------------------------------------------------------

def machine_rate(cache: dict, machine_id: str) -> float | None:
    """Median FLOP/s of the steps timed at full batch on this machine (None: none yet)."""
    rates = [p["flops_per_step"] / p["step_seconds"]
             for e in cache["shapes"].values() if e.get("machine") == machine_id
             for p in e["points"].values()
             if p.get("flops_per_step") and p.get("step_seconds") and p.get("source") == "measured"]
    return statistics.median(rates) if rates else None


def gpu_rate(results_dir: Path | None = None) -> tuple[float, str]:
    """Effective GPU FLOP/s: the median flops/step_seconds of the records in
    bench/results/gpu*.json and bench/results/gpu/*.json (any object holding `flops_per_step`
    (or `flops`) and `step_seconds`), else ASSUMED_GPU_FLOPS. Returns (rate, where from)."""
    results_dir = results_dir or _ROOT.parent / "bench" / "results"
    rates, files = [], []

    def walk(node) -> None:
        if isinstance(node, Mapping):
            flops = node.get("flops_per_step", node.get("flops"))
            seconds = node.get("step_seconds")
            if isinstance(flops, (int, float)) and isinstance(seconds, (int, float)) and flops > 0 and seconds > 0:
                rates.append(flops / seconds)
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    for path in sorted([*results_dir.glob("gpu*.json"), *results_dir.glob("gpu/*.json")]):
        before = len(rates)
        try:
            walk(json.loads(path.read_text()))
        except (OSError, ValueError):
            continue
        if len(rates) > before:
            files.append(path.name)
    if rates:
        return statistics.median(rates), f"recorded GPU rate ({', '.join(files)})"
    return ASSUMED_GPU_FLOPS, f"assumed GPU rate {ASSUMED_GPU_FLOPS:.0e} flop/s"


# ---- the estimate -------------------------------------------------------------------------------

@dataclasses.dataclass
class Estimate:
    """One experiment's estimate: its share of its program's time, its own checkpoints."""

    seconds: float | None
    source: str
    checkpoint_peak_bytes: int | None
    checkpoint_after_bytes: int | None
    peak_memory_bytes: int | None
    gpu_seconds: float | None = None  # only when seconds > DAY_S
    gpu_source: str | None = None
    seconds_per_epoch: float | None = None
    compile_seconds: float | None = None
    epochs: int = 0
    steps_per_epoch: int = 0
    step_seconds: float | None = None
    members: int = 0
    flops_per_step: float | None = None

    @property
    def over_a_day(self) -> bool:
        return self.seconds is not None and self.seconds > DAY_S

    def to_json(self) -> dict:
        return dataclasses.asdict(self)


def point_at(entry: dict | None, members: int) -> dict | None:
    """The shape's figures at `members`, from its points: linear in M between the two nearest
    measured counts (one point: proportional to M). Source of the step time as recorded."""
    if not entry or not entry.get("points"):
        return None
    points = sorted(entry["points"].values(), key=lambda p: p["members"])
    timed = [p for p in points if p.get("step_seconds")]
    if not timed:
        return None
    exact = next((p for p in points if p["members"] == members and p.get("step_seconds")), None)
    base = dict(exact or min(timed, key=lambda p: abs(p["members"] - members)))
    for p in points:  # figures a recorded point lacks come from any measured one
        for key, value in p.items():
            base.setdefault(key, value)
    if exact is None:
        nearest = sorted(timed, key=lambda p: abs(p["members"] - members))[:2]
        if len(nearest) == 2 and nearest[0]["members"] != nearest[1]["members"]:
            (m0, s0), (m1, s1) = ((p["members"], p["step_seconds"]) for p in nearest)
            step = s0 + (s1 - s0) * (members - m0) / (m1 - m0)
            base["step_seconds"] = max(step, min(s0, s1) * members / max(m0, m1), 1e-9)
        else:
            base["step_seconds"] = nearest[0]["step_seconds"] * members / nearest[0]["members"]
        base["source"] = f"{base.get('source', 'measured')}, {'interpolated' if len(nearest) == 2 else 'scaled'} to {members} members"
    ratio = members / base["members"]
    for key in ("eval_seconds_per_window", "flops_per_step", "peak_memory_bytes"):
        if exact is None and base.get(key) is not None:
            base[key] = base[key] * ratio
    base["members"] = members
    return base


def _checkpoint_bytes(point: dict | None, seeds: int, params: int, epochs: int, keep: str) -> tuple[int, int]:
    """(peak during training, after it finishes with --keep) bytes of one experiment's folder.

    Peak: KEPT_STEPS steps plus the one being written (orbax deletes the oldest after the new
    one is complete); at the end selected/ joins the kept steps ("best"). After: selected/
    ("best"), the last step ("last"), the kept steps ("all")."""
    if point and point.get("step_member_bytes") is not None:
        step = point["step_fixed_bytes"] + seeds * point["step_member_bytes"]
        selected = point["selected_fixed_bytes"] + seeds * point["selected_member_bytes"]
    else:  # 4 float32 copies of the weights (params, Adam's two moments, best) per seed
        step = STEP_OVERHEAD_BYTES + 50 * LEAF_OVERHEAD_BYTES + seeds * 16 * params
        selected = STEP_OVERHEAD_BYTES + 12 * LEAF_OVERHEAD_BYTES + seeds * 4 * params
    kept = min(KEPT_STEPS, epochs)
    peak = max(min(KEPT_STEPS + 1, epochs) * step, kept * step + (selected if keep == "best" else 0))
    after = {"best": selected, "last": step, "all": kept * step}[keep]
    return int(peak), int(after)


def estimate_group(cfgs: Sequence[ExperimentConfig], train_windows: int, val_windows: int,
                   params: Mapping[str, int], *, point: dict | None, flops: float | None = None,
                   machine_id: str = "", cache: dict | None = None, keep: str = "best",
                   done_epochs: Mapping[str, int] | None = None, source: str | None = None,
                   gpu: tuple[float, str] | None = None) -> list[Estimate]:
    """Estimates of the experiments of one program (same structure), from its shape's point at
    the group's member count (`point_at`), or from FLOPs alone (`flops`, "flops model").
    `done_epochs`: epochs already checkpointed per experiment (a resumed run trains the rest)."""
    done_epochs = done_epochs or {}
    members = sum(c.seeds for c in cfgs)
    cfg0 = cfgs[0]
    steps = math.ceil(train_windows / cfg0.batch_size)
    epochs = max(c.epochs - done_epochs.get(c.exp_id, 0) for c in cfgs)
    if point is not None:
        step_s, label = point["step_seconds"], source or point.get("source", "measured")
        eval_pw = point.get("eval_seconds_per_window") or step_s / cfg0.batch_size / 3
        compile_s = point.get("compile_seconds") or 0.0
        flops = point.get("flops_per_step") or flops
        memory = point.get("peak_memory_bytes")
    elif flops:
        rate = machine_rate(cache or {"shapes": {}}, machine_id)
        step_s = flops / (rate or ASSUMED_CPU_FLOPS)
        label = "flops model" + ("" if rate else f" (assumed {ASSUMED_CPU_FLOPS:.0e} flop/s)")
        eval_pw, compile_s, memory = step_s / cfg0.batch_size / 3, 10.0, None
    else:
        return [Estimate(None, "unknown", *_checkpoint_bytes(None, c.seeds, params.get(c.exp_id, 0),
                                                             c.epochs, keep), None) for c in cfgs]
    save_s = 0.0
    if point is not None and point.get("save_seconds") and point.get("step_member_bytes"):
        save_s = point["save_seconds"]  # at the measured members: one experiment's step each
    per_epoch = steps * step_s + val_windows * eval_pw + save_s
    group_s = compile_s + epochs * per_epoch + val_windows * eval_pw if epochs > 0 else 0.0
    gpu_rate_, gpu_label = gpu or gpu_rate()
    out = []
    for c in cfgs:
        share = c.seeds / members
        seconds = group_s * share
        peak, after = _checkpoint_bytes(point, c.seeds, params.get(c.exp_id, 0), c.epochs, keep)
        est = Estimate(seconds, label, peak, after, memory, seconds_per_epoch=per_epoch * share,
                       compile_seconds=compile_s * share, epochs=c.epochs - done_epochs.get(c.exp_id, 0),
                       steps_per_epoch=steps, step_seconds=step_s, members=members, flops_per_step=flops)
        if est.over_a_day:
            if flops:  # train steps plus a forward (~1/3 of a step's FLOPs) over each val window
                total = epochs * (steps + val_windows / cfg0.batch_size / 3) * flops
                est.gpu_seconds, est.gpu_source = total / gpu_rate_ * share, gpu_label
            else:
                est.gpu_source = "no FLOPs count for this shape"
        out.append(est)
    return out


def totals(estimates: Iterable[Estimate], groups: Sequence[Sequence[str]] | None = None,
           by_id: Mapping[str, Estimate] | None = None) -> dict:
    """The whole plan: seconds summed; disk at its peak (the groups run one after the other:
    the finished ones hold their after-bytes while one group holds its peak) and after; the
    largest peak memory."""
    estimates = list(estimates)
    known = [e.seconds for e in estimates if e.seconds is not None]
    peak_disk, held = 0, 0
    if groups and by_id:
        for group in groups:
            members = [by_id[i] for i in group if i in by_id]
            peak_disk = max(peak_disk, held + sum(e.checkpoint_peak_bytes or 0 for e in members))
            held += sum(e.checkpoint_after_bytes or 0 for e in members)
    else:
        peak_disk = max((e.checkpoint_peak_bytes or 0 for e in estimates), default=0)
        held = sum(e.checkpoint_after_bytes or 0 for e in estimates)
    gpu = [e.gpu_seconds for e in estimates if e.gpu_seconds is not None]
    sources = sorted({e.source.split(",")[0] for e in estimates})
    return {"seconds": sum(known) if known else None, "unknown": len(estimates) - len(known),
            "source": ", ".join(sources), "checkpoint_peak_bytes": peak_disk,
            "checkpoint_after_bytes": held,
            "peak_memory_bytes": max((e.peak_memory_bytes or 0 for e in estimates), default=0) or None,
            "gpu_seconds": sum(gpu) if gpu else None,
            "over_a_day": sum(e.over_a_day for e in estimates)}


def estimate_plan(plan: Sequence, options, *, measure_missing: bool = True,
                  budget_s: float = MEASURE_BUDGET_S, done_epochs: Mapping[str, int] | None = None,
                  cache_file: Path | None = None, on_measure=None,
                  measure_total_s: float = PLAN_MEASURE_S, lower_total_s: float = PLAN_LOWER_S) -> tuple[dict[str, Estimate], list[list[str]]]:
    """Estimates of every plan item that will train (status != "done"), grouped as the queue
    will group them, one measurement per program shape not in the cache (`measure_missing`,
    bounded by `budget_s` each; else FLOPs only). JAX must be configured first
    (runtime.configure). Remembers each item's estimate by run hash for `fembed status` and the
    TUI (`eta_seconds`). Returns ({exp_id: Estimate}, groups as lists of exp_ids)."""
    from fembed_jax import runtime
    from fembed_jax.catalog import param_counts
    from fembed_jax.train.engine import DeviceData
    from fembed_jax.train.plan import dataset_for, plan_groups

    todo = [item for item in plan if item.status != "done"]
    groups = plan_groups(todo, options.group)
    counts = param_counts([item.cfg for item in todo])
    devices = runtime.training_devices(options.devices)
    machine_id = devices_machine(devices)
    datasets: dict = {}
    gpu = gpu_rate()
    cache = load_cache(cache_file)
    out: dict[str, Estimate] = {}
    began = time.monotonic()
    for group in groups:
        cfgs = [item.cfg for item in group]
        dataset = dataset_for(group[0], datasets)
        train_n, val_n = len(dataset.starts["train"]), len(dataset.starts["val"])
        members = sum(c.seeds for c in cfgs)
        members += (-members) % len(devices)
        entry = cache["shapes"].get(shape_id(cfgs[0], machine_id))
        point = point_at(entry, members)
        source = None
        if point is not None:
            exact = str(members) in entry["points"]
            source = "cached" if exact and point.get("source") == "measured" else None
        flops = None
        spent = time.monotonic() - began
        if point is None and measure_missing and spent < measure_total_s:
            if on_measure is not None:
                on_measure(cfgs, members)
            point = measure(cfgs[0], DeviceData.from_dataset(dataset), members, devices,
                            budget_s=budget_s, cache_file=cache_file)
            cache = load_cache(cache_file)
        elif point is None:
            flops = cached_flops(entry, members)
            if flops is None and spent < measure_total_s + lower_total_s:
                flops = step_flops(cfgs[0], DeviceData.from_dataset(dataset), members, devices)
                if flops is not None:  # a later plan reads it instead of lowering again
                    _remember_flops(cfgs[0], machine_id, members, flops, cache_file)
        ests = estimate_group(cfgs, train_n, val_n, counts, point=point, flops=flops,
                              machine_id=machine_id, cache=cache, keep=options.keep,
                              done_epochs=done_epochs, source=source, gpu=gpu)
        out.update({c.exp_id: e for c, e in zip(cfgs, ests)})

    def remember(c: dict) -> None:
        for item in todo:
            e = out[item.exp_id]
            c["runs"][item.run_hash] = {"exp_id": item.exp_id, "seconds_per_epoch": e.seconds_per_epoch,
                                        "compile_seconds": e.compile_seconds, "epochs": item.cfg.epochs,
                                        "source": e.source, "at": time.time()}
        if len(c["runs"]) > 5000:  # oldest first out
            for key in sorted(c["runs"], key=lambda k: c["runs"][k].get("at", 0))[:-5000]:
                del c["runs"][key]

    _update_cache(remember, cache_file)
    return out, [[item.exp_id for item in group] for group in groups]


# ---- ETA (fembed status, the TUI) -----------------------------------------------------------------

def eta_seconds(row: Mapping[str, Any], *, last_epoch_at: float | None = None, now: float | None = None,
                cache: dict | None = None) -> float | None:
    """Seconds left for one queue row of the run store (`RunStore.experiments()`), from the
    estimate remembered for its run hash (`estimate_plan`): its remaining epochs
    (`epochs_run` done) x seconds per epoch, plus compiling when it has not started; for a
    running one, minus the time since its last epoch (or its start). 0 for done/failed/skipped;
    None when no estimate of this run hash exists on this machine. Jax-free."""
    state = row.get("state")
    if state in ("done", "failed", "skipped"):
        return 0.0
    cache = cache if cache is not None else load_cache()
    known = cache["runs"].get(row.get("run_hash") or "")
    if not known or known.get("seconds_per_epoch") is None:
        return None
    epochs = known.get("epochs") or epochs_of(row)
    done = int(row.get("epochs_run") or 0)
    left = max(0, epochs - done) * known["seconds_per_epoch"]
    if done == 0:
        left += known.get("compile_seconds") or 0.0
    if state == "running":
        now = time.time() if now is None else now
        since = last_epoch_at or row.get("started_at")
        if since:
            left -= min(max(0.0, now - since), known["seconds_per_epoch"] * 0.95)
    return max(0.0, left)


def epochs_of(row: Mapping[str, Any]) -> int:
    """The epochs a store queue row's config trains for (its config_json); 0 if unreadable."""
    try:
        return int(json.loads(row.get("config_json") or "{}").get("epochs") or 0)
    except (ValueError, TypeError):
        return 0


@dataclasses.dataclass(frozen=True)
class QueueEta:
    seconds: float | None  # the queue's time left; None when no row of it has an estimate
    unknown: int  # rows left without an estimate (not counted in seconds)
    per_row: dict[str, float | None]  # exp_id -> its time left (rows not left: absent)


# The states whose work is left; a stalled or interrupted experiment resumes from its last
# epoch, so it is timed as pending: no time already spent inside an epoch counts.
_LEFT = {"running": "running", "pending": "pending", "stalled": "pending", "interrupted": "pending"}


def queue_eta(rows: Iterable[Mapping[str, Any]], *, last_epoch_at: Mapping[str, float] | None = None,
              now: float | None = None, cache: dict | None = None) -> QueueEta:
    """The queue's time left: its rows left, one after the other (a shared program's members'
    shares add up to its wall time). Rows are `RunStore.experiments()` rows; a row's
    "shown_state" (fembed_jax.liveness.shown_state) wins over its stored state."""
    cache = cache if cache is not None else load_cache()
    last_epoch_at = last_epoch_at or {}
    per_row: dict[str, float | None] = {}
    for row in rows:
        state = _LEFT.get(row.get("shown_state") or row.get("state"))
        if state is None:
            continue
        eta = eta_seconds({**row, "state": state}, last_epoch_at=last_epoch_at.get(row["exp_id"]),
                          now=now, cache=cache)
        per_row[row["exp_id"]] = None if eta is None else round(eta, 1)
    known = [v for v in per_row.values() if v is not None]
    unknown = len(per_row) - len(known)
    return QueueEta(round(sum(known), 1) if known or not unknown else None, unknown, per_row)
