"""`fembed run --backend ray`: the queue with each training group as a Ray task.

The driver (the machine running `fembed run`) keeps everything that is state, through the same
queue.QueueSession as the local backend: the SQLite run store, the claims and their
heartbeats, outputs/<ID>/ (results.json, predictions, error.log). It claims a group's
experiments and submits ONE Ray task per group, with the group's resource needs (GPUs when
training runs on GPUs, else `cpus_per_task` CPUs); as many groups are in flight as the cluster
has room for. The task, in a Ray worker on any machine, runs group.train_group (as the local
backend does) on `options.checkpoints_dir`, which must be a path every worker shares (e.g.
NFS); it never touches the store. Each epoch's report goes back through a small channel actor;
the driver drains it while it waits and writes the store's epoch rows and the progress events,
so `fembed tui` shows a Ray run as it shows a local one.

A worker process that dies (a killed or pre-empted node) makes Ray run the task again
(`max_retries`); the rerun resumes every experiment of the group from its latest checkpoint,
so the results equal those of an uninterrupted run. The driver lands each outcome with
QueueSession.finish: outputs and store rows are those of the local backend. Ctrl-C / SIGTERM:
the tasks stop after their current chunk of steps, with its position checkpointed (a second
Ctrl-C cancels them at once), the claims are released as pending, exit code 130 / 143.

Ray is an optional extra (`pip install 'fembed[ray]'`), imported only here and lazily.
"""

from __future__ import annotations

import collections
import dataclasses
import os
import sqlite3
import traceback
import uuid
from collections.abc import Callable
from typing import Any

from fembed_jax.train.group import Failed, Outcome, Stopped, failed, train_group
from fembed_jax.train.plan import PlanItem, RunOptions
from fembed_jax.train.queue import ClaimLost, Heartbeat, QueueSession, RunSummary, StopFlag, quietly

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
    report: Any  # fembed_jax.train.fit.EpochReport


# ---- the task (runs in a Ray worker) ----------------------------------------------------------


def train_group_task(items: list[PlanItem], options: RunOptions, device: str, channel,
                     token: str) -> dict[str, Outcome] | Stopped:
    """train_group in a Ray worker, its epoch reports sent to the driver."""
    ray = import_ray()
    from fembed_jax import runtime

    runtime.configure(device, options.devices)  # before JAX touches a device in this process

    def should_stop() -> bool:
        return ray.get(channel.should_stop.remote())

    def on_epoch(item: PlanItem, report) -> None:  # synchronous: delivered before the task returns
        ray.get(channel.put.remote(_EpochMessage(item.exp_id, report)))

    first_attempt = ray.get(channel.begin.remote(token))
    if should_stop():
        return Stopped({}, None)
    try:
        return train_group(items, options, should_stop=should_stop, on_epoch=on_epoch,
                           clear_reruns=first_attempt)
    except Exception as exc:  # the group failed: the driver records each member failed
        return failed(items, exc)


# ---- the driver ---------------------------------------------------------------------------


@dataclasses.dataclass
class _Flight:
    items: list[PlanItem]
    heartbeat: Heartbeat


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
    """local.run_queue's contract (summary, progress events, store rows, outputs) with every
    group trained as a Ray task. `address`: a Ray cluster (None: the instance this process
    already joined, else a new local one)."""
    ray = import_ray()
    started_ray = False
    if not ray.is_initialized():  # before the stop flag: ray.init installs signal handlers
        try:
            ray.init(address=address, include_dashboard=False, log_to_driver=False,
                     logging_level="WARNING")
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise RayUnavailable(f"cannot {'join the Ray cluster at ' + address if address else 'start Ray'}"
                                 f": {exc}") from exc
        started_ray = True
    session = QueueSession(plan, options, progress)
    try:
        if not session.open():
            return session.summary
        with session, StopFlag(session.signal_seen) as stop_flag:
            driver = _Driver(ray, session, device=device, max_retries=max_retries,
                             cpus_per_task=cpus_per_task)
            try:
                driver.drive(stop_flag)
            except KeyboardInterrupt:  # a second Ctrl-C: cancel at once, leave them pending
                driver.abandon_all()
                raise
            finally:
                driver.close()
            if stop_flag():  # a signal during the last group still shows in the exit code
                session.summary.signal_name = stop_flag.signal_name
    finally:
        if started_ray:
            quietly(ray.shutdown)
    return session.summary


