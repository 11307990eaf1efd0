"""``service.monitors``: what the API, the SDK, the scheduler and the demo call."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from scrutiny.monitors import alerts, configs, partials, registry, runner
from scrutiny.monitors import measurements as ms
from scrutiny.monitors.base import Monitor

if TYPE_CHECKING:
    from scrutiny.service import Service


class MonitorService:
    def __init__(self, service: Service) -> None:
        self.service = service
        partials.install()

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
        return configs.view(mon, sub, row)

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
        sub = self.service.subscriptions.get(sub_id)
        return runner.run(self.service, sub, registry.get(name), trigger=trigger, start=start, end=end, now=now)

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

    # -- alerts ------------------------------------------------------------------------------
    def alerts(self, **filters: Any) -> list[dict[str, Any]]:
        with self.store.engine.connect() as conn:
            return alerts.query(conn, **filters)
