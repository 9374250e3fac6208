"""The run store's side of a queue: claim, keep alive, record, release. One session per run.

A `QueueSession` is what both backends (local.py, ray_backend.py) drive: it opens the store and
queues the plan, skips what is done (repairing a missing results.json, freeing checkpoints a
stop left behind), claims groups (several runners can share one queue), keeps the claims fresh
(`Heartbeat`), writes the epoch rows, machine samples and progress events, lands each experiment's outcome
(predictions, results.json, store record, checkpoint retention; or its failure) and releases
what a stop or a failure leaves unfinished as pending. A store that stays locked or cannot be
written stops the queue with a clear error: the claimed experiments are resumed by the next run.

Progress events, `progress(event, **info)`: "start", "step" (a chunk of steps inside an epoch),
"epoch", "end", "freed" (checkpoints shrunk), "skip", "busy", "failed", "signal" (a stop
request was seen), "stopping" (a position is being checkpointed) and "interrupted".
"""

from __future__ import annotations

import collections
import dataclasses
import os
import signal
import socket
import sqlite3
import threading
import time
import traceback
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fembed_jax import faults, resources
from fembed_jax.liveness import HEARTBEAT_S
from fembed_jax.train.group import Failed, Finished, Outcome, Stopped
from fembed_jax.train.plan import PlanItem, RunOptions, plan_groups


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


class ClaimLost(Exception):
    """The heartbeat found the claim held by another runner (ours had gone stale): raised from
    the epoch hook, it ends the group's training; the experiment is the other runner's now."""

    def __init__(self, exp_id: str):
        super().__init__(exp_id)
        self.exp_id = exp_id


class Heartbeat(threading.Thread):
    """Keeps claims fresh while a long epoch runs (its own store connection: sqlite is
    per-thread). A context manager: stopped on exit. `every`: seconds between beats."""

    def __init__(self, store_path: Path, exp_ids: list[str], owner: str, every: float = HEARTBEAT_S):
        super().__init__(daemon=True, name=f"heartbeat-{exp_ids[0]}")
        self.store_path, self.exp_ids, self.owner, self.every = store_path, list(exp_ids), owner, every
        self.halt = threading.Event()

    def run(self) -> None:
        from fembed_jax.store import RunStore

        store, warned = None, False
        try:
            while not self.halt.wait(self.every):
                try:
                    store = store or RunStore(self.store_path)
                    for exp_id in self.exp_ids:
                        store.heartbeat(exp_id, self.owner)
                except Exception as err:
                    # A failing store must never kill training nor end the beats: the next one
                    # reopens it and retries. Said once: the claim goes stale if it stays so.
                    if store is not None:
                        store.close()
                        store = None
                    if not warned:
                        warnings.warn(f"heartbeat of {', '.join(self.exp_ids)}: the run store cannot be "
                                      f"written now ({err}); retrying every {self.every:g} s", RuntimeWarning)
                        warned = True
        finally:
            if store is not None:
                store.close()

    def stop(self) -> None:
        self.halt.set()
        self.join(timeout=5)

    def __enter__(self) -> Heartbeat:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


class StopFlag:
    """SIGINT/SIGTERM set a flag the training loop polls (between chunks of steps, and every
    half second while one runs); a second SIGINT aborts at once (KeyboardInterrupt).
    `on_seen(name)` is called the first time the loop reads a raised flag: from ordinary code,
    not from the signal handler, where printing could re-enter a write in progress."""

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


