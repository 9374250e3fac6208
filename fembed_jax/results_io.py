"""results.json on disk: atomic writes, strict reads, JSON that understands numpy.

A result record lives at ``outputs/<EXP_ID>/results.json``. Writers never leave a half-written
file behind: the record goes to a temporary file in the same directory, is fsync'ed, and then
``os.replace`` swaps it in (atomic on POSIX and Windows for files on one filesystem). A crash
at any point leaves either the old file or the new one, never a mixture.

What the record contains is decided elsewhere (the engine builds it); this module only moves
dicts to and from disk.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import json
import math
import os
import pathlib
import re
import tempfile
from collections.abc import Mapping
from typing import Any

import numpy as np

from fembed_jax import faults

__all__ = [
    "ResultsFileError",
    "RESULTS_FILENAME",
    "dumps",
    "to_jsonable",
    "results_path",
    "write_results",
    "read_results",
    "atomic_write_text",
]

RESULTS_FILENAME = "results.json"

# mkstemp makes 0600 files; a result file gets the permissions any file the user creates gets.
_UMASK = os.umask(0o022)
os.umask(_UMASK)

# Experiment ids become directory names; anything else (slashes, "..") could escape outputs/.
_SAFE_EXP_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


class ResultsFileError(ValueError):
    """A results.json that exists but cannot be used (empty, truncated, garbled, not an object)."""


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
    if not _SAFE_EXP_ID.match(exp_id) or exp_id in {".", ".."}:
        raise ValueError(f"experiment id {exp_id!r} is not usable as a directory name")
    return pathlib.Path(outputs_dir) / exp_id / RESULTS_FILENAME


def fsync_directory(directory: pathlib.Path) -> None:
    """Make a rename inside ``directory`` durable (POSIX); a no-op where dirs can't be opened."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # Windows cannot open directories; its rename is durable enough.
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write_text(path: str | os.PathLike[str], text: str) -> pathlib.Path:
    """Write ``text`` to ``path`` atomically: temp file in the same dir, fsync, os.replace.

    The temporary file lives next to the target so that the final rename never crosses a
    filesystem boundary. If anything fails before the rename, the temporary file is removed
    and the previous contents of ``path`` (if any) are untouched.
    """
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.chmod(tmp_name, 0o666 & ~_UMASK)
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as tmp:
            tmp.write(text)
            tmp.flush()
            os.fsync(tmp.fileno())
        faults.hit("results_io.before_replace")
        os.replace(tmp_name, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp_name)
        raise
    faults.hit("results_io.replaced")
    fsync_directory(path.parent)
    return path


def write_results(path: str | os.PathLike[str], record: Mapping[str, Any]) -> pathlib.Path:
    """Atomically write a result record as indented JSON (numpy values converted)."""
    if not isinstance(record, Mapping):
        raise TypeError(f"result record for {path} must be a mapping, got {type(record).__name__}")
    return atomic_write_text(path, dumps(record) + "\n")


def read_results(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a result record; ``ResultsFileError`` names the file and what is wrong with it.

    ``FileNotFoundError`` is left as is (a missing file is not a damaged one).
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
    return record
