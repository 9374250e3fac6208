"""The queue runner behind `fembed run`: claim, train, record, move on.

For each selected experiment: skip it when the store holds a result for the same run hash
(config + data), otherwise claim it (several runners can share one queue), resume from its
latest intact checkpoint, train K seeds, write outputs/<ID>/results.json atomically, record the
result in the store. Experiments whose compiled program would be identical (schedule.make_groups:
same shapes and loss family, differing only in seeds, loss hyperparameters, learning rate or
weight decay) are claimed and trained together in one program; each keeps its own checkpoint,
early stopping and results, equal to those of training it alone (RunOptions.group=False turns
this off). A failing experiment is recorded with its error and the queue goes on;
Ctrl-C or SIGTERM stops within seconds: after the chunk of steps in flight, the position inside
the epoch is checkpointed and the experiment left pending (a second Ctrl-C quits at once, with
the last checkpoint). Once an experiment's result is recorded, its checkpoints shrink to what
`fembed evaluate` needs (RunOptions.keep: the selected weights by default).
A done experiment whose results.json is missing or damaged gets it rewritten from the store.
A run store that stays locked (or cannot be written) stops the queue with a clear error: the
claimed experiment is resumed by the next run, nothing is lost.
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import hashlib
import json
import os
import signal
import sqlite3
import threading
import time
import traceback
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fembed_jax import faults
from fembed_jax.config import SEED_BASE, ExperimentConfig  # seed k is SEED_BASE + k
from fembed_jax.liveness import HEARTBEAT_S, make_owner


@dataclasses.dataclass(frozen=True)
class RunOptions:
    outputs_dir: Path
    checkpoints_dir: Path
    data_config: Any  # fembed_jax.data.DataConfig
    seeds: int | None = None  # override cfg.seeds
    epochs: int | None = None  # cap cfg.epochs
    force: bool = False
    evaluate_test: bool = False
    group: bool = True  # train structurally identical experiments in one program
    devices: int | str = 1  # devices the member axis is sharded over: a count or "all"
    keep: str = "best"  # checkpoints kept once done: "best" (selected weights), "last", "all"
    chunk_steps: int | None = None  # steps between stop checks (None: a few seconds' worth)
    owner: str = dataclasses.field(default_factory=make_owner)


@dataclasses.dataclass
class PlanItem:
    cfg: ExperimentConfig
    run_hash: str
    # "done" (will be skipped), "run", "rerun" (done, again with --force), "replace" (another
    # run's finished result of this id is in the store: training replaces it, so the CLI asks
    # for --force first)
    status: str
    replaces: dict | None = None  # with "replace": the stored result's summary row


@dataclasses.dataclass
class RunSummary:
    done: list[str] = dataclasses.field(default_factory=list)
    skipped: list[str] = dataclasses.field(default_factory=list)
    failed: dict[str, str] = dataclasses.field(default_factory=dict)
    busy: list[str] = dataclasses.field(default_factory=list)  # claimed by another runner
    interrupted: str | None = None  # the experiment(s) a signal stopped, comma separated
    signal_name: str | None = None
    # where each stopped: "after epoch 3/50", "inside epoch 4/50 (step 120/400)"
    positions: dict[str, str] = dataclasses.field(default_factory=dict)

    @property
    def exit_code(self) -> int:
        if self.signal_name:  # stopped by a signal, also between experiments
            return 143 if self.signal_name == "SIGTERM" else 130
        return 1 if self.failed else 0


class RecoveryWarning(UserWarning):
    """The runner repaired something on its own (a results.json rewritten from the store)."""


def resolve(cfg: ExperimentConfig, options: RunOptions) -> ExperimentConfig:
    """Apply the command line's --seeds / --epochs to a registry config."""
    changes = {}
    if options.seeds is not None:
        changes["seeds"] = options.seeds
    if options.epochs is not None and options.epochs < cfg.epochs:
        changes["epochs"] = options.epochs
    return cfg.replace(**changes) if changes else cfg


def data_identity(data_config: Any) -> str:
    """Where the data comes from, without building it: the DataConfig fields (not the cache
    folder) plus size and mtime of any user file, so replacing the file counts as new data."""
    fields = {k: v for k, v in dataclasses.asdict(data_config).items() if k != "cache_dir"}
    for key in ("source", "vix", "tier_dir"):
        value = fields.get(key)
        if value and value != "builtin" and Path(value).exists():
            stat = Path(value).stat()
            fields[key] = f"{value}@{stat.st_size}:{stat.st_mtime_ns}"
    return json.dumps(fields, sort_keys=True, default=str)


