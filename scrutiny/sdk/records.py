"""Payload records, and their conversion to the wire formats the API accepts.

Batches of records that share their field lists travel as Arrow IPC (one Arrow row per
payload row): nothing is JSON-encoded value by value, which is what makes SDK logging fast.
Anything else travels as OpenScale-shaped JSON records.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

ARROW = "application/vnd.apache.arrow.stream"
ROLE = b"scrutiny.role"


def _table(part: Any) -> dict[str, Any]:
    """Accept {"fields", "values"}, a list of row dicts, or a DataFrame."""
    if hasattr(part, "to_dict") and hasattr(part, "columns"):  # DataFrame
        return {"fields": [str(c) for c in part.columns], "values": part.values.tolist()}
    if isinstance(part, list):
        fields = list(part[0]) if part else []
        return {"fields": fields, "values": [[row.get(f) for f in fields] for row in part]}
    return part


@dataclass
class PayloadRecord:
    """One scoring transaction: what the application sent to the model and what it answered."""

    request: dict[str, Any]
    response: dict[str, Any] | str
    scoring_id: str | None = None
    scoring_timestamp: datetime | str | None = None
    response_time: int | None = None  # milliseconds
    deployment_id: str | None = None
    asset_revision: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.request = _table(self.request)
        if not isinstance(self.response, str):
            self.response = _table(self.response)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"request": self.request, "response": self.response}
        if self.scoring_id is not None:
            out["scoring_id"] = self.scoring_id
        if self.scoring_timestamp is not None:
            ts = self.scoring_timestamp
            out["scoring_timestamp"] = ts.isoformat() if isinstance(ts, datetime) else ts
        for key in ("response_time", "deployment_id", "asset_revision"):
            value = getattr(self, key)
            if value is not None:
                out[key] = value
        out.update(self.extra)
        return out


def _signature(rec: PayloadRecord) -> tuple[Any, ...] | None:
    if isinstance(rec.response, str) or rec.extra:
        return None
    meta = rec.request.get("meta")
    return (
        tuple(rec.request.get("fields") or ()),
        tuple(rec.response.get("fields") or ()),
        tuple(meta.get("fields") or ()) if isinstance(meta, dict) else None,
    )


def records_to_arrow(records: list[PayloadRecord]) -> pa.Table | None:
    """An Arrow table for records sharing their field lists, else None (send JSON instead)."""

    if not records:
        return None
    sig = _signature(records[0])
    if sig is None or any(_signature(r) != sig for r in records):
        return None
    req_fields, resp_fields, meta_fields = sig
    rows: list[list[Any]] = []
    out_rows: list[list[Any]] = []
    meta_rows: list[list[Any]] = []
    ids: list[str] = []
    stamps: list[Any] = []
    times: list[Any] = []
    deps: list[Any] = []
    revs: list[Any] = []
    for rec in records:
        values = rec.request["values"]
        if values and not isinstance(values[0], list):
            values = [values]
        n = len(values)
        rvalues: list[Any] = rec.response["values"]  # type: ignore[index,assignment]
        if rvalues and not isinstance(rvalues[0], list):
            rvalues = [rvalues]
        if len(rvalues) != n:
            return None  # let the server name the bad record
        rows.extend(values)
        out_rows.extend(rvalues)
        if meta_fields is not None:
            meta_rows.extend(rec.request["meta"]["values"])
        sid = rec.scoring_id or str(uuid.uuid4())
        ts = rec.scoring_timestamp
        if isinstance(ts, str):
            ts = datetime.fromisoformat(ts)
        ids.extend([sid] * n)
        stamps.extend([ts] * n)
        times.extend([rec.response_time] * n)
        deps.extend([rec.deployment_id] * n)
        revs.extend([rec.asset_revision] * n)
    columns: dict[str, tuple[list[Any], bytes]] = {}
    try:
        for i, f in enumerate(req_fields):
            columns[f] = ([r[i] for r in rows], b"request")
        if meta_fields is not None:
            for i, f in enumerate(meta_fields):
                columns[f] = ([r[i] for r in meta_rows], b"meta")
        for i, f in enumerate(resp_fields):
            if f not in columns:
                columns[f] = ([r[i] for r in out_rows], b"response")
    except IndexError:
        return None
    record_cols: dict[str, list[Any]] = {"scoring_id": ids}
    if any(s is not None for s in stamps):
        record_cols["scoring_timestamp"] = [_utc(s) for s in stamps]
    if any(t is not None for t in times):
        record_cols["response_time"] = times
    if any(d is not None for d in deps):
        record_cols["deployment_id"] = deps
    if any(r is not None for r in revs):
        record_cols["asset_revision"] = revs
    return _build_table(columns, record_cols)


def _utc(ts: datetime | None) -> datetime | None:
    if ts is None:
        return None
    return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)


def _build_table(columns: dict[str, tuple[list[Any], bytes]], record_cols: dict[str, list[Any]]) -> pa.Table | None:
    import pyarrow as pa

    arrays = []
    fields = []
    try:
        for name, values in record_cols.items():
            typ = pa.timestamp("us", tz="UTC") if name == "scoring_timestamp" else None
            arrays.append(pa.array(values, type=typ))
            fields.append(pa.field(name, arrays[-1].type, metadata={ROLE: b"record"}))
        for name, (values, role) in columns.items():
            arr = pa.array(values)
            if pa.types.is_null(arr.type):
                arr = pa.array(values, type=pa.string())
            arrays.append(arr)
            fields.append(pa.field(name, arr.type, metadata={ROLE: role}))
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return None  # mixed types in a column: JSON lets the server name the value
    return pa.Table.from_arrays(arrays, schema=pa.schema(fields))


def column_array(values: Any) -> pa.Array:
    """A pandas/NumPy column as Arrow without pandas' per-call overhead; vectors (probabilities)
    become fixed-size lists of doubles."""
    import numpy as np
    import pyarrow as pa

    arr = np.asarray(values)
    if arr.dtype == object and len(arr):
        first = next((v for v in arr if v is not None), None)
        if isinstance(first, (list, tuple, np.ndarray)):
            try:
                mat = np.stack([np.asarray(v, dtype=np.float64) for v in arr])
            except (ValueError, TypeError):
                return pa.array(list(arr))
            if mat.ndim == 2:
                return pa.FixedSizeListArray.from_arrays(pa.array(mat.ravel()), mat.shape[1])
            return pa.array(list(arr))
    result = pa.array(arr, from_pandas=True)
    return result.cast(pa.string()) if pa.types.is_null(result.type) else result


def frames_to_arrow(
    inputs: pd.DataFrame,
    outputs: pd.DataFrame,
    *,
    meta: pd.DataFrame | None = None,
    scoring_ids: list[str] | None = None,
    scoring_timestamps: Any = None,
    response_times: Any = None,
) -> pa.Table:
    """One payload row per DataFrame row: inputs are request columns, outputs response columns."""
    import pyarrow as pa

    if len(inputs) != len(outputs):
        raise ValueError(f"inputs have {len(inputs)} rows but outputs have {len(outputs)}")
    n = len(inputs)
    fields = []
    arrays = []

    def add(name: str, arr: pa.Array, role: bytes) -> None:
        arrays.append(arr)
        fields.append(pa.field(name, arr.type, metadata={ROLE: role}))

    ids = scoring_ids if scoring_ids is not None else [str(uuid.uuid4()) for _ in range(n)]
    add("scoring_id", pa.array(ids, type=pa.string()), b"record")
    if scoring_timestamps is not None:
        add("scoring_timestamp", pa.array(list(scoring_timestamps), type=pa.timestamp("us", tz="UTC")), b"record")
    if response_times is not None:
        add("response_time", pa.array(list(response_times), type=pa.float64()), b"record")
    for frame, role in ((inputs, b"request"), (meta, b"meta"), (outputs, b"response")):
        if frame is None:
            continue
        for name in frame.columns:
            add(str(name), column_array(frame[name].to_numpy()), role)
    return pa.Table.from_arrays(arrays, schema=pa.schema(fields))


def arrow_bytes(table: pa.Table) -> bytes:
    import pyarrow as pa

    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return bytes(sink.getvalue().to_pybytes())
