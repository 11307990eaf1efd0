"""Stored record rows read back as ``RecordBatch`` chunks, the shape partials are built from.

Used for backfill (rebuilding partials from the table), for the rows at a window's edge, and
for monitors that need rows (drill-down, per-transaction verdicts). Rows go through the DBAPI
cursor and are converted column by column with NumPy: no ORM objects, no per-row type
processing beyond what the driver does.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import orjson
import sqlalchemy as sa

from scrutiny.core.schema import Kind
from scrutiny.core.subscription import SCORING_ID, SCORING_TIMESTAMP, Subscription
from scrutiny.ingest.batch import RecordBatch
from scrutiny.ingest.writer import table_columns, table_name
from scrutiny.store import records

CHUNK = 50_000


@dataclass(frozen=True)
class RowKey:
    """A row's position in (timestamp, scoring_id) order: the edge of a window."""

    timestamp: datetime
    scoring_id: str

    def to_dict(self) -> dict[str, Any]:
        return {"timestamp": iso(self.timestamp), "scoring_id": self.scoring_id}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RowKey:
        return cls(parse_iso(d["timestamp"]), d["scoring_id"])


def iso(ts: datetime | None) -> str | None:
    return None if ts is None else ts.astimezone(UTC).isoformat().replace("+00:00", "Z")


def parse_iso(s: str) -> datetime:
    ts = datetime.fromisoformat(s.replace("Z", "+00:00"))
    return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)


def to_datetime(ts: np.datetime64) -> datetime:
    return ts.astype("datetime64[us]").item().replace(tzinfo=UTC)


def to_datetime64(ts: datetime) -> np.datetime64:
    return np.datetime64(ts.astimezone(UTC).replace(tzinfo=None), "us")


def ts_param(dialect: str, ts: datetime) -> Any:
    """A timestamp bound as each backend compares it with the stored column."""
    ts = ts.astimezone(UTC)
    if dialect == "postgresql":
        return ts
    return ts.replace(tzinfo=None).strftime("%Y-%m-%d %H:%M:%S.%f")  # SQLAlchemy's SQLite text format


@dataclass
class Filter:
    """Which rows to read: ``start <= ts < end``, and (optionally) from ``first`` on in
    (timestamp, scoring_id) order; ``newest_first`` with ``limit`` reads the most recent rows."""

    start: datetime | None = None
    end: datetime | None = None
    first: RowKey | None = None
    last: RowKey | None = None  # inclusive upper edge in (timestamp, scoring_id) order
    where: list[tuple[str, Any]] | None = None  # extra equality conditions: (column, value)

    def sql(self, dialect: str, quote: Any) -> tuple[str, dict[str, Any]]:
        ts, sid = quote(SCORING_TIMESTAMP), quote(SCORING_ID)
        conds: list[str] = []
        params: dict[str, Any] = {}
        if self.start is not None:
            conds.append(f"{ts} >= :start")
            params["start"] = ts_param(dialect, self.start)
        if self.end is not None:
            conds.append(f"{ts} < :end")
            params["end"] = ts_param(dialect, self.end)
        if self.first is not None:
            conds.append(f"({ts} > :first_ts OR ({ts} = :first_ts AND {sid} >= :first_id))")
            params["first_ts"] = ts_param(dialect, self.first.timestamp)
            params["first_id"] = self.first.scoring_id
        if self.last is not None:
            conds.append(f"({ts} < :last_ts OR ({ts} = :last_ts AND {sid} <= :last_id))")
            params["last_ts"] = ts_param(dialect, self.last.timestamp)
            params["last_id"] = self.last.scoring_id
        for i, (col, value) in enumerate(self.where or []):
            if value is None:
                conds.append(f"{quote(col)} IS NULL")
            else:
                conds.append(f"{quote(col)} = :w{i}")
                params[f"w{i}"] = value
        return (" WHERE " + " AND ".join(conds)) if conds else "", params


def count_rows(conn: sa.Connection, sub: Subscription, kind: str, flt: Filter) -> int:
    name = table_name(sub.layout, kind)
    if not records.exists(conn, name):
        return 0
    quote = conn.dialect.identifier_preparer.quote
    where, params = flt.sql(conn.dialect.name, quote)
    return int(conn.execute(sa.text(f"SELECT COUNT(*) FROM {quote(name)}{where}"), params).scalar_one())


def read_batches(
    conn: sa.Connection,
    sub: Subscription,
    kind: str,
    *,
    columns: list[str] | None = None,
    flt: Filter | None = None,
    newest_first: bool = False,
    limit: int | None = None,
    offset: int = 0,
    chunk: int = CHUNK,
) -> Iterator[RecordBatch]:
    """Rows of the subscription's ``kind`` table as ``RecordBatch`` chunks of at most ``chunk`` rows.

    ``columns`` limits the columns read (``scoring_id`` and ``scoring_timestamp`` always come);
    the probability vector is ``batch.probability``; unknown names are skipped.
    """
    name = table_name(sub.layout, kind)
    if not records.exists(conn, name):
        return
    spec, select = _select_list(conn, sub, kind, columns)
    dialect = conn.dialect.name
    quote = conn.dialect.identifier_preparer.quote
    ts = quote(SCORING_TIMESTAMP)
    where, params = (flt or Filter()).sql(dialect, quote)
    order = "DESC" if newest_first else "ASC"
    sql = f"SELECT {select} FROM {quote(name)}{where} ORDER BY {ts} {order}, {quote(SCORING_ID)} {order}"
    if limit is not None:
        sql += f" LIMIT {int(limit)}"
        if offset:
            sql += f" OFFSET {int(offset)}"
    kinds = {c: k for c, k in spec}
    result = conn.execute(sa.text(sql), params) if params else conn.exec_driver_sql(sql)
    try:
        while True:
            rows = result.fetchmany(chunk)
            if not rows:
                break
            yield _batch(rows, spec, kinds, dialect)
    finally:
        result.close()


