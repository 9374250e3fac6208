"""Is the runner holding a claim still alive? The one policy that the runner's takeover,
`fembed status` and the TUI all apply, so a killed run reads the same everywhere.

An owner id is ``host:pid:token`` (``make_owner``). An owner on this host is judged by its
process: gone, or its pid now taken by a process started after the claim, means dead at once
(seconds after a SIGKILL, not minutes). An owner on another host cannot be checked from here: it
is dead when its heartbeat is older than STALE_AFTER_S. A live process whose heartbeat is late
is shown as stalled but keeps its claim until the heartbeat is stale.
"""

from __future__ import annotations

import dataclasses
import os
import socket
import uuid

HEARTBEAT_S = 10.0  # how often a runner refreshes its claims (a thread: independent of epochs)
STALE_AFTER_S = 120.0  # twelve missed heartbeats: a runner elsewhere is dead after this
STALLED_AFTER_S = 3 * HEARTBEAT_S  # three missed heartbeats: worth showing, not yet dead
# A process's start time is known to a clock tick; allow for that and for clock rounding.
_START_TOLERANCE_S = 2.0


@dataclasses.dataclass(frozen=True)
class Liveness:
    """The verdict on a claim: ``state`` is "alive", "stalled" (alive, heartbeat late) or
    "dead"; ``reason`` says why in words a person can check."""

    state: str
    reason: str

    @property
    def dead(self) -> bool:
        return self.state == "dead"


def make_owner() -> str:
    """A claim owner id ``host:pid:token``: unique per runner, readable in the TUI."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def judge(owner: str | None, heartbeat_at: float | None, claimed_at: float | None, now: float,
          stale_after_s: float = STALE_AFTER_S) -> Liveness:
    """The liveness of the runner ``owner`` whose last heartbeat was at ``heartbeat_at`` and
    whose claim began at ``claimed_at`` (Unix seconds; None when unknown)."""
    if heartbeat_at is None:
        return Liveness("dead", "it never sent a heartbeat")
    age = now - heartbeat_at
    if age > stale_after_s:
        return Liveness("dead", f"no heartbeat for {age:.0f}s (limit {stale_after_s:.0f}s)")
    local = _local_pid(owner)
    if local is not None:
        verdict = _local_process(local, claimed_at)
        if verdict is not None:
            return verdict
    if age > STALLED_AFTER_S:
        return Liveness("stalled", f"last heartbeat {age:.0f}s ago")
    return Liveness("alive", f"heartbeat {age:.0f}s ago")


def owner_pid(owner: str | None) -> int | None:
    """The pid of a runner ``host:pid:token`` on this host, else None."""
    if not owner or os.name != "posix":  # os.kill(pid, 0) would terminate on Windows
        return None
    parts = owner.rsplit(":", 2)
    if len(parts) != 3 or parts[0] != socket.gethostname():
        return None
    try:
        pid = int(parts[1])
    except ValueError:
        return None
    return pid if pid > 0 else None


def _local_pid(owner: str | None) -> int | None:
    """The pid of an owner on this host (not this process), else None."""
    pid = owner_pid(owner)
    return pid if pid != os.getpid() else None


def _local_process(pid: int, claimed_at: float | None) -> Liveness | None:
    """Dead if the process is gone or is another program that reused its pid; None when it
    exists (or cannot be checked: another user's process, no /proc)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return Liveness("dead", f"process no longer exists (pid {pid})")
    except OSError:  # EPERM: it exists, owned by someone else
        return None
    started = _process_start_time(pid)
    if started is not None and claimed_at is not None and started > claimed_at + _START_TOLERANCE_S:
        return Liveness("dead", f"pid {pid} now belongs to a process started after the claim")
    return None


def _process_start_time(pid: int) -> float | None:
    """Unix start time of ``pid`` from /proc (Linux), or None where it cannot be read."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as handle:
            stat = handle.read()
        with open("/proc/stat", encoding="ascii") as handle:
            boot = next(float(line.split()[1]) for line in handle if line.startswith("btime "))
        # Field 22 (starttime, clock ticks after boot); the command name before it may hold
        # spaces and parentheses, so count from the last ')'.
        ticks = float(stat[stat.rindex(")") + 2:].split()[19])
        return boot + ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, StopIteration, IndexError):
        return None


def shown_state(row: dict, now: float) -> tuple[str, str]:
    """(state, note) for a queue row as views show it: a "running" row whose owner is dead
    reads "interrupted" (the next runner resumes it from its last checkpoint), a late one
    "stalled"; the note names the owner and the reason. A pending row with epochs trained (a
    run stopped by a signal, or reset after its runner died) reads "interrupted" too: the next
    run resumes it rather than starting over."""
    state = row.get("state") or "pending"
    if state == "pending" and int(row.get("epochs_run") or 0) > 0:
        return "interrupted", f"stopped after epoch {row['epochs_run']}, no runner holds it"
    if state != "running":
        return state, ""
    verdict = judge(row.get("claimed_by"), row.get("heartbeat_at"), row.get("started_at"), now)
    shown = {"alive": "running", "stalled": "stalled", "dead": "interrupted"}[verdict.state]
    return shown, f"{row.get('claimed_by') or '?'}: {verdict.reason}"
