"""Deterministic fault injection for the reliability tests (tests/reliability/, RELIABILITY.md).

Library code marks the places where a crash or a failed write matters with ``faults.hit(name)``.
Normally nothing is armed and a hit costs one global lookup. The environment variable

    FEMBED_FAULT="point:N[:action][,point:N[:action]...]"

(read at import, so it applies to a `fembed run` subprocess) makes the N-th hit of ``point`` in
this process perform ``action``:

    kill     SIGKILL this process at exactly that line (default): a crash, a pre-empted node
    oserror  raise OSError(ENOSPC): the write that was about to happen fails, as on a full disk
    sigterm  send SIGTERM to this process (a scheduler's pre-emption notice)
    sigint   send SIGINT to this process (Ctrl-C)

``FEMBED_FAULT_TRACE=path`` appends the name of every hit to ``path`` (one per line), which is
how the tests learn how often a point is reached in a clean run. ``arm()`` / ``disarm()`` do the
same as the variables for in-process tests.
"""

from __future__ import annotations

import errno
import os
import signal

__all__ = ["ACTIONS", "arm", "disarm", "hit", "parse"]

ACTIONS = ("kill", "oserror", "sigterm", "sigint")

_armed: dict[str, tuple[int, str]] = {}  # point -> (hit number that fires, action)
_counts: dict[str, int] = {}
_trace: str | None = None


def parse(spec: str) -> dict[str, tuple[int, str]]:
    """``"a:2,b:1:oserror"`` -> ``{"a": (2, "kill"), "b": (1, "oserror")}``; ValueError if malformed."""
    armed = {}
    for part in filter(None, (p.strip() for p in spec.split(","))):
        name, _, rest = part.partition(":")
        count, _, action = rest.partition(":")
        action = action or "kill"
        if not name or not count.isdigit() or int(count) < 1 or action not in ACTIONS:
            raise ValueError(f"FEMBED_FAULT: {part!r} is not point:N[:{'|'.join(ACTIONS)}] with N >= 1")
        armed[name] = (int(count), action)
    return armed


def arm(spec: str = "", trace: str | None = None) -> None:
    """Arm the faults of ``spec`` (replacing any), reset the hit counts, set the trace file."""
    global _trace
    _armed.clear()
    _armed.update(parse(spec))
    _counts.clear()
    _trace = trace


def disarm() -> None:
    arm("")


def hit(point: str) -> None:
    """A fault point: no-op unless armed (see the module docstring)."""
    if not (_armed or _trace):
        return
    count = _counts[point] = _counts.get(point, 0) + 1
    if _trace:
        with open(_trace, "a", encoding="utf-8") as fh:
            fh.write(point + "\n")
    target = _armed.get(point)
    if target is None or target[0] != count:
        return
    action = target[1]
    if action == "oserror":
        raise OSError(errno.ENOSPC, f"{os.strerror(errno.ENOSPC)} (injected at {point})")
    os.kill(os.getpid(), {"kill": signal.SIGKILL, "sigterm": signal.SIGTERM, "sigint": signal.SIGINT}[action])


arm(os.environ.get("FEMBED_FAULT", ""), os.environ.get("FEMBED_FAULT_TRACE") or None)
