"""The executor seam: Arrow rows in, one *partial row* per (monitor, hour bucket) out.

A partial row is ``(monitor, bucket, rows, min_ts, max_ts, state)``: the bucket's start and its
oldest and newest row as epoch microseconds (UTC), and ``state`` the monitor's own
``build(plan, rows).to_bytes()``. ``partial_rows`` is the only function an engine runs on its
workers, and ``merge_partial_rows`` the only thing the driver does with what comes back
(``load_partial`` + ``merge`` per bucket): every number is still defined once, by the monitor.
Both are plain functions of picklable arguments, so the same code runs in this process, in
Spark's ``mapInArrow`` and in any other engine that hands out Arrow batches.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc

from scrutiny.core.schema import Kind
from scrutiny.core.subscription import SCORING_ID, SCORING_TIMESTAMP
from scrutiny.ingest.arrow import column_values
from scrutiny.ingest.batch import RecordBatch
from scrutiny.monitors import registry
from scrutiny.monitors.base import Monitor, Partial
from scrutiny.monitors.partials import canonical, split_by_bucket

PARTIAL_SCHEMA = pa.schema(
    [
        pa.field("monitor", pa.string()),
        pa.field("bucket", pa.int64()),
        pa.field("rows", pa.int64()),
        pa.field("min_ts", pa.int64()),
        pa.field("max_ts", pa.int64()),
        pa.field("state", pa.binary()),
    ]
)
SPARK_SCHEMA = "monitor string, bucket bigint, rows bigint, min_ts bigint, max_ts bigint, state binary"
VECTOR = "vector"


@dataclass(frozen=True)
class Task:
    """One monitor's work: its name and its stored plan (plain JSON, so it pickles anywhere)."""

    monitor: str
    plan: dict[str, Any]

    @property
    def key(self) -> str:
        return hashlib.blake2b(self.monitor.encode() + b"\0" + canonical(self.plan), digest_size=16).hexdigest()


@dataclass(frozen=True)
class Shape:
    """How a table's Arrow columns become a ``RecordBatch``: each column's kind (the probability
    vector's is ``"vector"``), as the subscription's layout declares them."""

    kinds: tuple[tuple[str, str], ...]

    @classmethod
    def of(cls, columns: Iterable[tuple[str, Any]]) -> Shape:
        return cls(tuple((name, str(kind)) for name, kind in columns))

    @property
    def vector(self) -> str | None:
        return next((name for name, kind in self.kinds if kind == VECTOR), None)


@dataclass
class BucketPartial:
    """A bucket's merged partial and what the framework keeps beside it."""

    partial: Partial
    rows: int
    min_ts: np.datetime64
    max_ts: np.datetime64


# -- Arrow -> RecordBatch (the shape ``build`` reads) ----------------------------------------------


def record_batch(batch: pa.RecordBatch | pa.Table, shape: Shape) -> RecordBatch:
    """Arrow rows as the ``RecordBatch`` the store's reader would give for the same rows: numbers
    as float64 with NaN, strings and booleans as objects with None, JSON parsed, the probability
    vector as a float64 matrix (NaN rows where it is null), timestamps as UTC ``datetime64[us]``."""
    table = batch if isinstance(batch, pa.Table) else pa.Table.from_batches([batch])
    n = table.num_rows
    names = set(table.column_names)
    timestamps = utc_micros(table.column(SCORING_TIMESTAMP)).astype("datetime64[us]")
    if SCORING_ID in names:
        ids = table.column(SCORING_ID).to_numpy(zero_copy_only=False).astype(object)
    else:  # a lake table without row ids: every row is a request of its own
        ids = np.char.add(np.arange(n).astype(str), "-1").astype(object)
    columns: dict[str, np.ndarray] = {}
    kinds: dict[str, Kind] = {}
    probability = None
    for name, kind in shape.kinds:
        if name in (SCORING_ID, SCORING_TIMESTAMP) or name not in names:
            continue
        col = table.column(name)
        if kind == VECTOR:
            probability = vector_matrix(col)
            continue
        k = Kind(kind)
        values = column_values(col, name)
        if k is Kind.JSON:
            values = np.array([None if v is None else orjson.loads(v) for v in values.tolist()], dtype=object)
        columns[name] = values
        kinds[name] = k
    return RecordBatch(ids=ids, timestamps=timestamps, columns=columns, kinds=kinds, probability=probability)


