"""`fembed run --backend ray`: the queue of runner.py with each training group as a Ray task.

The driver (the machine running `fembed run`) keeps everything that is state: the SQLite run
store, the claims and their heartbeats, outputs/<ID>/ (results.json, predictions, error.log).
It claims a group's experiments exactly as the local runner does and submits ONE Ray task per
group, with the group's resource needs (GPUs when training runs on GPUs, else `cpus_per_task`
CPUs); as many groups are in flight as the cluster has room for. The task, in a Ray worker on
any machine, loads the tier itself, builds the members with their checkpointers on
`options.checkpoints_dir` (which must be a path every worker shares, e.g. NFS) and runs
`fit_group`; it never touches the store. Each epoch's report goes back through a small channel
actor; the driver drains it while it waits and writes the store's epoch rows and the progress
events, so `fembed tui` shows a Ray run as it shows a local one.

A worker process that dies (a killed or pre-empted node) makes Ray run the task again
(`max_retries`); the rerun resumes every experiment of the group from its latest checkpoint,
so the results equal those of an uninterrupted run. The driver builds each record with the
local runner's code and writes it with `_finish`: outputs and store rows are those of the local
backend. Ctrl-C / SIGTERM: the tasks stop after their current chunk of steps, with its position
checkpointed (a second Ctrl-C cancels them at once), the claims are released as pending, exit code 130 / 143.

Ray is an optional extra (`pip install 'fembed[ray]'`), imported only here and lazily.
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import os
import sqlite3
import time
import traceback
import uuid
from collections.abc import Callable
from typing import Any

from fembed_jax.train import runner
from fembed_jax.train.runner import PlanItem, RunOptions, RunSummary

RAY_MISSING = "--backend ray needs Ray: pip install 'fembed[ray]' (or pip install 'ray>=2.40,<3')"
# Variables a worker must see as the driver does (the compiled-program and data cache).
FORWARDED_ENV = ("FEMBED_CACHE",)
WAIT_SECONDS = 0.5  # how often the driver drains epoch reports while tasks run


class RayUnavailable(RuntimeError):
    """Ray is not installed (the `ray` extra), or cannot be started or joined."""


def import_ray():
    try:
        import ray
    except ImportError as exc:
        raise RayUnavailable(RAY_MISSING) from exc
    return ray


# ---- what travels between the driver and a task -------------------------------------------


class _Channel:
    """A Ray actor (no resources) between the driver and its tasks: epoch reports to the driver,
    the stop request to the tasks, and which submissions have started (a retried task must not
    clear a --force rerun's checkpoints again)."""

    def __init__(self):
        self.reports: list = []
        self.stopping = False
        self.started: set[str] = set()

    def put(self, report) -> None:
        self.reports.append(report)

    def drain(self) -> list:
        reports, self.reports = self.reports, []
        return reports

    def stop(self) -> None:
        self.stopping = True

    def should_stop(self) -> bool:
        return self.stopping

    def begin(self, token: str) -> bool:
        """True the first time a submission's task starts, False on Ray's retries."""
        first = token not in self.started
        self.started.add(token)
        return first


@dataclasses.dataclass
class _EpochMessage:
    exp_id: str
    run_hash: str
    report: Any  # fembed_jax.train.fit.EpochReport


@dataclasses.dataclass
class _ValWindows:
    """What save_predictions reads from a Dataset: the validation windows, not the matrix."""

    labels: dict
    starts: dict
    dates: Any

    @classmethod
    def of(cls, dataset) -> _ValWindows:
        dates = dataset.decision_dates("val") if hasattr(dataset, "decision_dates") else None
        return cls({"val": dataset.labels["val"]}, {"val": dataset.starts["val"]}, dates)

    def decision_dates(self, split: str):
        return self.dates


@dataclasses.dataclass
class _Trained:
    results: list  # FitResult per item
    splits: dict[str, int]
    data_info: dict[str, Any]
    windows: _ValWindows


@dataclasses.dataclass
class _Stopped:
    epoch: int | None  # the last checkpointed epoch; None: stopped before training
    positions: dict | None = None  # per experiment (epoch, step or None): fit.Interrupted's
    steps: int | None = None


@dataclasses.dataclass
class _Raised:
    message: str
    details: str


# ---- the task (runs in a Ray worker) ----------------------------------------------------------


def train_group_task(items: list[PlanItem], options: RunOptions, device: str, channel,
                     token: str):
    """Train one group in a Ray worker; returns _Trained, _Stopped or _Raised."""
    ray = import_ray()
    from fembed_jax import runtime

    runtime.configure(device, options.devices)  # before JAX touches a device in this process
    from fembed_jax.checkpoint import Checkpointer
    from fembed_jax.train.engine import DeviceData
    from fembed_jax.train.fit import Interrupted, Member, fit_group

    def should_stop() -> bool:
        return ray.get(channel.should_stop.remote())

    def hook(item: PlanItem):
        def on_epoch(report) -> None:  # synchronous: delivered before the task returns
            ray.get(channel.put.remote(_EpochMessage(item.cfg.exp_id, item.run_hash, report)))
        return on_epoch

    first_attempt = ray.get(channel.begin.remote(token))
    if should_stop():
        return _Stopped(None)
    try:
        dataset = runner._dataset(items[0].cfg, options, {})
        runner._check_features(items, dataset)
        data = DeviceData.from_dataset(dataset)
        members = []
        for item in items:
            checkpointer = Checkpointer(options.checkpoints_dir / item.cfg.exp_id, item.run_hash)
            if item.status == "rerun" and first_attempt:
                checkpointer.clear()
            members.append(Member(item.cfg, runner.seeds_of(item.cfg), checkpointer, hook(item),
                                  keep=options.keep))
        try:
            results = fit_group(members, data, should_stop=should_stop,
                                evaluate_test=options.evaluate_test,
                                devices=runtime.training_devices(options.devices),
                                steps_per_chunk=options.chunk_steps)
        except Interrupted as exc:
            return _Stopped(exc.epoch, exc.positions, exc.steps)
        splits = {split: data.size(split) for split in ("train", "val", "test")}
        return _Trained(results, splits, runner._data_info(dataset), _ValWindows.of(dataset))
    except Exception as exc:  # the group failed: the driver records each member failed
        return _Raised(f"{type(exc).__name__}: {exc}", traceback.format_exc())


# ---- the driver ---------------------------------------------------------------------------


@dataclasses.dataclass
class _Flight:
    items: list[PlanItem]
    heartbeat: runner._Heartbeat
    started: float


def task_resources(ray, device: str, devices: int | str, cpus_per_task: float) -> dict[str, float]:
    """num_gpus when training runs on GPUs (asked for, or 'auto' on a cluster that has some),
    else num_cpus."""
    gpus = ray.cluster_resources().get("GPU", 0)
    if device == "gpu" or (device == "auto" and gpus >= 1):
        if devices == "all":
            per_node = [node.get("Resources", {}).get("GPU", 0) for node in ray.nodes()
                        if node.get("Alive")]
            return {"num_gpus": max([1, *per_node]), "num_cpus": cpus_per_task}
        return {"num_gpus": int(devices), "num_cpus": cpus_per_task}
    return {"num_cpus": cpus_per_task}


def _capacity(ray, resources: dict[str, float]) -> int:
    """How many tasks the cluster runs at once (groups in flight; more would only wait, holding
    claims another runner could use)."""
    total = ray.cluster_resources()
    if resources.get("num_gpus"):
        return max(1, int(total.get("GPU", 0) // resources["num_gpus"]))
    return max(1, int(total.get("CPU", 1) // max(resources["num_cpus"], 1e-3)))


def run_queue_ray(plan: list[PlanItem], options: RunOptions, *, address: str | None = None,
                  progress: Callable[..., None] | None = None, max_retries: int = 2,
                  cpus_per_task: float = 1, device: str = "auto") -> RunSummary:
    """run_queue's contract (summary, progress events, store rows, outputs) with every group
    trained as a Ray task. `address`: a Ray cluster (None: the instance this process already
    joined, else a new local one)."""
    ray = import_ray()
    summary = RunSummary()
    notify = progress or (lambda *a, **k: None)
    store_failure = functools.partial(runner._store_failure, summary, notify)
    started_ray = False
    if not ray.is_initialized():  # before the stop flag: ray.init installs signal handlers
        try:
            ray.init(address=address, include_dashboard=False, log_to_driver=False,
                     logging_level="WARNING")
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise RayUnavailable(f"cannot {'join the Ray cluster at ' + address if address else 'start Ray'}"
                                 f": {exc}") from exc
        started_ray = True
    store = runner._open_store(plan, options, store_failure)
    if store is None:
        if started_ray:
            runner._quietly(ray.shutdown)
        return summary
    driver = None
    try:
        driver = _Driver(ray, options, store, summary, notify, store_failure, device=device,
                         max_retries=max_retries, cpus_per_task=cpus_per_task)
        with store, runner._StopFlag(lambda name: notify("signal", name=name)) as stop_flag:
            try:
                driver.drive(plan, stop_flag)
            except KeyboardInterrupt:  # a second Ctrl-C: cancel at once, leave them pending
                driver.abandon_all()
                raise
            if stop_flag():  # a signal during the last group still shows in the exit code
                summary.signal_name = stop_flag.signal_name
    finally:
        if driver is not None:
            driver.close()
        else:
            store.close()
        if started_ray:
            runner._quietly(ray.shutdown)
    return summary


class _Driver:
    """The queue loop: claim and submit groups while the cluster has room, drain the epoch
    reports, land finished tasks."""

    def __init__(self, ray, options: RunOptions, store, summary: RunSummary, notify,
                 store_failure, *, device: str, max_retries: int, cpus_per_task: float):
        self.ray, self.options, self.store = ray, options, store
        self.summary, self.notify, self.store_failure = summary, notify, store_failure
        self.device = device
        env = {name: os.environ[name] for name in FORWARDED_ENV if name in os.environ}
        resources = task_resources(ray, device, options.devices, cpus_per_task)
        self.capacity = _capacity(ray, resources)
        task = ray.remote(max_retries=max_retries, retry_exceptions=False)(train_group_task)
        self.task = task.options(runtime_env={"env_vars": env} if env else None, **resources)
        self.channel = ray.remote(num_cpus=0)(_Channel).remote()
        self.flights: dict[Any, _Flight] = {}  # task ref -> its group
        self.by_id: dict[str, _Flight] = {}
        self.queue: collections.deque = collections.deque()

    def drive(self, plan: list[PlanItem], stop_flag) -> None:
        from fembed_jax.store import StoreError

        ray, options, store = self.ray, self.options, self.store
        todo = [item for item in plan if item.status != "done"]
        runner._skip_done(plan, store, options, self.summary, self.notify)
        self.queue.extend(runner.plan_groups(todo, options.group))
        position, stopping = 0, False
        while self.queue or self.flights:
            if stop_flag() and not stopping:
                stopping = True
                self.channel.stop.remote()
            while self.queue and not stopping and len(self.flights) < self.capacity:
                claimed = runner._claim_group(self.queue.popleft(), store, options, self.summary,
                                              self.notify, self.store_failure)
                if claimed is None:  # the store failed
                    self.abandon_all()
                    return
                if claimed:
                    self.submit(claimed, position, len(todo))
                    position += len(claimed)
            if not self.flights:
                return
            ready, _ = ray.wait(list(self.flights), num_returns=len(self.flights),
                                timeout=WAIT_SECONDS)
            try:
                lost = _record_epochs(ray.get(self.channel.drain.remote()), self.by_id, store,
                                      options, self.notify)
            except (StoreError, sqlite3.Error) as exc:
                self.store_failure(next(iter(self.flights.values())).items[0], exc)
                self.abandon_all()
                return
            for exp_id in lost:
                self.lose(exp_id, ready)
            for ref in ready:
                flight = self.flights.pop(ref)
                flight.heartbeat.halt.set()
                flight.heartbeat.join(timeout=5)
                if not _land(ray, ref, flight, options, store, self.summary, self.notify,
                             self.store_failure, self.release):
                    self.abandon_all()  # the store failed
                    return

    def submit(self, claimed: list[PlanItem], position: int, total: int) -> None:
        ids = [item.cfg.exp_id for item in claimed]
        heartbeat = runner._Heartbeat(self.options.outputs_dir / "fembed.db", ids,
                                      self.options.owner)
        heartbeat.start()
        for offset, item in enumerate(claimed):
            self.notify("start", cfg=item.cfg, position=position + offset, total=total,
                        seeds=item.cfg.seeds, group=ids)
        flight = _Flight(claimed, heartbeat, time.monotonic())
        ref = self.task.remote(claimed, self.options, self.device, self.channel, uuid.uuid4().hex)
        self.flights[ref] = flight
        self.by_id.update(dict.fromkeys(ids, flight))

    def lose(self, exp_id: str, ready: list) -> None:
        """Another runner took `exp_id` over (our claim went stale): it is theirs now. Its
        group's task is cancelled; the others resume from their checkpoints in a group of their
        own."""
        flight = self.by_id.get(exp_id)
        ref = next((r for r, f in self.flights.items() if f is flight), None)
        if ref is None:
            return
        runner._quietly(self.ray.cancel, ref, force=True)
        del self.flights[ref]
        if ref in ready:
            ready.remove(ref)
        self.summary.busy.append(exp_id)
        self.notify("busy", cfg=next(i.cfg for i in flight.items if i.cfg.exp_id == exp_id))
        rest = [item for item in flight.items if item.cfg.exp_id != exp_id]
        self.release(flight, rest)
        self.by_id.pop(exp_id, None)
        if rest:
            self.queue.appendleft(rest)

    def release(self, flight: _Flight, items: list[PlanItem] | None = None) -> None:
        """Stop the group's heartbeat and leave `items` (default: all) pending."""
        flight.heartbeat.halt.set()
        for item in flight.items if items is None else items:
            runner._quietly(self.store.release, item.cfg.exp_id, self.options.owner, "pending")
            self.by_id.pop(item.cfg.exp_id, None)

    def abandon_all(self) -> None:
        """Cancel every task in flight and leave its experiments pending (checkpoints stay)."""
        for ref, flight in list(self.flights.items()):
            runner._quietly(self.ray.cancel, ref, force=True)
            self.release(flight)
        self.flights.clear()

    def close(self) -> None:
        for flight in self.flights.values():
            flight.heartbeat.halt.set()
        runner._quietly(self.ray.kill, self.channel)


def _record_epochs(messages: list[_EpochMessage], by_id: dict[str, _Flight], store,
                   options: RunOptions, notify) -> list[str]:
    """Write the drained epoch reports to the store and the display, as the local runner's epoch
    hook does. Returns the experiments whose claim another runner holds now."""
    lost = []
    for message in messages:
        flight = by_id.get(message.exp_id)
        if flight is None or message.exp_id in lost:  # its task was cancelled meanwhile
            continue
        if not store.heartbeat(message.exp_id, options.owner):
            lost.append(message.exp_id)
            continue
        store.record_epoch(message.exp_id, message.run_hash, message.report.epoch,
                           message.report.rows())
        cfg = next(item.cfg for item in flight.items if item.cfg.exp_id == message.exp_id)
        notify("epoch", cfg=cfg, report=message.report, elapsed=time.monotonic() - flight.started)
    return lost


def _land(ray, ref, flight: _Flight, options: RunOptions, store, summary: RunSummary, notify,
          store_failure, release) -> bool:
    """A finished task: record its experiments (runner._finish), or release them when it was
    stopped. False: the store failed and the queue must stop."""
    items = flight.items
    try:
        outcome = ray.get(ref)
    except Exception as exc:  # the worker died more often than max_retries, or Ray failed
        outcome = _Raised(f"the Ray task failed: {type(exc).__name__}: {exc}".splitlines()[0],
                          traceback.format_exc())
    if isinstance(outcome, _Stopped):
        release(flight)
        interrupted = [i.cfg.exp_id for i in items]
        summary.interrupted = ", ".join(filter(None, [summary.interrupted, *interrupted]))
        for item in items:
            epoch, step = (outcome.positions or {}).get(item.cfg.exp_id, (outcome.epoch, None))
            summary.positions[item.cfg.exp_id] = runner.describe_position(
                epoch, step, outcome.steps, item.cfg.epochs)
            notify("interrupted", cfg=item.cfg, epoch=epoch, step=step, steps=outcome.steps)
        return True
    if isinstance(outcome, _Raised):
        outcomes = {i.cfg.exp_id: runner._Failure(outcome.message, outcome.details) for i in items}
    else:
        outcomes = runner._group_outcomes(items, outcome.results, outcome.splits,
                                          outcome.data_info, outcome.windows)
    if all(runner._finish(item, outcomes[item.cfg.exp_id], options, store, summary, notify,
                          store_failure) for item in items):
        return True
    release(flight, [i for i in items
                     if i.cfg.exp_id not in summary.done and i.cfg.exp_id not in summary.failed])
    return False
