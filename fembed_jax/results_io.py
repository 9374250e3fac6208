"""results.json on disk: atomic writes, sealed records, strict reads, JSON that understands numpy.

A result record lives at ``outputs/<EXP_ID>/results.json``. Writers never leave a half-written
file behind (fembed_jax.atomic: temporary file in the same directory, fsync, ``os.replace``). A
crash at any point leaves either the old file or the new one, never a mixture.

A file can still be changed afterwards (an edit, a bad copy, bit rot) and stay valid JSON, so
``write_results`` seals the record it writes with two fields:

* ``predictions_sha256`` — ``{"val_predictions.npz": sha256}`` of the run's predictions lying
  beside results.json (the runner writes them first), so readers can tell a damaged or missing
  predictions file; the digests are handed in (fembed_jax.predictions.write_results takes them:
  this module knows nothing of the predictions' format);
* ``record_sha256`` — SHA-256 of the canonical JSON of the record without this field.

``read_results`` checks the seal: a record whose content no longer matches it raises
``ResultsFileError`` like any other damaged file, so the runner rebuilds it from the run store.
A record written before seals existed (no ``record_sha256``) loads as it is: unverified, not
damaged.

What the record contains is decided elsewhere (the engine builds it); this module only moves
dicts to and from disk.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import math
import os
import pathlib
import re
from collections.abc import Mapping
from typing import Any

import numpy as np

from fembed_jax.atomic import atomic_write, fsync_directory

__all__ = [
    "ResultsFileError",
    "RESULTS_FILENAME",
    "RECORD_DIGEST_KEY",
    "PREDICTIONS_DIGEST_KEY",
    "SEAL_KEYS",
    "content_digest",
    "dumps",
    "file_sha256",
    "fsync_directory",
    "to_jsonable",
    "results_path",
    "record_verified",
    "write_results",
    "read_results",
    "atomic_write_text",
]

RESULTS_FILENAME = "results.json"
RECORD_DIGEST_KEY = "record_sha256"
PREDICTIONS_DIGEST_KEY = "predictions_sha256"
SEAL_KEYS = (PREDICTIONS_DIGEST_KEY, RECORD_DIGEST_KEY)

# Experiment ids become directory names; anything else (slashes, "..") could escape outputs/.
SAFE_EXP_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


class ResultsFileError(ValueError):
    """A results.json that exists but cannot be used (empty, truncated, garbled, not an object,
    or changed since it was written: its content fails its ``record_sha256``)."""


def to_jsonable(obj: Any) -> Any:
    """Return ``obj`` as plain JSON types (dict, list, str, int, float, bool, None).

    numpy / jax scalars become Python scalars, arrays become (nested) lists, mappings (also
    read-only ``MappingProxyType``) become dicts with ``str`` keys, tuples and sets become
    lists, dataclasses their field dicts, paths and datetimes strings.

    Non-finite floats (NaN, ±inf) become ``None``: strict JSON has no literal for them and
    ``null`` is what other tools (jq, JavaScript, pandas) can read. A diverged loss is
    therefore recorded as ``null``.
    """
    if obj is None or isinstance(obj, (bool, str)):
        return obj
    if isinstance(obj, int):
        return int(obj)
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, np.generic):
        return to_jsonable(obj.item())
    if isinstance(obj, Mapping):
        return {str(key): to_jsonable(value) for key, value in obj.items()}
    if isinstance(obj, (list, tuple, set, frozenset)):
        items = sorted(obj, key=repr) if isinstance(obj, (set, frozenset)) else obj
        return [to_jsonable(item) for item in items]
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_jsonable(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (pathlib.PurePath,)):
        return str(obj)
    if isinstance(obj, (dt.datetime, dt.date)):
        return obj.isoformat()
    if isinstance(obj, np.ndarray) or hasattr(obj, "__array__"):
        # jax.Array and friends: pull to host, then recurse through tolist() for NaN handling.
        return to_jsonable(np.asarray(obj).tolist())
    raise TypeError(f"cannot encode {type(obj).__name__} as JSON: {obj!r:.80}")


def dumps(obj: Any, *, indent: int | None = 2) -> str:
    """Serialise ``obj`` to strict JSON (see ``to_jsonable`` for the conversions)."""
    return json.dumps(to_jsonable(obj), indent=indent, allow_nan=False, ensure_ascii=False)


def results_path(outputs_dir: str | os.PathLike[str], exp_id: str) -> pathlib.Path:
    """``<outputs_dir>/<exp_id>/results.json``; rejects ids that are not safe directory names."""
    if not SAFE_EXP_ID.match(exp_id) or exp_id in {".", ".."}:
        raise ValueError(f"experiment id {exp_id!r} is not usable as a directory name")
    return pathlib.Path(outputs_dir) / exp_id / RESULTS_FILENAME


def content_digest(obj: Any) -> str:
    """SHA-256 of the canonical JSON of ``obj`` (sorted keys, no whitespace, UTF-8).

    Canonical so that the digest survives a JSON round trip: Python writes every float as its
    shortest repr and reads it back to the same float, and key order does not matter.
    """
    text = json.dumps(to_jsonable(obj), sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def file_sha256(path: str | os.PathLike[str]) -> str:
    """SHA-256 of a file's bytes (read in chunks: prediction files can be tens of MB)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def atomic_write_text(path: str | os.PathLike[str], text: str) -> pathlib.Path:
    """Write ``text`` (UTF-8, newlines as given) to ``path`` atomically (fembed_jax.atomic).

    Hits the fault points ``results_io.before_replace`` / ``results_io.replaced``.
    """
    return atomic_write(path, text.encode("utf-8"), fault="results_io")