def run_hash(cfg: ExperimentConfig, data_config: Any) -> str:
    """Identity of a result: the experiment's config hash plus where its data came from."""
    blob = f"{cfg.config_hash}|{data_identity(data_config)}"
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def seeds_of(cfg: ExperimentConfig) -> list[int]:
    return [SEED_BASE + k for k in range(cfg.seeds)]


def make_plan(configs: list[ExperimentConfig], options: RunOptions, store=None) -> list[PlanItem]:
    """What running ``configs`` would do; ``store`` None (no store yet) means nothing is done."""
    plan = []
    for cfg in configs:
        cfg = resolve(cfg, options)
        h = run_hash(cfg, options.data_config)
        stored = store.result(cfg.exp_id) if store is not None else None
        if stored is not None and stored.get("legacy"):
            stored = None  # legacy records sit beside fembed's results; training never replaces them
        if stored is not None and stored["config_hash"] == h:
            plan.append(PlanItem(cfg, h, "rerun" if options.force else "done"))
        elif stored is not None:
            plan.append(PlanItem(cfg, h, "replace", replaces=stored))
        else:
            plan.append(PlanItem(cfg, h, "run"))
    return plan


def describe_result(stored: dict) -> str:
    """'5 seeds x 50 epochs on builtin:sp500 data' for a stored result (what a replace would lose)."""
    record = stored.get("record") or {}
    seeds = len(record.get("seeds") or ()) or "?"
    epochs = (record.get("hyperparameters") or {}).get("epochs", "?")
    source = ((record.get("data") or {}).get("source_id") or "?").split("|")[0]
    return f"{seeds} seed{'' if seeds == 1 else 's'} x {epochs} epochs on {source} data"


class _Heartbeat(threading.Thread):
    """Keeps claims fresh while a long epoch runs (its own store connection: sqlite is per-thread)."""

    def __init__(self, store_path: Path, exp_ids: list[str], owner: str):
        super().__init__(daemon=True, name=f"heartbeat-{exp_ids[0]}")
        self.store_path, self.exp_ids, self.owner = store_path, list(exp_ids), owner
        self.halt = threading.Event()

    def run(self) -> None:
        from fembed_jax.store import RunStore

        with RunStore(self.store_path) as store:
            while not self.halt.wait(HEARTBEAT_S):
                for exp_id in self.exp_ids:
                    try:
                        store.heartbeat(exp_id, self.owner)
                    except Exception:  # a busy store must never kill training; the next beat retries
                        pass


class _StopFlag:
    """SIGINT/SIGTERM set a flag the training loop polls (between chunks of steps, and every
    half second while one runs); a second SIGINT aborts at once. `on_seen(name)` is called the
    first time the loop reads a raised flag: from ordinary code, not from the signal handler,
    where printing could re-enter a write in progress."""

    def __init__(self, on_seen: Callable[[str], None] | None = None):
        self.signal_name: str | None = None
        self._previous = {}
        self._on_seen = on_seen
        self._seen = False

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

    def _handle(self, signum, frame):
        if self.signal_name and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.signal_name = signal.Signals(signum).name

    def __call__(self) -> bool:
        if self.signal_name is not None and not self._seen:
            self._seen = True
            if self._on_seen is not None:
                self._on_seen(self.signal_name)
        return self.signal_name is not None


