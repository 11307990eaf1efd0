"""Running a monitor once: resolve its window, merge partials, evaluate, apply thresholds, store
the measurement and its alerts in one transaction, then compact the partials it read."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from scrutiny.core.subscription import Subscription
from scrutiny.errors import Conflict, ScrutinyError
from scrutiny.ingest.batch import RecordBatch
from scrutiny.monitors import configs, partials
from scrutiny.monitors.base import Monitor, Result, Status, Window
from scrutiny.monitors.run import alerts as alerts_mod
from scrutiny.monitors.run import measurements as ms
from scrutiny.monitors.run.reader import read_batches
from scrutiny.monitors.run.window import Resolved, resolve, resolve_rows
from scrutiny.monitors.tables import monitor_configs
from scrutiny.store.types import utcnow

if TYPE_CHECKING:
    from scrutiny.core.scoring_format import ScoringRequest
    from scrutiny.service import Service

log = logging.getLogger("scrutiny.monitors")


@contextmanager
def snapshot(engine: sa.Engine) -> Iterator[sa.Connection]:
    """A read transaction that sees one consistent state of the store."""
    conn = engine.connect()
    if engine.dialect.name == "postgresql":
        conn = conn.execution_options(isolation_level="REPEATABLE READ")
    try:
        with conn.begin():
            yield conn
    finally:
        conn.close()


@dataclass
class RunContext:
    """The ``Run`` a monitor's ``evaluate`` receives (see ``scrutiny.monitors.base``)."""

    service: Service
    conn: sa.Connection
    sub: Subscription
    monitor: Monitor
    config: Any
    plan: Any
    plan_id: str | None
    resolved: Resolved | None
    now: datetime
    previous: dict[str, Any] | None
    merged_buckets: list[tuple[partials.BucketInfo, bytes]] | None = None

    @property
    def window(self) -> Window:
        return self.resolved.window if self.resolved else Window()

    @property
    def records(self) -> int:
        return self.resolved.rows if self.resolved else 0

    @property
    def window_start(self) -> datetime | None:
        return self.resolved.oldest if self.resolved else None

    @property
    def window_end(self) -> datetime | None:
        return self.resolved.newest if self.resolved else None

    def partial(self) -> Any:
        """The window's partial aggregate: stored buckets merged, edges rebuilt from rows."""
        mon, plan = self.monitor, self.plan
        total = mon.empty(plan)
        if self.resolved is None:
            return total
        merged: list[tuple[partials.BucketInfo, bytes]] = []
        whole = [p.info for p in self.resolved.pieces if p.info is not None]
        for piece in self.resolved.pieces:
            if piece.batch is not None:
                total = total.merge(mon.build(plan, piece.batch))
        # every stored bucket's states in a few queries, merged bucket by bucket
        bucket_of = {pid: info for info in whole for pid in info.ids}
        per_bucket: dict[Any, Any] = {}
        for pid, state in partials.load_states(self.conn, list(bucket_of)):
            info = bucket_of[pid]
            p = mon.load_partial(state)
            prev = per_bucket.get(info.bucket)
            per_bucket[info.bucket] = p if prev is None else prev.merge(p)
        for info in whole:
            bucket_partial = per_bucket.pop(info.bucket, None)
            if bucket_partial is None:
                continue
            if len(info.ids) > 1:  # serialise now: a later merge may update the object in place
                merged.append((info, bucket_partial.to_bytes()))
            total = total.merge(bucket_partial)
        self.merged_buckets = merged
        return total

    def batches(
        self,
        columns: list[str] | None = None,
        chunk: int = 50_000,
        *,
        newest_first: bool = False,
        limit: int | None = None,
        table: str | None = None,
    ) -> Iterator[RecordBatch]:
        """The window's rows, oldest first, in chunks (constant memory); ``newest_first`` with
        ``limit``: the most recent ones. ``table`` other than the monitor's: that table's rows
        up to the window's end (fairness reads feedback labels beside its payload window)."""
        if table is not None and table != self.monitor.table:
            from scrutiny.monitors.run.reader import Filter

            flt = Filter(end=self.window.end)
            return read_batches(
                self.conn,
                self.sub,
                table,
                columns=columns,
                flt=flt,
                chunk=chunk,
                newest_first=newest_first,
                limit=limit,
            )
        if self.resolved is None or self.resolved.rows == 0:
            return iter(())
        flt = self.resolved.row_filter()
        if newest_first and limit is not None and limit <= self.resolved.rows:
            # The window is the ``rows`` most recent rows before its end, so its ``limit`` newest
            # are the newest before the end: without the window's lower edge in the query the
            # database walks the timestamp index backwards and stops (with it, SQLite sorted
            # every row of a 1M-row table: 10 s instead of 0.25 s for drift's 10,000 rows).
            from scrutiny.monitors.run.reader import Filter

            flt = Filter(end=self.resolved.window.end)
        return read_batches(
            self.conn,
            self.sub,
            self.monitor.table,
            columns=columns,
            flt=flt,
            chunk=chunk,
            newest_first=newest_first,
            limit=limit,
        )

    def training_frame(self, columns: list[str] | None = None) -> Any:
        """The subscription's training rows (a DataFrame), or None when it has none; ``columns``
        reads only those (the others are not fetched at all)."""
        import pandas as pd

        from scrutiny.errors import NotFound
        from scrutiny.service.subscriptions import training_table
        from scrutiny.store import records

        if columns is None:
            try:
                return self.service.subscriptions.training_frame(self.sub.id)
            except NotFound:
                return None
        name = training_table(self.sub.id)
        if not records.exists(self.conn, name):
            return None
        quote = self.conn.dialect.identifier_preparer.quote
        present = {c["name"] for c in sa.inspect(self.conn).get_columns(name)}
        cols = [c for c in dict.fromkeys(columns) if c in present]
        if not cols:
            return pd.DataFrame(index=range(0))
        result = self.conn.exec_driver_sql(f"SELECT {', '.join(quote(c) for c in cols)} FROM {quote(name)}")
        try:
            rows = result.cursor.fetchall() if result.cursor is not None else []  # plain tuples: no Row objects
        finally:
            result.close()
        if not rows:
            return pd.DataFrame({c: [] for c in cols})
        return pd.DataFrame(dict(zip(cols, (list(v) for v in zip(*rows, strict=True)), strict=True)))

    def score(self, request: ScoringRequest) -> Any:
        """Score through the engine as internal traffic (never logged as payload)."""
        return self.service.subscriptions.score_request(self.sub, request, internal=True)


