"""OpenScale monitor definitions (``/v2/monitor_definitions``): Scrutiny's monitors under
OpenScale's ids (``quality``, ``fairness``, ``drift``, ``performance``), whose display names
the v2 SDK turns into ``client.monitor_definitions.MONITORS.QUALITY.ID`` and friends."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from scrutiny.api.auth import READ
from scrutiny.api.models import ERRORS
from scrutiny.api.openscale.common import V2, data_mart_id, v2_resource, v2_url
from scrutiny.errors import NotFound
from scrutiny.monitors import registry
from scrutiny.monitors.base import Direction, Monitor

router = APIRouter(tags=["OpenScale: monitor definitions"], responses=ERRORS)

# OpenScale's explainability is a monitor there; in Scrutiny explanations are always available
# (POST /v1/subscriptions/{id}/explanations) and need no monitor instance.
EXPLAINABILITY = "explainability"
_DIRECTION = {Direction.HIGHER: "increasing", Direction.LOWER: "decreasing"}


def title(metric_id: str) -> str:
    return metric_id.replace("_", " ").capitalize()


def definition(request: Request, mon: Monitor) -> dict[str, Any]:
    metrics = []
    for metric_id, m in mon.metrics.items():
        item: dict[str, Any] = {"id": metric_id, "name": title(metric_id), "description": m.description}
        if m.direction in _DIRECTION:
            item["expected_direction"] = _DIRECTION[m.direction]
        metrics.append(item)
    entity = {
        "name": title(mon.name),
        "description": mon.description,
        "metrics": metrics,
        "tags": [],
        "applies_to": {"problem_type": ["binary", "multiclass", "regression"], "input_data_type": ["structured"]},
    }
    return v2_resource(mon.name, v2_url(request, f"monitor_definitions/{mon.name}"), entity)


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
    data_mart_id(request, instance_id)
    items = [definition(request, m) for m in registry.all_monitors()]
    items.append(explainability(request))
    return {"monitor_definitions": items}


@router.get(V2 + "/monitor_definitions/{definition_id}", dependencies=[READ])
def get_definition(instance_id: str, definition_id: str, request: Request) -> dict[str, Any]:
    data_mart_id(request, instance_id)
    if definition_id == EXPLAINABILITY:
        return explainability(request)
    mon = registry.find(definition_id)
    if mon is None:
        raise NotFound(f"monitor definition {definition_id!r} not found")
    return definition(request, mon)
