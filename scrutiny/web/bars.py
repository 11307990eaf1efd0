"""Bar charts and histograms drawn by the server (HTML widths and SVG rectangles): they need no
script, print well, and their numbers are in the page for anyone (and any test) to read."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from scrutiny.web.render import MISSING


@dataclass
class Bar:
    label: str
    value: float | None  # what the bar shows (a rate, a contribution...)
    width: float  # percent of the track
    offset: float = 0.0  # percent from the left (diverging bars)
    kind: str = ""  # css class: monitored, reference, training, pos, neg
    note: str = ""  # e.g. "41 of 120 records"
    text: str = ""  # the value as shown


def rate_bars(items: list[tuple[str, float | None, str, str]]) -> list[Bar]:
    """Rates in [0, 1] on a 0-100 % track: (label, rate, kind, note)."""
    out = []
    for label, rate, kind, note in items:
        w = 0.0 if rate is None else max(0.0, min(1.0, float(rate))) * 100.0
        text = MISSING if rate is None else f"{100.0 * float(rate):.1f}%"
        out.append(Bar(label, rate, w, 0.0, kind, note, text))
    return out


def diverging_bars(items: list[tuple[str, float, str]]) -> tuple[list[Bar], float]:
    """Signed values around a zero line: (label, value, note); returns the bars and the zero's
    position (percent from the left)."""
    if not items:
        return [], 50.0
    lo = min(0.0, min(v for _, v, _ in items))
    hi = max(0.0, max(v for _, v, _ in items))
    span = (hi - lo) or 1.0
    zero = (0.0 - lo) / span * 100.0
    out = []
    for label, v, note in items:
        w = abs(v) / span * 100.0
        left = zero if v >= 0 else zero - w
        out.append(Bar(label, v, w, left, "pos" if v >= 0 else "neg", note, f"{v:+.4g}"))
    return out, zero


@dataclass
class HistBin:
    label: str
    reference: float  # share of the reference (training) rows
    current: float  # share of the window's rows
    x: float
    ref_y: float
    ref_h: float
    cur_y: float
    cur_h: float


@dataclass
class Histogram:
    bins: list[HistBin]
    width: int
    height: int
    bar_width: float
    top: float  # the largest share, for the axis label


def histogram(
    labels: list[str], reference: list[float], current: list[float], *, width: int = 420, height: int = 150
) -> Histogram:
    """Reference vs current shares per bin, side by side (counts are normalised to shares)."""
    rs, cs = float(sum(reference)) or 1.0, float(sum(current)) or 1.0
    ref = [r / rs for r in reference]
    cur = [c / cs for c in current]
    top = max([*ref, *cur, 1e-9])
    n = max(1, len(labels))
    slot = width / n
    bw = max(1.0, slot * 0.4)
    plot_h = height - 18
    bins = []
    for i, label in enumerate(labels):
        rh = ref[i] / top * plot_h
        ch = cur[i] / top * plot_h
        x = i * slot + slot * 0.1
        bins.append(HistBin(label, ref[i], cur[i], x, plot_h - rh, rh, plot_h - ch, ch))
    return Histogram(bins, width, height, bw, top)


def finite(v: Any) -> float | None:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None
