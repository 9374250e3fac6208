"""Number formatting shared by the report, its tables and the commands."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

DASH = "-"
UNDEFINED = "undefined (0 predicted)"  # precision when nothing was predicted positive


def num(value: Any, digits: int = 3) -> str:
    if value is None:
        return DASH
    try:
        value = float(value)
    except (TypeError, ValueError):
        return str(value)
    return DASH if not math.isfinite(value) else f"{value:.{digits}f}"


def signed(value: Any, digits: int = 3) -> str:
    if value is None:
        return DASH
    return f"{float(value):+.{digits}f}"


def pm(spread: Mapping[str, Any] | None, digits: int = 3) -> str:
    """"mean ± std" of a stats.mean_std dict ("mean" alone when std is None)."""
    if not spread or spread.get("mean") is None:
        return DASH
    text = num(spread["mean"], digits)
    return text + (f" ± {num(spread['std'], digits)}" if spread.get("std") is not None else "")


def interval(low: Any, high: Any, digits: int = 3) -> str:
    if low is None or high is None:
        return DASH
    return f"[{num(low, digits)}, {num(high, digits)}]"


def signed_interval(low: Any, high: Any, digits: int = 3) -> str:
    if low is None or high is None:
        return DASH
    return f"[{signed(low, digits)}, {signed(high, digits)}]"


def counts(tp: Any, pp: Any) -> str:
    if tp is None or pp is None:
        return DASH
    return f"{int(round(float(tp)))}/{int(round(float(pp)))}"


def mean_counts(tp: Any, pp: Any) -> str:
    """Mean counts over seeds, with one decimal when they are not whole."""
    if tp is None or pp is None:
        return DASH

    def one(x: float) -> str:
        return f"{x:.0f}" if abs(x - round(x)) < 1e-9 else f"{x:.1f}"

    return f"{one(float(tp))}/{one(float(pp))}"


def precision(value: Any, predicted: Any) -> str:
    """One precision: "undefined (0 predicted)" when nothing was predicted positive."""
    if predicted is not None and int(round(float(predicted))) == 0:
        return UNDEFINED
    return num(value)


def precision_spread(spread: Mapping[str, Any] | None, digits: int = 3) -> str:
    """Mean ± std of precision over the seeds where it is defined, with "n_defined/n" beside it
    (stats.mean_std's n and n_total); every seed undefined reads "undefined (0 predicted, 5/5 seeds)"."""
    if not spread:
        return DASH
    n, total = spread.get("n"), spread.get("n_total")
    share = f"{n}/{total}" if n is not None and total is not None else None
    if spread.get("mean") is None:
        return f"undefined (0 predicted, {total}/{total} seeds)" if total else DASH
    return pm(spread, digits) + (f" ({share} seeds defined)" if share else "")


def with_ci(point: Any, low: Any, high: Any, digits: int = 3) -> str:
    """"0.387 [0.331, 0.445]"; the point alone when there is no interval."""
    if point is None:
        return DASH
    text = num(point, digits)
    return text if low is None or high is None else f"{text} {interval(low, high, digits)}"


def delta(entry: Mapping[str, Any] | None, digits: int = 3) -> str:
    """"+0.023 [-0.026, +0.074]" of a paired_bootstrap metric entry."""
    if not entry or entry.get("diff") is None:
        return DASH
    return f"{signed(entry['diff'], digits)} {signed_interval(entry.get('low'), entry.get('high'), digits)}"


def at_rate(m: Mapping[str, Any] | None, rate: str) -> str:
    """Precision of the top ``rate`` (e.g. "top5pct") of windows from classification_metrics:
    "0.524 (11/21) [0.324, 0.717] ×2.96" (×: lift over the base rate)."""
    if not m or m.get(f"precision_{rate}") is None:
        return DASH
    lift = m.get(f"lift_{rate}")
    return (f"{num(m[f'precision_{rate}'])} ({m[f'tp_{rate}']}/{m[f'k_{rate}']}) "
            f"{interval(m.get(f'precision_{rate}_ci_low'), m.get(f'precision_{rate}_ci_high'))}"
            + (f" ×{lift:.2f}" if lift is not None else ""))


def p_value(value: Any) -> str:
    if value is None:
        return DASH
    value = float(value)
    return "<0.001" if value < 0.001 else f"{value:.3f}"


def d_embed(value: Any) -> str:
    return "None" if value is None else str(value)


def loss_label(loss: Any, params: Mapping[str, Any] | None) -> str:
    if not loss:
        return "?"
    if not params:
        return str(loss)
    inner = ", ".join(f"{k}={_short(v)}" for k, v in sorted(params.items()))
    return f"{loss} ({inner})"


def _short(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def cell(value: Any) -> str:
    """A markdown table cell: pipes escaped, newlines folded."""
    text = DASH if value is None else str(value)
    return text.replace("|", "\\|").replace("\n", " ")


def md_table(headers: Sequence[str], rows: Sequence[Sequence[Any]], align: Sequence[str] | None = None) -> str:
    """A GitHub markdown table; ``align`` per column: "l", "r" or "c"."""
    marks = {"l": "---", "r": "---:", "c": ":---:"}
    align = list(align or ["l"] * len(headers))
    lines = ["| " + " | ".join(cell(h) for h in headers) + " |",
             "|" + "|".join(marks.get(a, "---") for a in align) + "|"]
    for row in rows:
        lines.append("| " + " | ".join(cell(v) for v in row) + " |")
    return "\n".join(lines)


def size(count: float | None) -> str:
    """Bytes for people: '834 B', '3.2 MB', '58 GB' (decimal units, as disks are sold); '?' unknown."""
    if count is None:
        return "?"
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if count >= scale:
            return f"{count / scale:.1f} {unit}" if count < 10 * scale else f"{count / scale:.0f} {unit}"
    return f"{int(count)} B"


def duration(seconds: float | None) -> str:
    """'42s', '3m07s', '5h02m', '2.5 days'; '?' unknown."""
    if seconds is None:
        return "?"
    seconds = max(0.0, float(seconds))
    if seconds >= 2 * 86_400:
        return f"{seconds / 86_400:.1f} days"
    if seconds >= 3600:
        return f"{int(seconds // 3600)}h{int(seconds % 3600 // 60):02d}m"
    if seconds >= 60:
        return f"{int(seconds // 60)}m{int(seconds % 60):02d}s"
    return f"{seconds:.0f}s"
