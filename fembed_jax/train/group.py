"""Train one group: experiments that share a compiled program, all their seeds at once.

`train_group` is the unit both queue backends run: the local one in its own process
(local.py), the Ray one inside a task on any machine (ray_backend.py). It loads the group's
dataset, builds each member with its checkpointer (resume, mid-epoch positions, retention),
runs fit_group and returns typed outcomes: per experiment `Finished` (its record, ready to be
written) or `Failed` (every seed diverged), or `Stopped` for the whole group when a stop request
cut it short. It never touches the run store: the epoch and step reports go to the caller's
hooks, which may raise to abort (a lost claim, a store that cannot be written).
"""

from __future__ import annotations

import dataclasses
import logging
import traceback
from collections.abc import Callable
from typing import Any

from fembed_jax.train.plan import PlanItem, RunOptions, check_features, dataset_for, seeds_of


@dataclasses.dataclass
class ValWindows:
    """What save_predictions reads from a Dataset: the validation windows, not the matrix."""

    labels: dict
    starts: dict
    dates: Any

    @classmethod
    def of(cls, dataset) -> ValWindows:
        dates = dataset.decision_dates("val") if hasattr(dataset, "decision_dates") else None
        return cls({"val": dataset.labels["val"]}, {"val": dataset.starts["val"]}, dates)

    def decision_dates(self, split: str):
        return self.dates


@dataclasses.dataclass
class Finished:
    """An experiment trained: its results.json record, its FitResult and validation windows."""

    record: dict
    result: Any  # fembed_jax.train.fit.FitResult
    windows: ValWindows


@dataclasses.dataclass
class Failed:
    """An experiment that trained but cannot be recorded as a result (diverged, or it raised)."""

    message: str
    details: str | None = None  # a traceback for outputs/<ID>/error.log


Outcome = Finished | Failed

NOTHING_NEW = "trained nothing since its last checkpoint"


@dataclasses.dataclass
class Stopped:
    """A stop request ended the group's training. `positions`: per experiment id, (epoch, None)
    when its epoch `epoch` is checkpointed, (epoch, step) when the position after `step` of the
    epoch's `steps` batches is; an id without a position trained nothing new."""

    positions: dict[str, tuple[int, int | None]]
    steps: int | None

    def where(self, item: PlanItem) -> str:
        """For people (epochs counted from 1): 'after epoch 3/50', 'inside epoch 4/50 (step
        120/400)'."""
        epoch, step = self.positions.get(item.exp_id, (None, None))
        if epoch is None or (step is None and epoch < 0):
            return NOTHING_NEW
        if step is None:
            return f"after epoch {epoch + 1}/{item.cfg.epochs}"
        return f"inside epoch {epoch + 1}/{item.cfg.epochs} (step {step}/{self.steps})"


def failed(items: list[PlanItem], exc: BaseException) -> dict[str, Outcome]:
    """The whole program failed (it raised): each member is recorded failed with the error."""
    failure = Failed(f"{type(exc).__name__}: {exc}", traceback.format_exc())
    return {item.exp_id: failure for item in items}


def train_group(items: list[PlanItem], options: RunOptions, *,
                should_stop: Callable[[], bool] | None = None,
                on_epoch: Callable[[PlanItem, Any], None] | None = None,
                on_step: Callable[[PlanItem, Any], None] | None = None,
                datasets: dict | None = None,
                clear_reruns: bool = True) -> dict[str, Outcome] | Stopped:
    """Train the experiments of one group together (equal structure: one dataset for all).

    `on_epoch(item, EpochReport)` after each checkpointed epoch, `on_step(item, StepReport)`
    after each chunk of steps inside one; `datasets` caches loaded datasets across groups;
    `clear_reruns` False keeps a --force rerun's checkpoints (a retried Ray task resumes them).
    Exceptions of the hooks and of training propagate (see `failed`)."""
    from fembed_jax import runtime
    from fembed_jax.checkpoint import Checkpointer
    from fembed_jax.train.engine import DeviceData
    from fembed_jax.train.fit import Interrupted, Member, fit_group

    dataset = dataset_for(items[0], {} if datasets is None else datasets)
    check_features(items, dataset)
    data = DeviceData.from_dataset(dataset)
    members = []
    for item in items:
        checkpointer = Checkpointer(options.checkpoints_dir / item.exp_id, item.run_hash)
        if item.status == "rerun" and clear_reruns:
            checkpointer.clear()
        members.append(Member(item.cfg, seeds_of(item.cfg), checkpointer,
                              _bound(on_epoch, item), _bound(on_step, item), keep=options.keep))
    try:
        results = fit_group(members, data, should_stop=should_stop,
                            evaluate_test=options.evaluate_test,
                            devices=runtime.training_devices(options.devices),
                            steps_per_chunk=options.chunk_steps, on_pace=_record_pace)
    except Interrupted as exc:
        return Stopped(exc.positions, exc.steps)
    splits = {split: data.size(split) for split in ("train", "val", "test")}
    return _outcomes(items, results, splits, _data_info(dataset), ValWindows.of(dataset))


def _record_pace(engine, members: int) -> None:
    """The step time a real run measured: later estimates (and dry runs) of this shape use it."""
    from fembed_jax import estimate

    try:
        estimate.record_engine(engine, members)
    except Exception as exc:  # noqa: BLE001 - an estimate never stops training
        logging.getLogger(__name__).warning("the pace of %s was not recorded: %s", engine.cfg.exp_id, exc)


def _bound(hook, item: PlanItem):
    return None if hook is None else (lambda report: hook(item, report))


def _outcomes(items: list[PlanItem], results, splits: dict[str, int], data_info: dict[str, Any],
              windows: ValWindows) -> dict[str, Outcome]:
    from fembed_jax.catalog import param_counts
    from fembed_jax.train.record import build_record

    counts = param_counts([item.cfg for item in items])
    outcomes: dict[str, Outcome] = {}
    for item, result in zip(items, results):
        if all(m["diverged"] for m in result.per_seed):
            outcomes[item.exp_id] = Failed("diverged: every seed produced a non-finite loss")
            continue
        record = build_record(item.cfg, result, params=counts[item.exp_id], splits=splits,
                              data_info=data_info, run_hash=item.run_hash)
        outcomes[item.exp_id] = Finished(record, result, windows)
    return outcomes


def _data_info(dataset) -> dict[str, Any]:
    info = {"tier": dataset.tier, "source_id": dataset.source_id,
            "features": len(dataset.feature_names)}
    try:
        info["splits"] = dataset.split_info()
    except Exception:  # informational only
        pass
    return info