def run(
    service: Service,
    sub: Subscription,
    mon: Monitor,
    *,
    trigger: str = "manual",
    start: datetime | None = None,
    end: datetime | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Run ``mon`` on ``sub`` now and store the measurement (an error is stored as such)."""
    store = service.store
    now = now or utcnow()
    with store.engine.connect() as conn:
        row = configs.get_row(conn, sub.id, mon.name)
    if row is None and mon.enabled_by_default:
        row = configs.put(store, sub, mon, {})
    if row is None or not row.enabled:
        raise Conflict(f"monitor {mon.name!r} is not enabled on subscription {sub.id!r}; enable it first")
    t0 = time.perf_counter()
    config = mon.parse_config(row.config)
    measurement_id = str(uuid.uuid4())
    ctx: RunContext | None = None
    limits: list[dict[str, Any]] = []
    try:
        row = configs.ensure_fresh_plan(store, sub, mon, row)
        with snapshot(store.engine) as conn:
            previous = ms.latest(conn, sub.id, mon.name)
            window = mon.window(config, now, previous)
            if start is not None or end is not None:
                window = replace(window, start=start if start is not None else window.start, end=end or window.end)
            plan = partials.loaded_plan(conn, sub.id, mon, row.plan_id, row.plan) if row.plan_id else None
            if row.plan_id:
                resolved = resolve(conn, sub, mon, row.plan_id, plan, window)
            else:
                resolved = resolve_rows(conn, sub, mon, window)
            ctx = RunContext(service, conn, sub, mon, config, plan, row.plan_id, resolved, now, previous)
            result = mon.evaluate(ctx)
        values = {k: ms.clean_number(v) for k, v in result.values.items()}
        thresholds = configs.effective_thresholds(mon, sub, config)
        limits = ms.applicable(thresholds, values) if result.status is Status.FINISHED else []
        violated = ms.violations(limits, values)
        status, message, details = result.status, result.message, dict(result.details)
    except Exception as exc:  # a failed run stores an error, never half a measurement
        if not isinstance(exc, ScrutinyError):
            log.exception("monitor %s on %s failed", mon.name, sub.id)
        values, violated, details = {}, [], {}
        status, message = Status.ERROR, _error_text(exc)
        result = Result(status=Status.ERROR, message=message)
    final = ctx.resolved if ctx else None
    if final is not None:
        details.setdefault("window", final.to_dict())
    measurement = {
        "id": measurement_id,
        "subscription_id": sub.id,
        "monitor": mon.name,
        "timestamp": now,
        "status": status.value,
        "trigger": trigger,
        "window_start": final.oldest if final else None,
        "window_end": final.newest if final else None,
        "records": ctx.records if ctx else 0,
        "values": values,
        "thresholds": limits,
        "violations": violated,
        "details": _jsonable(details),
        "message": message,
        "duration_ms": int((time.perf_counter() - t0) * 1000),
    }
    _store(service, sub, mon, measurement, limits, violated)
    if ctx is not None and ctx.merged_buckets and ctx.plan_id:
        try:
            partials.compact(store, sub.id, mon.name, ctx.plan_id, ctx.merged_buckets)
        except Exception:  # compaction is an optimisation; the measurement is stored
            log.warning("compacting partials of %s/%s failed", sub.id, mon.name, exc_info=True)
    with store.engine.connect() as conn:
        return ms.get(conn, measurement_id)


def record(
    service: Service,
    sub: Subscription,
    mon: Monitor,
    values: dict[str, float | None],
    *,
    now: datetime | None = None,
    details: dict[str, Any] | None = None,
    trigger: str = "user",
) -> dict[str, Any]:
    """Store a measurement whose values were computed elsewhere (a custom monitor's, posted by
    the client): limits, violations and alerts as for a run."""
    now = now or utcnow()
    with service.store.engine.connect() as conn:
        row = configs.get_row(conn, sub.id, mon.name)
    if row is None or not row.enabled:
        raise Conflict(f"monitor {mon.name!r} is not enabled on subscription {sub.id!r}; enable it first")
    clean = {k: ms.clean_number(v) for k, v in values.items()}
    limits = ms.applicable(configs.effective_thresholds(mon, sub, mon.parse_config(row.config)), clean)
    violated = ms.violations(limits, clean)
    measurement = {
        "id": str(uuid.uuid4()),
        "subscription_id": sub.id,
        "monitor": mon.name,
        "timestamp": now,
        "status": Status.FINISHED.value,
        "trigger": trigger,
        "window_start": None,
        "window_end": None,
        "records": 0,
        "values": clean,
        "thresholds": limits,
        "violations": violated,
        "details": _jsonable(details or {}),
        "message": None,
        "duration_ms": 0,
    }
    _store(service, sub, mon, measurement, limits, violated)
    with service.store.engine.connect() as conn:
        return ms.get(conn, measurement["id"])


def _store(
    service: Service,
    sub: Subscription,
    mon: Monitor,
    measurement: dict[str, Any],
    limits: list[dict[str, Any]],
    violated: list[dict[str, Any]],
) -> None:
    """The measurement, its alerts and the configuration's last run, in one transaction."""
    now = measurement["timestamp"]
    with service.store.write() as conn:
        partials.lock_exclusive(conn, f"{sub.id}/{mon.name}/alerts")  # one alert per episode, even for concurrent runs
        ms.insert(conn, measurement)
        if measurement["status"] == Status.FINISHED.value:
            alerts_mod.update(conn, sub, mon.name, measurement["id"], measurement["values"], limits, violated, now)
        conn.execute(
            monitor_configs.update()
            .where(monitor_configs.c.subscription_id == sub.id, monitor_configs.c.monitor == mon.name)
            .values(last_run_at=now, last_status=measurement["status"])
        )


def _error_text(exc: BaseException) -> str:
    if isinstance(exc, ScrutinyError):
        return exc.message
    return f"{exc.__class__.__name__}: {exc}"[:2000]


def _jsonable(obj: Any) -> Any:
    """Details as plain JSON (NumPy scalars and arrays, non-finite floats made safe)."""
    import math

    import numpy as np

    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist())
    if isinstance(obj, np.generic):
        return _jsonable(obj.item())
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, datetime):
        from scrutiny.monitors.run.reader import iso

        return iso(obj)
    return obj


__all__ = ["RunContext", "Window", "record", "run", "snapshot"]
