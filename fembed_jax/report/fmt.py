"""Number formatting shared by the report, its tables and ``fembed compare``."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

DASH = "-"


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
