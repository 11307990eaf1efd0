"""The payload table as the dashboard reads it: a time window, column filters, keyset pages.

Cost is bounded whatever the table's size:

* pages are keyset pages in ``(scoring_timestamp, scoring_id)`` order, newest first, read from
  the timestamp index (``LIMIT page + 1``, never ``OFFSET``);
* the window's row count is a count on the timestamp index;
* with filters, one page view examines at most ``SCAN_ROWS`` rows of the window (from the
  cursor down): a rare filter value does not walk the whole table, the page says how far it
  looked and offers the next stretch. An exact count of the matches over the whole window is
  computed only when asked for (``count_matches``).
"""

from __future__ import annotations

import base64
import math
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import sqlalchemy as sa

from scrutiny.core.schema import Kind
from scrutiny.core.subscription import PREDICTION_PROBABILITY, SCORING_ID, SCORING_TIMESTAMP, Subscription
from scrutiny.errors import InvalidInput
from scrutiny.ingest.writer import PAYLOAD, table_columns, table_name
from scrutiny.store import records

PAGE_ROWS = 50
SCAN_ROWS = 20_000
MAX_FILTERS = 10

OPERATORS: dict[str, str] = {
    "eq": "=",
    "ne": "≠",
    "lt": "<",
    "le": "≤",
    "gt": ">",
    "ge": "≥",
    "contains": "contains",
    "null": "is empty",
    "notnull": "is not empty",
}
RANGES: dict[str, timedelta | None] = {
    "1h": timedelta(hours=1),
    "24h": timedelta(days=1),
    "7d": timedelta(days=7),
    "30d": timedelta(days=30),
    "all": None,
}


@dataclass(frozen=True)
class Condition:
    column: str
    op: str
    value: Any  # typed for the column (None for null / notnull)
    text: str  # as the user typed it

    def clause(self, c: sa.ColumnElement[Any]) -> sa.ColumnElement[bool]:
        op, v = self.op, self.value
        if op == "null":
            return c.is_(None)
        if op == "notnull":
            return c.is_not(None)
        if op == "contains":
            escaped = str(v).replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            return c.like(f"%{escaped}%", escape="\\")
        return {
            "eq": c == v,
            "ne": sa.or_(c != v, c.is_(None)),
            "lt": c < v,
            "le": c <= v,
            "gt": c > v,
            "ge": c >= v,
        }[op]

    def describe(self) -> str:
        if self.op in ("null", "notnull"):
            return f"{self.column} {OPERATORS[self.op]}"
        return f"{self.column} {OPERATORS[self.op]} {self.text}"


@dataclass(frozen=True)
class Cursor:
    """A row's position; a page continues strictly after (older than) or before (newer than) it.
    Without a ``scoring_id`` it stands for a whole instant: every row of that timestamp is past."""

    timestamp: datetime
    scoring_id: str | None

    def encode(self) -> str:
        raw = orjson.dumps([self.timestamp.astimezone(UTC).isoformat(), self.scoring_id])
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @classmethod
    def decode(cls, text: str, field: str) -> Cursor:
        try:
            raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
            ts, sid = orjson.loads(raw)
            t = datetime.fromisoformat(ts)
            return cls(t if t.tzinfo else t.replace(tzinfo=UTC), None if sid is None else str(sid))
        except Exception:
            raise InvalidInput("not a page cursor of this table", field=field) from None


@dataclass
class PayloadQuery:
    """What the user asked for: a window, filters, and where the page starts."""

    start: datetime | None = None
    end: datetime | None = None
    conditions: list[Condition] = field(default_factory=list)
    before: Cursor | None = None  # rows older than this (next page)
    after: Cursor | None = None  # rows newer than this (previous page)
    limit: int = PAGE_ROWS