def run_queue(plan: list[PlanItem], options: RunOptions, *,
              progress: Callable[..., None] | None = None) -> RunSummary:
    """Train every item of the plan that is not done. `progress(event, **info)` is told of
    "start", "step" (a chunk of steps inside an epoch), "epoch", "end", "freed" (checkpoints
    shrunk), "skip", "busy", "failed", "signal" (a stop request was seen), "stopping" (a
    position is being checkpointed) and "interrupted" events (the CLI draws them)."""
    from fembed_jax.store import StoreError

    store_path = options.outputs_dir / "fembed.db"
    summary = RunSummary()
    notify = progress or (lambda *a, **k: None)
    datasets: dict[tuple, Any] = {}
    todo = [item for item in plan if item.status != "done"]
    store_failure = functools.partial(_store_failure, summary, notify)
    store = _open_store(plan, options, store_failure)
    if store is None:
        return summary
    with store, _StopFlag(lambda name: notify("signal", name=name)) as stop_flag:
        _skip_done(plan, store, options, summary, notify)
        queue = collections.deque(plan_groups(todo, options.group))
        position = 0
        while queue:
            if stop_flag():
                summary.signal_name = stop_flag.signal_name
                break
            group = queue.popleft()
            claimed = _claim_group(group, store, options, summary, notify, store_failure)
            if claimed is None:  # the store failed
                break
            if not claimed:
                continue
            ids = [item.cfg.exp_id for item in claimed]
            heartbeat = _Heartbeat(store_path, ids, options.owner)
            heartbeat.start()
            release_all = lambda: [_quietly(store.release, i, options.owner, "pending")  # noqa: E731
                                   for i in ids]
            try:
                outcomes = _train_group(claimed, options, store, datasets, stop_flag, notify,
                                        position, len(todo))
            except _Interrupt as exc:
                release_all()
                summary.interrupted = ", ".join(ids)
                summary.signal_name = stop_flag.signal_name
                for item in claimed:
                    epoch, step = exc.positions.get(item.cfg.exp_id, (None, None))
                    summary.positions[item.cfg.exp_id] = describe_position(
                        epoch, step, exc.steps, item.cfg.epochs)
                    notify("interrupted", cfg=item.cfg, epoch=epoch, step=step, steps=exc.steps)
                break
            except _ClaimLost as exc:  # another runner took it over: it is theirs now
                summary.busy.append(exc.exp_id)
                lost = next(item for item in claimed if item.cfg.exp_id == exc.exp_id)
                notify("busy", cfg=lost.cfg)
                rest = [item for item in claimed if item is not lost]
                for item in rest:  # they resume from their checkpoints in a group of their own
                    _quietly(store.release, item.cfg.exp_id, options.owner, "pending")
                if rest:
                    queue.appendleft(rest)
                continue
            except (StoreError, sqlite3.Error) as exc:
                release_all()
                store_failure(claimed[0], exc)
                break
            except KeyboardInterrupt:  # a second Ctrl-C: leave the experiments to be resumed
                release_all()
                raise
            except Exception as exc:  # the whole program failed: each member is recorded failed
                message = f"{type(exc).__name__}: {exc}"
                details = traceback.format_exc()
                outcomes = {item.cfg.exp_id: _Failure(message, details) for item in claimed}
            finally:
                heartbeat.halt.set()
                heartbeat.join(timeout=5)
            position += len(claimed)
            if not all(_finish(item, outcomes[item.cfg.exp_id], options, store, summary, notify,
                               store_failure) for item in claimed):
                for item in claimed:
                    if item.cfg.exp_id not in summary.done and item.cfg.exp_id not in summary.failed:
                        _quietly(store.release, item.cfg.exp_id, options.owner, "pending")
                break
        if stop_flag():  # a signal during the last experiment still shows in the exit code
            summary.signal_name = stop_flag.signal_name
    return summary


def _store_failure(summary: RunSummary, notify, item: PlanItem, exc: BaseException) -> None:
    """The store cannot be written (locked past the busy timeout, disk full): stop the queue."""
    message = (f"{type(exc).__name__}: {exc}; the queue stopped here, nothing is lost: run the "
               "same command again once the run store can be written")
    summary.failed[item.cfg.exp_id] = message
    notify("failed", cfg=item.cfg, error=message)


def _open_store(plan: list[PlanItem], options: RunOptions, store_failure):
    """The run store with the plan's experiments queued; None (and a recorded failure) when it
    cannot be opened or written."""
    from fembed_jax.store import RunStore, StoreError

    options.outputs_dir.mkdir(parents=True, exist_ok=True)
    store = None
    try:
        store = RunStore(options.outputs_dir / "fembed.db")
        # The store keys an experiment's runs by the run hash (config + data), not the bare config hash.
        store.sync_queue([{**item.cfg.to_dict(), "config_hash": item.run_hash} for item in plan])
    except (StoreError, sqlite3.Error) as exc:
        if store is not None:
            store.close()
        if plan:
            todo = [item for item in plan if item.status != "done"]
            store_failure((todo or plan)[0], exc)
        return None
    return store


def _skip_done(plan: list[PlanItem], store, options: RunOptions, summary: RunSummary, notify) -> None:
    for item in plan:
        if item.status == "done":
            summary.skipped.append(item.cfg.exp_id)
            notify("skip", cfg=item.cfg)
            _ensure_results_file(store, options, item)
            # Done before its checkpoints were freed (stopped in between, or by an older
            # fembed that kept two steps): free them now.
            if _more_than_kept(options.checkpoints_dir / item.cfg.exp_id, options.keep):
                _free_checkpoints(item.cfg, item.run_hash, options, notify)


