"""Record rows as the lake stores them: one Arrow column per table column, typed from the layout.

Integers are int64, doubles float64, strings and JSON text strings, booleans bool, the
probability vector ``list<double>`` (null where the store holds null), the timestamp
``timestamp[us, UTC]``. Reading them back through ``executors.rows.record_batch`` gives the
arrays the store's reader gives, so partials built from either are the same.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa

from scrutiny.core.schema import Kind
from scrutiny.core.subscription import SCORING_ID, SCORING_TIMESTAMP
from scrutiny.ingest.batch import RecordBatch, _arrow_column

TIMESTAMP = pa.timestamp("us", tz="UTC")
VECTOR = pa.list_(pa.float64())
_TYPES = {
    Kind.INT: pa.int64(),
    Kind.FLOAT: pa.float64(),
    Kind.STR: pa.string(),
    Kind.BOOL: pa.bool_(),
    Kind.JSON: pa.string(),
}


def arrow_type(name: str, kind: Kind | str) -> pa.DataType:
    if name == SCORING_TIMESTAMP or kind == "timestamp":
        return TIMESTAMP
    if kind == "vector":
        return VECTOR
    return _TYPES[Kind(kind)]


def lake_schema(columns: list[tuple[str, Kind | str]]) -> pa.Schema:
    """The Arrow schema of a record table (every column nullable, as Iceberg's optional fields)."""
    return pa.schema([pa.field(name, arrow_type(name, kind)) for name, kind in columns])


def to_arrow(batch: RecordBatch, columns: list[tuple[str, Kind | str]]) -> pa.Table:
    """A ``RecordBatch`` as an Arrow table in the lake's schema (columns the batch lacks are null)."""
    n = len(batch)
    arrays: list[pa.Array] = []
    for name, kind in columns:
        typ = arrow_type(name, kind)
        if name == SCORING_ID:
            arrays.append(pa.array(batch.ids, type=pa.string()))
        elif name == SCORING_TIMESTAMP:
            arrays.append(pa.array(batch.timestamps.astype("datetime64[us]"), type=pa.timestamp("us")).cast(typ))
        elif kind == "vector":
            arrays.append(_vectors(batch.probability, n))
        elif name in batch.columns:
            arrays.append(_arrow_column(batch.columns[name], kind).cast(typ))
        else:
            arrays.append(pa.nulls(n, typ))
    return pa.Table.from_arrays(arrays, schema=lake_schema(columns))


def _vectors(prob: np.ndarray | None, n: int) -> Any:
    if prob is None or prob.ndim != 2:
        return pa.nulls(n, VECTOR)
    k = prob.shape[1]
    bad = np.isnan(prob).any(axis=1) if k else np.zeros(n, dtype=bool)
    offsets = pa.array(np.arange(n + 1, dtype=np.int32) * k)
    values = pa.array(np.ascontiguousarray(prob).reshape(-1))
    arr = pa.ListArray.from_arrays(offsets, values, mask=pa.array(bad) if bad.any() else None)
    return arr.cast(VECTOR)
