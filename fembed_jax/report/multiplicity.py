"""Adjusted p-values for a family of comparisons: the report states the family (every
comparable result against one baseline, the same-architecture d_embed contrasts, the loss
contrasts) and judges each member on its adjusted p-value."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["benjamini_hochberg", "holm"]


def _adjust(pvalues: Sequence[float | None], step) -> list[float | None]:
    idx = [i for i, p in enumerate(pvalues) if p is not None]
    out: list[float | None] = [None] * len(pvalues)
    if not idx:
        return out
    p = np.asarray([pvalues[i] for i in idx], np.float64)
    adjusted = step(p)
    for i, value in zip(idx, adjusted, strict=True):
        out[i] = float(value)
    return out


def holm(pvalues: Sequence[float | None]) -> list[float | None]:
    """Holm's step-down adjusted p-values (family-wise error control) over the p-values that
    are not None (the family); None stays None. adj_(i) = max_{j <= i} min(1, (m - j + 1) p_(j))."""
    def step(p):
        order = np.argsort(p, kind="stable")
        m = p.size
        scaled = np.minimum(1.0, (m - np.arange(m)) * p[order])
        adjusted = np.empty(m)
        adjusted[order] = np.maximum.accumulate(scaled)
        return adjusted
    return _adjust(pvalues, step)


def benjamini_hochberg(pvalues: Sequence[float | None]) -> list[float | None]:
    """Benjamini-Hochberg adjusted p-values (false-discovery rate) over the p-values that are
    not None; adj_(i) = min_{j >= i} min(1, m p_(j) / j)."""
    def step(p):
        order = np.argsort(p, kind="stable")
        m = p.size
        scaled = p[order] * m / np.arange(1, m + 1)
        adjusted = np.empty(m)
        adjusted[order] = np.minimum(1.0, np.minimum.accumulate(scaled[::-1])[::-1])
        return adjusted
    return _adjust(pvalues, step)
