"""OpenScale monitor instances (``/v2/monitor_instances``), their runs and measurements: a
monitor instance is a subscription's monitor configuration (id ``<subscription>.<monitor>``), a
run is a measurement (the run id is the measurement id), and a run is computed before the POST
answers, so it is ``finished`` (or ``error``) when the client first polls it."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import anyio
from fastapi import APIRouter, Body, Query, Request, Response

from scrutiny.api.auth import READ, WRITE, service_of
from scrutiny.api.models import ERRORS
from scrutiny.api.openscale.common import (
    V2,
    Ignored,
    NotSupported,
    body_object,
    compound_id,
    data_mart_id,
    split_id,
    v2_resource,
    v2_url,
)
from scrutiny.api.openscale.monitor_definitions import EXPLAINABILITY
from scrutiny.api.openscale.subscriptions import find
from scrutiny.core.subscription import Subscription
from scrutiny.errors import InvalidInput, NotFound
from scrutiny.monitors import registry
from scrutiny.monitors.builtin.fairness.config import RATIO_METRICS, openscale_thresholds

router = APIRouter(tags=["OpenScale: monitor instances"], responses=ERRORS)

# Qualified metric ids (``fairness_value.Age``) are OpenScale metrics with a tag.
QUALIFIER_TAG = "feature"
_INSTANCE_KEYS = frozenset({"data_mart_id", "monitor_definition_id", "target", "parameters", "thresholds", "schedule"})
_SCHEDULE_KEYS = frozenset({"repeat_interval", "repeat_unit"})


def percent(metric: str, value: float | None) -> float | None:
    """v2 shows fairness ratios as percentages (its thresholds are percentages too)."""
    if value is None or metric.split(".", 1)[0] not in RATIO_METRICS:
        return value
    return value * 100


# -- configuration ---------------------------------------------------------------------------------


def config_from_v2(body: dict[str, Any], ignored: Ignored) -> dict[str, Any]:
    """A v2 instance body as the monitor's configuration: ``parameters`` flattened, thresholds
    ``{metric_id, type, value, specific_values}`` as Scrutiny's (fairness percentages as ratios)."""
    params = body.get("parameters") or {}
    if not isinstance(params, dict):
        raise InvalidInput("parameters must be an object", field="parameters")
    config = dict(params)
    thresholds = body.get("thresholds")
    if thresholds:
        if not isinstance(thresholds, list):
            raise InvalidInput("thresholds must be a list", field="thresholds")
        config["thresholds"] = openscale_thresholds(thresholds)
    schedule = body.get("schedule")
    if isinstance(schedule, dict) and schedule:
        ignored.take(schedule, _SCHEDULE_KEYS, "schedule.")
        config["schedule"] = {k: v for k, v in schedule.items() if k in _SCHEDULE_KEYS}
    return config


def thresholds_to_v2(thresholds: list[dict[str, Any]]) -> list[dict[str, Any]]:
    by_metric: dict[tuple[str, str], dict[str, Any]] = {}
    for t in thresholds:
        metric, _, qualifier = t["metric"].partition(".")
        entry = by_metric.setdefault((metric, t["type"]), {"metric_id": metric, "type": t["type"]})
        value = percent(metric, t["value"])
        if qualifier:
            tag = {"type": "tag", "key": QUALIFIER_TAG, "value": qualifier}
            entry.setdefault("specific_values", []).append({"applies_to": [tag], "value": value})
        else:
            entry["value"] = value
    return list(by_metric.values())


def resolve(request: Request, instance_id: str) -> tuple[Subscription, str]:
    sub_id, monitor = split_id(instance_id, "monitor instance")
    sub = find(request, sub_id)
    if registry.find(monitor) is None:
        raise NotFound(f"monitor instance {instance_id!r} not found")
    return sub, monitor