def _sealed(record: Mapping[str, Any], predictions: Mapping[str, str] | None) -> dict[str, Any]:
    """``record`` with its seal fields (see the module docstring), as plain JSON types.

    A predictions digest the record already carries is kept: it was taken when the file was
    written, so a record rebuilt from the run store does not bless a file damaged since.
    """
    body = {key: value for key, value in to_jsonable(record).items() if key != RECORD_DIGEST_KEY}
    if predictions and PREDICTIONS_DIGEST_KEY not in body:
        body[PREDICTIONS_DIGEST_KEY] = dict(predictions)
    body[RECORD_DIGEST_KEY] = content_digest(body)
    return body


def write_results(path: str | os.PathLike[str], record: Mapping[str, Any], *,
                  predictions: Mapping[str, str] | None = None) -> pathlib.Path:
    """Atomically write a result record as indented JSON (numpy values converted), sealed.

    The file holds ``record`` plus ``predictions_sha256`` (the ``predictions`` digests given,
    ``{filename: sha256}``: what fembed_jax.predictions.write_results passes for a results.json
    with intact predictions beside it) and ``record_sha256``; ``record`` itself is not modified.
    """
    if not isinstance(record, Mapping):
        raise TypeError(f"result record for {path} must be a mapping, got {type(record).__name__}")
    path = pathlib.Path(path)
    return atomic_write_text(path, dumps(_sealed(record, predictions)) + "\n")


def record_verified(record: Mapping[str, Any], where: str | os.PathLike[str] = "result record") -> bool:
    """True when ``record`` carries a digest that matches its content, False when it carries
    none (written by fembed before records were sealed: unverified, still usable).

    Raises ``ResultsFileError`` naming ``where`` when the digest does not match: the record was
    changed after it was written.
    """
    saved = record.get(RECORD_DIGEST_KEY)
    if saved is None:
        return False
    actual = content_digest({key: value for key, value in record.items() if key != RECORD_DIGEST_KEY})
    if saved != actual:
        raise ResultsFileError(f"{where}: content does not match its {RECORD_DIGEST_KEY} "
                               "(edited or damaged after it was written)")
    return True


def read_results(path: str | os.PathLike[str], *, verify: bool = True) -> dict[str, Any]:
    """Read a result record; ``ResultsFileError`` names the file and what is wrong with it.

    The record is returned as the file holds it, seal fields included. With ``verify`` (the
    default) a record whose ``record_sha256`` does not match its content is damaged
    (``ResultsFileError``); one without the field is returned unverified (``record_verified``
    tells which). ``FileNotFoundError`` is left as is (a missing file is not a damaged one).
    """
    path = pathlib.Path(path)
    raw = path.read_bytes()
    if not raw.strip():
        raise ResultsFileError(f"{path}: file is empty (interrupted write?)")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ResultsFileError(f"{path}: not UTF-8 text at byte {err.start} (garbled file?)") from err
    try:
        record = json.loads(text)
    except json.JSONDecodeError as err:
        # A record is one top-level object: text not ending in "}" was cut off mid-write.
        hint = "" if text.rstrip().endswith("}") else " (file ends early: truncated?)"
        raise ResultsFileError(
            f"{path}: invalid JSON at line {err.lineno} column {err.colno}: {err.msg}{hint}"
        ) from err
    if not isinstance(record, dict):
        raise ResultsFileError(f"{path}: expected a JSON object, found {type(record).__name__}")
    if verify:
        record_verified(record, path)
    return record