class _Driver:
    """The queue loop: claim and submit groups while the cluster has room, drain the epoch
    reports, land finished tasks."""

    def __init__(self, ray, session: QueueSession, *, device: str, max_retries: int,
                 cpus_per_task: float):
        self.ray, self.session, self.device = ray, session, device
        options = session.options
        env = {name: os.environ[name] for name in FORWARDED_ENV if name in os.environ}
        resources = task_resources(ray, device, options.devices, cpus_per_task)
        self.capacity = _capacity(ray, resources)
        task = ray.remote(max_retries=max_retries, retry_exceptions=False)(train_group_task)
        self.task = task.options(runtime_env={"env_vars": env} if env else None, **resources)
        self.channel = ray.remote(num_cpus=0)(_Channel).remote()
        self.flights: dict[Any, _Flight] = {}  # task ref -> its group
        self.by_id: dict[str, tuple[_Flight, PlanItem]] = {}
        self.queue: collections.deque = collections.deque()

    def drive(self, stop_flag) -> None:
        from fembed_jax.store import StoreError

        ray, session = self.ray, self.session
        session.skip_done()
        self.queue = session.groups()
        position, stopping = 0, False
        while self.queue or self.flights:
            if stop_flag() and not stopping:
                stopping = True
                self.channel.stop.remote()
            while self.queue and not stopping and len(self.flights) < self.capacity:
                claimed = session.claim(self.queue.popleft())
                if claimed is None:  # the store failed
                    self.abandon_all()
                    return
                if claimed:
                    session.announce(claimed, position)
                    self.submit(claimed)
                    position += len(claimed)
            if not self.flights:
                return
            ready, _ = ray.wait(list(self.flights), num_returns=len(self.flights),
                                timeout=WAIT_SECONDS)
            try:
                self.record_epochs(ready)
            except (StoreError, sqlite3.Error) as exc:
                session.store_failure(next(iter(self.flights.values())).items[0], exc)
                self.abandon_all()
                return
            for ref in ready:
                flight = self.flights.pop(ref)
                flight.heartbeat.stop()
                if not self.land(ref, flight):
                    self.abandon_all()  # the store failed
                    return

    def submit(self, claimed: list[PlanItem]) -> None:
        flight = _Flight(claimed, self.session.heartbeat(claimed))
        ref = self.task.remote(claimed, self.session.options, self.device, self.channel,
                               uuid.uuid4().hex)
        self.flights[ref] = flight
        self.by_id.update({item.exp_id: (flight, item) for item in claimed})

    def record_epochs(self, ready: list) -> None:
        """Write the drained epoch reports to the store and the display (QueueSession's epoch
        hook); an experiment another runner holds now is given up (`lose`)."""
        for message in self.ray.get(self.channel.drain.remote()):
            if message.exp_id not in self.by_id:  # its task was cancelled meanwhile
                continue
            try:
                self.session.record_epoch(self.by_id[message.exp_id][1], message.report)
            except ClaimLost:
                self.lose(message.exp_id, ready)

    def lose(self, exp_id: str, ready: list) -> None:
        """Another runner took `exp_id` over (our claim went stale): its group's task is
        cancelled; the others resume from their checkpoints in a group of their own."""
        flight, _ = self.by_id[exp_id]
        ref = next(r for r, f in self.flights.items() if f is flight)
        quietly(self.ray.cancel, ref, force=True)
        del self.flights[ref]
        if ref in ready:
            ready.remove(ref)
        flight.heartbeat.stop()
        self._forget(flight.items)
        rest = self.session.lost(flight.items, exp_id)
        if rest:
            self.queue.appendleft(rest)

    def land(self, ref, flight: _Flight) -> bool:
        """A finished task: land its experiments, or release them when it was stopped. False:
        the store failed and the queue must stop."""
        self._forget(flight.items)
        try:
            outcome = self.ray.get(ref)
        except Exception as exc:  # the worker died more often than max_retries, or Ray failed
            failure = Failed(f"the Ray task failed: {type(exc).__name__}: {exc}".splitlines()[0],
                             traceback.format_exc())
            outcome = {item.exp_id: failure for item in flight.items}
        if isinstance(outcome, Stopped):
            self.session.stopped(flight.items, outcome)
            return True
        return self.session.finish_group(flight.items, outcome)

    def abandon_all(self) -> None:
        """Cancel every task in flight and leave its experiments pending (checkpoints stay)."""
        for ref, flight in list(self.flights.items()):
            quietly(self.ray.cancel, ref, force=True)
            flight.heartbeat.stop()
            self.session.release(flight.items)
            self._forget(flight.items)
        self.flights.clear()

    def _forget(self, items: list[PlanItem]) -> None:
        for item in items:
            self.by_id.pop(item.exp_id, None)

    def close(self) -> None:
        for flight in self.flights.values():
            flight.heartbeat.halt.set()
        quietly(self.ray.kill, self.channel)