def instance(request: Request, sub: Subscription, view: dict[str, Any]) -> dict[str, Any]:
    entity = {
        "data_mart_id": service_of(request).data_mart_id,
        "monitor_definition_id": view["monitor"],
        "target": {"target_type": "subscription", "target_id": sub.id},
        "parameters": view["config"] or {},
        "thresholds": thresholds_to_v2(view["thresholds"]),
        "schedule": view["schedule"],
        "status": {"state": "active" if view["enabled"] else "inactive"},
    }
    if view.get("last_run_at"):
        entity["status"]["last_run_at"] = view["last_run_at"]
    mi_id = compound_id(sub.id, view["monitor"])
    return v2_resource(mi_id, v2_url(request, f"monitor_instances/{mi_id}"), entity, view.get("updated_at"))


@router.get(V2 + "/monitor_instances", dependencies=[READ])
def list_instances(
    instance_id: str,
    request: Request,
    target_id: str | None = Query(None, alias="target.target_id"),
    target_type: str | None = Query(None, alias="target.target_type"),
    monitor_definition_id: str | None = None,
    data_mart_id_: str | None = Query(None, alias="data_mart_id"),
) -> dict[str, Any]:
    """Enabled monitors of every subscription (or of ``target.target_id``)."""
    data_mart_id(request, instance_id)
    data_mart_id(request, data_mart_id_)
    if target_type not in (None, "subscription"):
        return {"monitor_instances": []}
    svc = service_of(request)
    subs = [find(request, i) for i in target_id.split(",")] if target_id else svc.subscriptions.list()
    wanted = set(monitor_definition_id.split(",")) if monitor_definition_id else None
    out = []
    for sub in subs:
        for view in svc.monitors.configs(sub.id):
            if view["enabled"] and view["config"] is not None and (wanted is None or view["monitor"] in wanted):
                out.append(instance(request, sub, view))
    return {"monitor_instances": out}


@router.post(V2 + "/monitor_instances", status_code=201, dependencies=[WRITE])
async def create_instance(
    instance_id: str, request: Request, response: Response, body: Any = Body(...)
) -> dict[str, Any]:
    """``{monitor_definition_id, target, parameters, thresholds, schedule}``: enables the
    monitor on the target subscription with that configuration (again: reconfigures it)."""
    data_mart_id(request, instance_id)
    body = body_object(body)
    data_mart_id(request, body.get("data_mart_id"))
    ignored = Ignored()
    ignored.take(body, _INSTANCE_KEYS)
    target = body.get("target") or {}
    if not isinstance(target, dict) or target.get("target_type", "subscription") != "subscription":
        raise NotSupported("monitor instances target a subscription (target.target_type: subscription)", field="target")
    name = body.get("monitor_definition_id")
    if name == EXPLAINABILITY:
        raise NotSupported(
            "explanations need no monitor instance in Scrutiny: ask for one with "
            "POST /v1/subscriptions/{id}/explanations",
            field="monitor_definition_id",
        )
    if not isinstance(name, str) or registry.find(name) is None:
        raise NotFound(f"monitor definition {name!r} not found", field="monitor_definition_id")
    sub = find(request, str(target.get("target_id")))
    config = config_from_v2(body, ignored)
    svc = service_of(request)
    view = await anyio.to_thread.run_sync(lambda: svc.monitors.configure(sub.id, name, config))
    ignored.report(request, response)
    out = instance(request, sub, view)
    response.headers["Location"] = out["metadata"]["url"]
    return out


@router.get(V2 + "/monitor_instances/{monitor_instance_id}", dependencies=[READ])
def get_instance(instance_id: str, monitor_instance_id: str, request: Request) -> dict[str, Any]:
    data_mart_id(request, instance_id)
    sub, monitor = resolve(request, monitor_instance_id)
    return instance(request, sub, service_of(request).monitors.get(sub.id, monitor))


@router.delete(V2 + "/monitor_instances/{monitor_instance_id}", status_code=202, dependencies=[WRITE])
def delete_instance(instance_id: str, monitor_instance_id: str, request: Request) -> Response:
    """Disables the monitor; its measurements are kept."""
    data_mart_id(request, instance_id)
    sub, monitor = resolve(request, monitor_instance_id)
    service_of(request).monitors.disable(sub.id, monitor)
    return Response(status_code=202)


