"""Atomic file writes: the one implementation every file writer of fembed uses.

    atomic_write(path, b"bytes")                                  # or
    atomic_write(path, lambda fh: frame.to_parquet(fh, index=False))

The data goes to a temporary file in the target's own folder (so the final rename never crosses
a filesystem), is flushed and fsync'ed, then ``os.replace`` swaps it in and the folder is
fsync'ed so the rename itself survives a power cut. A crash at any point leaves either the old
file or the new one, never a mixture; a failure before the rename removes the temporary file
and leaves the old contents untouched. Temporary names are ``.<name>.<random>.tmp``: hidden,
and what the runner sweeps up after a crash (train.queue._remove_interrupted_writes).

Permissions: the file gets the mode any file the user creates gets (``0o666 & ~umask``, or
what a default ACL of the folder says), not mkstemp's 0600: collaborators on a shared cluster
must be able to read results. The temporary file is created with ``os.open(..., 0o666)`` so
that the kernel applies the umask itself. Reading the umask is not possible without setting it
(``os.umask``), which would race with other threads creating files in the meantime.
"""

from __future__ import annotations

import contextlib
import os
import pathlib
import secrets
from collections.abc import Callable
from typing import BinaryIO

from fembed_jax import faults

__all__ = ["atomic_write", "fsync_directory"]

# O_EXCL: never open a file someone else created under the same name; O_BINARY: no newline
# translation on Windows.
_CREATE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
_NAME_ATTEMPTS = 100


def fsync_directory(directory: str | os.PathLike[str]) -> None:
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


def _create_temporary(path: pathlib.Path) -> tuple[int, pathlib.Path]:
    """A new, empty temporary file beside ``path``: (fd open for writing, its path)."""
    for _ in range(_NAME_ATTEMPTS):
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
        try:
            return os.open(tmp, _CREATE_FLAGS, 0o666), tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"{path.parent}: no free temporary name for {path.name} after {_NAME_ATTEMPTS} tries")


def atomic_write(path: str | os.PathLike[str], data: bytes | Callable[[BinaryIO], object], *,
                 fault: str | None = None) -> pathlib.Path:
    """Replace ``path`` atomically with ``data`` and return the path once it is durable.

    ``data`` is the file's bytes, or a function that writes them into the binary file object it
    is given (``np.savez``, ``DataFrame.to_parquet``, ``Figure.savefig``...); it must not close
    it. Missing parent folders are created. ``fault`` names fault points
    ``<fault>.before_replace`` and ``<fault>.replaced`` (fembed_jax.faults) for the
    reliability tests.
    """
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = _create_temporary(path)
    try:
        with os.fdopen(fd, "wb") as fh:
            if callable(data):
                data(fh)
            else:
                fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        if fault:
            faults.hit(f"{fault}.before_replace")
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    if fault:
        faults.hit(f"{fault}.replaced")
    fsync_directory(path.parent)
    return path
