"""Counts of rows by (attribute key, outcome key): the mergeable partial result of fairness.

A ``Crosstab`` is what a batch of payload rows, a time bucket, a database aggregate or the
perturbed twins contribute; two of them merge by adding counts key by key, so a run costs in
proportion to the new rows, never to the history. Keys are JSON values: a category, a bin
index of a numeric attribute, an outcome label; ``None`` is a missing value.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np


def canonical(v: Any) -> Any:
    """One key per value whatever the source (NumPy scalar, driver value, JSON): integral
    numbers become ``int``, other numbers ``float``; booleans and strings are kept."""
    if v is None:
        return None
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, (bool, str)):
        return v
    if isinstance(v, int):
        return v
    if isinstance(v, float):
        if v != v:  # NaN
            return None
        return int(v) if v.is_integer() and abs(v) < 2**53 else v
    return str(v)


def factorize(values: np.ndarray) -> tuple[np.ndarray, list[Any]]:
    """Codes (``int64``, -1 for missing) and canonical uniques of a column, hash-based (no sort)."""
    import pandas as pd

    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    keys = [canonical(u) for u in np.asarray(uniques, dtype=object).tolist()]
    codes = np.asarray(codes, dtype=np.int64)
    if len(set(keys)) != len(keys) or None in keys:  # e.g. 1 and 1.0 in an object column
        remap: dict[Any, int] = {}
        target = np.empty(len(keys), dtype=np.int64)
        for i, k in enumerate(keys):
            target[i] = -1 if k is None else remap.setdefault(k, len(remap))
        codes = np.where(codes >= 0, target[np.clip(codes, 0, None)], -1)
        keys = list(remap)
    return codes, keys


@dataclass
class Crosstab:
    """``counts[i, j]`` rows have attribute key ``rows[i]`` and outcome key ``cols[j]``."""

    rows: list[Any]
    cols: list[Any]
    counts: np.ndarray  # int64 [len(rows), len(cols)]

    @classmethod
    def empty(cls) -> Crosstab:
        return cls([], [], np.zeros((0, 0), dtype=np.int64))

    @classmethod
    def from_codes(
        cls, row_codes: np.ndarray, row_keys: Sequence[Any], col_codes: np.ndarray, col_keys: Sequence[Any]
    ) -> Crosstab:
        """Count pairs of codes (-1 = missing, keyed ``None``) with one ``bincount``."""
        nr, nc = len(row_keys) + 1, len(col_keys) + 1
        flat = (row_codes + 1) * nc + (col_codes + 1)
        counts = np.bincount(flat, minlength=nr * nc).reshape(nr, nc)
        return cls([None, *row_keys], [None, *col_keys], counts.astype(np.int64, copy=False)).compact()

    @property
    def total(self) -> int:
        return int(self.counts.sum())

    def compact(self) -> Crosstab:
        """Drop keys with no rows (the sum is unchanged)."""
        if self.counts.size == 0:
            return Crosstab.empty()
        r: np.ndarray = np.asarray(self.counts.any(axis=1))
        c: np.ndarray = np.asarray(self.counts.any(axis=0))
        if r.all() and c.all():
            return self
        return Crosstab(
            [k for k, keep in zip(self.rows, r, strict=True) if keep],
            [k for k, keep in zip(self.cols, c, strict=True) if keep],
            self.counts[np.ix_(r, c)],
        )

    def merge(self, other: Crosstab) -> Crosstab:
        """The counts of both, key by key."""
        if not other.rows:
            return self
        if not self.rows:
            return other
        rows = _union(self.rows, other.rows)
        cols = _union(self.cols, other.cols)
        out = np.zeros((len(rows), len(cols)), dtype=np.int64)
        for part in (self, other):
            ri = _positions(rows, part.rows)
            ci = _positions(cols, part.cols)
            out[np.ix_(ri, ci)] += part.counts
        return Crosstab(rows, cols, out)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Crosstab):
            return NotImplemented
        a, b = self.compact(), other.compact()
        if set(map(_hkey, a.rows)) != set(map(_hkey, b.rows)) or set(map(_hkey, a.cols)) != set(map(_hkey, b.cols)):
            return False
        aligned = b.merge(Crosstab(a.rows, a.cols, np.zeros_like(a.counts)))
        ri = _positions(aligned.rows, a.rows)
        ci = _positions(aligned.cols, a.cols)
        return bool(np.array_equal(aligned.counts[np.ix_(ri, ci)], a.counts))

    __hash__ = None  # type: ignore[assignment]


def _hkey(k: Any) -> Hashable:
    # bool is an int in Python (True == 1): keep them apart
    return (type(k) is bool, k)


def _union(a: list[Any], b: list[Any]) -> list[Any]:
    seen = {_hkey(k) for k in a}
    out = list(a)
    for k in b:
        if _hkey(k) not in seen:
            seen.add(_hkey(k))
            out.append(k)
    return out


def _positions(universe: list[Any], keys: list[Any]) -> np.ndarray:
    index = {_hkey(k): i for i, k in enumerate(universe)}
    return np.fromiter((index[_hkey(k)] for k in keys), dtype=np.int64, count=len(keys))