def utc_micros(col: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """Timestamps as int64 microseconds since the epoch, UTC (a zone-less timestamp is taken as UTC)."""
    t = col.type
    if pa.types.is_timestamp(t) and t.tz is not None:
        col = pc.cast(col, pa.timestamp("us", tz="UTC"))
    col = pc.cast(col, pa.timestamp("us"))
    return np.asarray(pc.cast(col, pa.int64()).to_numpy(zero_copy_only=False), dtype=np.int64)


def vector_matrix(col: pa.ChunkedArray) -> np.ndarray | None:
    """``list<number>`` as a float64 ``[n, k]`` matrix; null lists (and null entries) are NaN,
    ragged rows are padded with NaN; None when every row is null (as the store's reader does)."""
    arr = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    n = len(arr)
    if n == 0 or arr.null_count == n:
        return None
    if pa.types.is_fixed_size_list(arr.type):
        arr = pc.cast(arr, pa.list_(arr.type.value_type))
    valid = ~np.asarray(arr.is_null().to_numpy(zero_copy_only=False), dtype=bool)
    lengths = np.asarray(pc.fill_null(pc.list_value_length(arr), 0).to_numpy(zero_copy_only=False), dtype=np.int64)
    width = int(lengths.max()) if n else 0
    flat = pc.fill_null(pc.cast(pc.list_flatten(arr), pa.float64()), np.nan).to_numpy(zero_copy_only=False)
    out = np.full((n, width), np.nan)
    if width and (lengths[valid] == width).all():
        out[valid] = flat.reshape(-1, width)
    else:  # ragged: place each row's values at its offset
        rows = np.repeat(np.arange(n), lengths)
        starts = np.cumsum(lengths) - lengths
        cols = np.arange(len(flat)) - np.repeat(starts, lengths)
        out[rows, cols] = flat
    return out


# -- the seam ------------------------------------------------------------------------------------

_loaded: dict[str, tuple[Monitor, Any]] = {}
_loaded_lock = threading.Lock()


def monitor_and_plan(task: Task) -> tuple[Monitor, Any]:
    """``registry.get(name)`` and ``load_plan(plan)``, once per plan and process (workers reuse it)."""
    key = task.key
    with _loaded_lock:
        hit = _loaded.get(key)
    if hit is None:
        mon = registry.get(task.monitor)
        hit = (mon, mon.load_plan(task.plan))
        with _loaded_lock:
            _loaded[key] = hit
            while len(_loaded) > 256:
                _loaded.pop(next(iter(_loaded)))
    return hit


def partial_rows(tasks: list[Task], shape: Shape, batches: Iterable[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    """Arrow batches -> one partial row per (task, hour bucket) of each batch. Runs on workers."""
    loaded = [monitor_and_plan(t) for t in tasks]
    for batch in batches:
        if batch.num_rows == 0:
            continue
        rb = record_batch(batch, shape)
        out: dict[str, list[Any]] = {f.name: [] for f in PARTIAL_SCHEMA}
        for bucket, part in split_by_bucket(rb):
            start = int(bucket.astype("datetime64[us]").astype(np.int64))
            lo = int(part.timestamps.min().astype(np.int64))
            hi = int(part.timestamps.max().astype(np.int64))
            for task, (mon, plan) in zip(tasks, loaded, strict=True):
                out["monitor"].append(task.monitor)
                out["bucket"].append(start)
                out["rows"].append(len(part))
                out["min_ts"].append(lo)
                out["max_ts"].append(hi)
                out["state"].append(mon.build(plan, part).to_bytes())
        yield pa.RecordBatch.from_pydict(out, schema=PARTIAL_SCHEMA)


def merge_partial_rows(
    tasks: list[Task], rows: pa.Table | Iterable[pa.RecordBatch]
) -> dict[str, dict[np.datetime64, BucketPartial]]:
    """Partial rows -> per monitor, per hour bucket: the merged partial, its rows and time span."""
    loaded = {t.monitor: monitor_and_plan(t)[0] for t in tasks}
    out: dict[str, dict[np.datetime64, BucketPartial]] = {t.monitor: {} for t in tasks}
    batches = rows.to_batches() if isinstance(rows, pa.Table) else rows
    for batch in batches:
        d = batch.to_pydict()
        for name, bucket, n, lo, hi, state in zip(
            d["monitor"], d["bucket"], d["rows"], d["min_ts"], d["max_ts"], d["state"], strict=True
        ):
            mon = loaded[name]
            key = np.datetime64(bucket, "us").astype("datetime64[h]")
            part = mon.load_partial(state)
            lo64, hi64 = np.datetime64(lo, "us"), np.datetime64(hi, "us")
            prev = out[name].get(key)
            if prev is None:
                out[name][key] = BucketPartial(part, int(n), lo64, hi64)
            else:
                prev.partial = prev.partial.merge(part)
                prev.rows += int(n)
                prev.min_ts = min(prev.min_ts, lo64)
                prev.max_ts = max(prev.max_ts, hi64)
    return out