# -- runs ------------------------------------------------------------------------------------------

_STATE = {"finished": "finished", "error": "error", "insufficient_data": "error"}


def run(request: Request, sub: Subscription, m: dict[str, Any]) -> dict[str, Any]:
    status: dict[str, Any] = {
        "state": _STATE.get(m["status"], m["status"]),
        "queued_at": m["timestamp"],
        "started_at": m["timestamp"],
        "completed_at": m["timestamp"],
    }
    if m["status"] != "finished":
        status["message"] = m.get("message")
        status["failure"] = {
            "trace": m["id"],
            "errors": [{"code": m["status"], "message": m.get("message") or m["status"]}],
        }
    entity = {"triggered_by": "scheduler" if m["trigger"] == "schedule" else "user", "status": status}
    mi_id = compound_id(sub.id, m["monitor"])
    return v2_resource(m["id"], v2_url(request, f"monitor_instances/{mi_id}/runs/{m['id']}"), entity, m["timestamp"])


@router.post(V2 + "/monitor_instances/{monitor_instance_id}/runs", status_code=201, dependencies=[WRITE])
async def start_run(
    instance_id: str, monitor_instance_id: str, request: Request, response: Response, body: Any = Body(None)
) -> dict[str, Any]:
    """Runs the monitor now; the run is the measurement it stored (``error`` with the reason when
    it failed or had too few records)."""
    data_mart_id(request, instance_id)
    sub, monitor = resolve(request, monitor_instance_id)
    if not registry.get(monitor).computed:
        raise NotSupported(f"{monitor} is a custom monitor: post its values to .../measurements", field="monitor")
    ignored = Ignored()
    if isinstance(body, dict):
        ignored.take(body, {"triggered_by"})
    svc = service_of(request)
    m = await anyio.to_thread.run_sync(lambda: svc.monitors.run(sub.id, monitor))
    ignored.report(request, response)
    return run(request, sub, m)


@router.get(V2 + "/monitor_instances/{monitor_instance_id}/runs", dependencies=[READ])
def list_runs(
    instance_id: str,
    monitor_instance_id: str,
    request: Request,
    limit: int = Query(100, ge=1, le=10_000),
    start: datetime | None = None,
    end: datetime | None = None,
) -> dict[str, Any]:
    data_mart_id(request, instance_id)
    sub, monitor = resolve(request, monitor_instance_id)
    ms = service_of(request).monitors.measurements(sub.id, monitor=monitor, start=start, end=end, limit=limit)
    return {"runs": [run(request, sub, m) for m in ms]}


def measurement_of(request: Request, sub: Subscription, monitor: str, measurement_id: str) -> dict[str, Any]:
    m = service_of(request).monitors.measurement(sub.id, measurement_id)
    if m["monitor"] != monitor:
        raise NotFound(f"{monitor} has no run or measurement {measurement_id!r}")
    return m


@router.get(V2 + "/monitor_instances/{monitor_instance_id}/runs/{run_id}", dependencies=[READ])
def get_run(instance_id: str, monitor_instance_id: str, run_id: str, request: Request) -> dict[str, Any]:
    data_mart_id(request, instance_id)
    sub, monitor = resolve(request, monitor_instance_id)
    return run(request, sub, measurement_of(request, sub, monitor, run_id))


# -- measurements ----------------------------------------------------------------------------------


