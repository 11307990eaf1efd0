"""Payload: the logged transactions, filtered and paged in the database, exported, and one by one."""

from __future__ import annotations

from typing import Any

from fastapi import Depends, Request
from starlette.responses import Response, StreamingResponse

from scrutiny.core.subscription import Subscription
from scrutiny.errors import InvalidInput, NotFound
from scrutiny.store.types import utcnow
from scrutiny.web.access import Viewer, read_access
from scrutiny.web.pages.subscription import header
from scrutiny.web.queries import payload as pq
from scrutiny.web.render import page
from scrutiny.web.routing import web_router

router = web_router()

TABLE_RANGES = {"1h": "1 hour", "24h": "24 hours", "7d": "7 days", "30d": "30 days", "all": "all"}


def parse_request(request: Request, sub: Subscription) -> tuple[pq.PayloadQuery, dict[str, Any]]:
    """The query string as a ``PayloadQuery`` (window, prediction, filters, cursor)."""
    q = request.query_params
    key = q.get("range") or ("" if q.get("from") or q.get("to") else "all")
    start, end = pq.window(key or None, q.get("from"), q.get("to"), utcnow())
    cols, ops, vals = q.getlist("col"), q.getlist("op"), q.getlist("val")
    prediction = q.get("prediction", "")
    if prediction:
        cols, ops, vals = [sub.layout.prediction_column, *cols], ["eq", *ops], [prediction, *vals]
    conditions = pq.parse_conditions(sub, cols, ops, vals)
    before = pq.Cursor.decode(q["before"], "before") if q.get("before") else None
    after = pq.Cursor.decode(q["after"], "after") if q.get("after") else None
    state = {
        "range": key,
        "from": q.get("from", ""),
        "to": q.get("to", ""),
        "prediction": prediction,
        "col": q.getlist("col"),
        "op": q.getlist("op"),
        "val": q.getlist("val"),
    }
    return pq.PayloadQuery(start, end, conditions, before, after), state


def base_params(state: dict[str, Any]) -> list[tuple[str, str]]:
    """The filter state as query parameters (without the page cursor)."""
    out: list[tuple[str, str]] = []
    for k in ("range", "from", "to", "prediction"):
        if state[k]:
            out.append((k, state[k]))
    for c, o, v in zip(state["col"], state["op"], state["val"], strict=False):
        if c:
            out += [("col", c), ("op", o), ("val", v)]
    return out


def without_filter(state: dict[str, Any], index: int) -> list[tuple[str, str]]:
    s = dict(state)
    s["col"] = [c for i, c in enumerate(state["col"]) if i != index]
    s["op"] = [c for i, c in enumerate(state["op"]) if i != index]
    s["val"] = [c for i, c in enumerate(state["val"]) if i != index]
    return base_params(s)


@router.get("/subscriptions/{sub_id}/payload")
def payload_table(sub_id: str, request: Request, viewer: Viewer = Depends(read_access)) -> Response:
    service = request.app.state.service
    sub = service.subscriptions.get(sub_id)
    query, state = parse_request(request, sub)
    matches = None
    with service.store.engine.connect() as conn:
        result = pq.read_page(conn, sub, query)
        if query.conditions and request.query_params.get("count") == "1":
            matches = pq.count_matches(conn, sub, query)
    params = base_params(state)
    chips = [
        (c.describe(), without_filter(state, i))
        for i, c in enumerate(query.conditions[1:] if state["prediction"] else query.conditions)
    ]
    from scrutiny.web.pages.explain import available as explain_available

    return page(
        request,
        "payload.html",
        nav="overview",
        tab="payload",
        result=result,
        state=state,
        params=params,
        chips=chips,
        matches=matches,
        ranges=TABLE_RANGES,
        range_key=state["range"],
        filterable=pq.filterable(sub),
        operators=pq.OPERATORS,
        labels=sub.labels or [],
        scan_rows=pq.SCAN_ROWS,
        explain=explain_available(service),
        **header(service, sub),
    )


@router.get("/subscriptions/{sub_id}/export")
def export(sub_id: str, request: Request, format: str = "csv", viewer: Viewer = Depends(read_access)) -> Response:
    """The filtered window as CSV or Parquet, streamed in constant memory, oldest first."""
    service = request.app.state.service
    sub = service.subscriptions.get(sub_id)
    if format not in ("csv", "parquet"):
        raise InvalidInput("format must be csv or parquet", field="format")
    query, _ = parse_request(request, sub)
    media = "text/csv" if format == "csv" else "application/vnd.apache.parquet"
    filename = f"payload-{sub.id}.{format}"
    return StreamingResponse(
        service.payloads.export(sub.id, format, where=pq.export_conditions(sub, query)),
        media_type=media,
        headers={"Content-Disposition": f'attachment; filename="{filename}"', "Cache-Control": "no-store"},
    )


@router.get("/subscriptions/{sub_id}/payload/{scoring_id:path}")
def payload_record(sub_id: str, scoring_id: str, request: Request, viewer: Viewer = Depends(read_access)) -> Response:
    service = request.app.state.service
    sub = service.subscriptions.get(sub_id)
    with service.store.engine.connect() as conn:
        row = pq.find_row(conn, sub, scoring_id)
    if row is None:
        raise NotFound(f"no payload row {scoring_id!r} in this subscription")
    from scrutiny.web.pages.explain import available as explain_available
    from scrutiny.web.pages.explain import explanations_of

    explain = explain_available(service)
    return page(
        request,
        "record.html",
        nav="overview",
        tab="payload",
        row=row,
        features=set(sub.feature_fields),
        explain=explain,
        explanations=explanations_of(service, sub, scoring_id) if explain else [],
        **header(service, sub),
    )
