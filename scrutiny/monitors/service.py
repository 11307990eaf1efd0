"""``service.monitors``: what the API, the SDK, the scheduler and the demo call."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from scrutiny.monitors import configs, custom, partials, registry
from scrutiny.monitors.base import Monitor
from scrutiny.monitors.run import alerts, runner
from scrutiny.monitors.run import measurements as ms

if TYPE_CHECKING:
    from scrutiny.monitors.scheduler import Scheduler
    from scrutiny.service import Service


class MonitorService:
    def __init__(self, service: Service) -> None:
        from scrutiny.monitors.notify.webhooks import WebhookService

        self.service = service
        self.webhooks = WebhookService(service)
        self.scheduler: Scheduler | None = None
        partials.install()
        self._custom = {d["id"] for d in custom.load(service.store)}

    # -- background work ---------------------------------------------------------------------
    def start_scheduler(self, tick: float = 5.0) -> Scheduler:
        """Run monitors on their schedules and deliver alert notifications (``scrutiny serve``)."""
        from scrutiny.monitors.scheduler import Scheduler

        if self.scheduler is None:
            self.scheduler = Scheduler(self.service, tick=tick).start()
        return self.scheduler

    def stop_scheduler(self) -> None:
        if self.scheduler is not None:
            self.scheduler.stop()
            self.scheduler = None

    def expose_metrics(self) -> None:
        """Serve this store's latest measurements on the Prometheus registry (``/metrics``)."""
        from scrutiny.monitors.notify.prometheus import collector

        collector().add(self.service)

    def hide_metrics(self) -> None:
        from scrutiny.monitors.notify.prometheus import collector

        collector().remove(self.service)

    @property
    def store(self):  # type: ignore[no-untyped-def]
        return self.service.store

    def monitor(self, name: str) -> Monitor:
        return registry.get(name)

    # -- configuration -----------------------------------------------------------------------
    def configs(self, sub_id: str) -> list[dict[str, Any]]:
        sub = self.service.subscriptions.get(sub_id)
        with self.store.engine.connect() as conn:
            rows = {r.monitor: r for r in configs.list_rows(conn, sub.id)}
        return [configs.view(m, sub, rows.get(m.name)) for m in registry.all_monitors()]

    def get(self, sub_id: str, name: str) -> dict[str, Any]:
        sub = self.service.subscriptions.get(sub_id)
        mon = registry.get(name)
        with self.store.engine.connect() as conn:
            row = configs.get_row(conn, sub.id, mon.name)
        return configs.view(mon, sub, row)

    def configure(self, sub_id: str, name: str, body: dict[str, Any] | None, *, enabled: bool = True) -> dict[str, Any]:
        """Enable (or reconfigure) a monitor; partials are rebuilt from stored rows if needed."""
        sub = self.service.subscriptions.get(sub_id)
        mon = registry.get(name)
        row = configs.put(self.store, sub, mon, dict(body or {}), enabled=enabled)
        out = configs.view(mon, sub, row)
        if enabled:
            prepared = mon.prepare(self.service, sub, mon.parse_config(row.config))
            if prepared is not None:
                out["prepared"] = prepared
        return out

    def recommendations(self, sub_id: str, name: str) -> list[dict[str, Any]]:
        """Configuration suggestions of monitors that offer them (fairness: protected attributes)."""
        from scrutiny.errors import NotFound

        sub = self.service.subscriptions.get(sub_id)
        mon = registry.get(name)
        recommend = getattr(mon, "recommend", None)
        if not callable(recommend):
            raise NotFound(f"monitor {mon.name!r} offers no recommendations")
        return [r.to_dict() if hasattr(r, "to_dict") else dict(r) for r in recommend(sub)]

    def disable(self, sub_id: str, name: str) -> dict[str, Any]:
        sub = self.service.subscriptions.get(sub_id)
        mon = registry.get(name)
        return configs.view(mon, sub, configs.disable(self.store, sub, mon))

    # -- runs and measurements -----------------------------------------------------------------
    def run(
        self,
        sub_id: str,
        name: str,
        *,
        start: datetime | None = None,
        end: datetime | None = None,
        trigger: str = "manual",
        now: datetime | None = None,
    ) -> dict[str, Any]:
        from scrutiny.errors import InvalidInput

        sub = self.service.subscriptions.get(sub_id)
        mon = registry.get(name)
        if not mon.computed:
            raise InvalidInput(
                f"{mon.name} is a custom monitor: post its values instead of running it", field="monitor"
            )
        start, end = _utc(start), _utc(end)
        if start is not None and end is not None and start >= end:
            raise InvalidInput("start must be before end", field="start")
        return runner.run(self.service, sub, mon, trigger=trigger, start=start, end=end, now=now)

    def request_run(self, sub_id: str, name: str) -> dict[str, Any]:
        """Queue a run for the scheduler (kept in the store: it survives a restart)."""
        from scrutiny.errors import Conflict
        from scrutiny.monitors.run.reader import iso
        from scrutiny.monitors.tables import monitor_configs
        from scrutiny.store.types import utcnow

        sub = self.service.subscriptions.get(sub_id)
        mon = registry.get(name)
        now = utcnow()
        c = monitor_configs.c
        with self.store.write() as conn:
            res = conn.execute(
                monitor_configs.update()
                .where(c.subscription_id == sub.id, c.monitor == mon.name, c.enabled.is_(True))
                .values(run_requested_at=now)
            )
        if res.rowcount == 0:
            raise Conflict(f"monitor {mon.name!r} is not enabled on subscription {sub.id!r}; enable it first")
        if self.scheduler is not None:
            self.scheduler.wake()
        return {"monitor": mon.name, "subscription_id": sub.id, "queued_at": iso(now)}

    def measurements(
        self,
        sub_id: str,
        *,
        monitor: str | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
        status: str | None = None,
        limit: int = 1000,
        offset: int = 0,
    ) -> list[dict[str, Any]]:
        self.service.subscriptions.get(sub_id)
        if monitor:
            registry.get(monitor)
        with self.store.engine.connect() as conn:
            return ms.query(
                conn, sub_id, monitor=monitor, start=start, end=end, status=status, limit=limit, offset=offset
            )

    def measurement(self, sub_id: str, measurement_id: str) -> dict[str, Any]:
        with self.store.engine.connect() as conn:
            return ms.get(conn, measurement_id, sub_id)

    # -- custom monitors -----------------------------------------------------------------------
    def define(self, body: dict[str, Any]) -> dict[str, Any]:
        """A custom monitor: metrics the user computes and posts (``record``), with default limits."""
        row = custom.create(self.store, custom.parse(body))
        self._custom.add(row["id"])
        return row

    def definitions(self) -> list[dict[str, Any]]:
        rows = custom.load(self.store)
        self._custom.update(d["id"] for d in rows)
        return rows

    def close(self) -> None:
        """Forget this data mart's custom monitors (the registry is the process's)."""
        for name in self._custom:
            registry.unregister(name)

    def record(
        self, sub_id: str, name: str, metrics: Any, *, timestamp: Any = None, source: str | None = None
    ) -> dict[str, Any]:
        """Store posted values of a custom monitor as a measurement: its limits, violations and
        alerts as for a run. ``metrics``: objects of metric values and tag values; ``timestamp``:
        a datetime or ISO-8601 text (default: now)."""
        from scrutiny.errors import InvalidInput

        if isinstance(timestamp, str):
            try:
                timestamp = datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
            except ValueError:
                raise InvalidInput("timestamp must be ISO-8601, e.g. 2026-12-05T10:00:00Z", field="timestamp") from None
        elif timestamp is not None and not isinstance(timestamp, datetime):
            raise InvalidInput("timestamp must be ISO-8601 text", field="timestamp")

        sub = self.service.subscriptions.get(sub_id)
        mon = registry.get(name)
        if mon.computed or not isinstance(mon, custom.CustomMonitor):
            raise InvalidInput(f"{mon.name} computes its own values: run it instead", field="monitor")
        values, tags = custom.values_of(metrics, mon)
        details: dict[str, Any] = {"tags": tags}
        if source:
            details["run_id"] = source
        return runner.record(self.service, sub, mon, values, now=_utc(timestamp), details=details)

    # -- alerts ------------------------------------------------------------------------------
    def alerts(self, **filters: Any) -> list[dict[str, Any]]:
        with self.store.engine.connect() as conn:
            return alerts.query(conn, **filters)

    def records(
        self,
        sub_id: str,
        measurement_id: str,
        *,
        actual: Any = None,
        predicted: Any = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[dict[str, Any]]:
        """Drill-down: the rows a measurement evaluated, optionally one confusion-matrix cell."""
        from scrutiny.errors import InvalidInput
        from scrutiny.monitors.run.reader import Filter, RowKey, parse_iso, read_batches

        sub = self.service.subscriptions.get(sub_id)
        m = self.measurement(sub_id, measurement_id)
        mon = registry.get(m["monitor"])
        win = (m.get("details") or {}).get("window")
        if not win:
            raise InvalidInput("this measurement has no window of records to list", field="measurement_id")
        where: list[tuple[str, Any]] = []
        if actual is not None or predicted is not None:
            cell = getattr(mon, "cell_filter", None)
            if cell is None:
                raise InvalidInput(f"{mon.name} measurements have no confusion matrix", field="actual")
            with self.store.engine.connect() as conn:
                row = configs.get_row(conn, sub.id, mon.name)
            plan = mon.load_plan(row.plan) if row and row.plan else None
            if plan is None:
                raise InvalidInput("the monitor is not configured any more", field="measurement_id")
            where = cell(plan, actual, predicted)
        flt = Filter(
            end=parse_iso(win["end"]) if win.get("end") else None,
            first=RowKey.from_dict(win["first"]) if win.get("first") else None,
            where=where,
        )
        out: list[dict[str, Any]] = []
        with self.store.engine.connect() as conn:
            for batch in read_batches(conn, sub, mon.table, flt=flt, newest_first=True, limit=limit, offset=offset):
                out.extend(rows_of(batch))
        return out


def _utc(t: datetime | None) -> datetime | None:
    """Times without a zone are UTC (what the API documents)."""
    from datetime import UTC

    if t is None:
        return None
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)


def rows_of(batch: Any) -> list[dict[str, Any]]:
    """A RecordBatch as JSON-ready row objects."""
    import numpy as np

    from scrutiny.monitors.run.reader import iso, to_datetime

    n = len(batch)
    cols: dict[str, list[Any]] = {
        "scoring_id": batch.ids.tolist(),
        "scoring_timestamp": [iso(to_datetime(t)) for t in batch.timestamps],
    }
    for name, arr in batch.columns.items():
        if arr.dtype == np.float64:
            kind = batch.kinds.get(name)
            vals = [
                None if v != v else (int(v) if kind is not None and kind.value == "integer" else v)
                for v in arr.tolist()
            ]
        else:
            vals = arr.tolist()
        cols[name] = vals
    if batch.probability is not None:
        cols["probability"] = batch.probability.tolist()
    return [{k: v[i] for k, v in cols.items()} for i in range(n)]
