"""Resolving a run's window against the stored buckets: which partials to merge whole, and which
rows to read at the edges.

Rows are ordered by (timestamp, scoring_id). The window is the ``N`` most recent rows before
``end``, where ``N`` is the number of rows at or after ``start`` (every row before ``end`` when
there is no start), raised to ``min_rows`` and capped by ``max_rows``. A bucket whose rows all
fall in the window contributes its stored partials; the bucket where the window starts (or the
one cut by ``end``) is rebuilt from the rows inside the window. So a run reads at most two
buckets' rows, plus the partials.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from scrutiny.core.subscription import Subscription
from scrutiny.ingest.batch import RecordBatch
from scrutiny.monitors.base import Monitor, Window
from scrutiny.monitors.partials import BUCKET_DELTA, BucketInfo, bucket_infos, mon_columns
from scrutiny.monitors.run.reader import Filter, RowKey, count_rows, read_all, to_datetime


@dataclass
class Piece:
    """A contiguous part of the window: a whole stored bucket, or rows read at an edge."""

    rows: int
    oldest: datetime
    newest: datetime
    info: BucketInfo | None = None  # whole bucket: merge its stored partials
    batch: RecordBatch | None = None  # edge: build from these rows


@dataclass
class Resolved:
    window: Window
    rows: int
    pieces: list[Piece] = field(default_factory=list)  # newest first
    first: RowKey | None = None  # the oldest row of the window (inclusive edge for reading rows)

    @property
    def oldest(self) -> datetime | None:
        return self.pieces[-1].oldest if self.pieces else None

    @property
    def newest(self) -> datetime | None:
        return self.pieces[0].newest if self.pieces else None

    def row_filter(self) -> Filter:
        """The window's rows, exactly, for reading them back."""
        return Filter(end=self.window.end, first=self.first)

    def to_dict(self) -> dict[str, Any]:
        from scrutiny.monitors.run.reader import iso

        return {
            "start": iso(self.window.start),
            "end": iso(self.window.end),
            "min_rows": self.window.min_rows,
            "max_rows": self.window.max_rows,
            "oldest": iso(self.oldest),
            "newest": iso(self.newest),
            "first": self.first.to_dict() if self.first else None,
        }


def resolve(conn: sa.Connection, sub: Subscription, mon: Monitor, plan_id: str, plan: Any, window: Window) -> Resolved:
    infos = bucket_infos(conn, sub.id, mon.name, plan_id, until=window.end)
    end, start = window.end, window.start
    columns = mon_columns(mon, plan)
    available: dict[datetime, tuple[int, bool]] = {}

    def before_end(info: BucketInfo) -> tuple[int, bool]:
        """(rows of the bucket before ``end``, whether that is the whole bucket)."""
        hit = available.get(info.bucket)
        if hit is None:
            if end is None or info.max_ts < end:
                hit = (info.rows, True)
            elif info.min_ts >= end:
                hit = (0, False)
            else:
                hit = (count_rows(conn, sub, mon.table, _bucket_filter(info, end)), False)
            available[info.bucket] = hit
        return hit

    total = sum(before_end(i)[0] for i in infos)
    if start is None:
        k = total
    else:
        k = 0
        for info in infos:
            n, whole = before_end(info)
            if n == 0 or info.max_ts < start:
                continue
            if whole and info.min_ts >= start:
                k += n
            else:
                flt = _bucket_filter(info, end)
                flt.start = max(start, info.bucket)
                k += count_rows(conn, sub, mon.table, flt)
    n_rows = _rows_to_take(window, k, total)

    out = Resolved(window=window, rows=n_rows)
    taken = 0
    for info in infos:
        if taken >= n_rows:
            break
        n, whole = before_end(info)
        if n == 0:
            continue
        if whole and taken + n <= n_rows:
            out.pieces.append(Piece(n, info.min_ts, info.max_ts, info=info))
            out.first = RowKey(info.bucket, "")
            taken += n
            continue
        need = min(n, n_rows - taken)
        batch = read_all(
            conn, sub, mon.table, columns=columns, flt=_bucket_filter(info, end), newest_first=True, limit=need
        )
        if batch is None or len(batch) == 0:  # pragma: no cover - counted rows vanished (not in one snapshot)
            continue
        oldest = to_datetime(batch.timestamps[-1])
        out.pieces.append(Piece(len(batch), oldest, to_datetime(batch.timestamps[0]), batch=batch))
        out.first = RowKey(oldest, str(batch.ids[-1]))
        taken += len(batch)
    out.rows = taken
    return out


def _rows_to_take(window: Window, in_window: int, total: int) -> int:
    """Rows in the window, raised to ``min_rows`` (older rows fill in) and capped by ``max_rows``
    (the most recent) and by the rows there are."""
    n_rows = in_window
    if window.min_rows is not None:
        n_rows = max(n_rows, window.min_rows)
    if window.max_rows is not None:
        n_rows = min(n_rows, window.max_rows)
    return min(n_rows, total)


def _bucket_filter(info: BucketInfo, end: datetime | None) -> Filter:
    stop = info.bucket + BUCKET_DELTA
    return Filter(start=info.bucket, end=min(stop, end) if end is not None else stop)


def resolve_rows(conn: sa.Connection, sub: Subscription, mon: Monitor, window: Window) -> Resolved:
    """The same window for a monitor that keeps no partials: counted and delimited in SQL."""
    end, start = window.end, window.start
    total = count_rows(conn, sub, mon.table, Filter(end=end))
    k = total if start is None else count_rows(conn, sub, mon.table, Filter(start=start, end=end))
    n_rows = _rows_to_take(window, k, total)
    out = Resolved(window=window, rows=n_rows)
    if n_rows == 0:
        return out
    newest = read_all(conn, sub, mon.table, columns=[], flt=Filter(end=end), newest_first=True, limit=1)
    oldest = read_all(
        conn, sub, mon.table, columns=[], flt=Filter(end=end), newest_first=True, limit=1, offset=n_rows - 1
    )
    assert newest is not None and oldest is not None
    first = RowKey(to_datetime(oldest.timestamps[0]), str(oldest.ids[0]))
    out.first = first
    out.pieces.append(Piece(n_rows, first.timestamp, to_datetime(newest.timestamps[0])))
    return out
