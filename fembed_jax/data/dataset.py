"""`load_dataset`: the one function that hands the engine its arrays."""

from __future__ import annotations

import dataclasses
import types
from collections.abc import Mapping

import numpy as np
import pandas as pd

from fembed_jax.data.build import check_tier
from fembed_jax.data.config import DataConfig
from fembed_jax.data.errors import DataError
from fembed_jax.data.labels import check_task, decision_labels
from fembed_jax.data.splits import SPLITS, split_starts
from fembed_jax.data.tierstore import tier_frame


@dataclasses.dataclass(frozen=True, eq=False)  # arrays inside: compare by identity
class Dataset:
    """One tier's feature matrix and its windows.

    Window k of split `s` covers matrix rows [starts[s][k], starts[s][k] + context_length); its
    decision day is t = start + context_length - 1 and labels[s][k] is the task's label of t
    (which looks at rows t+1 .. t+horizon, all inside the same split region).
    """

    tier: str
    feature_names: tuple[str, ...]
    dates: np.ndarray  # datetime64[D], one per matrix row
    matrix: np.ndarray  # float32 (rows, F), read-only
    starts: Mapping[str, np.ndarray]  # split -> int32 window start rows
    labels: Mapping[str, np.ndarray]  # split -> float32 labels aligned with starts
    source_id: str
    task: str = "threshold_1pct"
    horizon: int = 1
    context_length: int = 80
    val_start: str = ""  # the snapped boundary dates actually used
    test_start: str = ""
    # Non-fatal findings about the source, one line each naming the file ("...: Adj Close present
    # and not used; ..."), for the CLI to print; nothing acts on them.
    notes: tuple[str, ...] = ()

    @property
    def num_features(self) -> int:
        return self.matrix.shape[1]

    def decision_dates(self, split: str) -> np.ndarray:
        return self.dates[self.starts[split] + self.context_length - 1]

    def split_info(self) -> dict[str, dict]:
        """Per split: windows, positives, base rate, first and last decision date."""
        info = {}
        for split in SPLITS:
            y = self.labels[split]
            days = self.decision_dates(split)
            info[split] = {
                "windows": int(y.size),
                "positives": int(y.sum()),
                "base_rate": float(y.sum()) / y.size if y.size else float("nan"),
                "first_decision": str(days[0]) if y.size else None,
                "last_decision": str(days[-1]) if y.size else None,
            }
        return info


def _readonly(a: np.ndarray) -> np.ndarray:
    a.setflags(write=False)
    return a


def dataset_from_frame(
    frame: pd.DataFrame,
    tier: str,
    feature_names: tuple[str, ...],
    source_id: str,
    val_start,
    test_start,
    task: str = "threshold_1pct",
    horizon: int = 1,
    context_length: int = 80,
    where: str | None = None,
    notes: tuple[str, ...] = (),
    test_end=None,
) -> Dataset:
    """Labels, splits and the float32 matrix of a tier frame (Date, OHLCV, features)."""
    check_task(task, horizon)
    if not isinstance(context_length, (int, np.integer)) or context_length < 1:
        raise DataError(f"context_length must be a positive integer, got {context_length!r}")
    where = where or source_id
    dates = frame["Date"].to_numpy().astype("datetime64[D]")
    all_labels = decision_labels(frame["High"].to_numpy(), frame["Close"].to_numpy(), task, horizon)
    starts = split_starts(dates, val_start, test_start, context_length + horizon, f"{where} [{tier}]", test_end)
    labels = {}
    for split, idx in starts.items():
        y = all_labels[idx + context_length - 1]
        if np.isnan(y).any():  # cannot happen with strict containment; guards future edits
            raise RuntimeError(f"{where}: a {split} window's label day lies outside the data")
        if y.min() == y.max():
            raise DataError(
                f"{where} [{tier}]: the {split} split has a single class ({int(y[0])}) for task {task} "
                f"horizon {horizon} over {y.size} windows"
            )
        labels[split] = _readonly(y.astype(np.float32))
    matrix = np.ascontiguousarray(frame[list(feature_names)].to_numpy(np.float32))
    return Dataset(
        tier=tier,
        feature_names=tuple(feature_names),
        dates=_readonly(dates),
        matrix=_readonly(matrix),
        starts=types.MappingProxyType({k: _readonly(v) for k, v in starts.items()}),
        labels=types.MappingProxyType(labels),
        source_id=source_id,
        task=task,
        horizon=int(horizon),
        context_length=int(context_length),
        val_start=str(dates[starts["val"][0]]),
        test_start=str(dates[starts["test"][0]]),
        notes=tuple(notes),
    )


def load_dataset(
    tier: str,
    data: DataConfig | None = None,
    task: str = "threshold_1pct",
    horizon: int = 1,
    context_length: int = 80,
) -> Dataset:
    """The tier's Dataset for `data` (default: built-in S&P 500, val 2015-01-01, test 2017-01-01).

    Builds (and caches) the tier from raw data, or reads it from `data.tier_dir`; raises DataError
    with the file and the problem on bad input.
    """
    cfg = data or DataConfig()
    check_tier(tier)
    check_task(task, horizon)
    tf = tier_frame(cfg, tier)
    where = str(tf.path) if cfg.tier_dir is not None else tf.source_id.split("|")[0]
    return dataset_from_frame(
        tf.frame, tier, tf.feature_names, tf.source_id, cfg.val_start, cfg.test_start,
        task, horizon, context_length, where, tf.notes, cfg.test_end,
    )
