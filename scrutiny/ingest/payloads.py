"""Payload records -> one columnar ``RecordBatch``, validated all-or-nothing.

Two front-ends share one column builder:

* JSON records (OpenScale's shape, contract §4.1-4.3)::

    {"scoring_id"?, "scoring_timestamp"?, "response_time"?, "deployment_id"?, "asset_revision"?,
     "request": {"fields", "values", "meta"?: {"fields", "values"}},
     "response": {"fields", "values"} | "<that object as a JSON string>"}

  Rows may also be objects (``"values": [{"Age": 31, ...}]``). Records with the same field
  lists are grouped, so a typical batch is one group and every value is handled per column.
* Arrow IPC streams (``application/vnd.apache.arrow.stream``), what the SDK sends: one Arrow row
  per payload row, so nothing is parsed value by value (see ``scrutiny.ingest.arrow``).

Request row *n* (1-based) of a record becomes the table row ``<scoring_id>-<n>``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import numpy as np

from scrutiny.core.outputs import normalize
from scrutiny.core.schema import RESERVED, Column, Kind, Schema, check_name, infer_kind
from scrutiny.core.scoring_format import decode_json_string
from scrutiny.core.subscription import (
    ASSET_REVISION,
    DEPLOYMENT_ID,
    PREDICTION_PROBABILITY,
    RESPONSE_TIME,
    Layout,
    Subscription,
    kind_of_labels,
)
from scrutiny.errors import InvalidInput
from scrutiny.ingest.batch import RecordBatch, new_ids
from scrutiny.ingest.columns import Locate, convert, to_numbers

MAX_ID_LENGTH = 200
Col = Sequence[Any] | np.ndarray


@dataclass
class ColumnSet:
    """A homogeneous slice of a batch, by column: request fields, meta fields and response fields."""

    n: int
    request: dict[str, Col]
    response: dict[str, Col]
    meta: dict[str, Col] | None
    locate: Locate  # position in this slice -> (record index, row within the record)


@dataclass
class ParsedPayload:
    batch: RecordBatch
    layout: Layout  # the subscription layout, extended with what this batch introduced
    records: int


# -- record-level values ---------------------------------------------------------------------


def parse_timestamp(value: Any, record: int | None) -> datetime:
    if isinstance(value, str):
        try:
            ts = datetime.fromisoformat(value)
        except ValueError:
            raise InvalidInput(
                f"not an ISO-8601 timestamp: {value!r}", record=record, field="scoring_timestamp"
            ) from None
        return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return datetime.fromtimestamp(float(value), UTC)
    raise InvalidInput("scoring_timestamp must be an ISO-8601 string", record=record, field="scoring_timestamp")


def check_scoring_id(sid: Any, record: int | None) -> None:
    if type(sid) is not str or not sid or len(sid) > MAX_ID_LENGTH:
        raise InvalidInput(
            f"scoring_id must be a non-empty string of at most {MAX_ID_LENGTH} characters",
            record=record,
            field="scoring_id",
        )


def check_optional_strings(values: Sequence[Any], name: str) -> None:
    if set(map(type, values)) <= {str, type(None)}:
        return
    for i, v in enumerate(values):
        if v is not None and type(v) is not str:
            raise InvalidInput(f"{name} must be a string", record=i, field=name)


# -- the shared column builder -----------------------------------------------------------------


def build_columns(
    cs: ColumnSet, layout: Layout, sub: Subscription, *, drop_unknown: bool = False
) -> tuple[RecordBatch, Layout]:
    """Validate and type one ``ColumnSet`` against the subscription; returns its batch and the
    layout extended with anything new (first-payload schema, meta and extra response columns)."""
    try:
        return _build(cs, layout, sub, drop_unknown)
    except InvalidInput as exc:
        raise _relocate(cs.locate, exc) from None


def _relocate(locate: Locate, exc: InvalidInput) -> InvalidInput:
    """Turn a position within the slice into (record, row within the record)."""
    if exc.context.get("record") is not None:
        return exc
    row = exc.context.get("row")
    record, r = locate(int(row) - 1 if row is not None else 0)
    return InvalidInput(exc.reason, record=record, row=r if row is not None else None, field=exc.context.get("field"))


def _at(pos: int) -> tuple[int | None, int | None]:
    return None, pos + 1


def _build(cs: ColumnSet, layout: Layout, sub: Subscription, drop_unknown: bool) -> tuple[RecordBatch, Layout]:
    n = cs.n
    props = sub.properties
    classification = sub.problem_type.classification
    features = layout.features
    if not features:  # dynamic schema: the first payload defines it
        wanted = props.feature_fields or list(cs.request)
        cats = set(props.categorical_fields)
        cols = []
        for name in wanted:
            check_name(name)
            if name in RESERVED:
                raise InvalidInput(f"{name!r} is reserved for Scrutiny's own columns", field=name)
            if name not in cs.request:
                raise InvalidInput("missing scoring field", field=name)
            values = cs.request[name]
            kind = _kind_of_column(values) or Kind.STR
            cols.append(Column(name, kind, name in cats or kind in (Kind.STR, Kind.BOOL)))
        features = Schema(tuple(cols))
        layout = replace(layout, features=features)
    known = set(features.names)
    if not drop_unknown:
        for f in cs.request:
            if f not in known:
                shown = ", ".join(features.names[:8]) + (", ..." if len(features) > 8 else "")
                raise InvalidInput(f"unknown field; the subscription's features are {shown}", field=f)
    columns: dict[str, np.ndarray] = {}
    kinds: dict[str, Kind] = {}
    for col in features:
        if col.name not in cs.request:
            raise InvalidInput("missing scoring field", field=col.name)
        columns[col.name] = convert(cs.request[col.name], col.kind, col.name, _at)
        kinds[col.name] = col.kind

    extra = layout.extra
    if cs.meta is not None:
        for name, values in cs.meta.items():
            if name in known:
                raise InvalidInput("a meta field cannot have the name of a feature", field=name)
            extra, kind = _extra_kind(extra, name, values)
            columns[name] = convert(values, kind, name, _at)
            kinds[name] = kind

    out = normalize(
        cs.response,
        n,
        classification=classification,
        labels=layout.labels,
        prediction_field=props.prediction_field,
        probability_fields=props.probability_columns,
    )
    pred_kind = layout.prediction_kind
    if pred_kind is None:
        pred_kind = (
            Kind.FLOAT
            if not classification
            else (kind_of_labels(layout.labels) or infer_kind(out.prediction.tolist()) or Kind.STR)
        )
        layout = replace(layout, prediction_kind=pred_kind)
    pred_name = layout.prediction_column
    if out.prediction.dtype == np.float64 and pred_kind is Kind.FLOAT:
        columns[pred_name] = out.prediction
    else:
        columns[pred_name] = convert(out.prediction, pred_kind, pred_name, _at)
    kinds[pred_name] = pred_kind
    if out.probability is not None:
        columns[PREDICTION_PROBABILITY] = out.prediction_probability  # type: ignore[assignment]
        kinds[PREDICTION_PROBABILITY] = Kind.FLOAT
    skip = {props.prediction_field, *props.probability_columns, *known, *RESERVED}
    for name, values in cs.response.items():
        if name in skip or name in columns:
            continue  # outputs handled above, echoed inputs, Scrutiny's own names
        check_name(name, what="response field")
        extra, kind = _extra_kind(extra, name, values)
        columns[name] = convert(values, kind, name, _at)
        kinds[name] = kind
    if extra is not layout.extra:
        layout = replace(layout, extra=extra)
    batch = RecordBatch(
        ids=np.empty(n, dtype=object),
        timestamps=np.empty(n, dtype="datetime64[us]"),
        columns=columns,
        kinds=kinds,
        probability=out.probability,
    )
    return batch, layout


def _kind_of_column(values: Col) -> Kind | None:
    if isinstance(values, np.ndarray):
        if values.dtype.kind in "iu":
            return Kind.INT
        if values.dtype.kind == "f":
            finite = values[np.isfinite(values)]
            return (
                Kind.INT
                if finite.size and np.all(finite == np.floor(finite)) and values.dtype != np.float64
                else Kind.FLOAT
            )
        if values.dtype.kind == "b":
            return Kind.BOOL
        return infer_kind(values.tolist())
    return infer_kind(list(values))


def _extra_kind(extra: Schema, name: str, values: Col) -> tuple[Schema, Kind]:
    """The kind of a meta/extra column: as stored before, else inferred from this batch."""
    existing = extra.get(name)
    if existing is not None:
        return extra, existing.kind
    check_name(name, what="meta field")
    if name in RESERVED:
        raise InvalidInput(f"{name!r} is reserved for Scrutiny's own columns", field=name)
    kind = _kind_of_column(values)
    if kind is None:
        seq = values.tolist() if isinstance(values, np.ndarray) else values
        types = set(map(type, seq)) - {type(None)}
        if types:
            raise InvalidInput(f"values of mixed types {sorted(t.__name__ for t in types)}", field=name)
        kind = Kind.STR
    return Schema((*extra.columns, Column(name, kind))), kind


def finish(
    parts: list[RecordBatch],
    *,
    order: np.ndarray,
    row_number: np.ndarray,
    record_ids: list[str],
    client_given: np.ndarray,
    timestamps: np.ndarray,
    response_time: np.ndarray,
    deployments: np.ndarray,
    revisions: np.ndarray,
) -> RecordBatch:
    """Attach row ids and record-level columns (indexed by record) to the concatenated parts."""
    batch = RecordBatch.concat(parts)
    rid = np.asarray(record_ids, dtype=object)[order]
    batch.ids = np.array([f"{r}-{k}" for r, k in zip(rid.tolist(), row_number.tolist(), strict=True)], dtype=object)
    batch.record_index = order
    batch.client_ids = client_given[order]
    batch.timestamps = timestamps[order]
    batch.columns[RESPONSE_TIME] = response_time[order]
    batch.kinds[RESPONSE_TIME] = Kind.INT
    batch.columns[DEPLOYMENT_ID] = deployments[order]
    batch.kinds[DEPLOYMENT_ID] = Kind.STR
    batch.columns[ASSET_REVISION] = revisions[order]
    batch.kinds[ASSET_REVISION] = Kind.STR
    return batch


# -- JSON records front-end ------------------------------------------------------------------


@dataclass
class _Group:
    fields: tuple[str, ...]
    response_fields: tuple[str, ...]
    meta_fields: tuple[str, ...] | None
    rows: list[list[Any]] = field(default_factory=list)
    response_rows: list[list[Any]] = field(default_factory=list)
    meta_rows: list[list[Any]] = field(default_factory=list)
    records: list[int] = field(default_factory=list)
    counts: list[int] = field(default_factory=list)

    def locate(self, pos: int) -> tuple[int, int]:
        offsets = np.cumsum(self.counts)
        g = int(np.searchsorted(offsets, pos, side="right"))
        g = min(g, len(self.records) - 1)
        start = int(offsets[g - 1]) if g else 0
        return self.records[g], pos - start + 1

    def columns(self, rows: list[list[Any]], fields: tuple[str, ...], what: str) -> dict[str, Col]:
        lengths = set(map(len, rows)) if rows else set()
        if lengths and lengths != {len(fields)}:
            for pos, row in enumerate(rows):
                if len(row) != len(fields):
                    record, r = self.locate(pos)
                    raise InvalidInput(
                        f"{what} row has {len(row)} values for {len(fields)} fields",
                        record=record,
                        row=r,
                        field=f"{what}.values",
                    )
        if not rows:
            return {f: () for f in fields}
        return dict(zip(fields, zip(*rows, strict=True), strict=True))


_validated_keys: dict[tuple[str, ...], bool] = {}


def _rows_of(part: Any, what: str, record: int) -> tuple[tuple[str, ...], list[list[Any]]]:
    """(fields, rows) of a request/response part, tolerant of dict rows and single flat rows."""
    if type(part) is list:  # a bare list of row objects
        part = {"values": part}
    if type(part) is not dict:
        raise InvalidInput(f"{what} must be an object with 'fields' and 'values'", record=record, field=what)
    fields = part.get("fields")
    values = part.get("values")
    if type(values) is not list:
        for wrapper in ("input_data", "predictions"):  # WML v4 wrappers
            inner = part.get(wrapper)
            if type(inner) is list and len(inner) == 1:
                return _rows_of(inner[0], what, record)
        raise InvalidInput(f"{what}.values must be a list of rows", record=record, field=f"{what}.values")
    if values:
        first = type(values[0])
        if first is dict:
            if fields is None:
                fields = list(values[0])
            names = set(fields)
            for r, row in enumerate(values, start=1):
                if type(row) is not dict:
                    raise InvalidInput(f"{what} row is not an object", record=record, row=r, field=f"{what}.values")
                unknown = set(row) - names
                if unknown:
                    raise InvalidInput(
                        f"{what} row has fields the first row does not have",
                        record=record,
                        row=r,
                        field=sorted(unknown)[0],
                    )
            values = [[row.get(f) for f in fields] for row in values]
        elif first is not list:
            values = [values]
        else:
            for r, row in enumerate(values, start=1):
                if type(row) is not list:
                    raise InvalidInput(f"{what} row is not a list", record=record, row=r, field=f"{what}.values")
    if type(fields) is not list:
        raise InvalidInput(f"{what}.fields must be a list of column names", record=record, field=f"{what}.fields")
    key = tuple(fields)
    if key not in _validated_keys:
        for f in key:
            if type(f) is not str:
                raise InvalidInput(f"{what}.fields must hold strings, got {f!r}", record=record, field=f"{what}.fields")
        if len(set(key)) != len(key):
            dup = next(f for f in key if key.count(f) > 1)
            raise InvalidInput(f"{what}.fields lists {dup!r} twice", record=record, field=dup)
        if len(_validated_keys) > 4096:
            _validated_keys.clear()
        _validated_keys[key] = True
    return key, values


def parse_payloads(
    records: Any, sub: Subscription, *, now: datetime | None = None, drop_unknown_fields: bool = False
) -> ParsedPayload:
    """Validate JSON ``records`` against the subscription and build the batch. Raises ``InvalidInput``."""
    if type(records) is dict:
        records = [records]
    if type(records) is not list:
        raise InvalidInput("the body must be a JSON array of payload records")
    if not records:
        raise InvalidInput("the batch holds no records")
    now = now or datetime.now(UTC)
    groups: dict[tuple[Any, ...], _Group] = {}
    n_rec = len(records)
    record_ids: list[Any] = [None] * n_rec
    stamps: list[Any] = [None] * n_rec
    times: list[Any] = [None] * n_rec
    deployments: list[Any] = [sub.deployment_id] * n_rec
    revisions: list[Any] = [sub.properties.asset_revision] * n_rec
    for idx, rec in enumerate(records):
        if type(rec) is not dict:
            raise InvalidInput("a payload record must be an object", record=idx)
        req = rec.get("request")
        if req is None:
            raise InvalidInput("missing 'request'", record=idx, field="request")
        resp = rec.get("response")
        if resp is None:
            raise InvalidInput("missing 'response'", record=idx, field="response")
        if type(resp) is str or type(resp) is bytes:
            try:
                resp = decode_json_string(resp)
            except InvalidInput as exc:
                raise InvalidInput(exc.reason, record=idx, field="response") from None
        fields, values = _rows_of(req, "request", idx)
        rfields, rvalues = _rows_of(resp, "response", idx)
        n = len(values)
        if n == 0:
            raise InvalidInput("request has no rows", record=idx, field="request.values")
        if len(rvalues) != n:
            raise InvalidInput(
                f"response has {len(rvalues)} rows for {n} request rows", record=idx, field="response.values"
            )
        meta_key = None
        meta = req.get("meta") if type(req) is dict else None
        if meta is not None:
            meta_key, meta_rows = _rows_of(meta, "request.meta", idx)
            if len(meta_rows) != n:
                raise InvalidInput(
                    f"request.meta has {len(meta_rows)} rows for {n} request rows", record=idx, field="request.meta"
                )
        key = (fields, rfields, meta_key)
        g = groups.get(key)
        if g is None:
            g = groups[key] = _Group(fields, rfields, meta_key)
        g.rows.extend(values)
        g.response_rows.extend(rvalues)
        if meta_key is not None:
            g.meta_rows.extend(meta_rows)
        g.records.append(idx)
        g.counts.append(n)
        if len(rec) > 2:  # optional record-level keys
            sid = rec.get("scoring_id")
            if sid is not None:
                check_scoring_id(sid, idx)
                record_ids[idx] = sid
            ts = rec.get("scoring_timestamp")
            if ts is not None:
                stamps[idx] = parse_timestamp(ts, idx)
            times[idx] = rec.get("response_time")
            if "deployment_id" in rec:
                deployments[idx] = rec["deployment_id"]
            if "asset_revision" in rec:
                revisions[idx] = rec["asset_revision"]

    client_given = np.array([s is not None for s in record_ids], dtype=bool)
    missing = np.flatnonzero(~client_given)
    for i, generated in zip(missing.tolist(), new_ids(len(missing)), strict=True):
        record_ids[i] = generated
    response_time = np.round(to_numbers(times, "response_time", lambda pos: (pos, None)))
    check_optional_strings(deployments, DEPLOYMENT_ID)
    check_optional_strings(revisions, ASSET_REVISION)
    now64 = np.datetime64(now.astimezone(UTC).replace(tzinfo=None), "us")
    ts = np.full(n_rec, now64, dtype="datetime64[us]")
    for i, s in enumerate(stamps):
        if s is not None:
            ts[i] = np.datetime64(s.replace(tzinfo=None), "us")

    layout = sub.layout
    parts = []
    for g in groups.values():
        cs = ColumnSet(
            n=len(g.rows),
            request=g.columns(g.rows, g.fields, "request"),
            response=g.columns(g.response_rows, g.response_fields, "response"),
            meta=g.columns(g.meta_rows, g.meta_fields, "request.meta") if g.meta_fields is not None else None,
            locate=g.locate,
        )
        part, layout = build_columns(cs, layout, sub, drop_unknown=drop_unknown_fields)
        parts.append(part)
    glist = list(groups.values())
    order = np.concatenate([np.repeat(np.asarray(g.records), g.counts) for g in glist])
    row_number = np.concatenate([_row_numbers(g.counts) for g in glist])
    batch = finish(
        parts,
        order=order,
        row_number=row_number,
        record_ids=record_ids,
        client_given=client_given,
        timestamps=ts,
        response_time=response_time,
        deployments=np.asarray(deployments, dtype=object),
        revisions=np.asarray(revisions, dtype=object),
    )
    return ParsedPayload(batch, layout, n_rec)


def _row_numbers(counts: list[int]) -> np.ndarray:
    c = np.asarray(counts)
    if np.all(c == 1):
        return np.ones(len(c), dtype=np.int64)
    starts = np.repeat(np.cumsum(c) - c, c)
    return np.arange(int(c.sum())) - starts + 1


Parser = Callable[..., ParsedPayload]