@dataclass
class PayloadPage:
    columns: list[str]
    rows: list[dict[str, Any]]
    window_rows: int | None  # rows in the time window (no filters); None when the table does not exist yet
    newer: Cursor | None  # the previous page starts after this row
    older: Cursor | None  # the next page starts after this row
    scanned_to: Cursor | None = None  # filters: the scan stopped at this row (more rows beyond it)
    scan_rows: int = SCAN_ROWS
    newest: datetime | None = None


def columns_of(sub: Subscription) -> list[tuple[str, Kind | str]]:
    return table_columns(sub.layout, PAYLOAD)


def table_of(sub: Subscription) -> sa.Table:
    return records.table(table_name(sub.layout, PAYLOAD), records.spec(columns_of(sub)))


def filterable(sub: Subscription) -> list[tuple[str, str]]:
    """(column, kind) the filter form offers: scalar columns (not vectors or JSON)."""
    out = []
    for name, kind in columns_of(sub):
        if kind in ("vector", Kind.JSON, "json"):
            continue
        out.append((name, str(kind.value if isinstance(kind, Kind) else kind)))
    return out


def _typed(sub: Subscription, column: str, op: str, text: str) -> Any:
    kinds = dict(columns_of(sub))
    kind = kinds.get(column)
    if kind is None:
        raise InvalidInput("no such payload column", field=column)
    if kind in ("vector", Kind.JSON):
        raise InvalidInput("vectors and JSON columns cannot be filtered", field=column)
    if op in ("null", "notnull"):
        return None
    if op not in OPERATORS:
        raise InvalidInput(f"unknown operator {op!r}; one of {', '.join(OPERATORS)}", field=column)
    if kind == "timestamp":
        try:
            return parse_when(text, column)
        except InvalidInput:
            raise
    if op == "contains":
        if kind is not Kind.STR:
            raise InvalidInput("'contains' applies to text columns", field=column)
        return text
    if kind is Kind.INT or kind is Kind.FLOAT:
        try:
            f = float(text)
        except ValueError:
            raise InvalidInput(f"{text!r} is not a number", field=column) from None
        if not math.isfinite(f):
            raise InvalidInput(f"{text!r} is not a finite number", field=column)
        return int(f) if kind is Kind.INT and f.is_integer() else f
    if kind is Kind.BOOL:
        low = text.strip().lower()
        if low in ("true", "1", "yes"):
            return True
        if low in ("false", "0", "no"):
            return False
        raise InvalidInput(f"{text!r} is not true or false", field=column)
    return text


def parse_conditions(
    sub: Subscription, cols: Sequence[str], ops: Sequence[str], vals: Sequence[str]
) -> list[Condition]:
    """Filters from the form's parallel lists; blank rows are skipped, bad ones name the column."""
    out = []
    for i in range(max(len(cols), len(ops), len(vals))):
        col = cols[i] if i < len(cols) else ""
        op = ops[i] if i < len(ops) else "eq"
        val = vals[i] if i < len(vals) else ""
        if not col:
            continue
        if op not in ("null", "notnull") and val == "":
            continue
        out.append(Condition(col, op, _typed(sub, col, op, val), val))
    if len(out) > MAX_FILTERS:
        raise InvalidInput(f"at most {MAX_FILTERS} filters", field="filters")
    return out


def parse_when(text: str | None, field: str) -> datetime | None:
    """An ISO-8601 time (a ``datetime-local`` input's value); times without a zone are UTC."""
    if not text:
        return None
    try:
        t = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise InvalidInput(f"{text!r} is not a date and time (YYYY-MM-DDTHH:MM)", field=field) from None
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)


def window(
    range_key: str | None, start: str | None, end: str | None, now: datetime
) -> tuple[datetime | None, datetime | None]:
    """The time window: explicit ``from``/``to`` win over a preset range."""
    s, e = parse_when(start, "from"), parse_when(end, "to")
    if s is not None or e is not None:
        if s is not None and e is not None and s >= e:
            raise InvalidInput("'from' must be before 'to'", field="from")
        return s, e
    if range_key and range_key not in RANGES:
        raise InvalidInput(f"range is one of {', '.join(RANGES)}", field="range")
    span = RANGES.get(range_key or "all")
    if span is None:
        return None, None
    # from a whole minute: pages of one view share a window (and its cached count)
    return (now - span).replace(second=0, microsecond=0), None


