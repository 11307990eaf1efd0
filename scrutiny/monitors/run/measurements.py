"""Measurements: one per run, stored whole (a failed run stores its error, never half a result)."""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from scrutiny.errors import NotFound
from scrutiny.monitors.base import Status, Threshold, base_metric
from scrutiny.monitors.run.reader import iso
from scrutiny.monitors.tables import measurements


def clean_number(v: Any) -> float | None:
    """JSON-safe numbers: NaN and infinities become null."""
    if v is None:
        return None
    f = float(v)
    return f if math.isfinite(f) else None


def applicable(thresholds: list[Threshold], values: dict[str, float | None]) -> list[dict[str, Any]]:
    """Concrete limits per reported value: a threshold on ``metric`` applies to ``metric`` and to
    every ``metric.<qualifier>`` that has no threshold of its own of the same type."""
    exact = {(t.metric, t.type) for t in thresholds}
    out: list[dict[str, Any]] = []
    for key in values:
        for t in thresholds:
            if t.metric == key or (
                "." not in t.metric and base_metric(key) == t.metric and key != t.metric and (key, t.type) not in exact
            ):
                out.append({"metric": key, "type": t.type.value, "value": t.value})
    return out


def violations(limits: list[dict[str, Any]], values: dict[str, float | None]) -> list[dict[str, Any]]:
    out = []
    for lim in limits:
        value = values.get(lim["metric"])
        limit = lim["value"]
        if value is None or limit is None:
            continue
        lower = lim["type"] == "lower_limit"
        if (lower and value < limit) or (not lower and value > limit):
            distance = abs(value - limit)
            rel = distance / abs(limit) if limit else None
            where = "below the lower" if lower else "above the upper"
            pct = f" ({rel:.0%} {'below' if lower else 'above'})" if rel is not None else ""
            out.append(
                {
                    "metric": lim["metric"],
                    "type": lim["type"],
                    "limit": limit,
                    "value": value,
                    "distance": distance,
                    "message": f"{lim['metric']} = {value:.4g} is {distance:.4g} {where} limit {limit:g}{pct}",
                }
            )
    return out


def insert(conn: sa.Connection, m: dict[str, Any]) -> None:
    conn.execute(measurements.insert().values(**m))


def to_api(r: Any) -> dict[str, Any]:
    m = r._mapping if hasattr(r, "_mapping") else r
    return {
        "id": m["id"],
        "subscription_id": m["subscription_id"],
        "monitor": m["monitor"],
        "timestamp": iso(m["timestamp"]),
        "status": m["status"],
        "trigger": m["trigger"],
        "window": {"start": iso(m["window_start"]), "end": iso(m["window_end"])},
        "records": int(m["records"]),
        "values": m["values"],
        "thresholds": m["thresholds"],
        "violations": m["violations"],
        "details": m["details"],
        "message": m["message"],
        "duration_ms": int(m["duration_ms"]),
    }


def get(conn: sa.Connection, measurement_id: str, sub_id: str | None = None) -> dict[str, Any]:
    q = sa.select(measurements).where(measurements.c.id == measurement_id)
    if sub_id is not None:
        q = q.where(measurements.c.subscription_id == sub_id)
    r = conn.execute(q).first()
    if r is None:
        raise NotFound(f"measurement {measurement_id!r} not found")
    return to_api(r)


def query(
    conn: sa.Connection,
    sub_id: str,
    *,
    monitor: str | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    status: str | None = None,
    limit: int = 1000,
    offset: int = 0,
) -> list[dict[str, Any]]:
    """Measurements of a subscription, newest first."""
    c = measurements.c
    q = sa.select(measurements).where(c.subscription_id == sub_id)
    if monitor:
        q = q.where(c.monitor == monitor)
    if start is not None:
        q = q.where(c.timestamp >= start)
    if end is not None:
        q = q.where(c.timestamp < end)
    if status:
        q = q.where(c.status == status)
    q = q.order_by(c.timestamp.desc(), c.id.desc()).limit(limit).offset(offset)
    return [to_api(r) for r in conn.execute(q)]


def latest(
    conn: sa.Connection, sub_id: str, monitor: str, status: str | None = Status.FINISHED.value
) -> dict[str, Any] | None:
    rows = query(conn, sub_id, monitor=monitor, status=status, limit=1)
    return rows[0] if rows else None


def latest_all(conn: sa.Connection) -> list[dict[str, Any]]:
    """The newest finished measurement of every (subscription, monitor): what /metrics exposes."""
    c = measurements.c
    newest = (
        sa.select(c.subscription_id, c.monitor, sa.func.max(c.timestamp).label("ts"))
        .where(c.status == Status.FINISHED.value)
        .group_by(c.subscription_id, c.monitor)
        .subquery()
    )
    q = (
        sa.select(measurements)
        .join(
            newest,
            (c.subscription_id == newest.c.subscription_id)
            & (c.monitor == newest.c.monitor)
            & (c.timestamp == newest.c.ts),
        )
        .where(c.status == Status.FINISHED.value)
    )
    seen: dict[tuple[str, str], dict[str, Any]] = {}
    for r in conn.execute(q):
        m = to_api(r)
        seen[(m["subscription_id"], m["monitor"])] = m
    return list(seen.values())
