"""Overview: one tile per subscription with its monitors' state, open alerts and recent traffic."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from fastapi import Depends, Request
from starlette.responses import Response

from scrutiny.core.subscription import Subscription
from scrutiny.store.types import utcnow
from scrutiny.web.access import Viewer, read_access
from scrutiny.web.queries import monitoring, payload
from scrutiny.web.render import page
from scrutiny.web.routing import web_router

router = web_router()


@dataclass
class Tile:
    sub: Subscription
    name: str
    engine: str
    engine_type: str
    monitors: list[monitoring.MonitorState]
    open_alerts: int
    rows_24h: int | None

    @property
    def state(self) -> str:
        states = {m.state for m in self.monitors}
        if "violated" in states or self.open_alerts:
            return "violated"
        if "failed" in states:
            return "failed"
        return "ok" if "ok" in states else "none"


def deployment_name(sub: Subscription) -> str:
    return str(sub.deployment.get("name") or (sub.asset or {}).get("name") or sub.deployment_id)


def tiles(service: Any) -> list[Tile]:
    subs = service.subscriptions.list()
    bindings = {b.id: b for b in service.bindings.list()}
    since = utcnow() - timedelta(days=1)
    out = []
    with service.store.engine.connect() as conn:
        enabled = monitoring.enabled_monitors(conn)
        alerts = monitoring.open_alert_counts(conn)
        for sub in subs:
            binding = bindings.get(sub.binding_id)
            states = monitoring.monitor_states(conn, sub.id, enabled.get(sub.id, []))
            rows = None
            if sub.layout.complete:
                t = payload.table_of(sub)
                if payload.records.exists(conn, t.name):
                    rows = payload.count_window(conn, t, since, None)
            out.append(
                Tile(
                    sub=sub,
                    name=deployment_name(sub),
                    engine=binding.name if binding else sub.binding_id,
                    engine_type=binding.engine_type if binding else "",
                    monitors=states,
                    open_alerts=alerts.get(sub.id, 0),
                    rows_24h=rows,
                )
            )
    return out


@router.get("/")
def overview(request: Request, viewer: Viewer = Depends(read_access)) -> Response:
    items = tiles(request.app.state.service)
    return page(request, "overview.html", tiles=items, nav="overview")
