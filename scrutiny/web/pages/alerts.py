"""Alerts: open episodes first, then the closed ones, for every subscription or one."""

from __future__ import annotations

from fastapi import Depends, Request
from starlette.responses import Response

from scrutiny.errors import InvalidInput
from scrutiny.web.access import Viewer, read_access
from scrutiny.web.pages.overview import deployment_name
from scrutiny.web.queries import monitoring
from scrutiny.web.render import page
from scrutiny.web.routing import web_router

router = web_router()

PAGE = 50


@router.get("/alerts")
def alerts_page(
    request: Request,
    status: str = "",
    subscription: str = "",
    page_no: int = 1,
    viewer: Viewer = Depends(read_access),
) -> Response:
    service = request.app.state.service
    if status not in ("", "open", "closed"):
        raise InvalidInput("status is open or closed", field="status")
    if page_no < 1:
        raise InvalidInput("page_no starts at 1", field="page_no")
    subs = {s.id: s for s in service.subscriptions.list()}
    if subscription and subscription not in subs:
        service.subscriptions.get(subscription)  # 404 with the API's message
    sections = []
    with service.store.engine.connect() as conn:
        for st in [status] if status else ["open", "closed"]:
            rows = monitoring.alert_rows(
                conn,
                status=st,
                subscription_id=subscription or None,
                limit=PAGE + 1,
                offset=(page_no - 1) * PAGE,
            )
            sections.append({"status": st, "rows": rows[:PAGE], "more": len(rows) > PAGE})
    names = {sid: deployment_name(s) for sid, s in subs.items()}
    return page(
        request,
        "alerts.html",
        nav="alerts",
        sections=sections,
        names=names,
        status=status,
        subscription=subscription,
        page_no=page_no,
    )
