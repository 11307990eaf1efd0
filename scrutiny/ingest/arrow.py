"""Arrow IPC payload batches: the fast path the SDK uses (``application/vnd.apache.arrow.stream``).

One Arrow row is one payload row. Columns are recognised by name, or by the field metadata
``scrutiny.role`` (``request``, ``meta``, ``response``, ``record``):

* record columns: ``scoring_id`` (rows of one record are consecutive rows with the same id;
  generated when absent), ``scoring_timestamp`` (timestamp or ISO string), ``response_time``
  (ms), ``deployment_id``, ``asset_revision``;
* the subscription's features (request);
* its prediction and probability fields (response); a probability is ``list<double>`` or a
  scalar P(second class);
* anything else must carry ``scrutiny.role`` = ``meta`` or ``response``.

Columns arrive as typed buffers, so validation and conversion are NumPy operations.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from scrutiny.core.subscription import Subscription
from scrutiny.errors import InvalidInput, PayloadTooLarge
from scrutiny.ingest.batch import new_ids
from scrutiny.ingest.payloads import (
    ColumnSet,
    ParsedPayload,
    build_columns,
    check_optional_strings,
    finish,
    parse_timestamp,
)

CONTENT_TYPE = "application/vnd.apache.arrow.stream"
ROLE = b"scrutiny.role"
RECORD_COLUMNS = ("scoring_id", "scoring_timestamp", "response_time", "deployment_id", "asset_revision")
MAX_ROWS = 1_000_000


def read_table(body: bytes) -> pa.Table:
    try:
        with pa.ipc.open_stream(body) as reader:
            return reader.read_all()
    except (pa.ArrowInvalid, OSError) as exc:
        raise InvalidInput(f"the body is not an Arrow IPC stream: {exc}") from None


def column_values(col: pa.ChunkedArray, name: str) -> np.ndarray:
    """An Arrow column as NumPy: float64 with NaN for null numbers, object arrays otherwise."""
    t = col.type
    if pa.types.is_dictionary(t):
        col = pc.cast(col, t.value_type)
        t = col.type
    if pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t):
        return pc.cast(col, pa.float64()).to_numpy()
    if pa.types.is_boolean(t):
        return col.to_numpy(zero_copy_only=False).astype(object)
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return col.to_numpy(zero_copy_only=False)
    if pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t):
        return vector_values(col, name)
    if pa.types.is_null(t):
        return np.full(len(col), None, dtype=object)
    return np.asarray(col.to_pylist(), dtype=object)


def vector_values(col: pa.ChunkedArray, name: str) -> np.ndarray:
    """``list<number>`` of equal lengths as a float64 ``[n, k]`` matrix (else an object array of lists)."""
    arr = col.combine_chunks()
    if arr.null_count:
        i = int(np.flatnonzero(arr.is_null().to_numpy(zero_copy_only=False))[0])
        raise InvalidInput("a list value is null", row=i + 1, field=name)
    if pa.types.is_fixed_size_list(arr.type):
        k = arr.type.list_size
    else:
        offsets = arr.offsets.to_numpy()
        lengths = np.diff(offsets)
        if len(lengths) and not np.all(lengths == lengths[0]):
            return np.asarray(arr.to_pylist(), dtype=object)
        k = int(lengths[0]) if len(lengths) else 0
        arr = arr.slice(0)
    flat = arr.flatten()
    if not (pa.types.is_integer(flat.type) or pa.types.is_floating(flat.type)):
        return np.asarray(arr.to_pylist(), dtype=object)
    values = pc.cast(flat, pa.float64()).to_numpy(zero_copy_only=False)
    return values.reshape(len(arr), k) if k else np.empty((len(arr), 0))


def _timestamps(col: pa.ChunkedArray, now: np.datetime64) -> np.ndarray:
    t = col.type
    if pa.types.is_timestamp(t):
        if t.tz is None:
            col = pc.cast(col, pa.timestamp("us"))
        else:
            col = pc.cast(pc.cast(col, pa.timestamp("us", tz="UTC")), pa.timestamp("us"))
        out = col.to_numpy()
        return np.where(np.isnat(out), now, out).astype("datetime64[us]")
    values = col.to_pylist()
    out = np.full(len(values), now, dtype="datetime64[us]")
    for i, v in enumerate(values):
        if v is not None:
            out[i] = np.datetime64(parse_timestamp(v, i).replace(tzinfo=None), "us")
    return out


def parse_arrow(body: bytes | pa.Table, sub: Subscription, *, now: datetime | None = None) -> ParsedPayload:
    table = body if isinstance(body, pa.Table) else read_table(body)
    n = table.num_rows
    if n == 0:
        raise InvalidInput("the batch holds no rows")
    if n > MAX_ROWS:
        raise PayloadTooLarge(f"an Arrow batch holds at most {MAX_ROWS} rows, this one has {n}")
    props = sub.properties
    features = set(sub.feature_fields or props.feature_fields)
    outputs = {props.prediction_field, *props.probability_columns}
    request: dict[str, Any] = {}
    response: dict[str, Any] = {}
    meta: dict[str, Any] = {}
    record: dict[str, pa.ChunkedArray] = {}
    for f in table.schema:
        role = (f.metadata or {}).get(ROLE, b"").decode()
        name = f.name
        col = table.column(name)
        if role == "record" or (not role and name in RECORD_COLUMNS):
            if name not in RECORD_COLUMNS:
                raise InvalidInput(f"unknown record column; one of {', '.join(RECORD_COLUMNS)}", field=name)
            record[name] = col
        elif role == "meta":
            meta[name] = column_values(col, name)
        elif role == "response" or (not role and name in outputs):
            response[name] = column_values(col, name)
        elif role == "request" or (not role and (name in features or not features)):
            request[name] = column_values(col, name)
        else:
            raise InvalidInput(
                "unknown column: not a feature, prediction or probability field"
                " (mark meta and extra response columns with the field metadata scrutiny.role)",
                field=name,
            )
    now_dt = now or datetime.now(UTC)
    now64 = np.datetime64(now_dt.astimezone(UTC).replace(tzinfo=None), "us")

    # records: runs of equal consecutive scoring_ids
    if "scoring_id" in record:
        sid = record["scoring_id"].to_numpy(zero_copy_only=False)
        if pa.types.is_string(record["scoring_id"].type) or pa.types.is_large_string(record["scoring_id"].type):
            nulls = np.flatnonzero(pa.compute.is_null(record["scoring_id"]).to_numpy(zero_copy_only=False))
        else:
            raise InvalidInput("scoring_id must be a string column", field="scoring_id")
        given = np.ones(n, dtype=bool)
        if nulls.size:
            sid = sid.copy()
            sid[nulls] = new_ids(nulls.size)
            given[nulls] = False
        starts = np.ones(n, dtype=bool)
        starts[1:] = sid[1:] != sid[:-1]
    else:
        sid = np.asarray(new_ids(n), dtype=object)
        given = np.zeros(n, dtype=bool)
        starts = np.ones(n, dtype=bool)
    run = np.cumsum(starts) - 1  # record index of each row
    first = np.flatnonzero(starts)
    row_number = np.arange(n) - first[run] + 1
    record_ids = sid[first].tolist()
    for i, s in enumerate(record_ids):
        if len(s) > 200 or not s:
            raise InvalidInput(
                "scoring_id must be a non-empty string of at most 200 characters", record=i, field="scoring_id"
            )

    def per_record(name: str, default: Any, convert: Any = None) -> np.ndarray:
        if name not in record:
            return np.full(len(first), default, dtype=object if not isinstance(default, float) else np.float64)
        values = convert(record[name]) if convert else record[name].to_numpy(zero_copy_only=False)
        return values[first]

    ts = (
        per_record("scoring_timestamp", None, lambda c: _timestamps(c, now64))
        if "scoring_timestamp" in record
        else np.full(len(first), now64)
    )
    rt = (
        per_record("response_time", np.nan, lambda c: pc.cast(c, pa.float64()).to_numpy())
        if "response_time" in record
        else np.full(len(first), np.nan)
    )
    deps = per_record("deployment_id", sub.deployment_id)
    revs = per_record("asset_revision", props.asset_revision)
    check_optional_strings(deps.tolist(), "deployment_id")
    check_optional_strings(revs.tolist(), "asset_revision")

    def locate(pos: int) -> tuple[int, int]:
        return int(run[pos]), int(row_number[pos])

    cs = ColumnSet(n=n, request=request, response=response, meta=meta or None, locate=locate)
    part, layout = build_columns(cs, sub.layout, sub)
    order = np.arange(len(first)).repeat(np.diff(np.append(first, n)))
    batch = finish(
        [part],
        order=order,
        row_number=row_number,
        record_ids=record_ids,
        client_given=given[first],
        timestamps=np.asarray(ts, dtype="datetime64[us]"),
        response_time=np.round(np.asarray(rt, dtype=np.float64)),
        deployments=np.asarray(deps, dtype=object),
        revisions=np.asarray(revs, dtype=object),
    )
    return ParsedPayload(batch, layout, len(first))
