"""The `fembed run` processes started from this TUI (R): what they run, and whether they ended.

The monitor polls each one (Popen.poll) on every refresh: that is how it learns a run ended,
and it also reaps the child, which would otherwise stay a zombie until the TUI quits.
"""

from __future__ import annotations

import dataclasses
import pathlib
import signal
import subprocess


@dataclasses.dataclass
class LaunchedRun:
    process: subprocess.Popen
    command: str  # as displayed (launch.display)
    log_path: pathlib.Path
    started_at: float
    stop_requested: bool = False  # the user sent SIGINT from the TUI
    returncode: int | None = None  # set once poll() has seen it end

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def alive(self) -> bool:
        return self.returncode is None

    def poll(self) -> bool:
        """Reap the process if it ended; True the first time it is seen ended."""
        if self.returncode is not None:
            return False
        code = self.process.poll()
        if code is None:
            return False
        self.returncode = code
        return True

    @property
    def state(self) -> str:
        """"running", "stopping" (SIGINT sent), or how it ended."""
        if self.returncode is None:
            return "stopping" if self.stop_requested else "running"
        return ended_text(self.returncode)


def ended_text(code: int) -> str:
    """An exit status in words: ``exit 0``, ``exit 2``, ``stopped (SIGINT)``."""
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"stopped ({name})"
    # `fembed run` exits 130 / 143 after a clean stop on SIGINT / SIGTERM (a shell's convention).
    named = {130: "stopped (SIGINT)", 143: "stopped (SIGTERM)"}
    return named.get(code, f"exit {code}")
