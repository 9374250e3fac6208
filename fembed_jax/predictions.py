"""Per-run validation predictions: outputs/<ID>/val_predictions.npz.

The summary numbers of a result cannot answer "is A better than B on the same days?" or "what
does the seed ensemble achieve?"; the probabilities can. Each run keeps, on the selected weights:

* ``probs``  (K, n) float32: seed k's probability for validation window i;
* ``labels`` (n,)   float32: the window's label (0/1);
* ``starts`` (n,)   int32:   the window's first row in its tier's matrix;
* ``dates``  (n,)   datetime64[D]: the window's decision day (absent when the data had no dates);
* ``seeds``  (K,)   int64:   the seed values.

Window starts are row numbers of one tier (tiers drop different warm-up rows), so two
experiments on different tiers are paired by decision date, not by start row.
The file is written atomically (temporary file in the same folder, then ``os.replace``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "PREDICTIONS_FILENAME",
    "Predictions",
    "PredictionsError",
    "align",
    "load_predictions",
    "predictions_path",
    "save_predictions",
    "write_predictions",
]

PREDICTIONS_FILENAME = "val_predictions.npz"


class PredictionsError(ValueError):
    """A predictions file that cannot be used (unreadable, missing arrays, shapes disagree)."""


@dataclasses.dataclass(frozen=True)
class Predictions:
    probs: np.ndarray  # (K, n)
    labels: np.ndarray  # (n,)
    starts: np.ndarray  # (n,)
    seeds: np.ndarray  # (K,)
    dates: np.ndarray | None = None  # (n,) datetime64[D]

    @property
    def n_seeds(self) -> int:
        return int(self.probs.shape[0])

    @property
    def n_windows(self) -> int:
        return int(self.probs.shape[1])

    def keys(self) -> np.ndarray:
        """What identifies a window across experiments: its decision date, else its start row."""
        return self.dates if self.dates is not None else self.starts


def predictions_path(outputs_dir: str | os.PathLike[str], exp_id: str,
                     filename: str = PREDICTIONS_FILENAME) -> Path:
    from fembed_jax.results_io import results_path

    # results_path validates the id as a directory name (no "..", no slashes).
    return results_path(outputs_dir, exp_id).parent / filename


def _check(probs: np.ndarray, labels: np.ndarray, starts: np.ndarray, seeds: np.ndarray,
           dates: np.ndarray | None, where: str) -> None:
    if probs.ndim != 2:
        raise PredictionsError(f"{where}: probs must be (seeds, windows), got shape {probs.shape}")
    k, n = probs.shape
    for name, array, size in (("labels", labels, n), ("starts", starts, n), ("seeds", seeds, k),
                              ("dates", dates, n)):
        if array is not None and array.shape != (size,):
            raise PredictionsError(f"{where}: {name} has shape {array.shape}, expected ({size},) "
                                   f"for probs of shape {probs.shape}")
    if labels.size and not np.all((labels == 0) | (labels == 1)):
        raise PredictionsError(f"{where}: labels must be 0 or 1")


def write_predictions(path: str | os.PathLike[str], probs, labels, starts, seeds,
                      dates=None) -> Path:
    """Write the arrays to ``path`` atomically (temp file beside it, fsync, os.replace)."""
    path = Path(path)
    arrays: dict[str, np.ndarray] = {
        "probs": np.asarray(probs, np.float32),
        "labels": np.asarray(labels, np.float32).reshape(-1),
        "starts": np.asarray(starts, np.int32).reshape(-1),
        "seeds": np.asarray(seeds, np.int64).reshape(-1),
    }
    if dates is not None:
        arrays["dates"] = np.asarray(dates).astype("datetime64[D]").reshape(-1)
    _check(arrays["probs"], arrays["labels"], arrays["starts"], arrays["seeds"],
           arrays.get("dates"), str(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as tmp:
            np.savez(tmp, **arrays)  # a file object: numpy does not append ".npz"
            tmp.flush()
            os.fsync(tmp.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp_name)
        raise
    return path


def save_predictions(outputs_dir: str | os.PathLike[str], exp_id: str, fit_result: Any,
                     dataset: Any, split: str = "val") -> Path:
    """Save ``fit_result.val_probs`` with the validation windows of ``dataset``.

    ``fit_result`` is a ``fembed_jax.train.fit.FitResult``; ``dataset`` a
    ``fembed_jax.data.Dataset`` (or anything with ``labels[split]`` and ``starts[split]``;
    decision dates are stored when it has ``decision_dates``). Returns the file's path.
    """
    probs = np.asarray(fit_result.val_probs)
    labels = np.asarray(dataset.labels[split])
    starts = np.asarray(dataset.starts[split])
    dates = dataset.decision_dates(split) if hasattr(dataset, "decision_dates") else None
    filename = PREDICTIONS_FILENAME if split == "val" else f"{split}_predictions.npz"
    return write_predictions(predictions_path(outputs_dir, exp_id, filename), probs, labels,
                             starts, fit_result.seeds, dates)


def load_predictions(outputs_dir: str | os.PathLike[str], exp_id: str,
                     filename: str = PREDICTIONS_FILENAME) -> Predictions | None:
    """The saved predictions of ``exp_id``, None when the run saved none.

    A file that exists but cannot be read raises ``PredictionsError`` naming it.
    """
    try:
        path = predictions_path(outputs_dir, exp_id, filename)
    except ValueError:
        return None  # an id that is no directory name has no outputs folder
    if not path.exists():
        return None
    try:
        with np.load(path, allow_pickle=False) as npz:
            data = {key: npz[key] for key in npz.files}
    except Exception as exc:  # zip / format errors of a damaged file
        raise PredictionsError(f"{path}: cannot read ({type(exc).__name__}: {exc})") from exc
    missing = {"probs", "labels", "starts", "seeds"} - set(data)
    if missing:
        raise PredictionsError(f"{path}: missing array(s) {sorted(missing)}")
    dates = data.get("dates")
    _check(data["probs"], data["labels"], data["starts"], data["seeds"], dates, str(path))
    return Predictions(probs=data["probs"], labels=data["labels"], starts=data["starts"],
                       seeds=data["seeds"], dates=dates)


def align(a: Predictions, b: Predictions) -> tuple[np.ndarray, np.ndarray]:
    """Index arrays (ia, ib) selecting the windows both runs scored, in the same order.

    Windows are matched by decision date when both files have dates, else by start row. Raises
    PredictionsError if the matched windows carry different labels (different tasks or data).
    """
    if (a.dates is None) != (b.dates is None):
        raise PredictionsError("one predictions file has decision dates and the other not: "
                               "cannot pair their windows")
    ka, kb = a.keys(), b.keys()
    common, ia, ib = np.intersect1d(ka, kb, assume_unique=False, return_indices=True)
    if common.size == 0:
        raise PredictionsError("the two runs share no validation window")
    if not np.array_equal(a.labels[ia], b.labels[ib]):
        bad = int(np.sum(a.labels[ia] != b.labels[ib]))
        raise PredictionsError(f"{bad} of {common.size} shared windows have different labels "
                               "(different task, horizon or data)")
    return ia, ib
