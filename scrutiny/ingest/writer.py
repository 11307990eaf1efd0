"""Writing a ``RecordBatch`` to a subscription's payload or feedback table, exactly once.

One transaction per batch: create or widen the table if the batch needs it, drop rows whose
``scoring_id`` is already stored (a client retry, a spool replay), bulk-insert the rest, and
let listeners (monitor aggregates) update from the same arrays. Either all of it commits or
nothing does.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import sqlalchemy as sa

from scrutiny.core.schema import Kind
from scrutiny.core.subscription import Layout, Subscription
from scrutiny.errors import InvalidInput
from scrutiny.ingest.batch import RecordBatch, csv_for, rows_for
from scrutiny.store import Store, bulk, records

log = logging.getLogger("scrutiny.ingest")

PAYLOAD = "payload"
FEEDBACK = "feedback"

Listener = Callable[[sa.Connection, Subscription, str, RecordBatch], None]
_listeners: list[Listener] = []
_layout_locks: dict[str, threading.Lock] = {}
_locks_guard = threading.Lock()


def on_write(listener: Listener) -> Listener:
    """Register ``listener(conn, subscription, table_kind, batch)``, called inside each write
    transaction with the rows actually inserted (duplicates removed)."""
    if listener not in _listeners:
        _listeners.append(listener)
    return listener


def remove_listener(listener: Listener) -> None:
    if listener in _listeners:
        _listeners.remove(listener)


@dataclass
class WriteResult:
    stored: int  # rows inserted
    duplicates: int  # rows skipped because their scoring_id was already stored
    records: int = 0


def _lock(sub_id: str) -> threading.Lock:
    with _locks_guard:
        return _layout_locks.setdefault(sub_id, threading.Lock())


def table_columns(layout: Layout, kind: str) -> list[tuple[str, Kind | str]]:
    return layout.payload_columns() if kind == PAYLOAD else layout.feedback_columns()


def table_name(layout: Layout, kind: str) -> str:
    return layout.payload_table if kind == PAYLOAD else layout.feedback_table


def ensure_tables(conn: sa.Connection, layout: Layout) -> None:
    """Create both record tables of a complete layout (idempotent)."""
    for kind in (PAYLOAD, FEEDBACK):
        records.create(conn, table_name(layout, kind), records.spec(table_columns(layout, kind)))


def _widen(conn: sa.Connection, store: Store, sub: Subscription, new: Layout) -> Layout:
    """Persist layout changes a batch introduced: create the tables, add new columns."""
    old = sub.layout
    if not records.exists(conn, old.payload_table):
        ensure_tables(conn, new)
    else:
        added = [c for c in new.extra if c.name not in old.extra]
        if added:
            for kind in (PAYLOAD,):
                records.add_columns(conn, table_name(new, kind), [(c.name, c.kind) for c in added])
    store.catalog.update_subscription(conn, sub.id, layout=new)
    return new


def _unique_rows(batch: RecordBatch) -> RecordBatch:
    """Duplicates inside one batch (the same record sent twice): keep the first occurrence."""
    n = len(batch)
    _, first = np.unique(batch.ids, return_index=True)
    if len(first) == n:
        return batch
    keep = np.zeros(n, dtype=bool)
    keep[first] = True
    return batch.take(keep)


def _insert(
    conn: sa.Connection, store: Store, sub: Subscription, layout: Layout, batch: RecordBatch, kind: str
) -> WriteResult:
    """Inside a transaction: drop rows already stored, bulk-insert the rest, run the listeners."""
    n = len(batch)
    name = table_name(layout, kind)
    cols = table_columns(layout, kind)
    fresh = batch
    if batch.client_ids is None or batch.client_ids.any():
        candidates = batch.ids if batch.client_ids is None else batch.ids[batch.client_ids]
        existing = bulk.existing_ids(conn, name, candidates.tolist())
        if existing:
            fresh = batch.take(~np.isin(batch.ids, list(existing)))
    if len(fresh):
        _bulk_insert(conn, store.dialect, name, cols, fresh)
    for listener in list(_listeners):
        listener(conn, sub, kind, fresh)
    return WriteResult(len(fresh), n - len(fresh))


def _bulk_insert(
    conn: sa.Connection, dialect: str, name: str, cols: list[tuple[str, Kind | str]], batch: RecordBatch
) -> None:
    names = [c for c, _ in cols]
    if dialect == "postgresql":
        try:
            data = csv_for(batch, cols)
        except pa.ArrowException:
            log.debug("batch not expressible as Arrow CSV; copying row by row", exc_info=True)
        else:
            bulk.copy_csv(conn, name, names, data)
            return
    bulk.insert_rows(conn, name, names, rows_for(batch, cols, dialect))


def write_batch(
    store: Store, sub: Subscription, batch: RecordBatch, layout: Layout | None = None, kind: str = PAYLOAD
) -> WriteResult:
    """Store ``batch`` in the subscription's ``kind`` table, in its own transaction. Rows already
    stored are skipped; a batch that introduces columns widens the table first."""
    return write_batches(store, [(sub, batch, layout)], kind)[0]


def write_batches(
    store: Store, items: Sequence[tuple[Subscription, RecordBatch, Layout | None]], kind: str = PAYLOAD
) -> list[WriteResult]:
    """Store several subscriptions' batches in one transaction: all of them or none (the
    OpenScale path, whose one request may carry records of several subscriptions)."""
    jobs = [
        (i, sub, _unique_rows(batch), layout or sub.layout, len(batch))
        for i, (sub, batch, layout) in enumerate(items)
        if len(batch)
    ]
    widening = sorted({sub.id for _, sub, _, layout, _ in jobs if layout != sub.layout})
    locks = [_lock(sub_id) for sub_id in widening]  # always taken in the same order: no deadlock
    for lock in locks:
        lock.acquire()
    try:
        for attempt in (1, 2):
            try:
                results = [WriteResult(0, 0) for _ in items]
                if not jobs:
                    return results
                with store.write() as conn:
                    for i, sub, batch, layout, n in jobs:
                        current, layout = _current_layout(conn, store, sub, layout)
                        results[i] = _insert(conn, store, current, layout, batch, kind)
                        results[i].duplicates += n - len(batch)
                return results
            except Exception as exc:
                # a concurrent writer stored some of these ids first: check again, once
                if attempt == 2 or not bulk.is_duplicate_key(exc):
                    raise
                log.info("concurrent write of the same scoring ids; retrying")
        raise AssertionError("unreachable")  # pragma: no cover
    finally:
        for lock in reversed(locks):
            lock.release()


def _current_layout(
    conn: sa.Connection, store: Store, sub: Subscription, layout: Layout
) -> tuple[Subscription, Layout]:
    """Inside the write transaction: the subscription as stored and the layout to write with,
    widening the table first if the batch brought new columns."""
    if layout == sub.layout:
        if not layout.complete:
            raise InvalidInput("the subscription has no schema yet; log a payload record first")
        return sub, layout
    current = store.catalog.get_subscription(sub.id, conn)
    merged = _merge_layout(current.layout, layout)
    if merged != current.layout or not records.exists(conn, merged.payload_table):
        return current, _widen(conn, store, current, merged)
    return current, merged


@dataclass
class _Job:
    sub: Subscription
    batch: RecordBatch
    kind: str
    future: Future[WriteResult]


class GroupWriter:
    """Group commit: one thread writes the batches that arrive together in one transaction.

    With several requests in flight, each fsync (and on SQLite each lock hand-over) is shared by
    all of them, as databases do with their own log. Every caller still gets its answer only
    after the commit that holds its rows. Batches that change the table layout, and any batch of
    a group whose transaction failed, are written alone through ``write_batch``.
    """

    def __init__(self, store: Store, *, max_rows: int = 50_000) -> None:
        self.store = store
        self.max_rows = max_rows
        self._queue: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="scrutiny-group-writer", daemon=True)
        self._closed = False
        self._thread.start()

    def write(
        self, sub: Subscription, batch: RecordBatch, layout: Layout | None = None, kind: str = PAYLOAD
    ) -> WriteResult:
        layout = layout or sub.layout
        if self._closed or layout != sub.layout or not layout.complete or len(batch) == 0:
            return write_batch(self.store, sub, batch, layout, kind)
        job = _Job(sub, batch, kind, Future())
        self._queue.put(job)
        return job.future.result()

    def _run(self) -> None:
        while True:
            job = self._queue.get()
            if job is None:
                return
            jobs = [job]
            rows = len(job.batch)
            while rows < self.max_rows:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    self._queue.put(None)
                    break
                jobs.append(nxt)
                rows += len(nxt.batch)
            self._write(jobs)

    def _write(self, jobs: list[_Job]) -> None:
        if len(jobs) > 1:
            try:
                results = []
                with self.store.write() as conn:
                    for job in jobs:
                        unique = _unique_rows(job.batch)
                        r = _insert(conn, self.store, job.sub, job.sub.layout, unique, job.kind)
                        r.duplicates += len(job.batch) - len(unique)
                        results.append(r)
                for job, r in zip(jobs, results, strict=True):
                    job.future.set_result(r)
                return
            except Exception:
                log.debug("group write of %d batches failed; writing them one by one", len(jobs), exc_info=True)
        for job in jobs:
            try:
                job.future.set_result(write_batch(self.store, job.sub, job.batch, job.sub.layout, job.kind))
            except BaseException as exc:
                job.future.set_exception(exc)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._queue.put(None)
            self._thread.join(timeout=30)


def _merge_layout(current: Layout, proposed: Layout) -> Layout:
    """Combine what is stored with what a batch introduced (another batch may have widened it meanwhile)."""
    from dataclasses import replace

    from scrutiny.core.schema import Schema

    features = current.features if current.features else proposed.features
    extra_cols = list(current.extra.columns)
    for col in proposed.extra:
        stored = current.extra.get(col.name)
        if stored is None:
            extra_cols.append(col)
        elif stored.kind != col.kind:
            raise InvalidInput(
                f"type {col.kind.value} conflicts with the stored type {stored.kind.value}", field=col.name
            )
    return replace(
        current,
        features=features,
        extra=Schema(tuple(extra_cols)),
        prediction_kind=current.prediction_kind or proposed.prediction_kind,
    )
