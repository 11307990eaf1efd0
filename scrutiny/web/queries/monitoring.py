"""Measurements and alerts as the dashboard reads them: narrow columns, index lookups.

The overview needs each monitor's newest measurement (one index probe per subscription and
monitor on ``ix_measurements_lookup``), charts need a monitor's values over a time range (the
same index, ``details`` left out: it can be large), alerts are counted on ``ix_alerts_open``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson
import sqlalchemy as sa

from scrutiny.monitors import registry
from scrutiny.monitors.base import Status
from scrutiny.monitors.run.reader import iso
from scrutiny.monitors.tables import alerts, measurements, monitor_configs

MAX_POINTS = 1_000  # measurements per monitor on one chart page (more than a chart has pixels)

# Shown first on a tile when a monitor has no limits of its own.
HEADLINES = {
    "performance": ["records_per_minute", "average_processing_time"],
    "quality": ["area_under_roc", "accuracy", "r2"],
    "drift": ["drift_magnitude", "data_drift_magnitude", "drifted_features"],
}

# JSON columns come back as text and are decoded with orjson (several times faster than the
# driver's json module on the thousands of measurements a chart page reads).
_LIGHT = [
    measurements.c.id,
    measurements.c.monitor,
    measurements.c.timestamp,
    measurements.c.status,
    sa.cast(measurements.c["values"], sa.Text).label("values"),
    sa.cast(measurements.c.thresholds, sa.Text).label("thresholds"),
    sa.cast(measurements.c.violations, sa.Text).label("violations"),
    measurements.c.records,
    measurements.c.message,
]


@dataclass
class MetricState:
    metric: str
    value: float | None
    limits: list[dict[str, Any]] = field(default_factory=list)
    violated: bool = False

    @property
    def limit_text(self) -> str:
        parts = []
        for lim in self.limits:
            sign = "≥" if lim["type"] == "lower_limit" else "≤"
            parts.append(f"{sign} {lim['value']:g}")
        return ", ".join(parts)


@dataclass
class MonitorState:
    monitor: str
    enabled: bool
    last: dict[str, Any] | None  # newest finished measurement (light)
    newest: dict[str, Any] | None  # newest measurement of any status
    metrics: list[MetricState]
    hidden: int = 0  # metrics not shown on the tile

    @property
    def state(self) -> str:
        """``violated`` | ``ok`` | ``failed`` (the newest run did not finish) | ``none`` (never measured)."""
        n = self.newest
        if (
            n is not None
            and n["status"] != Status.FINISHED.value
            and (self.last is None or n["timestamp"] > self.last["timestamp"])
        ):
            return "failed" if n["status"] == Status.ERROR.value else "waiting"
        if self.last is None:
            return "none"
        return "violated" if self.last["violations"] else "ok"


def _json(text: str | None, empty: Any) -> Any:
    if text is None:
        return empty
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:  # NaN or Infinity written by another JSON writer
        return json.loads(text)


def light(r: Any) -> dict[str, Any]:
    m = r._mapping
    return {
        "id": m["id"],
        "monitor": m["monitor"],
        "timestamp": m["timestamp"],
        "status": m["status"],
        "values": _json(m["values"], {}) or {},
        "thresholds": _json(m["thresholds"], []) or [],
        "violations": _json(m["violations"], []) or [],
        "records": int(m["records"]),
        "message": m["message"],
    }


def newest(conn: sa.Connection, sub_id: str, monitor: str, status: str | None = None) -> dict[str, Any] | None:
    c = measurements.c
    q = sa.select(*_LIGHT).where(c.subscription_id == sub_id, c.monitor == monitor)
    if status:
        q = q.where(c.status == status)
    r = conn.execute(q.order_by(c.timestamp.desc(), c.id.desc()).limit(1)).first()
    return light(r) if r else None


def metric_states(m: dict[str, Any], limit: int | None = 4) -> tuple[list[MetricState], int]:
    """The values of a measurement with their limits; limited ones first."""
    values: dict[str, Any] = m["values"]
    limits: dict[str, list[dict[str, Any]]] = {}
    for lim in m["thresholds"]:
        limits.setdefault(lim["metric"], []).append(lim)
    violated = {v["metric"] for v in m["violations"]}
    states = [MetricState(k, v, limits.get(k, []), k in violated) for k, v in values.items()]
    headline = HEADLINES.get(m["monitor"], [])
    states.sort(key=lambda s: (not s.violated, not s.limits, headline.index(s.metric) if s.metric in headline else 99))
    if limit is None:
        return states, 0
    return states[:limit], max(0, len(states) - limit)


def enabled_monitors(conn: sa.Connection, sub_id: str | None = None) -> dict[str, list[str]]:
    """subscription id -> names of its enabled monitors (in registry order)."""
    c = monitor_configs.c
    q = sa.select(c.subscription_id, c.monitor).where(c.enabled.is_(True))
    if sub_id:
        q = q.where(c.subscription_id == sub_id)
    order = {name: i for i, name in enumerate(registry.names())}
    out: dict[str, list[str]] = {}
    for sid, mon in conn.execute(q):
        out.setdefault(sid, []).append(mon)
    for names in out.values():
        names.sort(key=lambda n: order.get(n, 99))
    return out


def monitor_states(conn: sa.Connection, sub_id: str, names: list[str], limit: int | None = 4) -> list[MonitorState]:
    out = []
    for name in names:
        last = newest(conn, sub_id, name, Status.FINISHED.value)
        any_status = newest(conn, sub_id, name)
        metrics, hidden = metric_states(last, limit) if last else ([], 0)
        out.append(MonitorState(name, True, last, any_status, metrics, hidden))
    return out


def open_alert_counts(conn: sa.Connection) -> dict[str, int]:
    c = alerts.c
    q = sa.select(c.subscription_id, sa.func.count()).where(c.status == "open").group_by(c.subscription_id)
    return {sid: int(n) for sid, n in conn.execute(q)}


def series(
    conn: sa.Connection,
    sub_id: str,
    monitor: str,
    start: datetime | None,
    end: datetime | None,
    metrics: list[str],
) -> tuple[list[dict[str, Any]], int]:
    """Finished measurements of ``monitor`` in the range, oldest first (the newest ``MAX_POINTS``),
    with only ``metrics`` of their values (the database extracts them from the JSON), and how
    many the range holds."""
    c = measurements.c
    conds = _range_conds(sub_id, monitor, start, end)
    cols = [c.id, c.timestamp, _LIGHT[5], _LIGHT[6]]
    cols += [c["values"][m].as_float().label(f"v{j}") for j, m in enumerate(metrics)]
    rows = conn.execute(
        sa.select(*cols).where(*conds).order_by(c.timestamp.desc(), c.id.desc()).limit(MAX_POINTS + 1)
    ).all()
    total = len(rows)
    if total > MAX_POINTS:
        total = int(conn.execute(sa.select(sa.func.count()).select_from(measurements).where(*conds)).scalar_one())
        rows = rows[:MAX_POINTS]
    out = []
    for r in reversed(rows):
        values = {m: r[4 + j] for j, m in enumerate(metrics)}
        out.append(
            {
                "id": r[0],
                "timestamp": r[1],
                "values": values,
                "thresholds": _json(r[2], []) or [],
                "violations": _json(r[3], []) or [],
            }
        )
    return out, total


def _range_conds(sub_id: str, monitor: str, start: datetime | None, end: datetime | None) -> list[Any]:
    c = measurements.c
    conds = [c.subscription_id == sub_id, c.monitor == monitor, c.status == Status.FINISHED.value]
    if start is not None:
        conds.append(c.timestamp >= start)
    if end is not None:
        conds.append(c.timestamp < end)
    return conds


def newest_in_range(
    conn: sa.Connection, sub_id: str, monitor: str, start: datetime | None, end: datetime | None
) -> dict[str, Any] | None:
    """The newest finished measurement in the range, with all its values (what the charts list)."""
    c = measurements.c
    q = sa.select(*_LIGHT).where(*_range_conds(sub_id, monitor, start, end))
    r = conn.execute(q.order_by(c.timestamp.desc(), c.id.desc()).limit(1)).first()
    return light(r) if r else None


def runs(
    conn: sa.Connection, sub_id: str, start: datetime | None, end: datetime | None, limit: int = 50
) -> list[dict[str, Any]]:
    """The newest runs of every monitor in the range (any status), for the runs table."""
    c = measurements.c
    conds = [c.subscription_id == sub_id]
    if start is not None:
        conds.append(c.timestamp >= start)
    if end is not None:
        conds.append(c.timestamp < end)
    q = sa.select(*_LIGHT).where(*conds).order_by(c.timestamp.desc(), c.id.desc()).limit(limit)
    return [light(r) for r in conn.execute(q)]


def _short(v: float) -> float:
    """Six decimals (significant digits for small numbers): what a chart can show, fewer bytes."""
    return round(v, 6) if abs(v) >= 1e-3 else float(f"{v:.6g}")


def series_block(points: list[dict[str, Any]], metrics: list[str]) -> dict[str, Any]:
    """A monitor's measurements as the chart script reads them: one time axis and measurement
    ids, and per metric its values, the limits in force at each run and the violations. One
    pass over the measurements, whatever the number of metrics."""
    n = len(points)
    slot = {m: j for j, m in enumerate(metrics)}
    ys: list[list[float | None]] = [[None] * n for _ in metrics]
    lows: list[list[float | None]] = [[None] * n for _ in metrics]
    highs: list[list[float | None]] = [[None] * n for _ in metrics]
    bad = [[0] * n for _ in metrics]
    for i, m in enumerate(points):
        for k, v in m["values"].items():
            j = slot.get(k)
            if j is not None and v is not None:
                ys[j][i] = _short(v)
        for lim in m["thresholds"]:
            j = slot.get(lim["metric"])
            if j is not None:
                (lows if lim["type"] == "lower_limit" else highs)[j][i] = lim["value"]
        for v in m["violations"]:
            j = slot.get(v["metric"])
            if j is not None:
                bad[j][i] = 1
    out = {
        metric: {
            "y": ys[j],
            "lower": lows[j] if any(x is not None for x in lows[j]) else None,
            "upper": highs[j] if any(x is not None for x in highs[j]) else None,
            "violated": bad[j],
        }
        for metric, j in slot.items()
    }
    return {
        "x": [round(m["timestamp"].timestamp(), 3) for m in points],
        "ids": [m["id"] for m in points],
        "metrics": out,
    }


def charts(monitor: str, newest: dict[str, Any] | None, points: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """What the page says above each metric's chart (every metric of the newest run, limited ones
    first): its last value and state, and its violations over ``points``. One pass."""
    if newest is None:
        return []
    violations: dict[str, int] = {}
    limited = {lim["metric"] for lim in newest["thresholds"]}
    for m in points:
        for v in {v["metric"] for v in m["violations"]}:
            violations[v] = violations.get(v, 0) + 1
        for lim in m["thresholds"]:
            limited.add(lim["metric"])
    bad = {v["metric"] for v in newest["violations"]}
    names = sorted(newest["values"], key=lambda k: k not in limited)
    return [
        {
            "monitor": monitor,
            "metric": k,
            "limited": k in limited,
            "violations": violations.get(k, 0),
            "last": newest["values"][k],
            "last_violated": k in bad,
        }
        for k in names
    ]


def alert_rows(
    conn: sa.Connection, *, status: str | None, subscription_id: str | None, limit: int, offset: int
) -> list[dict[str, Any]]:
    from scrutiny.monitors.run import alerts as alerts_mod

    return alerts_mod.query(conn, status=status, subscription_id=subscription_id, limit=limit, offset=offset)


def to_api_time(t: datetime | None) -> str | None:
    return iso(t)
