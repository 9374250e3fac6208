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
The file is written atomically (fembed_jax.atomic).

Integrity: results.json records the file's SHA-256 (``predictions_sha256``, taken by this
module's ``write_results`` from the file beside it). ``load_predictions`` checks it, so a file
overwritten, cut short or deleted after its results.json was written is reported damaged
(``PredictionsDamagedError``) instead of being used or silently missing. A results.json
without the field (written before it existed) leaves the file unverified, as before.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from fembed_jax import results_io
from fembed_jax.atomic import atomic_write

__all__ = [
    "PREDICTIONS_FILENAME",
    "Predictions",
    "PredictionsDamagedError",
    "PredictionsError",
    "align",
    "digests_beside",
    "write_results",
    "load_predictions",
    "predictions_path",
    "save_predictions",
    "write_predictions",
]

PREDICTIONS_FILENAME = "val_predictions.npz"
# The prediction files whose digest results.json records (test predictions are written after
# test_results.json, by `fembed evaluate`, and belong to no results.json).
SEALED_FILENAMES = (PREDICTIONS_FILENAME,)


class PredictionsError(ValueError):
    """A predictions file that cannot be used (unreadable, missing arrays, shapes disagree)."""


class PredictionsDamagedError(PredictionsError):
    """results.json records a predictions file that is missing or whose bytes changed since."""


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

    def windows(self, mask: np.ndarray) -> "Predictions":
        """These predictions on the windows where the boolean ``mask`` is true."""
        mask = np.asarray(mask, bool)
        return dataclasses.replace(self, probs=self.probs[:, mask], labels=self.labels[mask],
                                   starts=self.starts[mask],
                                   dates=None if self.dates is None else self.dates[mask])

    def keys(self) -> np.ndarray:
        """What identifies a window across experiments: its decision date, else its start row."""
        return self.dates if self.dates is not None else self.starts


def predictions_path(outputs_dir: str | os.PathLike[str], exp_id: str,
                     filename: str = PREDICTIONS_FILENAME) -> Path:
    # results_path validates the id as a directory name (no "..", no slashes).
    return results_io.results_path(outputs_dir, exp_id).parent / filename


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


def _write(path: Path, probs, labels, starts, seeds, dates) -> Path:
    """Check the arrays and write them to ``path`` atomically."""
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
    # A file object: numpy does not append ".npz" to it.
    return atomic_write(path, lambda fh: np.savez(fh, **arrays))


def write_predictions(path: str | os.PathLike[str], probs, labels, starts, seeds,
                      dates=None) -> Path:
    """Write the arrays to ``path`` atomically and keep the results.json beside it in step.

    This is the writer for predictions made after their result (``fembed evaluate --split
    val`` re-scoring a run, after checking the weights reproduce it): when a sealed, intact
    results.json beside ``path`` records another digest for this file, it is rewritten with the
    new one, or it would call the new file damaged. An unsealed (older) or damaged results.json
    is left alone: the first stays unverified, the second is the runner's to rebuild.
    """
    path = _write(Path(path), probs, labels, starts, seeds, dates)
    if path.name in SEALED_FILENAMES:
        _reseal_results(path)
    return path


def _reseal_results(path: Path) -> None:
    """Rewrite the sealed, intact results.json beside ``path`` when it records another digest."""

    results = path.parent / results_io.RESULTS_FILENAME
    try:
        record = results_io.read_results(results)  # verifies the seal
    except (OSError, results_io.ResultsFileError):
        return
    if results_io.RECORD_DIGEST_KEY not in record:
        return
    if (record.get(results_io.PREDICTIONS_DIGEST_KEY) or {}).get(path.name) == results_io.file_sha256(path):
        return
    body = {key: value for key, value in record.items() if key not in results_io.SEAL_KEYS}
    write_results(results, body)  # takes the new file's digest


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
    # Not write_predictions: the runner writes results.json next, which takes this file's digest.
    return _write(predictions_path(outputs_dir, exp_id, filename), probs, labels, starts,
                  fit_result.seeds, dates)


def _read(path: Path) -> Predictions:
    """The predictions in ``path``; ``PredictionsError`` naming it when they cannot be used."""
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


def write_results(path: str | os.PathLike[str], record: Mapping[str, Any]) -> Path:
    """results_io.write_results, and for a results.json the digests of the intact predictions
    lying beside it (``digests_beside``): what the runner writes after save_predictions."""
    path = Path(path)
    digests = digests_beside(path.parent) if path.name == results_io.RESULTS_FILENAME else None
    return results_io.write_results(path, record, predictions=digests)


def digests_beside(folder: str | os.PathLike[str]) -> dict[str, str]:
    """``{filename: sha256}`` of the sealed prediction files in ``folder`` that can be used.

    What results.json records (``write_results``). A file that does not load is left out
    rather than recorded: its digest would vouch for damage.
    """
    found = {}
    for name in SEALED_FILENAMES:
        path = Path(folder) / name
        if not path.is_file():
            continue
        try:
            _read(path)
        except PredictionsError:
            continue
        found[name] = results_io.file_sha256(path)
    return found


def _recorded_digest(path: Path) -> str | None:
    """The SHA-256 the results.json beside ``path`` records for it; None when it records none,
    or cannot vouch for anything (missing or damaged: then the file is unverified)."""
    if path.name not in SEALED_FILENAMES:
        return None
    try:
        record = results_io.read_results(path.parent / results_io.RESULTS_FILENAME)
    except (OSError, results_io.ResultsFileError):
        return None
    digest = (record.get(results_io.PREDICTIONS_DIGEST_KEY) or {}).get(path.name)
    return digest if isinstance(digest, str) else None


def load_predictions(outputs_dir: str | os.PathLike[str], exp_id: str,
                     filename: str = PREDICTIONS_FILENAME) -> Predictions | None:
    """The saved predictions of ``exp_id``, None when the run saved none.

    A file that exists but cannot be read raises ``PredictionsError`` naming it. When the
    run's results.json records the file's digest, a file that is missing or does not match it
    raises ``PredictionsDamagedError`` ("predictions missing (damaged)"): never used, never
    silently absent.
    """
    try:
        path = predictions_path(outputs_dir, exp_id, filename)
    except ValueError:
        return None  # an id that is no directory name has no outputs folder
    recorded = _recorded_digest(path)
    regenerate = f"`fembed evaluate {exp_id} --split val` writes it again from the run's checkpoint"
    if not path.exists():
        if recorded is None:
            return None
        raise PredictionsDamagedError(f"{path}: predictions missing (damaged): the file is gone, "
                                      f"results.json records it; {regenerate}")
    if recorded is not None:
        actual = results_io.file_sha256(path)
        if actual != recorded:
            raise PredictionsDamagedError(
                f"{path}: predictions missing (damaged): sha256 {actual[:12]}… differs from the "
                f"{recorded[:12]}… results.json recorded when it was written; {regenerate}")
    return _read(path)


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