def _claim_group(group: list[PlanItem], store, options: RunOptions, summary: RunSummary, notify,
                 store_failure) -> list[PlanItem] | None:
    """Claim the group's experiments; the ones another runner holds are reported busy. Returns
    the claimed ones (their outputs folders tidied), or None when the store failed (then nothing
    stays claimed)."""
    from fembed_jax.store import StoreError

    claimed = []
    for item in group:
        try:
            if item.status == "rerun":
                store.reset(item.cfg.exp_id)
            got = store.claim(item.cfg.exp_id, options.owner)
        except (StoreError, sqlite3.Error) as exc:
            store_failure(item, exc)
            for mine in claimed:
                _quietly(store.release, mine.cfg.exp_id, options.owner, "pending")
            return None
        if got:
            claimed.append(item)
        else:
            summary.busy.append(item.cfg.exp_id)
            notify("busy", cfg=item.cfg)
    if claimed:
        faults.hit("runner.claimed")
        for item in claimed:
            _remove_interrupted_writes(options.outputs_dir / item.cfg.exp_id)
    return claimed


def plan_groups(todo: list[PlanItem], enabled: bool = True) -> list[list[PlanItem]]:
    """The queue's training units: experiments sharing one compiled program (see schedule.py)."""
    from fembed_jax.catalog import param_counts
    from fembed_jax.train.schedule import make_groups

    counts = param_counts([item.cfg for item in todo]) if enabled and len(todo) > 1 else {}
    return make_groups(todo, cfg_of=lambda item: item.cfg,
                       params_of=lambda item: counts.get(item.cfg.exp_id, 0), enabled=enabled)


@dataclasses.dataclass
class _Failure:
    """An experiment that trained but cannot be recorded as a result (diverged, or it raised)."""

    message: str
    details: str | None = None  # a traceback for outputs/<ID>/error.log


def _finish(item: PlanItem, outcome, options: RunOptions, store, summary: RunSummary, notify,
            store_failure) -> bool:
    """Write one experiment's outputs and store record (or its failure). False: the store failed
    and the queue must stop."""
    from fembed_jax import results_io
    from fembed_jax.store import StoreError

    cfg = item.cfg
    try:
        if isinstance(outcome, _Failure):
            raise _Diverged(outcome.message)
        record, result, dataset = outcome
        faults.hit("runner.trained")
        from fembed_jax.predictions import save_predictions

        # Predictions first: a results.json on disk always has its predictions beside it.
        save_predictions(options.outputs_dir, cfg.exp_id, result, dataset)
        results_io.write_results(results_io.results_path(options.outputs_dir, cfg.exp_id), record)
        faults.hit("runner.results_written")
        store.record_result(cfg.exp_id, item.run_hash, record)
        faults.hit("runner.recorded")
        _free_checkpoints(cfg, item.run_hash, options, notify)
    except (StoreError, sqlite3.Error) as exc:
        store_failure(item, exc)
        return False
    except Exception as exc:  # recorded, and the queue goes on
        if isinstance(exc, _Diverged):
            message = str(exc)
            if isinstance(outcome, _Failure) and outcome.details:
                _write_error_log(options.outputs_dir, cfg.exp_id, outcome.details)
        else:
            message = f"{type(exc).__name__}: {exc}"
            _write_error_log(options.outputs_dir, cfg.exp_id, traceback.format_exc())
        try:
            store.mark_failed(cfg.exp_id, options.owner, message)
        except (StoreError, sqlite3.Error) as store_exc:
            store_failure(item, store_exc)
            return False
        summary.failed[cfg.exp_id] = message
        notify("failed", cfg=cfg, error=message)
        return True
    summary.done.append(cfg.exp_id)
    notify("end", cfg=cfg, record=record)
    return True


def _more_than_kept(directory: Path, keep: str) -> bool:
    """Whether a done experiment's checkpoint folder may hold more than `keep` leaves: more than
    one entry (a cheap look, as every done experiment is looked at on every run; one step
    without selected weights is what "best" leaves of a run that never saved them)."""
    if keep == "all":
        return False
    try:
        return len(os.listdir(directory)) > 1
    except OSError:
        return False


