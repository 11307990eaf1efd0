"""OpenScale v1 metrics (``GET /v1/data_marts/{dm}/metrics``): Scrutiny's measurements, either
per monitor (``monitor_definition_id``: one row per measurement with its metrics and limits) or
the fairness view (``metric_type=fairness``: per attribute and monitored group)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Body, Query, Request, Response

from scrutiny.api.auth import READ, WRITE, service_of
from scrutiny.api.models import ERRORS
from scrutiny.api.openscale.common import Ignored, NotSupported, body_object, data_mart_id
from scrutiny.api.openscale.monitor_instances import value_groups
from scrutiny.api.openscale.subscriptions import find

router = APIRouter(tags=["OpenScale: metrics (v1)"], responses=ERRORS)


def samples(m: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per tag group (ratios, as v1 shows them)."""
    return [
        {"ts": m["timestamp"], "measurement_id": m["id"], "tags": g["tags"], "metrics": g["metrics"]}
        for g in value_groups(m, percentages=False)
    ]


def fairness_rows(m: dict[str, Any]) -> dict[str, Any]:
    """One fairness measurement in the v1 view: per attribute, its monitored groups' values."""
    details = m.get("details") or {}
    features: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for row in details.get("fairness_metrics") or []:
        side = "majority" if row.get("group") == "reference" else "minority"
        groups = features.setdefault(row["feature"], {"minority": [], "majority": []})
        groups[side].append(
            {
                "value": row.get("feature_value"),
                "is_biased": bool(row.get("fairness_biased")),
                "fairness_value": row.get("fairness_value"),
                "fav_class_percent": row.get("fairness_fav_class"),
            }
        )
    metrics = [
        {"feature": f, "minority": {"values": g["minority"]}, "majority": {"values": g["majority"]}}
        for f, g in features.items()
    ]
    return {
        "timestamp": m["timestamp"],
        "asset_revision": None,
        "measurement_id": m["id"],
        "value": {"metrics": metrics},
    }


@router.get("/v1/data_marts/{dm}/metrics", dependencies=[READ])
def metrics(
    dm: str,
    request: Request,
    subscription_id: str,
    monitor_definition_id: str | None = None,
    metric_type: str | None = None,
    format: str = "samples",
    start: datetime | None = None,
    end: datetime | None = None,
    binding_id: str | None = None,
    deployment_id: str | None = None,
    deployment_uid: str | None = None,
    limit: int = Query(100, ge=1, le=10_000),
) -> Any:
    data_mart_id(request, dm)
    sub = find(request, subscription_id, binding_id)
    if format != "samples":
        raise NotSupported("metrics are served as samples (format=samples); time series are not", field="format")
    monitor = monitor_definition_id or metric_type
    if not monitor:
        raise NotSupported("give monitor_definition_id (or metric_type=fairness)", field="monitor_definition_id")
    ms = service_of(request).monitors.measurements(
        sub.id, monitor=monitor, start=start, end=end, status="finished", limit=limit
    )
    if monitor_definition_id:
        return [row for m in ms for row in samples(m)]
    if metric_type == "fairness":
        return {"metrics": [fairness_rows(m) for m in ms]}
    raise NotSupported(
        f"metric_type={metric_type} is not served; ask monitor_definition_id={metric_type}", field="metric_type"
    )


@router.post("/v1/data_marts/{dm}/measurements", status_code=202, dependencies=[WRITE])
def store_measurements(dm: str, request: Request, response: Response, body: Any = Body(...)) -> list[dict[str, Any]]:
    """``subscription.monitoring.store_metrics``: a custom monitor's values, ``[{"monitor_definition_id",
    "subscription_id", "binding_id", "metrics": [{...}], "timestamp"}]``, each stored as a measurement."""
    data_mart_id(request, dm)
    items = body if isinstance(body, list) else [body]
    ignored = Ignored()
    svc = service_of(request)
    out = []
    for i, item in enumerate(items):
        item = body_object(item, f"measurement {i}")
        ignored.take(
            item,
            {"monitor_definition_id", "subscription_id", "binding_id", "asset_id", "metrics", "timestamp"},
            f"[{i}].",
        )
        sub = find(request, str(item.get("subscription_id")), item.get("binding_id"))
        m = svc.monitors.record(
            sub.id, str(item.get("monitor_definition_id")), item.get("metrics"), timestamp=item.get("timestamp")
        )
        out.append({"measurement_id": m["id"], "timestamp": m["timestamp"], "issue_count": len(m["violations"])})
    ignored.report(request, response)
    return out
