"""Alerts and webhooks over REST."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Query, Request, Response

from scrutiny.api.auth import ADMIN, READ, service_of
from scrutiny.api.models import ERRORS
from scrutiny.api.monitor_models import Alert, Alerts, Deliveries, Delivery, Webhook, WebhookCreate, Webhooks
from scrutiny.errors import NotFound

router = APIRouter(tags=["alerts"], responses=ERRORS)


@router.get("/v1/alerts", response_model=Alerts, dependencies=[READ])
def list_alerts(
    request: Request,
    status: Literal["open", "closed"] | None = None,
    subscription_id: str | None = None,
    monitor: str | None = None,
    limit: int = Query(100, ge=1, le=10_000),
    offset: int = Query(0, ge=0, le=100_000_000),
) -> Alerts:
    """Alerts, newest first: one per episode of a violated threshold (opened when a run violates
    it, closed when a later run is back within the limit)."""
    rows = service_of(request).monitors.alerts(
        status=status, subscription_id=subscription_id, monitor=monitor, limit=limit, offset=offset
    )
    return Alerts(alerts=[Alert(**a) for a in rows])


@router.get("/v1/alerts/{alert_id}", response_model=Alert, dependencies=[READ])
def get_alert(alert_id: str, request: Request) -> Alert:
    for a in service_of(request).monitors.alerts(alert_id=alert_id):
        return Alert(**a)
    raise NotFound(f"alert {alert_id!r} not found")


@router.post("/v1/webhooks", status_code=201, response_model=Webhook, dependencies=[ADMIN])
def create_webhook(body: WebhookCreate, request: Request) -> Webhook:
    """Deliver alert events (``alert.opened``, ``alert.closed``) to a URL as JSON, retried with
    backoff. The secret is stored encrypted and never returned."""
    hook = service_of(request).monitors.webhooks.create(
        body.url,
        subscription_id=body.subscription_id,
        monitors=body.monitors,
        secret=body.secret,
        description=body.description,
    )
    return Webhook(**hook)


@router.get("/v1/webhooks", response_model=Webhooks, dependencies=[READ])
def list_webhooks(request: Request) -> Webhooks:
    return Webhooks(webhooks=[Webhook(**w) for w in service_of(request).monitors.webhooks.list()])


@router.delete("/v1/webhooks/{webhook_id}", status_code=204, dependencies=[ADMIN])
def delete_webhook(webhook_id: str, request: Request) -> Response:
    service_of(request).monitors.webhooks.delete(webhook_id)
    return Response(status_code=204)


@router.get("/v1/webhooks/{webhook_id}/deliveries", response_model=Deliveries, dependencies=[READ])
def webhook_deliveries(webhook_id: str, request: Request, limit: int = Query(100, ge=1, le=10_000)) -> Deliveries:
    """Recent notifications to this webhook: attempts, delivery time, the last error."""
    rows = service_of(request).monitors.webhooks.deliveries(webhook_id, limit)
    return Deliveries(deliveries=[Delivery(**d) for d in rows])