def _free_checkpoints(cfg: ExperimentConfig, run_hash: str, options: RunOptions, notify) -> None:
    """A recorded experiment keeps only the checkpoints `options.keep` asks for. Best effort:
    the result is safe already, and what stays is still restorable."""
    from fembed_jax.checkpoint import Checkpointer

    if options.keep == "all":
        return
    checkpointer = Checkpointer(options.checkpoints_dir / cfg.exp_id, run_hash)
    try:
        freed = checkpointer.free(options.keep)
        faults.hit("runner.checkpoints_freed")
    except Exception as exc:  # noqa: BLE001 - never fails a recorded experiment
        warnings.warn(f"{cfg.exp_id}: checkpoints could not be reduced to --keep {options.keep}: "
                      f"{type(exc).__name__}: {exc}", RecoveryWarning, stacklevel=2)
        return
    finally:
        checkpointer.close()
    if freed.before:
        notify("freed", cfg=cfg, before=freed.before, after=freed.after, kept=freed.kept)


def _ensure_results_file(store, options: RunOptions, item: PlanItem) -> None:
    """A done experiment's results.json must exist and be intact: if it is missing, damaged or
    from another run, rewrite it (atomically) from the record the store holds."""
    from fembed_jax import results_io

    path = results_io.results_path(options.outputs_dir, item.cfg.exp_id)
    try:
        if results_io.read_results(path).get("run_hash") == item.run_hash:
            return
        problem = "belongs to another run"
    except FileNotFoundError:
        problem = "is missing"
    except (results_io.ResultsFileError, OSError) as exc:
        problem = f"is damaged ({exc})"
    stored = store.result(item.cfg.exp_id)
    if not stored or not isinstance(stored.get("record"), dict):
        return
    try:
        results_io.write_results(path, stored["record"])
    except OSError as exc:
        warnings.warn(f"{path} {problem} and cannot be rewritten from the run store: {exc}",
                      RecoveryWarning, stacklevel=2)
        return
    warnings.warn(f"{path} {problem}; rewritten from the run store", RecoveryWarning, stacklevel=2)


def _remove_interrupted_writes(folder: Path) -> None:
    """Temp files of atomic writes a crash cut short (.results.json.*.tmp): never read, but
    litter. Only the claim holder writes into an experiment's folder, so none is in use."""
    for leftover in folder.glob(".*.tmp"):
        try:
            leftover.unlink()
        except OSError:
            pass


def _quietly(action: Callable[..., Any], *args: Any) -> None:
    """Best effort on the way out (the store may be the thing that failed)."""
    try:
        action(*args)
    except Exception:
        pass


class _Diverged(Exception):
    """Every seed's loss turned non-finite: the experiment failed, the queue goes on."""


class _ClaimLost(Exception):
    """The heartbeat found the claim held by another runner (ours had gone stale)."""

    def __init__(self, exp_id: str):
        super().__init__(exp_id)
        self.exp_id = exp_id


class _Interrupt(Exception):
    def __init__(self, positions: dict[str, tuple[int, int | None]], steps: int | None):
        self.positions, self.steps = positions, steps


NOTHING_NEW = "trained nothing since its last checkpoint"


def describe_position(epoch: int | None, step: int | None, steps: int | None, epochs: int) -> str:
    """Where a stopped experiment stands, for people (epochs counted from 1): 'after epoch
    3/50', 'inside epoch 4/50 (step 120/400)'."""
    if epoch is None or (step is None and epoch < 0):
        return NOTHING_NEW
    if step is None:
        return f"after epoch {epoch + 1}/{epochs}"
    return f"inside epoch {epoch + 1}/{epochs} (step {step}/{steps})"


def _dataset(cfg: ExperimentConfig, options: RunOptions, cache: dict):
    from fembed_jax.data import load_dataset

    key = (cfg.tier, cfg.task, cfg.horizon, cfg.context_length)
    if key not in cache:
        cache[key] = load_dataset(cfg.tier, options.data_config, task=cfg.task, horizon=cfg.horizon,
                                  context_length=cfg.context_length)
    return cache[key]


