"""Data consistency: constraints learned from the training data, checked on live records.

OpenScale's "drop in data consistency" (contract §7.4): a transaction is drifted when it breaks
at least one constraint learned from training. Constraints, from the training rows:

* ``range``: a numeric feature's training minimum and maximum;
* ``domain``: a categorical feature's training categories (not for text columns whose values
  are nearly all distinct, unique/total >= 0.8: identifiers and free text have no domain);
* ``pair``: two categorical features, the value pairs that never occur together in training
  although independence predicts at least ``MIN_PAIR_EXPECTED`` rows of them (so an absence
  by chance has probability below exp(-10) = 5e-5);
* ``range_by_category``: a numeric feature's range within one category of another feature,
  kept only where it says something (it excludes at least 1% of the training values) and
  holds up on data it was not learned from: ranges learned on one half of the training rows
  are checked on the other half, and kept only if the 95% upper bound (Wilson) of the share
  of that category's held-out rows breaking them is at most 1%. A category therefore needs
  some 800 training rows, unless its range is exact (a code and its label, for instance).

Two-column constraints are learned among the first ``TWO_COLUMN_LEARNER_LIMIT`` features.
Checking is vectorised: one comparison or table lookup per constraint over all rows.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from scrutiny.monitors.builtin.drift.binning import CategoryCoder, category_text
from scrutiny.monitors.builtin.drift.measures import wilson

TWO_COLUMN_LEARNER_LIMIT = 200
CATEGORICAL_UNIQUE_THRESHOLD = 0.8
MIN_PAIR_EXPECTED = 10.0
MIN_CATEGORY_SUPPORT = 30
MIN_EXCLUDED_SHARE = 0.01
MAX_BREAK_UPPER = 0.01

RANGE = "range"
DOMAIN = "domain"
PAIR = "pair"
RANGE_BY_CATEGORY = "range_by_category"


@dataclass
class Constraint:
    """One learned rule. ``spec`` by kind: range ``{min, max}``; domain ``{categories}``; pair
    ``{forbidden: [[a, b], ...]}``; range_by_category ``{ranges: [[category, min, max], ...]}``."""

    kind: str
    features: tuple[str, ...]
    spec: dict[str, Any]

    @property
    def id(self) -> str:
        return f"{self.kind}:{'|'.join(self.features)}"

    def describe(self) -> str:
        f = self.features
        if self.kind == RANGE:
            return f"{f[0]} within [{self.spec['min']:g}, {self.spec['max']:g}]"
        if self.kind == DOMAIN:
            return f"{f[0]} is one of its {len(self.spec['categories'])} training categories"
        if self.kind == PAIR:
            return f"{len(self.spec['forbidden'])} value pairs of {f[0]} and {f[1]} never seen together in training"
        return f"{f[1]} within its training range for {len(self.spec['ranges'])} categories of {f[0]}"

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "kind": self.kind, "features": list(self.features), **self.spec}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Constraint:
        spec = {k: v for k, v in d.items() if k not in ("id", "kind", "features")}
        return cls(d["kind"], tuple(d["features"]), spec)


@dataclass
class ConsistencyCheck:
    """Which rows break which constraints (sparse: one entry per broken (row, constraint))."""

    rows: int
    constraints: list[Constraint]
    violation_rows: np.ndarray  # int64 row positions
    violation_constraints: np.ndarray  # int64 index into ``constraints``, same length

    @property
    def drifted(self) -> np.ndarray:
        """Bool per row: breaks at least one constraint."""
        out = np.zeros(self.rows, dtype=bool)
        out[self.violation_rows] = True
        return out

    @property
    def drifted_count(self) -> int:
        return len(np.unique(self.violation_rows))

    def constraint_counts(self) -> dict[str, int]:
        """Rows breaking each constraint, by constraint id (only those broken)."""
        counts = np.bincount(self.violation_constraints, minlength=len(self.constraints))
        return {self.constraints[i].id: int(c) for i, c in enumerate(counts) if c}

    def feature_counts(self) -> dict[str, int]:
        """Rows that break a constraint involving each feature, most first."""
        out: dict[str, int] = {}
        if not len(self.violation_rows):
            return out
        names = sorted({f for c in self.constraints for f in c.features})
        col = {n: i for i, n in enumerate(names)}
        hit = np.zeros((self.rows, len(names)), dtype=bool)
        for ci in np.unique(self.violation_constraints):
            rows = self.violation_rows[self.violation_constraints == ci]
            for f in self.constraints[ci].features:
                hit[rows, col[f]] = True
        counts = hit.sum(axis=0)
        order = sorted(range(len(names)), key=lambda i: (-counts[i], names[i]))
        return {names[i]: int(counts[i]) for i in order if counts[i]}

    def row_constraints(self, row: int) -> list[str]:
        return [self.constraints[i].id for i in self.violation_constraints[self.violation_rows == row]]


@dataclass
class ConsistencyModel:
    """The constraints of one training set, ready to check record batches."""

    constraints: list[Constraint]
    categorical: dict[str, list[Any]] = field(default_factory=dict)  # every training category per feature

    def __post_init__(self) -> None:
        self._coders: dict[str, CategoryCoder] = {}
        self._tables: dict[str, Any] = {}  # per constraint: its lookup tables, built on first use

    def coder(self, name: str) -> CategoryCoder:
        c = self._coders.get(name)
        if c is None:
            c = self._coders[name] = CategoryCoder(self.categorical.get(name, []))
        return c

    def check(self, columns: Mapping[str, np.ndarray], rows: int) -> ConsistencyCheck:
        """Evaluate every constraint on ``rows`` rows given as arrays per feature."""
        codes: dict[str, np.ndarray] = {}

        def code(name: str) -> np.ndarray:
            if name not in codes:
                values = columns.get(name)
                codes[name] = np.full(rows, -2, dtype=np.int64) if values is None else self.coder(name).codes(values)
            return codes[name]

        def number(name: str) -> np.ndarray:
            values = columns.get(name)
            return np.full(rows, np.nan) if values is None else np.asarray(values, dtype=np.float64)

        hit_rows: list[np.ndarray] = []
        hit_cons: list[np.ndarray] = []
        for i, c in enumerate(self.constraints):
            broken = self._broken(c, code, number)
            idx = np.flatnonzero(broken)
            if len(idx):
                hit_rows.append(idx)
                hit_cons.append(np.full(len(idx), i, dtype=np.int64))
        vr = np.concatenate(hit_rows) if hit_rows else np.zeros(0, dtype=np.int64)
        vc = np.concatenate(hit_cons) if hit_cons else np.zeros(0, dtype=np.int64)
        return ConsistencyCheck(rows, self.constraints, vr, vc)

    def _broken(self, c: Constraint, code: Any, number: Any) -> np.ndarray:
        if c.kind == RANGE:
            x = number(c.features[0])
            with np.errstate(invalid="ignore"):
                return (x < c.spec["min"]) | (x > c.spec["max"])
        if c.kind == DOMAIN:
            return code(c.features[0]) == -1
        if c.kind == PAIR:
            a, b = code(c.features[0]), code(c.features[1])
            na, nb = len(self.coder(c.features[0])), len(self.coder(c.features[1]))
            table = _pair_table(self, c, na, nb)
            ok = (a >= 0) & (b >= 0)
            out = np.zeros(len(a), dtype=bool)
            out[ok] = table[a[ok] * nb + b[ok]]
            return out
        # range_by_category
        k = code(c.features[0])
        x = number(c.features[1])
        lo, hi = _range_tables(self, c)
        ok = k >= 0
        out = np.zeros(len(k), dtype=bool)
        with np.errstate(invalid="ignore"):
            out[ok] = (x[ok] < lo[k[ok]]) | (x[ok] > hi[k[ok]])
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"constraints": [c.to_dict() for c in self.constraints], "categorical": self.categorical}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ConsistencyModel:
        return cls([Constraint.from_dict(c) for c in d["constraints"]], dict(d.get("categorical") or {}))


def _pair_table(model: ConsistencyModel, c: Constraint, na: int, nb: int) -> np.ndarray:
    key = c.id
    cache = model._tables
    if key not in cache:
        table = np.zeros(na * nb, dtype=bool)
        ia = _positions(model.coder(c.features[0]))
        ib = _positions(model.coder(c.features[1]))
        for a, b in c.spec["forbidden"]:
            table[ia[_hashable(a)] * nb + ib[_hashable(b)]] = True
        cache[key] = table
    return cache[key]


def _range_tables(model: ConsistencyModel, c: Constraint) -> tuple[np.ndarray, np.ndarray]:
    key = c.id
    cache = model._tables
    if key not in cache:
        coder = model.coder(c.features[0])
        pos = _positions(coder)
        lo = np.full(len(coder), -np.inf)
        hi = np.full(len(coder), np.inf)
        for cat, mn, mx in c.spec["ranges"]:
            lo[pos[_hashable(cat)]] = mn
            hi[pos[_hashable(cat)]] = mx
        cache[key] = (lo, hi)
    return cache[key]


def _hashable(v: Any) -> Any:
    return category_text(v)


def _positions(coder: CategoryCoder) -> dict[Any, int]:
    return {category_text(c): i for i, c in enumerate(coder.categories)}


# -- learning ---------------------------------------------------------------------------------
def learn(
    columns: Mapping[str, np.ndarray],
    rows: int,
    *,
    feature_fields: list[str],
    categorical_fields: list[str],
    two_column_limit: int = TWO_COLUMN_LEARNER_LIMIT,
    seed: int = 0,
) -> ConsistencyModel:
    """Learn the constraints of training rows given as arrays per feature, in record-batch form
    (float64 with NaN for numbers, object arrays with None for text and booleans), so values
    are compared with live records exactly as they will arrive. Deterministic for a ``seed``."""
    import pandas as pd

    # text columns are categories whatever the list says (a number cannot be read from them)
    cat_set = set(categorical_fields) | {f for f in feature_fields if f in columns and columns[f].dtype == object}
    cats = [f for f in feature_fields if f in cat_set]
    nums = [f for f in feature_fields if f not in cat_set]
    constraints: list[Constraint] = []
    categorical: dict[str, list[Any]] = {}
    codes: dict[str, np.ndarray] = {}
    numbers: dict[str, np.ndarray] = {}
    for f in feature_fields:
        col = columns.get(f)
        if col is None:
            continue
        if f in cat_set:
            vc = pd.Series(col, dtype=col.dtype).value_counts(dropna=True)
            present = int(vc.sum())
            if col.dtype == object and len(vc) > 1 and len(vc) / max(present, 1) >= CATEGORICAL_UNIQUE_THRESHOLD:
                continue  # identifiers, free text: no domain
            values = sorted((_native(k) for k in vc.index), key=lambda v: (type(v).__name__, v))
            categorical[f] = values
            codes[f] = CategoryCoder(values).codes(col)
            constraints.append(Constraint(DOMAIN, (f,), {"categories": values}))
        else:
            x = np.asarray(col, dtype=np.float64)
            numbers[f] = x
            finite = x[np.isfinite(x)]
            if finite.size:
                constraints.append(Constraint(RANGE, (f,), {"min": float(finite.min()), "max": float(finite.max())}))
    window = set(feature_fields[:two_column_limit])
    pair_cats = [f for f in cats if f in codes and f in window]
    pair_nums = [f for f in nums if f in numbers and f in window]
    for i, a in enumerate(pair_cats):
        for b in pair_cats[i + 1 :]:
            c = _learn_pair(a, b, codes[a], codes[b], categorical[a], categorical[b])
            if c is not None:
                constraints.append(c)
    if pair_nums and pair_cats and rows >= 2 * MIN_CATEGORY_SUPPORT:
        half = np.zeros(rows, dtype=bool)
        half[np.random.default_rng(seed).permutation(rows)[: rows // 2]] = True
        for a in pair_cats:
            for x_name in pair_nums:
                c = _learn_range_by_category(a, x_name, codes[a], numbers[x_name], categorical[a], half)
                if c is not None:
                    constraints.append(c)
    return ConsistencyModel(constraints, categorical)


def _native(v: Any) -> Any:
    if isinstance(v, np.generic):
        v = v.item()
    return v if isinstance(v, (str, int, float, bool)) else str(v)


def _learn_pair(a: str, b: str, ca: np.ndarray, cb: np.ndarray, va: list[Any], vb: list[Any]) -> Constraint | None:
    la, lb = len(va), len(vb)
    ok = (ca >= 0) & (cb >= 0)
    total = int(ok.sum())
    if not total or la < 2 or lb < 2:
        return None
    table = np.bincount(ca[ok] * lb + cb[ok], minlength=la * lb).reshape(la, lb)
    expected = np.outer(table.sum(axis=1), table.sum(axis=0)) / total
    ia, ib = np.nonzero((table == 0) & (expected >= MIN_PAIR_EXPECTED))
    if not len(ia):
        return None
    order = np.lexsort((ib, ia))
    forbidden = [[va[ia[k]], vb[ib[k]]] for k in order]
    return Constraint(PAIR, (a, b), {"forbidden": forbidden})


def _learn_range_by_category(
    a: str, x_name: str, codes: np.ndarray, x: np.ndarray, values: list[Any], half: np.ndarray
) -> Constraint | None:
    ok = (codes >= 0) & np.isfinite(x)
    if not ok.any():
        return None
    k = len(values)
    c, v, h = codes[ok], x[ok], half[ok]
    support = np.bincount(c, minlength=k)
    lo, hi = _minmax(c, v, k)
    xs = np.sort(v)
    excluded = (np.searchsorted(xs, lo, side="left") + (len(xs) - np.searchsorted(xs, hi, side="right"))) / len(xs)
    candidate = (support >= MIN_CATEGORY_SUPPORT) & (excluded >= MIN_EXCLUDED_SHARE)
    if not candidate.any():
        return None
    lo_a, hi_a = _minmax(c[h], v[h], k)
    cb, vb = c[~h], v[~h]
    broken = np.bincount(cb[(vb < lo_a[cb]) | (vb > hi_a[cb])], minlength=k)
    held = np.bincount(cb, minlength=k)
    stable = np.array([held[i] > 0 and wilson(broken[i], held[i])[1] <= MAX_BREAK_UPPER for i in range(k)])
    keep = np.flatnonzero(candidate & stable)
    if not len(keep):
        return None
    ranges = [[values[i], float(lo[i]), float(hi[i])] for i in keep]
    return Constraint(RANGE_BY_CATEGORY, (a, x_name), {"ranges": ranges})


def _minmax(c: np.ndarray, v: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    lo = np.full(k, np.inf)
    hi = np.full(k, -np.inf)
    np.minimum.at(lo, c, v)
    np.maximum.at(hi, c, v)
    return lo, hi