def value_groups(m: dict[str, Any], percentages: bool = True) -> list[dict[str, Any]]:
    """A measurement's values as OpenScale's ``values``: unqualified metrics in one group,
    ``metric.qualifier`` in a group per qualifier tagged ``feature``; limits beside each value.
    ``percentages``: fairness ratios as v2 shows them (v1 shows ratios)."""
    scale = percent if percentages else (lambda metric, value: value)
    limits: dict[str, dict[str, float]] = {}
    for t in m["thresholds"]:
        limits.setdefault(t["metric"], {})[t["type"]] = t["value"]
    groups: dict[str, list[dict[str, Any]]] = {}
    for key, value in m["values"].items():
        metric, _, qualifier = key.partition(".")
        item: dict[str, Any] = {"id": metric, "value": scale(metric, value)}
        for kind, limit in limits.get(key, {}).items():
            item[kind] = scale(metric, limit)
        groups.setdefault(qualifier, []).append(item)
    tags = list((m.get("details") or {}).get("tags") or [])
    out = []
    for qualifier, metrics in groups.items():
        group_tags = [*tags, {"id": QUALIFIER_TAG, "value": qualifier}] if qualifier else tags
        out.append({"metrics": metrics, "tags": group_tags})
    return out


def measurement(request: Request, sub: Subscription, m: dict[str, Any]) -> dict[str, Any]:
    mi_id = compound_id(sub.id, m["monitor"])
    entity = {
        "timestamp": m["timestamp"],
        "run_id": m["id"],
        "monitor_instance_id": mi_id,
        "monitor_definition_id": m["monitor"],
        "target": {"target_type": "subscription", "target_id": sub.id},
        "values": value_groups(m),
        "issue_count": len(m["violations"]),
        "status": m["status"],
        "records": m["records"],
    }
    url = v2_url(request, f"monitor_instances/{mi_id}/measurements/{m['id']}")
    return v2_resource(m["id"], url, entity, m["timestamp"])


@router.get(V2 + "/monitor_instances/{monitor_instance_id}/measurements", dependencies=[READ])
def list_measurements(
    instance_id: str,
    monitor_instance_id: str,
    request: Request,
    start: datetime | None = None,
    end: datetime | None = None,
    run_id: str | None = None,
    limit: int = Query(100, ge=1, le=10_000),
    offset: int = Query(0, ge=0, le=100_000_000),
) -> dict[str, Any]:
    """Finished measurements, newest first (``run_id``: that run's measurement)."""
    data_mart_id(request, instance_id)
    sub, monitor = resolve(request, monitor_instance_id)
    if run_id:
        m = measurement_of(request, sub, monitor, run_id)
        ms = [m] if m["status"] == "finished" else []
    else:
        ms = service_of(request).monitors.measurements(
            sub.id, monitor=monitor, start=start, end=end, status="finished", limit=limit, offset=offset
        )
    return {"measurements": [measurement(request, sub, m) for m in ms], "total_count": len(ms)}


@router.post(V2 + "/monitor_instances/{monitor_instance_id}/measurements", status_code=202, dependencies=[WRITE])
def post_measurements(
    instance_id: str, monitor_instance_id: str, request: Request, response: Response, body: Any = Body(...)
) -> list[dict[str, Any]]:
    """A custom monitor's values: ``[{"timestamp", "metrics": [{"<metric>": value, "<tag>": value}],
    "run_id"?}]``, each stored as a measurement with the limits in force (violations open alerts)."""
    data_mart_id(request, instance_id)
    sub, monitor = resolve(request, monitor_instance_id)
    items = body if isinstance(body, list) else [body]
    ignored = Ignored()
    svc = service_of(request)
    out = []
    for i, item in enumerate(items):
        item = body_object(item, f"measurement {i}")
        ignored.take(item, {"timestamp", "metrics", "run_id"}, f"[{i}].")
        m = svc.monitors.record(
            sub.id, monitor, item.get("metrics"), timestamp=item.get("timestamp"), source=item.get("run_id")
        )
        out.append(measurement(request, sub, m))
    ignored.report(request, response)
    return out


@router.get(V2 + "/monitor_instances/{monitor_instance_id}/measurements/{measurement_id}", dependencies=[READ])
def get_measurement(
    instance_id: str, monitor_instance_id: str, measurement_id: str, request: Request
) -> dict[str, Any]:
    data_mart_id(request, instance_id)
    sub, monitor = resolve(request, monitor_instance_id)
    return measurement(request, sub, measurement_of(request, sub, monitor, measurement_id))
