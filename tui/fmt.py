"""Short text forms of numbers, durations and progress for table cells."""

from __future__ import annotations

MASK = "--:--"  # a masked time (snapshot mode) or one not known yet


def duration(seconds: float | None, masked: bool = False) -> str:
    """``h:mm:ss`` from one hour on, else ``m:ss``."""
    if masked or seconds is None:
        return MASK
    seconds = int(round(max(0.0, seconds)))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def eta(seconds: float | None, note: str = "", masked: bool = False, estimate: float | None = None) -> str:
    """An ETA from the run's own pace; before it has one, "~" and the estimate remembered for its
    run (fembed_jax.estimate), else why there is none yet: "(compiling)" while the first epoch
    runs (it compiles the program, so it says nothing about the pace), "(timing)" while the
    second does."""
    if seconds is None and estimate is not None:
        return "~" + duration(estimate, masked)
    if seconds is None and note:
        return f"({note})"
    return duration(seconds, masked)


def number(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def mean_std(mean: float | None, std: float | None) -> str:
    if mean is None:
        return "-"
    return f"{mean:.3f} ± {std:.3f}" if std is not None else f"{mean:.3f}"


PENDING = "…"  # a figure the poll thread has not computed yet


def interval(value: float | None, low: float | None, high: float | None) -> str:
    """``0.534 [0.49, 0.58]``: an estimate and its interval ("-" without an estimate)."""
    if value is None:
        return "-"
    return f"{value:.3f} [{low:.2f}, {high:.2f}]" if low is not None and high is not None else f"{value:.3f}"


def count(value: int | None) -> str:
    return "-" if value is None else f"{value:,}"


def ratio(num: int | None, den: int | None) -> str:
    return f"{'-' if num is None else num}/{'-' if den is None else den}"


def bar(done: int, total: int, width: int = 10) -> str:
    """A text progress bar such as ``████░░░░░░``."""
    if total <= 0:
        return "░" * width
    filled = min(width, int(width * done / total))
    return "█" * filled + "░" * (width - filled)
