"""Bins of a numeric protected attribute, with edges on the group boundaries.

Counts are kept per bin, not per value, so they stay small and mergeable. Group rates are
still exact because every group boundary is a bin edge: a bin lies wholly inside or wholly
outside each configured range (contract §1.7: about 45-50 bins lining up with the range
boundaries). Inside the groups the bins are finer, for the source of bias (§7.1 step 7):
one bin per integer where the attribute takes few integer values (ages 19-75), otherwise
training quantiles.

Bins are half-open ``[e_i, e_{i+1})``; the closed range ``[lo, hi]`` becomes
``[lo, nextafter(hi))`` for real numbers and ``[ceil(lo), floor(hi) + 1)`` for integers, so
membership is exactly ``lo <= x <= hi``. The outer edges are -inf and +inf: every value has a bin.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

TARGET_BINS = 48
MAX_UNIT_BINS = 60  # an integer attribute spanning at most this many values gets one bin per value


def range_edges(lo: float, hi: float, integer: bool) -> tuple[float, float]:
    """The closed range ``[lo, hi]`` as half-open ``[a, b)`` with the same members."""
    if integer:
        return float(math.ceil(lo)), float(math.floor(hi) + 1)
    return float(lo), float(np.nextafter(hi, np.inf))


def numeric_edges(
    ranges: Iterable[Sequence[float]], *, integer: bool, stats: dict[str, Any] | None, target: int = TARGET_BINS
) -> np.ndarray:
    """Sorted bin edges, -inf and +inf included, with every range boundary among them."""
    bounds: list[float] = []
    for lo, hi in ranges:
        bounds.extend(range_edges(lo, hi, integer))
    finite = [b for b in bounds if math.isfinite(b)]
    lo_all = min(finite) if finite else 0.0
    hi_all = max(finite) if finite else 0.0
    quantiles = None
    if stats and stats.get("type") == "numeric" and stats.get("count"):
        lo_all = min(lo_all, float(stats["min"]))
        hi_all = max(hi_all, float(stats["max"]) + (1.0 if integer else 0.0))
        quantiles = stats.get("quantiles")
    interior: np.ndarray
    if integer and hi_all - lo_all <= MAX_UNIT_BINS:
        interior = np.arange(math.floor(lo_all), math.ceil(hi_all) + 1, dtype=np.float64)
    elif quantiles:
        q = np.asarray(quantiles, dtype=np.float64)
        picks = q[np.linspace(0, len(q) - 1, target + 1).round().astype(int)]
        interior = np.round(picks) if integer else picks
    else:  # no training statistics: even widths over the configured ranges
        interior = np.linspace(lo_all, hi_all, target + 1)
        interior = np.round(interior) if integer else interior
    edges = np.unique(np.concatenate([interior, np.asarray(bounds, dtype=np.float64), [-np.inf, np.inf]]))
    return edges[~np.isnan(edges)]


def bin_index(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Bin of each value (``int64``), -1 for a missing value (NaN)."""
    idx = np.searchsorted(edges, values, side="right") - 1
    idx[np.isnan(values)] = -1
    return idx


def in_range_mask(edges: np.ndarray, lo: float, hi: float, integer: bool) -> np.ndarray:
    """Which bins lie inside the closed range ``[lo, hi]`` (exact: its boundaries are edges)."""
    a, b = range_edges(lo, hi, integer)
    return (edges[:-1] >= a) & (edges[1:] <= b)


def bin_label(edges: np.ndarray, i: int, integer: bool) -> list[float | None]:
    """Bin ``i`` as a closed ``[lo, hi]`` for display (None for an open end)."""
    lo, hi = float(edges[i]), float(edges[i + 1])
    left = lo if math.isfinite(lo) else None
    if not math.isfinite(hi):
        return [_num(left), None]
    right = hi - 1 if integer else float(np.nextafter(hi, -np.inf))
    return [_num(left), _num(right)]


def describe_range(r: Sequence[float | None]) -> str:
    lo, hi = r
    if lo is None:
        return f"≤ {_fmt(hi)}"
    if hi is None:
        return f"≥ {_fmt(lo)}"
    if lo == hi:
        return _fmt(lo)
    sep = "-" if lo >= 0 else " to "  # "19-25", "-5 to 3"
    return f"{_fmt(lo)}{sep}{_fmt(hi)}"


def _num(x: float | None) -> float | None:
    if x is None:
        return None
    return int(x) if float(x).is_integer() else x  # type: ignore[return-value]


def _fmt(x: float | None) -> str:
    if x is None:
        return ""
    return f"{x:g}" if not float(x).is_integer() else str(int(x))