def _select_list(
    conn: sa.Connection, sub: Subscription, kind: str, columns: list[str] | None
) -> tuple[list[tuple[str, Kind | str]], str]:
    """The value columns to read (``columns`` if given, known ones only) and the SELECT list:
    ``scoring_id``, the timestamp as epoch microseconds, then those columns."""
    spec = [(c, k) for c, k in table_columns(sub.layout, kind) if c not in (SCORING_ID, SCORING_TIMESTAMP)]
    if columns is not None:
        wanted = set(columns)
        spec = [(c, k) for c, k in spec if c in wanted]
    quote = conn.dialect.identifier_preparer.quote
    ts = quote(SCORING_TIMESTAMP)
    ts_expr = f"CAST(EXTRACT(EPOCH FROM {ts}) * 1000000 AS BIGINT)" if conn.dialect.name == "postgresql" else ts
    return spec, ", ".join([quote(SCORING_ID), ts_expr, *(quote(c) for c, _ in spec)])


def read_all(conn: sa.Connection, sub: Subscription, kind: str, **kw: Any) -> RecordBatch | None:
    parts = list(read_batches(conn, sub, kind, **kw))
    if not parts:
        return None
    return RecordBatch.concat(parts) if len(parts) > 1 else parts[0]


def _batch(rows: Any, spec: list[tuple[str, Kind | str]], kinds: dict[str, Kind | str], dialect: str) -> RecordBatch:
    cols = list(zip(*rows, strict=True))
    ids = np.array(cols[0], dtype=object)
    if dialect == "postgresql":
        timestamps = np.array(cols[1], dtype=np.int64).astype("datetime64[us]")
    else:
        timestamps = np.array(cols[1], dtype="datetime64[us]")
    columns: dict[str, np.ndarray] = {}
    out_kinds: dict[str, Kind] = {}
    probability = None
    for (name, kind), values in zip(spec, cols[2:], strict=True):
        if kind == "vector":
            probability = _vectors(values, dialect)
            continue
        k = Kind(kind)
        columns[name] = _column(values, k, dialect)
        out_kinds[name] = k
    return RecordBatch(ids=ids, timestamps=timestamps, columns=columns, kinds=out_kinds, probability=probability)


def _column(values: tuple[Any, ...], kind: Kind, dialect: str) -> np.ndarray:
    if kind in (Kind.INT, Kind.FLOAT):
        return np.array(values, dtype=np.float64)
    arr = np.empty(len(values), dtype=object)
    arr[:] = values
    if kind is Kind.BOOL and dialect != "postgresql":
        mask = arr != None  # noqa: E711 - elementwise
        arr[mask] = arr[mask].astype(bool)
    elif kind is Kind.JSON and dialect != "postgresql":
        arr[:] = [None if v is None else orjson.loads(v) for v in values]
    return arr


def _vectors(values: tuple[Any, ...], dialect: str) -> np.ndarray | None:
    if not values:
        return None
    if dialect == "postgresql":
        rows = list(values)
    else:
        rows = orjson.loads("[" + ",".join("null" if v is None else v for v in values) + "]")
    if all(r is None for r in rows):
        return None
    if any(r is None for r in rows):
        width = max((len(r) for r in rows if r is not None), default=0)
        rows = [r if r is not None else [np.nan] * width for r in rows]
    try:
        return np.array(rows, dtype=np.float64)
    except ValueError:  # ragged vectors: pad with NaN
        width = max(len(r) for r in rows)
        return np.array([list(r) + [np.nan] * (width - len(r)) for r in rows], dtype=np.float64)


def read_by_ids(
    conn: sa.Connection, sub: Subscription, kind: str, ids: list[str], *, columns: list[str] | None = None
) -> RecordBatch | None:
    """The stored rows with these ids (any order; missing ids are simply absent)."""
    name = table_name(sub.layout, kind)
    if not ids or not records.exists(conn, name):
        return None
    spec, select = _select_list(conn, sub, kind, columns)
    dialect = conn.dialect.name
    quote = conn.dialect.identifier_preparer.quote
    kinds = {c: k for c, k in spec}
    parts = []
    step = 20_000
    for i in range(0, len(ids), step):
        chunk = ids[i : i + step]
        if dialect == "postgresql":
            rows = conn.execute(
                sa.text(f"SELECT {select} FROM {quote(name)} WHERE {quote(SCORING_ID)} = ANY(:ids)"), {"ids": chunk}
            ).all()
        else:
            marks = ", ".join("?" * len(chunk))
            rows = conn.exec_driver_sql(
                f"SELECT {select} FROM {quote(name)} WHERE {quote(SCORING_ID)} IN ({marks})", tuple(chunk)
            ).all()
        if rows:
            parts.append(_batch(rows, spec, kinds, dialect))
    if not parts:
        return None
    return RecordBatch.concat(parts) if len(parts) > 1 else parts[0]