def quietly(action: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
    """Best effort on the way out (the store may be the thing that failed)."""
    try:
        action(*args, **kwargs)
    except Exception:
        pass


class QueueSession:
    """One run's use of the store; see the module docstring. Open with `open()` (False: the
    store failed, recorded in `summary`), then use as a context manager that closes it."""

    def __init__(self, plan: list[PlanItem], options: RunOptions,
                 progress: Callable[..., None] | None = None):
        self.plan, self.options = plan, options
        self.todo = [item for item in plan if item.status != "done"]
        self.summary = RunSummary()
        self._progress = progress or (lambda *a, **k: None)
        self.store = None
        # exp_id -> its training group's ids; group -> (epoch, the machine sample taken after it)
        self._group_of: dict[str, tuple[str, ...]] = {}
        self._machine: dict[tuple[str, ...], tuple[int, dict]] = {}

    def notify(self, event: str, **info: Any) -> None:
        """Tell the caller's `progress`, and append the event to the experiment's run.log."""
        cfg = info.get("cfg")
        line = _log_line(event, info) if cfg is not None else None
        if line:
            _append_run_log(self.options.outputs_dir, cfg.exp_id, line)
        self._progress(event, **info)

    # -- the store ------------------------------------------------------------------------------

    def open(self) -> bool:
        """Open the store and queue the plan's experiments."""
        from fembed_jax.store import RunStore, StoreError

        self.options.outputs_dir.mkdir(parents=True, exist_ok=True)
        try:
            self.store = RunStore(self.options.store_path)
            # The store keys an experiment's runs by the run hash (config + data), not the bare
            # config hash.
            self.store.sync_queue([{**item.cfg.to_dict(), "run_hash": item.run_hash}
                                   for item in self.plan])
        except (StoreError, sqlite3.Error) as exc:
            if self.store is not None:
                self.store.close()
                self.store = None
            if self.plan:
                self.store_failure((self.todo or self.plan)[0], exc)
            return False
        return True

    def __enter__(self) -> QueueSession:
        return self

    def __exit__(self, *exc) -> None:
        if self.store is not None:
            self.store.close()

    def store_failure(self, item: PlanItem, exc: BaseException) -> None:
        """The store cannot be written (locked past the busy timeout, disk full): the queue stops."""
        message = (f"{type(exc).__name__}: {exc}; the queue stopped here, nothing is lost: run the "
                   "same command again once the run store can be written")
        self.summary.failed[item.exp_id] = message
        self.notify("failed", cfg=item.cfg, error=message)

    def signal_seen(self, name: str) -> None:
        self.notify("signal", name=name)

    # -- before training ------------------------------------------------------------------------

    def skip_done(self) -> None:
        for item in self.plan:
            if item.status == "done":
                self.summary.skipped.append(item.exp_id)
                self.notify("skip", cfg=item.cfg)
                _ensure_results_file(self.store, self.options, item)
                # Done before its checkpoints were freed (stopped in between, or by an older
                # fembed that kept two steps): free them now.
                if _more_than_kept(self.options.checkpoints_dir / item.exp_id, self.options.keep):
                    self._free_checkpoints(item)

    def groups(self) -> collections.deque[list[PlanItem]]:
        """The work, in queue order: groups of experiments sharing one compiled program."""
        return collections.deque(plan_groups(self.todo, self.options.group))

    def claim(self, group: list[PlanItem]) -> list[PlanItem] | None:
        """Claim the group's experiments; the ones another runner holds are reported busy.
        Returns the claimed ones (their outputs folders tidied), or None when the store failed
        (then nothing stays claimed)."""
        from fembed_jax.store import StoreError

        claimed = []
        for item in group:
            try:
                if item.status == "rerun":
                    self.store.reset(item.exp_id)
                got = self.store.claim(item.exp_id, self.options.owner)
            except (StoreError, sqlite3.Error) as exc:
                self.store_failure(item, exc)
                self.release(claimed)
                return None
            if got:
                claimed.append(item)
            else:
                self.summary.busy.append(item.exp_id)
                self.notify("busy", cfg=item.cfg)
        if claimed:
            faults.hit("runner.claimed")
            for item in claimed:
                _remove_interrupted_writes(self.options.outputs_dir / item.exp_id)
        return claimed

    def announce(self, claimed: list[PlanItem], position: int) -> None:
        """The "start" events of a group about to train (`position`: of its first, in the queue)."""
        ids = [item.exp_id for item in claimed]
        self._group_of.update(dict.fromkeys(ids, tuple(ids)))  # for record_machine's one sample
        for offset, item in enumerate(claimed):
            self.notify("start", cfg=item.cfg, position=position + offset, total=len(self.todo),
                        seeds=item.cfg.seeds, group=ids)

    def heartbeat(self, claimed: list[PlanItem]) -> Heartbeat:
        """A started heartbeat for the claims (stop it, or leave its `with` block)."""
        beat = Heartbeat(self.options.store_path, [item.exp_id for item in claimed],
                         self.options.owner)
        beat.start()
        return beat

    # -- while training -------------------------------------------------------------------------

    def record_epoch(self, item: PlanItem, report) -> None:
        """An epoch checkpointed: its rows into the store. Raises ClaimLost when another runner
        holds the claim now (e.g. after a long sleep of this laptop)."""
        if not self.store.heartbeat(item.exp_id, self.options.owner):
            raise ClaimLost(item.exp_id)
        self.store.record_epoch(item.exp_id, item.run_hash, report.epoch, report.rows())
        self.record_machine(item, report.epoch)
        self.notify("epoch", cfg=item.cfg, report=report)

    def record_machine(self, item: PlanItem, epoch: int) -> None:
        """What this process costs the machine, into the store for `item`'s `epoch`: one sample
        per epoch of a group, shared by its members (a GPU sample runs nvidia-smi, and a second
        one right after the first would measure CPU use over milliseconds). No device is passed:
        under Ray this is the driver, where asking jax for one would start a backend (the GPU
        figures then come from nvidia-smi)."""
        group = self._group_of.get(item.exp_id, (item.exp_id,))
        try:
            taken = self._machine.get(group)
            if taken is None or taken[0] != epoch:
                taken = self._machine[group] = (epoch, resources.sample())
            self.store.record_machine(item.exp_id, epoch, taken[1], host=socket.gethostname(),
                                      pid=os.getpid())
        except Exception:  # noqa: BLE001 - a monitoring figure never stops training: the epoch
            pass  # row is written already, and the next epoch records a sample again

    def record_step(self, item: PlanItem, report) -> None:
        if report.stopping:
            self.notify("stopping", cfg=item.cfg, epoch=report.epoch, step=report.step,
                        steps=report.steps)
        else:
            self.notify("step", cfg=item.cfg, report=report)

    # -- after training -------------------------------------------------------------------------

    def release(self, items: list[PlanItem]) -> None:
        """Leave `items` pending for the next run (their checkpoints stay)."""
        for item in items:
            quietly(self.store.release, item.exp_id, self.options.owner, "pending")

    def lost(self, claimed: list[PlanItem], exp_id: str) -> list[PlanItem]:
        """Another runner took `exp_id` over: it is theirs now. The rest of its group is
        released and returned, to resume from their checkpoints in a group of their own."""
        self.summary.busy.append(exp_id)
        self.notify("busy", cfg=next(item.cfg for item in claimed if item.exp_id == exp_id))
        rest = [item for item in claimed if item.exp_id != exp_id]
        self.release(rest)
        return rest

    def stopped(self, claimed: list[PlanItem], stop: Stopped) -> None:
        """A stop request ended the group: its experiments are left pending where they stand."""
        self.release(claimed)
        ids = [item.exp_id for item in claimed]
        self.summary.interrupted = ", ".join(filter(None, [self.summary.interrupted, *ids]))
        for item in claimed:
            self.summary.positions[item.exp_id] = stop.where(item)
            epoch, step = stop.positions.get(item.exp_id, (None, None))
            self.notify("interrupted", cfg=item.cfg, epoch=epoch, step=step, steps=stop.steps)

    def finish_group(self, claimed: list[PlanItem], outcomes: dict[str, Outcome]) -> bool:
        """Land every experiment of a trained group. False: the store failed, the queue must
        stop (what was not landed is released)."""
        if all(self.finish(item, outcomes[item.exp_id]) for item in claimed):
            return True
        self.release([item for item in claimed if item.exp_id not in self.summary.done
                      and item.exp_id not in self.summary.failed])
        return False

    def finish(self, item: PlanItem, outcome: Outcome) -> bool:
        """Write one experiment's outputs and store record (or its failure). False: the store
        failed and the queue must stop."""
        from fembed_jax import results_io
        from fembed_jax.predictions import save_predictions, write_results
        from fembed_jax.store import StoreError

        outputs = self.options.outputs_dir
        try:
            if isinstance(outcome, Finished):
                faults.hit("runner.trained")
                # Predictions first: a results.json on disk always has its predictions beside it.
                save_predictions(outputs, item.exp_id, outcome.result, outcome.windows)
                write_results(results_io.results_path(outputs, item.exp_id), outcome.record)
                faults.hit("runner.results_written")
                self.store.record_result(item.exp_id, item.run_hash, outcome.record)
                faults.hit("runner.recorded")
                self._free_checkpoints(item)
        except (StoreError, sqlite3.Error) as exc:
            self.store_failure(item, exc)
            return False
        except Exception as exc:  # writing the outputs failed: recorded, and the queue goes on
            outcome = Failed(f"{type(exc).__name__}: {exc}", traceback.format_exc())
        if isinstance(outcome, Failed):
            return self._mark_failed(item, outcome)
        self.summary.done.append(item.exp_id)
        self.notify("end", cfg=item.cfg, record=outcome.record)
        return True

    def _mark_failed(self, item: PlanItem, failure: Failed) -> bool:
        from fembed_jax.store import StoreError

        if failure.details:
            _write_error_log(self.options.outputs_dir, item.exp_id, failure.details)
        try:
            self.store.mark_failed(item.exp_id, self.options.owner, failure.message)
        except (StoreError, sqlite3.Error) as exc:
            self.store_failure(item, exc)
            return False
        self.summary.failed[item.exp_id] = failure.message
        self.notify("failed", cfg=item.cfg, error=failure.message)
        return True

    def _free_checkpoints(self, item: PlanItem) -> None:
        """A recorded experiment keeps only the checkpoints `options.keep` asks for. Best
        effort: the result is safe already, and what stays is still restorable."""
        from fembed_jax.checkpoint import Checkpointer

        keep = self.options.keep
        if keep == "all":
            return
        checkpointer = Checkpointer(self.options.checkpoints_dir / item.exp_id, item.run_hash)
        try:
            freed = checkpointer.free(keep)
            faults.hit("runner.checkpoints_freed")
        except Exception as exc:  # noqa: BLE001 - never fails a recorded experiment
            warnings.warn(f"{item.exp_id}: checkpoints could not be reduced to --keep {keep}: "
                          f"{type(exc).__name__}: {exc}", RecoveryWarning, stacklevel=2)
            return
        finally:
            checkpointer.close()
        if freed.before:
            self.notify("freed", cfg=item.cfg, before=freed.before, after=freed.after, kept=freed.kept)


RUN_LOG = "run.log"  # outputs/<ID>/run.log: what happened to the experiment, one line an event


def _log_line(event: str, info: dict) -> str | None:
    """The run.log line of a progress event (None: not logged; a chunk of steps is too often)."""
    cfg = info["cfg"]
    if event == "start":
        return f"start: {info['seeds']} seed(s), up to {cfg.epochs} epochs, group {', '.join(info['group'])}"
    if event == "epoch":
        report = info["report"]
        active = int(report.stop.active.sum())
        aucs = [a for a in report.val_auc if a is not None]
        best = f", val AUC of its best seed {max(aucs):.4f}" if aucs else ""
        return f"epoch {report.epoch + 1}/{cfg.epochs} done: {active} seed(s) still training{best}"
    if event == "stopping":
        return f"stop requested: saving the position inside epoch {info['epoch'] + 1} (step {info['step']}/{info['steps']})"
    if event == "interrupted":
        return "interrupted: left pending, the same command resumes it"
    if event == "end":
        auc = (info["record"].get("val_metrics") or {}).get("auc")
        return f"done: validation AUC {auc:.4f} (mean over seeds)" if auc is not None else "done"
    if event == "failed":
        return f"failed: {info['error']}"
    if event == "freed":
        return f"checkpoints reduced to --keep {info['kept']}: {info['before']} -> {info['after']} bytes"
    if event == "busy":
        return "claimed by another runner, left to it"
    return None


def _append_run_log(outputs_dir: Path, exp_id: str, line: str) -> None:
    """Best effort (a log never stops a run). Appended, so a resumed run continues the story."""
    stamp = time.strftime("%Y-%m-%d %H:%M:%S")
    try:
        folder = outputs_dir / exp_id
        folder.mkdir(parents=True, exist_ok=True)
        with open(folder / RUN_LOG, "a", encoding="utf-8") as log:
            log.write(f"{stamp} {line}\n")
    except OSError:
        pass


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


def _ensure_results_file(store, options: RunOptions, item: PlanItem) -> None:
    """A done experiment's results.json must exist and be intact: if it is missing, damaged or
    from another run, rewrite it (atomically) from the record the store holds."""
    from fembed_jax import results_io
    from fembed_jax.predictions import write_results

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
        write_results(path, stored["record"])
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


def _write_error_log(outputs_dir: Path, exp_id: str, text: str) -> None:
    from fembed_jax.results_io import atomic_write_text

    try:
        atomic_write_text(outputs_dir / exp_id / "error.log", text)
    except OSError:
        pass