def _window_conds(t: sa.Table | Any, start: datetime | None, end: datetime | None) -> list[Any]:
    ts = t.c[SCORING_TIMESTAMP]
    conds = []
    if start is not None:
        conds.append(ts >= start)
    if end is not None:
        conds.append(ts < end)
    return conds


def _older_than(t: Any, c: Cursor) -> Any:
    ts, sid = t.c[SCORING_TIMESTAMP], t.c[SCORING_ID]
    if c.scoring_id is None:
        return ts < c.timestamp
    return sa.and_(ts <= c.timestamp, sa.or_(ts < c.timestamp, sid < c.scoring_id))


def _newer_than(t: Any, c: Cursor) -> Any:
    ts, sid = t.c[SCORING_TIMESTAMP], t.c[SCORING_ID]
    if c.scoring_id is None:
        return ts > c.timestamp
    return sa.and_(ts >= c.timestamp, sa.or_(ts > c.timestamp, sid > c.scoring_id))


def _roughly(t: Any, c: Cursor, backwards: bool) -> Any:
    """The cursor's condition on the timestamp alone (the index answers it without the table):
    a few already-shown rows of the cursor's instant may pass, never a row beyond it."""
    ts = t.c[SCORING_TIMESTAMP]
    if c.scoring_id is None:
        return ts > c.timestamp if backwards else ts < c.timestamp
    return ts >= c.timestamp if backwards else ts <= c.timestamp


def _key(row: dict[str, Any]) -> Cursor:
    return Cursor(row[SCORING_TIMESTAMP], row[SCORING_ID])


def count_window(conn: sa.Connection, t: sa.Table, start: datetime | None, end: datetime | None) -> int:
    """Rows in the window, counted on the timestamp index."""
    q = sa.select(sa.func.count()).select_from(t).where(*_window_conds(t, start, end))
    return int(conn.execute(q).scalar_one())


COUNT_SECONDS = 5.0
_counts: dict[tuple[str, str, datetime | None, datetime | None], tuple[float, int]] = {}
_counts_lock = threading.Lock()


def cached_count(conn: sa.Connection, t: sa.Table, start: datetime | None, end: datetime | None) -> int:
    """``count_window``, reused for ``COUNT_SECONDS``: paging through a window counts it once."""
    key = (conn.engine.url.render_as_string(hide_password=True), t.name, start, end)
    now = time.monotonic()
    with _counts_lock:
        hit = _counts.get(key)
    if hit is not None and hit[0] > now:
        return hit[1]
    n = count_window(conn, t, start, end)
    with _counts_lock:
        if len(_counts) > 1000:
            _counts.clear()
        _counts[key] = (now + COUNT_SECONDS, n)
    return n


def display_order(sub: Subscription, names: list[str]) -> list[str]:
    """Columns as people read a transaction: id, time, the outcome, then the inputs, then the rest."""
    layout = sub.layout
    first = [SCORING_ID, SCORING_TIMESTAMP, layout.prediction_column, PREDICTION_PROBABILITY]
    features = [c.name for c in layout.features]
    head = [n for n in first if n in names]
    middle = [n for n in features if n in names and n not in head]
    return head + middle + [n for n in names if n not in head and n not in middle]