def _train_group(items: list[PlanItem], options: RunOptions, store, datasets: dict,
                 stop_flag: _StopFlag, notify, position: int, total: int) -> dict[str, Any]:
    """Train the experiments of one group together. Returns, per experiment id, either
    (record, FitResult, dataset) or a _Failure (every seed diverged)."""
    from fembed_jax import runtime
    from fembed_jax.checkpoint import Checkpointer
    from fembed_jax.train.engine import DeviceData
    from fembed_jax.train.fit import Interrupted, Member, fit_group

    dataset = _dataset(items[0].cfg, options, datasets)  # equal structure: one dataset for all
    _check_features(items, dataset)
    data = DeviceData.from_dataset(dataset)
    members = []
    for offset, item in enumerate(items):
        cfg = item.cfg
        checkpointer = Checkpointer(options.checkpoints_dir / cfg.exp_id, item.run_hash)
        if item.status == "rerun":
            checkpointer.clear()
        seeds = seeds_of(cfg)
        notify("start", cfg=cfg, position=position + offset, total=total, seeds=len(seeds),
               group=[i.cfg.exp_id for i in items])
        members.append(Member(cfg, seeds, checkpointer,
                              _epoch_hook(cfg, item.run_hash, options, store, notify),
                              _step_hook(cfg, notify), keep=options.keep))
    try:
        results = fit_group(members, data, should_stop=stop_flag,
                            evaluate_test=options.evaluate_test,
                            devices=runtime.training_devices(options.devices),
                            steps_per_chunk=options.chunk_steps)
    except Interrupted as exc:
        raise _Interrupt(exc.positions, exc.steps) from exc
    splits = {split: data.size(split) for split in ("train", "val", "test")}
    return _group_outcomes(items, results, splits, _data_info(dataset), dataset)


def check_data(plan: list[PlanItem], options: RunOptions) -> list[str]:
    """Load every dataset the plan's work needs, once, and check each experiment against it, so
    bad data is reported (DataError) before anything is claimed or written. Returns the data's
    notes (an unused Adj Close, a short calendar gap), each once."""
    from fembed_jax.data import DataError

    datasets: dict = {}
    notes: dict[str, None] = {}
    for item in plan:
        if item.status != "done":
            try:
                dataset = _dataset(item.cfg, options, datasets)
                _check_features([item], dataset)
            except ValueError as exc:  # DataError is one; a registry/data mismatch is bad input too
                raise DataError(str(exc)) from exc
            notes.update(dict.fromkeys(getattr(dataset, "notes", ())))
    return list(notes)


def _check_features(items: list[PlanItem], dataset) -> None:
    for item in items:
        if dataset.matrix.shape[1] != item.cfg.num_features:
            raise ValueError(f"{item.cfg.exp_id}: tier {item.cfg.tier} data has "
                             f"{dataset.matrix.shape[1]} features, the registry says "
                             f"{item.cfg.num_features}")


def _group_outcomes(items: list[PlanItem], results, splits: dict[str, int],
                    data_info: dict[str, Any], dataset) -> dict[str, Any]:
    """Per experiment id: (record, FitResult, dataset) for _finish, or a _Failure (every seed
    diverged). `dataset` only needs what save_predictions reads (val labels, starts, dates)."""
    from fembed_jax.catalog import param_counts
    from fembed_jax.train.record import build_record

    counts = param_counts([item.cfg for item in items])
    outcomes: dict[str, Any] = {}
    for item, result in zip(items, results):
        cfg = item.cfg
        if all(m["diverged"] for m in result.per_seed):
            outcomes[cfg.exp_id] = _Failure("diverged: every seed produced a non-finite loss")
            continue
        record = build_record(cfg, result, params=counts[cfg.exp_id], splits=splits,
                              data_info=data_info, run_hash=item.run_hash)
        outcomes[cfg.exp_id] = (record, result, dataset)
    return outcomes


def _epoch_hook(cfg: ExperimentConfig, run_hash: str, options: RunOptions, store, notify):
    started = time.monotonic()

    def on_epoch(report):
        if not store.heartbeat(cfg.exp_id, options.owner):  # e.g. after a long sleep of this laptop
            raise _ClaimLost(cfg.exp_id)
        store.record_epoch(cfg.exp_id, run_hash, report.epoch, report.rows())
        notify("epoch", cfg=cfg, report=report, elapsed=time.monotonic() - started)

    return on_epoch


def _step_hook(cfg: ExperimentConfig, notify):
    def on_step(report):
        if report.stopping:
            notify("stopping", cfg=cfg, epoch=report.epoch, step=report.step, steps=report.steps)
        else:
            notify("step", cfg=cfg, report=report)

    return on_step


def _data_info(dataset) -> dict[str, Any]:
    info = {"tier": dataset.tier, "source_id": dataset.source_id,
            "features": len(dataset.feature_names)}
    try:
        info["splits"] = dataset.split_info()
    except Exception:  # informational only
        pass
    return info


def _write_error_log(outputs_dir: Path, exp_id: str, text: str) -> None:
    from fembed_jax.results_io import atomic_write_text

    try:
        atomic_write_text(outputs_dir / exp_id / "error.log", text)
    except OSError:
        pass
