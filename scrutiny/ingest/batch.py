"""A columnar batch of record rows: the one shape every write to a record table takes.

Payload and feedback records from every entry point (REST, SDK, proxy, spool replay) are turned
into a ``RecordBatch`` before they are written. Listeners registered with
``scrutiny.ingest.writer.on_write`` see the same arrays inside the write transaction, which is
where per-time-bucket monitor aggregates are kept up to date.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson

from scrutiny.core.schema import Kind

US = np.timedelta64(1, "us")


@dataclass
class RecordBatch:
    """Rows of one table write, as arrays: ``columns[name]`` is float64 (NaN = null) or object (None = null)."""

    ids: np.ndarray  # object array of row scoring ids
    timestamps: np.ndarray  # datetime64[us], UTC
    columns: dict[str, np.ndarray]
    kinds: dict[str, Kind]
    probability: np.ndarray | None = None  # float64 [n, n_classes] in label order
    record_index: np.ndarray | None = None  # index of each row's record in the request body
    client_ids: np.ndarray | None = None  # bool: the row id came from the client (check for duplicates)
    meta: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.ids)

    def take(self, index: np.ndarray) -> RecordBatch:
        """The rows at ``index`` (a bool mask or positions), in that order."""
        return RecordBatch(
            ids=self.ids[index],
            timestamps=self.timestamps[index],
            columns={k: v[index] for k, v in self.columns.items()},
            kinds=dict(self.kinds),
            probability=None if self.probability is None else self.probability[index],
            record_index=None if self.record_index is None else self.record_index[index],
            client_ids=None if self.client_ids is None else self.client_ids[index],
            meta=dict(self.meta),
        )

    @staticmethod
    def concat(parts: list[RecordBatch]) -> RecordBatch:
        if len(parts) == 1:
            return parts[0]
        kinds: dict[str, Kind] = {}
        for p in parts:
            kinds.update(p.kinds)
        columns: dict[str, np.ndarray] = {}
        for name, kind in kinds.items():
            pieces = []
            for p in parts:
                if name in p.columns:
                    pieces.append(p.columns[name])
                elif kind in (Kind.INT, Kind.FLOAT):
                    pieces.append(np.full(len(p), np.nan))
                else:
                    pieces.append(np.full(len(p), None, dtype=object))
            columns[name] = np.concatenate(pieces) if pieces else np.empty(0)
        probs = [p.probability for p in parts]
        probability = None
        if any(x is not None for x in probs):
            width = max(x.shape[1] for x in probs if x is not None)
            probability = np.concatenate(
                [x if x is not None else np.full((len(p), width), np.nan) for x, p in zip(probs, parts, strict=True)]
            )
        return RecordBatch(
            ids=np.concatenate([p.ids for p in parts]),
            timestamps=np.concatenate([p.timestamps for p in parts]),
            columns=columns,
            kinds=kinds,
            probability=probability,
            record_index=_concat_optional([p.record_index for p in parts]),
            client_ids=_concat_optional([p.client_ids for p in parts]),
        )


def _concat_optional(arrays: list[np.ndarray | None]) -> np.ndarray | None:
    if any(a is None for a in arrays):
        return None
    return np.concatenate([a for a in arrays if a is not None])


def new_ids(n: int) -> list[str]:
    """``n`` random UUID4 strings, ~20x faster than ``str(uuid.uuid4())`` in a loop."""
    if n <= 0:
        return []
    raw = np.frombuffer(os.urandom(16 * n), dtype=np.uint8).reshape(n, 16).copy()
    raw[:, 6] = (raw[:, 6] & 0x0F) | 0x40
    raw[:, 8] = (raw[:, 8] & 0x3F) | 0x80
    h = raw.tobytes().hex()
    return [
        f"{h[i : i + 8]}-{h[i + 8 : i + 12]}-{h[i + 12 : i + 16]}-{h[i + 16 : i + 20]}-{h[i + 20 : i + 32]}"
        for i in range(0, 32 * n, 32)
    ]


def pylist(arr: np.ndarray, kind: Kind | str) -> list[Any]:
    """Column values for the DB driver: None for null, ints for integer columns, JSON text for JSON."""
    if arr.dtype == np.float64:
        nan = np.isnan(arr)
        if kind == Kind.INT:
            if not nan.any():
                return arr.astype(np.int64).tolist()
            out = arr.astype(object)
            out[~nan] = arr[~nan].astype(np.int64).tolist()
            out[nan] = None
            return out.tolist()
        if kind == Kind.BOOL:
            out = (arr != 0).astype(object)
            out[nan] = None
            return out.tolist()
        if not nan.any():
            return arr.tolist()
        out = arr.astype(object)
        out[nan] = None
        return out.tolist()
    return arr.tolist()


def json_texts(values: list[Any]) -> list[Any]:
    dumps = orjson.dumps
    return [None if v is None else dumps(v).decode() for v in values]


def timestamp_texts(ts: np.ndarray, dialect: str) -> list[str]:
    """UTC timestamps as the text each backend parses fastest (SQLAlchemy's format on SQLite)."""
    if len(ts) > 1 and (ts == ts[0]).all():  # a batch stamped at arrival: format once
        one = timestamp_texts(ts[:1], dialect)[0]
        return [one] * len(ts)
    text = np.datetime_as_string(ts, unit="us")
    if dialect == "postgresql":
        return [t + "+00" for t in text.tolist()]
    return [t.replace("T", " ") for t in text.tolist()]


def vector_values(prob: np.ndarray, dialect: str) -> list[Any]:
    has_nan = bool(np.isnan(prob).any())
    if dialect == "postgresql":
        rows = prob.tolist()
        return [None if any(x != x for x in r) else r for r in rows] if has_nan else rows
    dumps = orjson.dumps
    if has_nan:
        return [None if any(x != x for x in r) else dumps(r).decode() for r in prob.tolist()]
    if prob.ndim == 2 and len(prob):
        # one orjson call for the whole matrix, split into rows: "[[a,b],[c,d]]" -> "[a,b]", "[c,d]"
        text = orjson.dumps(prob, option=orjson.OPT_SERIALIZE_NUMPY).decode()[2:-2]
        return ["[" + part + "]" for part in text.split("],[")]
    return [dumps(r).decode() for r in prob.tolist()]


def rows_for(batch: RecordBatch, columns: list[tuple[str, Kind | str]], dialect: str) -> Iterator[tuple[Any, ...]]:
    """Tuples in table-column order, built column by column and yielded lazily by ``zip`` (the
    driver binds each tuple as it comes; no list of a batch's tuples is ever built)."""
    n = len(batch)
    cols: list[list[Any]] = []
    for name, kind in columns:
        if name == "scoring_id":
            cols.append(batch.ids.tolist())
        elif name == "scoring_timestamp":
            cols.append(timestamp_texts(batch.timestamps, dialect))
        elif kind == "vector":
            cols.append(vector_values(batch.probability, dialect) if batch.probability is not None else [None] * n)
        elif name in batch.columns:
            values = pylist(batch.columns[name], kind)
            if kind == Kind.JSON and dialect != "postgresql":
                values = json_texts(values)
            elif kind == Kind.JSON:
                values = [None if v is None else orjson.dumps(v).decode() for v in values]
            cols.append(values)
        else:
            cols.append([None] * n)
    return zip(*cols, strict=True)


def csv_for(batch: RecordBatch, columns: list[tuple[str, Kind | str]]) -> bytes:
    """The batch as CSV for PostgreSQL's ``COPY ... (FORMAT csv)``, in table-column order.

    Columns become Arrow arrays (numbers straight from their NumPy buffers, NaN as null) and
    Arrow's C++ writer formats them, without the GIL: the per-row Python of ``COPY`` row by row
    was most of the cost of a PostgreSQL write. Strings are always quoted and nulls are empty
    and unquoted, which is how ``COPY`` tells an empty string from NULL. Floats are written in
    their shortest round-trip form, so nothing is rounded. Raises ``pyarrow.ArrowException``
    for values Arrow cannot type (the caller then falls back to ``rows_for``).
    """
    import pyarrow as pa
    import pyarrow.csv as pa_csv

    n = len(batch)
    arrays: list[pa.Array] = []
    for name, kind in columns:
        if name == "scoring_id":
            arrays.append(pa.array(batch.ids, type=pa.string()))
        elif name == "scoring_timestamp":
            arrays.append(pa.array(timestamp_texts(batch.timestamps, "postgresql"), type=pa.string()))
        elif kind == "vector":
            prob = batch.probability
            if prob is None or prob.ndim != 2:
                arrays.append(pa.nulls(n, pa.string()))
            else:
                arrays.append(pa.array(_array_literals(prob), type=pa.string()))
        elif name not in batch.columns:
            arrays.append(pa.nulls(n, pa.string()))
        else:
            arrays.append(_arrow_column(batch.columns[name], kind))
    table = pa.Table.from_arrays(arrays, names=[f"c{i}" for i in range(len(arrays))])
    out = io.BytesIO()
    pa_csv.write_csv(table, out, pa_csv.WriteOptions(include_header=False, quoting_style="needed"))
    return out.getvalue()


def _arrow_column(values: np.ndarray, kind: Kind | str) -> Any:
    import pyarrow as pa

    if values.dtype == np.float64:
        nan = np.isnan(values)
        mask = nan if nan.any() else None
        if kind == Kind.INT:
            return pa.array(np.where(nan, 0, values).astype(np.int64), mask=mask)
        if kind == Kind.BOOL:
            return pa.array(values != 0, mask=mask)
        return pa.array(values, mask=mask)
    if kind == Kind.JSON:
        return pa.array(json_texts(values.tolist()), type=pa.string())
    if kind == Kind.STR:
        return pa.array(values, type=pa.string())
    return pa.array(values, from_pandas=True)


def _array_literals(prob: np.ndarray) -> list[str | None]:
    """Rows of a probability matrix as PostgreSQL array literals, ``{0.2,0.8}``; NaN rows are null."""
    if not len(prob):
        return []
    if prob.shape[1] == 0:
        return ["{}"] * len(prob)
    text = orjson.dumps(np.ascontiguousarray(prob), option=orjson.OPT_SERIALIZE_NUMPY).decode()[2:-2]
    out: list[str | None] = ["{" + part + "}" for part in text.split("],[")]
    bad = np.isnan(prob).any(axis=1)
    if bad.any():
        for i in np.flatnonzero(bad).tolist():
            out[i] = None
    return out
