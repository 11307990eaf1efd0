"""OpenScale monitor definitions (``/v2/monitor_definitions``): Scrutiny's monitors under
OpenScale's ids (``quality``, ``fairness``, ``drift``, ``performance``), whose display names
the v2 SDK turns into ``client.monitor_definitions.MONITORS.QUALITY.ID`` and friends."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, Request, Response

from scrutiny.api.auth import READ, WRITE, service_of
from scrutiny.api.models import ERRORS
from scrutiny.api.openscale.common import (
    V2,
    Ignored,
    body_object,
    data_mart_id,
    v1_resource,
    v1_url,
    v2_resource,
    v2_url,
)
from scrutiny.errors import NotFound
from scrutiny.monitors import registry
from scrutiny.monitors.base import Direction, Monitor
from scrutiny.monitors.custom import CustomMonitor

router = APIRouter(tags=["OpenScale: monitor definitions"], responses=ERRORS)

# OpenScale's explainability is a monitor there; in Scrutiny explanations are always available
# (POST /v1/subscriptions/{id}/explanations) and need no monitor instance.
EXPLAINABILITY = "explainability"
_DIRECTION = {Direction.HIGHER: "increasing", Direction.LOWER: "decreasing"}


def title(metric_id: str) -> str:
    return metric_id.replace("_", " ").capitalize()


def definition(request: Request, mon: Monitor) -> dict[str, Any]:
    """A monitor as OpenScale shows it; a custom one with its own names, defaults and tags."""
    own = mon.definition if isinstance(mon, CustomMonitor) else None
    defaults = {m["id"]: m for m in own["metrics"]} if own else {}
    metrics = []
    for metric_id, m in mon.metrics.items():
        name = defaults[metric_id]["name"] if metric_id in defaults else title(metric_id)
        item: dict[str, Any] = {"id": metric_id, "name": name, "description": m.description}
        if m.direction in _DIRECTION:
            item["expected_direction"] = _DIRECTION[m.direction]
        if metric_id in defaults:
            item["thresholds"] = defaults[metric_id]["thresholds"]
        metrics.append(item)
    entity = {
        "name": own["name"] if own else title(mon.name),
        "description": mon.description,
        "metrics": metrics,
        "tags": [{"id": t["name"], **t} for t in own["tags"]] if own else [],
        "applies_to": {"problem_type": ["binary", "multiclass", "regression"], "input_data_type": ["structured"]},
    }
    created = own.get("created_at") if own else None
    return v2_resource(mon.name, v2_url(request, f"monitor_definitions/{mon.name}"), entity, created)


def explainability(request: Request) -> dict[str, Any]:
    entity = {
        "name": "Explainability",
        "description": "explanations of single transactions, on request (no monitor instance needed)",
        "metrics": [],
        "tags": [],
    }
    return v2_resource(EXPLAINABILITY, v2_url(request, f"monitor_definitions/{EXPLAINABILITY}"), entity)


@router.get(V2 + "/monitor_definitions", dependencies=[READ])
def list_definitions(instance_id: str, request: Request) -> dict[str, Any]:
    """The built-in monitors, explainability, and this data mart's custom monitors."""
    data_mart_id(request, instance_id)
    items = [definition(request, m) for m in registry.all_monitors() if m.computed]
    items.append(explainability(request))
    items += [definition(request, registry.get(d["id"])) for d in service_of(request).monitors.definitions()]
    return {"monitor_definitions": items}


_DEFINITION_KEYS = frozenset({"name", "description", "metrics", "tags"})


@router.post(V2 + "/monitor_definitions", status_code=201, dependencies=[WRITE])
def create_definition(instance_id: str, request: Request, response: Response, body: Any = Body(...)) -> dict[str, Any]:
    """A custom monitor: ``{"name", "metrics": [{"name", "thresholds": [{"type", "default"}]}],
    "tags": [{"name", "description"}]}``; its values are posted to its monitor instances'
    ``measurements``. Scheduling and runtimes (``schedule``, ``monitor_runtime``) are reported as
    ignored: Scrutiny never calls out to compute custom metrics."""
    data_mart_id(request, instance_id)
    ignored = Ignored()
    row = define(request, body, ignored)
    ignored.report(request, response)
    return definition(request, registry.get(row["id"]))


def define(request: Request, body: Any, ignored: Ignored) -> dict[str, Any]:
    body = body_object(body)
    ignored.take(body, _DEFINITION_KEYS)
    for i, m in enumerate(body.get("metrics") or []):
        if isinstance(m, dict):
            ignored.take(m, {"name", "description", "thresholds", "required"}, f"metrics[{i}].")
    return dict(service_of(request).monitors.define(body))


# -- v1 (the 2020 SDK's data_mart.monitors) ----------------------------------------------------------


def v1_definition(request: Request, dm: str, mon: Monitor) -> dict[str, Any]:
    v2 = definition(request, mon)
    return v1_resource(mon.name, v1_url(request, f"data_marts/{dm}/monitor_definitions/{mon.name}"), v2["entity"])


@router.get("/v1/data_marts/{dm}/monitor_definitions", dependencies=[READ])
def list_v1(dm: str, request: Request) -> dict[str, Any]:
    real = data_mart_id(request, dm)
    mons = [m for m in registry.all_monitors() if m.computed]
    mons += [registry.get(d["id"]) for d in service_of(request).monitors.definitions()]
    return {"monitor_definitions": [v1_definition(request, real, m) for m in mons]}


@router.post("/v1/data_marts/{dm}/monitor_definitions", status_code=201, dependencies=[WRITE])
def create_v1(dm: str, request: Request, response: Response, body: Any = Body(...)) -> dict[str, Any]:
    """``client.data_mart.monitors.add``: a custom monitor (``metrics[].thresholds`` hold the defaults)."""
    real = data_mart_id(request, dm)
    ignored = Ignored()
    row = define(request, body, ignored)
    ignored.report(request, response)
    return v1_definition(request, real, registry.get(row["id"]))


@router.get("/v1/data_marts/{dm}/monitor_definitions/{definition_id}", dependencies=[READ])
def get_v1(dm: str, definition_id: str, request: Request) -> dict[str, Any]:
    real = data_mart_id(request, dm)
    mon = registry.find(definition_id)
    if mon is None:
        raise NotFound(f"monitor definition {definition_id!r} not found")
    return v1_definition(request, real, mon)


@router.get(V2 + "/monitor_definitions/{definition_id}", dependencies=[READ])
def get_definition(instance_id: str, definition_id: str, request: Request) -> dict[str, Any]:
    data_mart_id(request, instance_id)
    if definition_id == EXPLAINABILITY:
        return explainability(request)
    mon = registry.find(definition_id)
    if mon is None:
        raise NotFound(f"monitor definition {definition_id!r} not found")
    return definition(request, mon)
