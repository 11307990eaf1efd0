"""A subscription: every monitor metric over time, and each measurement's details."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import Depends, Request
from starlette.responses import JSONResponse, Response

from scrutiny.core.subscription import Subscription
from scrutiny.errors import InvalidInput
from scrutiny.monitors import registry
from scrutiny.store.types import utcnow
from scrutiny.web import details as views
from scrutiny.web.access import Viewer, read_access
from scrutiny.web.pages.overview import deployment_name
from scrutiny.web.queries import monitoring
from scrutiny.web.queries.payload import window
from scrutiny.web.render import page
from scrutiny.web.routing import web_router

router = web_router()

CHART_RANGES = {"24h": "24 hours", "7d": "7 days", "30d": "30 days", "all": "all"}
RECORDS_PAGE = 50


def header(service: Any, sub: Subscription) -> dict[str, Any]:
    """What every subscription page shows on top: the deployment, its engine, its monitors' tabs."""
    binding = service.bindings.catalog.find_binding(sub.binding_id)
    with service.store.engine.connect() as conn:
        enabled = monitoring.enabled_monitors(conn, sub.id).get(sub.id, [])
    return {"sub": sub, "name": deployment_name(sub), "binding": binding, "enabled": enabled}


def _range(request: Request, default: str = "7d") -> tuple[str, datetime | None, datetime | None, dict[str, str]]:
    q = request.query_params
    key = q.get("range") or ("" if q.get("from") or q.get("to") else default)
    start, end = window(key or None, q.get("from"), q.get("to"), utcnow())
    params = {k: v for k, v in (("range", key), ("from", q.get("from", "")), ("to", q.get("to", ""))) if v}
    return key, start, end, params


@router.get("/subscriptions/{sub_id}")
def subscription_page(sub_id: str, request: Request, viewer: Viewer = Depends(read_access)) -> Response:
    service = request.app.state.service
    sub = service.subscriptions.get(sub_id)
    key, start, end, params = _range(request)
    monitors = []
    with service.store.engine.connect() as conn:
        enabled = monitoring.enabled_monitors(conn, sub.id).get(sub.id, [])
        for name in enabled:
            newest = monitoring.newest_in_range(conn, sub.id, name, start, end)
            summary = monitoring.charts(name, newest, [])
            main, more = split_charts(name, summary)
            shown = [c["metric"] for c in main]
            points, total = monitoring.series(conn, sub.id, name, start, end, shown)  # the rest on demand
            counts = {c["metric"]: c for c in monitoring.charts(name, newest, points)}
            main = [counts[c["metric"]] for c in main]
            more = [counts[c["metric"]] for c in more]
            block = monitoring.series_block(points, shown)
            monitors.append(
                {"name": name, "charts": main, "more": more, "block": block, "points": len(points), "total": total}
            )
        runs = monitoring.runs(conn, sub.id, start, end, limit=30)
    return page(
        request,
        "subscription.html",
        nav="overview",
        tab="charts",
        monitors=monitors,
        runs=runs,
        range_key=key,
        ranges=CHART_RANGES,
        params=params,
        start=start,
        end=end,
        max_points=monitoring.MAX_POINTS,
        **header(service, sub),
    )


