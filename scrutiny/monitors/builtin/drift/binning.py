"""Fast assignment of values to reference bins, exactly as ``scrutiny.core.training_stats.bin_index``.

``np.searchsorted`` on unsorted values is a branchy binary search per value. Numbers are
instead first placed on a fine uniform grid by arithmetic (one multiply and one table lookup);
only values whose grid cell is near a bin edge fall back to the binary search. The result is
identical (property-tested); on a million normal values it is about 2.5x faster, which matters
because every payload write bins every feature.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from scrutiny.core.training_stats import bin_index

GRID_CELLS = 16384


class NumericBinner:
    """Bins values on ``edges`` (layout of ``bin_index``: below, k bins, above, missing)."""

    def __init__(self, edges: np.ndarray, cells: int = GRID_CELLS) -> None:
        self.edges = np.asarray(edges, dtype=np.float64)
        k = len(self.edges)
        self.k = k
        lo, hi = (float(self.edges[0]), float(self.edges[-1])) if k else (0.0, 0.0)
        span = hi - lo
        self.fast = k >= 2 and np.isfinite(span) and span > 0 and np.isfinite(cells / span)
        if not self.fast:
            return
        self.lo, self.hi, self.cells = lo, hi, cells
        self.scale = cells / span
        bounds = lo + np.arange(cells + 1) / self.scale
        table = np.searchsorted(self.edges, bounds[:-1], side="right")
        near = np.searchsorted(self.edges, bounds[1:], side="right") != table
        # a value may land one cell off by rounding: a cell is safe only if its neighbours are too
        near = near | np.r_[near[1:], False] | np.r_[False, near[:-1]]
        # the end cells take everything clipped into them (below, above, NaN): always exact path
        near[0] = near[-1] = True
        self.table = np.where(near, -1, table).astype(np.int64)  # -1: take the exact path

    def __call__(self, x: np.ndarray) -> np.ndarray:
        if not self.fast:
            return bin_index(self.edges, x)
        c = np.subtract(x, self.lo)
        np.multiply(c, self.scale, out=c)
        np.fmax(c, 0.0, out=c)  # NaN becomes 0: cell 0, exact path
        np.fmin(c, self.cells - 1, out=c)
        b = self.table[c.astype(np.intp)]
        slow = np.flatnonzero(b < 0)
        if len(slow):
            b[slow] = bin_index(self.edges, x[slow])
        return b


def category_text(v: Any) -> str:
    """A category as a record batch carries it in a text column (booleans spelled as in JSON)."""
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, bool):
        return "true" if v else "false"
    return v if isinstance(v, str) else str(v)


class CategoryCoder:
    """Positions of values in a list of categories: ``-1`` for a value outside it, ``-2`` missing.

    Text values are hashed once per row (``pd.factorize``) and only the few distinct values are
    looked up (``Index.get_indexer`` on every row hashes Python objects one by one: 10x slower).
    Numbers (numeric or boolean categories arrive as float64) are matched by binary search.
    """

    def __init__(self, categories: Sequence[Any], values: Sequence[float] | None = None) -> None:
        import pandas as pd

        self.categories = tuple(categories)
        self.index = pd.Index([category_text(c) for c in self.categories], dtype=object)
        self.positions = {text: i for i, text in reversed(list(enumerate(self.index.tolist())))}
        if values is None and self.categories and all(isinstance(c, (bool, int, float)) for c in self.categories):
            values = [float(c) for c in self.categories]
        self.values = None if values is None else np.asarray(values, dtype=np.float64)
        if self.values is not None:
            self._order = np.argsort(self.values, kind="stable")
            self._sorted = self.values[self._order]

    def __len__(self) -> int:
        return len(self.categories)

    def codes(self, values: np.ndarray) -> np.ndarray:
        return self.codes_and_outside(values)[0]

    def codes_and_outside(self, values: np.ndarray) -> tuple[np.ndarray, dict[str, int]]:
        """Codes per row, and the values outside the categories with their counts."""
        if values.dtype.kind == "f":
            return self._numbers(values.astype(np.float64, copy=False))
        import pandas as pd

        row_codes, uniques = pd.factorize(values, use_na_sentinel=True)
        texts = [u if type(u) is str else category_text(u) for u in uniques]  # few: the distinct values
        find = self.positions.get
        unique_codes = np.array([find(t, -1) for t in texts] + [-2], dtype=np.int64)  # -1 (missing) -> -2
        codes = unique_codes[row_codes]
        outside: dict[str, int] = {}
        unknown = np.flatnonzero(unique_codes[:-1] == -1)
        if len(unknown):
            counts = np.bincount(row_codes + 1, minlength=len(uniques) + 1)[1:]
            outside = {texts[u]: int(counts[u]) for u in unknown}
        return codes, outside

    def _numbers(self, x: np.ndarray) -> tuple[np.ndarray, dict[str, int]]:
        codes = np.full(len(x), -1, dtype=np.int64)
        if self.values is not None and len(self.values):
            pos = np.clip(np.searchsorted(self._sorted, x), 0, len(self._sorted) - 1)
            hit = self._sorted[pos] == x
            codes[hit] = self._order[pos[hit]]
        codes[np.isnan(x)] = -2
        outside: dict[str, int] = {}
        if (codes == -1).any():
            vals, counts = np.unique(x[codes == -1], return_counts=True)
            outside = {f"{v:g}": int(c) for v, c in zip(vals.tolist(), counts.tolist(), strict=True)}
        return codes, outside
