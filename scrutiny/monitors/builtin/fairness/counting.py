"""Fairness counts of a set of rows, vectorised: one ``factorize`` or ``searchsorted`` per
column and one ``bincount`` per attribute, never a Python loop over rows.

``FairnessCounts`` is the partial result stored per time bucket (from the ingest listener's
``RecordBatch``), computed by the database (``sql.count_query``) for backfill, or from the
perturbed twins; all merge by addition.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from scrutiny.monitors.builtin.fairness.binning import bin_index
from scrutiny.monitors.builtin.fairness.crosstab import Crosstab, canonical, factorize
from scrutiny.monitors.builtin.fairness.spec import REGRESSION_KEYS, AttributeSpec, FairnessSpec, OutcomeSpec

if TYPE_CHECKING:
    import pandas as pd

    from scrutiny.ingest.batch import RecordBatch


class IncompatibleCounts(ValueError):
    """Counts made under different bins or outcome coding cannot be added: recompute them."""


@dataclass
class FairnessCounts:
    rows: int = 0
    attributes: dict[str, Crosstab] = field(default_factory=dict)
    fingerprints: dict[str, str] = field(default_factory=dict)
    first: np.datetime64 | None = None  # oldest and newest row timestamps
    last: np.datetime64 | None = None

    def merge(self, other: FairnessCounts) -> FairnessCounts:
        if other.rows == 0 and not other.attributes:
            return self
        if self.rows == 0 and not self.attributes:
            return other
        if self.fingerprints != other.fingerprints:
            raise IncompatibleCounts(
                f"counts were made for other bins or outcomes ({sorted(self.fingerprints)} vs {sorted(other.fingerprints)})"
            )
        return FairnessCounts(
            rows=self.rows + other.rows,
            attributes={k: v.merge(other.attributes[k]) for k, v in self.attributes.items()},
            fingerprints=dict(self.fingerprints),
            first=_min(self.first, other.first),
            last=_max(self.last, other.last),
        )

    def select(self, names: list[str]) -> FairnessCounts:
        """The counts of some attributes only (a configuration that dropped the others)."""
        return FairnessCounts(
            self.rows,
            {n: self.attributes[n] for n in names},
            {n: self.fingerprints[n] for n in names},
            self.first,
            self.last,
        )

    def to_bytes(self) -> bytes:
        """Compact bytes for ``monitor_partials`` (counts as int64 arrays, keys as JSON)."""
        from scrutiny.monitors.partials import pack

        fields: dict[str, Any] = {
            "rows": self.rows,
            "first": None if self.first is None else int(self.first.astype("datetime64[us]").astype(np.int64)),
            "last": None if self.last is None else int(self.last.astype("datetime64[us]").astype(np.int64)),
            "attributes": list(self.attributes),
            "fingerprints": self.fingerprints,
        }
        for i, table in enumerate(self.attributes.values()):
            fields[f"{i}.rows"] = table.rows
            fields[f"{i}.cols"] = table.cols
            fields[f"{i}.counts"] = np.ascontiguousarray(table.counts, dtype=np.int64)
        return pack(fields)

    @classmethod
    def from_bytes(cls, data: bytes) -> FairnessCounts:
        from scrutiny.monitors.partials import unpack

        d = unpack(data)
        attributes = {}
        for i, name in enumerate(d["attributes"]):
            rows = [canonical(k) for k in d[f"{i}.rows"]]
            cols = [canonical(k) for k in d[f"{i}.cols"]]
            attributes[name] = Crosstab(rows, cols, np.asarray(d[f"{i}.counts"]).reshape(len(rows), len(cols)))
        first = None if d["first"] is None else np.datetime64(d["first"], "us")
        last = None if d["last"] is None else np.datetime64(d["last"], "us")
        return cls(int(d["rows"]), attributes, dict(d["fingerprints"]), first, last)


def _min(a: np.datetime64 | None, b: np.datetime64 | None) -> np.datetime64 | None:
    return b if a is None else a if b is None else min(a, b)


def _max(a: np.datetime64 | None, b: np.datetime64 | None) -> np.datetime64 | None:
    return b if a is None else a if b is None else max(a, b)


def outcome_codes(values: np.ndarray | None, outcome: OutcomeSpec, n: int) -> tuple[np.ndarray, list[Any]]:
    if values is None:
        return np.full(n, -1, dtype=np.int64), []
    if outcome.regression:
        return outcome.outcome_codes(_floats(values)), list(REGRESSION_KEYS)
    return factorize(values)


def attribute_codes(values: np.ndarray | None, attr: AttributeSpec, n: int) -> tuple[np.ndarray, list[Any]]:
    if values is None:
        return np.full(n, -1, dtype=np.int64), []
    if attr.categorical:
        return factorize(values)
    edges = attr.edge_array
    return bin_index(_floats(values), edges), list(range(len(edges) - 1))


def count_columns(
    columns: Mapping[str, np.ndarray],
    spec: FairnessSpec,
    n: int,
    *,
    timestamps: np.ndarray | None = None,
    outcome_column: str | None = None,
) -> FairnessCounts:
    """Counts of ``n`` rows given as columns (absent columns count as missing values)."""
    out_codes, out_keys = outcome_codes(columns.get(outcome_column or spec.outcome.column), spec.outcome, n)
    attributes = {}
    for attr in spec.attributes:
        codes, keys = attribute_codes(columns.get(attr.name), attr, n)
        attributes[attr.name] = Crosstab.from_codes(codes, keys, out_codes, out_keys)
    first = last = None
    if timestamps is not None and len(timestamps):
        ts = timestamps.astype("datetime64[us]")
        first, last = ts.min(), ts.max()
    return FairnessCounts(n, attributes, spec.fingerprints(), first, last)


def count_batch(batch: RecordBatch, spec: FairnessSpec) -> FairnessCounts:
    """The partial counts of an ingested batch (what the ingest listener stores per time bucket)."""
    return count_columns(batch.columns, spec, len(batch), timestamps=batch.timestamps)


def count_frame(df: pd.DataFrame, spec: FairnessSpec, *, outcome_column: str | None = None) -> FairnessCounts:
    """Counts of a DataFrame (training rows with their label, perturbed twins with their prediction)."""
    cols = {c: _column(df[c]) for c in df.columns}
    return count_columns(cols, spec, len(df), outcome_column=outcome_column)


def _column(series: pd.Series) -> np.ndarray:
    import pandas as pd

    if pd.api.types.is_bool_dtype(series):
        return series.astype(object).to_numpy()
    if pd.api.types.is_numeric_dtype(series):
        return series.to_numpy(dtype=np.float64, na_value=np.nan)
    return series.astype(object).where(series.notna(), None).to_numpy()


def _floats(values: np.ndarray) -> np.ndarray:
    if values.dtype == np.float64:
        return values
    if values.dtype.kind in "iub":
        return values.astype(np.float64)
    out = np.array([np.nan if v is None else v for v in values], dtype=np.float64) if len(values) else np.empty(0)
    return out
