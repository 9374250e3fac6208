"""The last lines of a run's log file (outputs/<EXP_ID>/run.log), read from its end only.

The runner appends one UTF-8 line per event. ``LogTail.read()`` is called on every poll: it
stats the file and reads nothing when it has not grown; when it grew, only the new bytes; when
it is new, shorter than before or replaced (another inode), at most ``TAIL_BYTES`` from its end.
A line is shown once its newline is written (a half-written last line waits for the next poll).
"""

from __future__ import annotations

import collections
import dataclasses
import os
import pathlib

MAX_LINES = 200
TAIL_BYTES = 256 * 1024  # 200 lines of up to ~1.3 KB each: plenty, and a bounded read
RUN_LOG = "run.log"


def run_log_path(outputs: str | os.PathLike[str], exp_id: str) -> pathlib.Path:
    """Where the runner writes ``exp_id``'s log: outputs/<EXP_ID>/run.log."""
    return pathlib.Path(outputs) / exp_id / RUN_LOG


@dataclasses.dataclass(frozen=True)
class LogLines:
    """What a poll saw. ``total`` counts the lines read since ``generation`` began (a reader
    that showed ``n`` of them appends only the last ``total - n``); a new generation (the file
    replaced or truncated) means: clear and show ``lines``."""

    path: pathlib.Path
    exists: bool
    lines: tuple[str, ...] = ()
    total: int = 0
    generation: int = 0
    error: str | None = None


class LogTail:
    """Follows one file; use from one thread at a time (the poll worker)."""

    def __init__(self, path: str | os.PathLike[str], max_lines: int = MAX_LINES,
                 tail_bytes: int = TAIL_BYTES) -> None:
        self.path = pathlib.Path(path)
        self.max_lines, self.tail_bytes = max_lines, tail_bytes
        self._lines: collections.deque[str] = collections.deque(maxlen=max_lines)
        self._identity: tuple[int, int] | None = None  # (device, inode) of the file followed
        self._offset = 0  # bytes consumed (up to the last newline)
        self._total = 0
        self._generation = 0
        self._last: LogLines | None = None

    def read(self) -> LogLines:
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            self._reset(None)
            return self._snapshot(False)
        except OSError as exc:
            return dataclasses.replace(self._snapshot(False), error=f"{type(exc).__name__}: {exc}")
        identity = (stat.st_dev, stat.st_ino)
        if identity != self._identity or stat.st_size < self._offset:
            self._reset(identity)
        if stat.st_size == self._offset and self._last is not None and self._last.exists:
            return self._last  # nothing new: no read at all
        try:
            self._consume(stat.st_size)
        except OSError as exc:
            return dataclasses.replace(self._snapshot(True), error=f"{type(exc).__name__}: {exc}")
        return self._snapshot(True)

    def _reset(self, identity: tuple[int, int] | None) -> None:
        if self._identity is None and identity is None and self._offset == 0:
            return
        self._identity, self._offset, self._total = identity, 0, 0
        self._lines.clear()
        self._generation += 1
        self._last = None

    def _consume(self, size: int) -> None:
        start = self._offset
        skip_partial = False
        if size - start > self.tail_bytes:  # far behind (or a big file met first): the end only
            start, skip_partial = size - self.tail_bytes, True
        with open(self.path, "rb") as f:
            f.seek(start - 1 if skip_partial else start)  # skipping: from the byte before, to
            data = f.read(size - f.tell())              # see whether a line begins at start
        if skip_partial:
            cut = data.find(b"\n")  # drop the line the cut fell into (its start is not read)
            data = data[cut + 1:] if cut >= 0 else b""
            start = size - len(data)
            if self._lines:  # lines skipped over: a new generation, the old ones are stale
                self._lines.clear()
                self._generation += 1
                self._total = 0
        end = data.rfind(b"\n")
        if end < 0:  # no complete line yet
            self._offset = start
            return
        complete = data[: end + 1]
        self._offset = start + len(complete)
        new = complete.decode("utf-8", "replace").split("\n")[:-1]
        self._lines.extend(line.rstrip("\r") for line in new)
        self._total += len(new)

    def _snapshot(self, exists: bool) -> LogLines:
        self._last = LogLines(self.path, exists, tuple(self._lines), self._total, self._generation)
        return self._last
