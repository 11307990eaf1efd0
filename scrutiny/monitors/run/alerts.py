"""Alerts: one per violation *episode* of a threshold, not one per run.

A finished measurement that violates a limit opens an alert for (subscription, monitor, metric,
limit type) unless one is open already; later violating runs update it; the first run where the
value is back within the limit (or the limit is removed) closes it. Opening and closing each
queue one notification per matching webhook, in the same transaction as the measurement.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from scrutiny.core.subscription import Subscription
from scrutiny.monitors.run.reader import iso
from scrutiny.monitors.tables import alert_notifications, alerts, webhooks

OPENED = "alert.opened"
CLOSED = "alert.closed"


def to_api(r: Any) -> dict[str, Any]:
    m = r._mapping if hasattr(r, "_mapping") else r
    return {
        "id": m["id"],
        "subscription_id": m["subscription_id"],
        "monitor": m["monitor"],
        "metric": m["metric"],
        "type": m["limit_type"],
        "limit": m["limit_value"],
        "status": m["status"],
        "value": m["value"],
        "worst_value": m["worst_value"],
        "opened_at": iso(m["opened_at"]),
        "closed_at": iso(m["closed_at"]),
        "opened_measurement_id": m["opened_measurement_id"],
        "last_measurement_id": m["last_measurement_id"],
        "runs": int(m["runs"]),
        "message": m["message"],
    }


def update(
    conn: sa.Connection,
    sub: Subscription,
    monitor: str,
    measurement_id: str,
    values: dict[str, float | None],
    limits: list[dict[str, Any]],
    violated: list[dict[str, Any]],
    now: datetime,
) -> list[tuple[str, dict[str, Any]]]:
    """Open, update and close alerts for a finished measurement; returns the (event, alert) pairs queued."""
    c = alerts.c
    open_rows = {
        (r.metric, r.limit_type): r
        for r in conn.execute(
            sa.select(alerts).where(c.subscription_id == sub.id, c.monitor == monitor, c.status == "open")
        )
    }
    in_force = {(lim["metric"], lim["type"]): lim["value"] for lim in limits}
    events: list[tuple[str, dict[str, Any]]] = []
    seen = set()
    for v in violated:
        key = (v["metric"], v["type"])
        seen.add(key)
        row = open_rows.get(key)
        if row is None:
            alert = {
                "id": str(uuid.uuid4()),
                "subscription_id": sub.id,
                "monitor": monitor,
                "metric": v["metric"],
                "limit_type": v["type"],
                "limit_value": v["limit"],
                "status": "open",
                "value": v["value"],
                "worst_value": v["value"],
                "opened_at": now,
                "closed_at": None,
                "opened_measurement_id": measurement_id,
                "last_measurement_id": measurement_id,
                "runs": 1,
                "message": v["message"],
            }
            conn.execute(alerts.insert().values(**alert))
            events.append((OPENED, to_api(alert)))
        else:
            lower = v["type"] == "lower_limit"
            worst = row.worst_value if row.worst_value is not None else v["value"]
            worst = min(worst, v["value"]) if lower else max(worst, v["value"])
            conn.execute(
                alerts.update()
                .where(c.id == row.id)
                .values(
                    value=v["value"],
                    worst_value=worst,
                    limit_value=v["limit"],
                    last_measurement_id=measurement_id,
                    runs=row.runs + 1,
                    message=v["message"],
                )
            )
    for key, row in open_rows.items():
        if key in seen:
            continue
        metric, _ = key
        value = values.get(metric)
        if key in in_force and value is None:
            continue  # not measured this time: the episode goes on
        reason = (
            f"{metric} = {value:.4g} is back within the limit {in_force[key]:g}"
            if key in in_force and value is not None
            else f"the {key[1]} on {metric} was removed"
        )
        conn.execute(
            alerts.update()
            .where(c.id == row.id)
            .values(status="closed", closed_at=now, value=value, last_measurement_id=measurement_id, message=reason)
        )
        closed = {**row._mapping, "status": "closed", "closed_at": now, "value": value, "message": reason}
        closed["last_measurement_id"] = measurement_id
        events.append((CLOSED, to_api(closed)))
    if events:
        enqueue(conn, sub, monitor, events, now)
    return events


def enqueue(
    conn: sa.Connection, sub: Subscription, monitor: str, events: list[tuple[str, dict[str, Any]]], now: datetime
) -> int:
    """Queue one notification per (event, matching webhook); the delivery worker sends them."""
    w = webhooks.c
    hooks = conn.execute(
        sa.select(w.id, w.monitors).where(sa.or_(w.subscription_id.is_(None), w.subscription_id == sub.id))
    ).all()
    rows = []
    for hook in hooks:
        if hook.monitors and monitor not in hook.monitors:
            continue
        for event, alert in events:
            body = {
                "event": event,
                "alert": alert,
                "subscription": {
                    "id": sub.id,
                    "deployment_id": sub.deployment_id,
                    "asset_name": (sub.asset or {}).get("name"),
                },
            }
            rows.append(
                {
                    "webhook_id": hook.id,
                    "alert_id": alert["id"],
                    "event": event,
                    "body": body,
                    "attempts": 0,
                    "next_attempt_at": now,
                    "delivered_at": None,
                    "last_error": None,
                    "created_at": now,
                }
            )
    if rows:
        conn.execute(alert_notifications.insert(), rows)
    return len(rows)


def query(
    conn: sa.Connection,
    *,
    status: str | None = None,
    subscription_id: str | None = None,
    monitor: str | None = None,
    alert_id: str | None = None,
    limit: int = 100,
    offset: int = 0,
) -> list[dict[str, Any]]:
    c = alerts.c
    q = sa.select(alerts)
    if alert_id:
        q = q.where(c.id == alert_id)
    if status:
        q = q.where(c.status == status)
    if subscription_id:
        q = q.where(c.subscription_id == subscription_id)
    if monitor:
        q = q.where(c.monitor == monitor)
    q = q.order_by(c.opened_at.desc(), c.id).limit(limit).offset(offset)
    return [to_api(r) for r in conn.execute(q)]


def open_counts(conn: sa.Connection) -> list[tuple[str, str, int]]:
    c = alerts.c
    q = (
        sa.select(c.subscription_id, c.monitor, sa.func.count())
        .where(c.status == "open")
        .group_by(c.subscription_id, c.monitor)
    )
    return [(r[0], r[1], int(r[2])) for r in conn.execute(q)]