def read_page(conn: sa.Connection, sub: Subscription, pq: PayloadQuery) -> PayloadPage:
    """One page of the window, newest first, with the cursors of its neighbours."""
    t = table_of(sub)
    names = display_order(sub, [c.name for c in t.columns])
    if not records.exists(conn, t.name):
        return PayloadPage(names, [], None, None, None)
    ts, sid = t.c[SCORING_TIMESTAMP], t.c[SCORING_ID]
    base = _window_conds(t, pq.start, pq.end)
    filters = [cond.clause(t.c[cond.column]) for cond in pq.conditions]
    backwards = pq.after is not None and pq.before is None
    if backwards:
        assert pq.after is not None
        position = [_newer_than(t, pq.after)]
        order = [ts.asc(), sid.asc()]
    else:
        position = [_older_than(t, pq.before)] if pq.before is not None else []
        order = [ts.desc(), sid.desc()]
    scanned_to: Cursor | None = None
    bound: list[Any] = []
    if filters:
        # the edge of this page's scan: the timestamp SCAN_ROWS rows from the cursor, read from
        # the timestamp index alone; the scan covers every row of that instant, the next starts past it
        cursor = pq.after if backwards else pq.before
        rough = [_roughly(t, cursor, backwards)] if cursor is not None else []
        edge_q = sa.select(ts).where(*base, *rough).order_by(order[0]).offset(SCAN_ROWS - 1).limit(1)
        edge = conn.execute(edge_q).scalar()
        if edge is not None:
            scanned_to = Cursor(edge, None)
            bound = [ts <= edge] if backwards else [ts >= edge]
    q = sa.select(t).where(*base, *position, *bound, *filters).order_by(*order).limit(pq.limit + 1)
    rows = [dict(r._mapping) for r in conn.execute(q)]
    more = len(rows) > pq.limit
    rows = rows[: pq.limit]
    if backwards:
        rows.reverse()
    if backwards and not more and scanned_to is None:
        # back at the newest rows: show a full first page rather than a short one
        return read_page(conn, sub, PayloadQuery(pq.start, pq.end, pq.conditions, None, None, pq.limit))
    newer = older = None
    if backwards:
        assert pq.after is not None
        newer = _key(rows[0]) if more and rows else scanned_to
        older = _key(rows[-1]) if rows else pq.after
    else:
        newer = (_key(rows[0]) if rows else pq.before) if pq.before is not None else None
        older = _key(rows[-1]) if more else scanned_to
    if more:
        scanned_to = None  # the page filled up before the scan's edge
    newest = conn.execute(sa.select(sa.func.max(ts)).select_from(t)).scalar()
    return PayloadPage(
        names,
        rows,
        cached_count(conn, t, pq.start, pq.end),
        newer,
        older,
        scanned_to=scanned_to,
        newest=newest,
    )


def count_matches(conn: sa.Connection, sub: Subscription, pq: PayloadQuery) -> int:
    """Exact count of the filtered rows over the whole window (a scan: only on request)."""
    t = table_of(sub)
    if not records.exists(conn, t.name):
        return 0
    filters = [cond.clause(t.c[cond.column]) for cond in pq.conditions]
    q = sa.select(sa.func.count()).select_from(t).where(*_window_conds(t, pq.start, pq.end), *filters)
    return int(conn.execute(q).scalar_one())


def find_row(conn: sa.Connection, sub: Subscription, scoring_id: str) -> dict[str, Any] | None:
    t = table_of(sub)
    if not records.exists(conn, t.name):
        return None
    r = conn.execute(sa.select(t).where(t.c[SCORING_ID] == scoring_id)).first()
    return dict(r._mapping) if r else None


def export_conditions(sub: Subscription, pq: PayloadQuery) -> Callable[[sa.Table], list[Any]]:
    """The window and filters as conditions on a table (for the streamed export)."""

    def build(t: sa.Table) -> list[Any]:
        return [*_window_conds(t, pq.start, pq.end), *(c.clause(t.c[c.column]) for c in pq.conditions)]

    return build


def jsonable(row: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for k, v in row.items():
        out[k] = v.astimezone(UTC).isoformat().replace("+00:00", "Z") if isinstance(v, datetime) else v
    return out