def split_charts(monitor: str, charts: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Metrics with limits (or the monitor's headline metrics) first; the rest folded away."""
    limited = [c for c in charts if c["limited"]]
    if not limited:
        heads = monitoring.HEADLINES.get(monitor, [])
        limited = [c for c in charts if c["metric"] in heads] or charts[:4]
    chosen = {id(c) for c in limited}
    return limited, [c for c in charts if id(c) not in chosen]


@router.get("/subscriptions/{sub_id}/series")
def series_json(
    sub_id: str, request: Request, monitor: str, metric: list[str] | None = None, viewer: Viewer = Depends(read_access)
) -> JSONResponse:
    """A monitor's series in a time range (the folded charts load theirs when opened)."""
    service = request.app.state.service
    sub = service.subscriptions.get(sub_id)
    registry.get(monitor)
    _, start, end, _ = _range(request)
    with service.store.engine.connect() as conn:
        newest = monitoring.newest_in_range(conn, sub.id, monitor, start, end)
        names = list(newest["values"]) if newest else []
        wanted = [m for m in (metric or names) if m in names]
        points, _ = monitoring.series(conn, sub.id, monitor, start, end, wanted)
    return JSONResponse(monitoring.series_block(points, wanted), headers={"Cache-Control": "no-store"})


@router.get("/subscriptions/{sub_id}/monitors/{monitor}")
def latest_details(sub_id: str, monitor: str, request: Request, viewer: Viewer = Depends(read_access)) -> Response:
    """The newest finished measurement of a monitor (Fairness, Quality, Drift... details)."""
    service = request.app.state.service
    sub = service.subscriptions.get(sub_id)
    registry.get(monitor)
    rows = service.monitors.measurements(sub.id, monitor=monitor, status="finished", limit=1)
    if not rows:
        with service.store.engine.connect() as conn:
            newest = monitoring.newest(conn, sub.id, monitor)
        return page(
            request,
            "no_measurement.html",
            nav="overview",
            tab=monitor,
            monitor=monitor,
            newest=newest,
            **header(service, sub),
        )
    return _details_page(request, service, sub, rows[0])


@router.get("/subscriptions/{sub_id}/measurements/{measurement_id}")
def measurement_page(
    sub_id: str, measurement_id: str, request: Request, viewer: Viewer = Depends(read_access)
) -> Response:
    service = request.app.state.service
    sub = service.subscriptions.get(sub_id)
    m = service.monitors.measurement(sub.id, measurement_id)
    return _details_page(request, service, sub, m)


def _details_page(request: Request, service: Any, sub: Subscription, m: dict[str, Any]) -> Response:
    name = m["monitor"]
    metrics, _ = monitoring.metric_states(
        {"monitor": name, "values": m["values"], "thresholds": m["thresholds"], "violations": m["violations"]},
        limit=None,
    )
    view: dict[str, Any] = {}
    charts: list[dict[str, Any]] = []
    block: dict[str, Any] | None = None
    if m["status"] == "finished":
        builder = {
            "fairness": views.fairness,
            "quality": views.quality,
            "performance": views.performance,
            "drift": views.drift,
        }.get(name)
        if builder is not None:
            view = builder(m)
        if name == "fairness":
            wanted = [f"fairness_value.{attr.feature}" for attr in view["attributes"]]
            with service.store.engine.connect() as conn:
                points, _ = monitoring.series(conn, sub.id, name, None, None, wanted)
                newest = monitoring.newest_in_range(conn, sub.id, name, None, None)
            block = monitoring.series_block(points, wanted)
            charts = [c for c in monitoring.charts(name, newest, points) if c["metric"] in wanted]
    return page(
        request,
        "measurement.html",
        nav="overview",
        tab=name,
        m=m,
        metrics=metrics,
        view=view,
        charts=charts,
        block=block,
        **header(service, sub),
    )


@router.get("/subscriptions/{sub_id}/measurements/{measurement_id}/records")
def measurement_records(
    sub_id: str,
    measurement_id: str,
    request: Request,
    actual: str | None = None,
    predicted: str | None = None,
    page_no: int = 1,
    viewer: Viewer = Depends(read_access),
) -> Response:
    """Drill-down: the rows a measurement evaluated, or one confusion-matrix cell's rows."""
    service = request.app.state.service
    sub = service.subscriptions.get(sub_id)
    m = service.monitors.measurement(sub.id, measurement_id)
    if page_no < 1:
        raise InvalidInput("page_no starts at 1", field="page_no")
    rows = service.monitors.records(
        sub.id,
        measurement_id,
        actual=actual,
        predicted=predicted,
        limit=RECORDS_PAGE + 1,
        offset=(page_no - 1) * RECORDS_PAGE,
    )
    more = len(rows) > RECORDS_PAGE
    rows = rows[:RECORDS_PAGE]
    columns = list(rows[0]) if rows else []
    return page(
        request,
        "records.html",
        nav="overview",
        tab=m["monitor"],
        m=m,
        rows=rows,
        columns=columns,
        actual=actual,
        predicted=predicted,
        page_no=page_no,
        more=more,
        **header(service, sub),
    )
