"""OpenScale v1 monitor configurations (``.../subscriptions/{s}/configurations/{monitor}``), the
fairness monitor's own resource (``/v1/fairness_monitoring``) and quality evaluations: each one
is a subscription's monitor configuration or a run of it (a measurement)."""

from __future__ import annotations

from typing import Any

import anyio
from fastapi import APIRouter, Body, Query, Request, Response

from scrutiny.api.auth import READ, WRITE, service_of
from scrutiny.api.models import ERRORS
from scrutiny.api.openscale.common import Ignored, NotSupported, body_object, data_mart_id
from scrutiny.api.openscale.subscriptions import find
from scrutiny.core.subscription import Subscription
from scrutiny.errors import InvalidInput, NotFound
from scrutiny.monitors import registry
from scrutiny.monitors.builtin.fairness.config import openscale_thresholds
from scrutiny.monitors.builtin.quality.monitor import PRIMARY

router = APIRouter(tags=["OpenScale: monitor configurations (v1)"], responses=ERRORS)

_SUB = "/v1/data_marts/{dm}/service_bindings/{binding_id}/subscriptions/{subscription_id}"
# v1 configuration names -> Scrutiny monitors
MONITORS = {
    "quality_monitoring": "quality",
    "performance_monitoring": "performance",
    "fairness_monitoring": "fairness",
    "drift_monitoring": "drift",
}


def monitor_of(configuration: str) -> str:
    """The monitor a v1 configuration names: a built-in's ``<name>_monitoring``, or a custom monitor's id."""
    monitor = MONITORS.get(configuration)
    if monitor is None and (custom := registry.find(configuration)) is not None and not custom.computed:
        monitor = custom.name
    if monitor is None:
        known = ", ".join(["payload_logging", *MONITORS])
        raise NotFound(f"configuration {configuration!r} not found; Scrutiny has {known}")
    return monitor


def quality_config(sub: Subscription, params: dict[str, Any], ignored: Ignored) -> dict[str, Any]:
    """v1 quality parameters: ``evaluation_definition.threshold`` is the lower limit of the
    problem type's primary metric (AUC for binary, accuracy for multiclass, R² for regression)."""
    config: dict[str, Any] = {}
    for key in ("min_feedback_data_size", "max_rows_per_evaluation"):
        if key in params:
            config[key] = params[key]
    definition = params.get("evaluation_definition") or {}
    if not isinstance(definition, dict):
        raise InvalidInput("evaluation_definition must be an object", field="parameters.evaluation_definition")
    method = definition.get("method")
    if method is not None and method != sub.problem_type.value:
        raise InvalidInput(
            f"evaluation_definition.method {method!r} is not the subscription's problem type {sub.problem_type.value!r}",
            field="parameters.evaluation_definition.method",
        )
    if definition.get("threshold") is not None:
        metric = PRIMARY[sub.problem_type.value]
        config["thresholds"] = [{"metric": metric, "type": "lower_limit", "value": definition["threshold"]}]
    ignored.take(params, {"min_feedback_data_size", "max_rows_per_evaluation", "evaluation_definition"}, "parameters.")
    ignored.take(definition, {"method", "threshold"}, "parameters.evaluation_definition.")
    return config


def v1_view(sub: Subscription, view: dict[str, Any]) -> dict[str, Any]:
    params = dict(view["config"] or {})
    if view["monitor"] == "quality":
        primary = PRIMARY[sub.problem_type.value]
        limit = next((t["value"] for t in view["thresholds"] if t["metric"] == primary), None)
        params["evaluation_definition"] = {"method": sub.problem_type.value, "threshold": limit}
    return {"enabled": view["enabled"], "parameters": params, "thresholds": view["thresholds"]}


@router.get(_SUB + "/configurations/{configuration}", dependencies=[READ])
def get_configuration(
    dm: str, binding_id: str, subscription_id: str, configuration: str, request: Request
) -> dict[str, Any]:
    data_mart_id(request, dm)
    sub = find(request, subscription_id, binding_id)
    monitor = monitor_of(configuration)
    return v1_view(sub, service_of(request).monitors.get(sub.id, monitor))


@router.put(_SUB + "/configurations/{configuration}", dependencies=[WRITE])
async def put_configuration(
    dm: str,
    binding_id: str,
    subscription_id: str,
    configuration: str,
    request: Request,
    response: Response,
    body: Any = Body(...),
) -> dict[str, Any]:
    """``{"enabled": true|false, "parameters": {...}}``: enable with that configuration, or disable."""
    data_mart_id(request, dm)
    sub = find(request, subscription_id, binding_id)
    monitor = monitor_of(configuration)
    body = body_object(body)
    ignored = Ignored()
    ignored.take(body, {"enabled", "parameters", "thresholds"})
    svc = service_of(request)
    if body.get("enabled") is False:
        return v1_view(sub, svc.monitors.disable(sub.id, monitor))
    params = body.get("parameters") or {}
    if not isinstance(params, dict):
        raise InvalidInput("parameters must be an object", field="parameters")
    config = quality_config(sub, params, ignored) if monitor == "quality" else dict(params)
    if isinstance(body.get("thresholds"), list):  # [{"metric_id", "type", "value"}]
        config["thresholds"] = [*config.get("thresholds", []), *openscale_thresholds(body["thresholds"])]
    view = await anyio.to_thread.run_sync(lambda: svc.monitors.configure(sub.id, monitor, config))
    ignored.report(request, response)
    return v1_view(sub, view)


# -- fairness ------------------------------------------------------------------------------------


def fairness_status(request: Request, sub: Subscription) -> dict[str, Any]:
    """The fairness configuration with ``last_run_status`` (``FINISHED``, or ``FINISHED WITH
    ERRORS`` and ``last_run_info_code`` when the last run failed or had too few records)."""
    svc = service_of(request)
    view = svc.monitors.get(sub.id, "fairness")
    params = dict(view["config"] or {})
    latest = svc.monitors.measurements(sub.id, monitor="fairness", limit=1)
    if latest:
        m = latest[0]
        params["last_run_status"] = "FINISHED" if m["status"] == "finished" else "FINISHED WITH ERRORS"
        params["last_run_time"] = m["timestamp"]
        if m["status"] != "finished":
            params["last_run_info_code"] = m.get("message") or m["status"]
    entity = {"asset_id": sub.id, "deployment_id": sub.deployment_id, "enabled": view["enabled"], "parameters": params}
    return {"metadata": {"guid": sub.id}, "entity": entity}


def class_labels(distributions: Any, ignored: Ignored) -> list[Any] | None:
    """The training data's class labels from the distributions the SDK computed (the entry with
    ``is_class_label``), sorted as Scrutiny orders training labels. The per-attribute
    distributions are not needed (Scrutiny keeps its own training statistics): reported."""
    if not isinstance(distributions, list):
        return None
    labels = None
    for i, d in enumerate(distributions):
        if isinstance(d, dict) and d.get("is_class_label") and isinstance(d.get("distinct_values"), list):
            labels = sorted(d["distinct_values"], key=lambda v: (str(type(v)), v))
        else:
            ignored.add(f"distributions[{i}]")
    return labels


@router.post("/v1/fairness_monitoring", status_code=202, dependencies=[WRITE])
async def configure_fairness(request: Request, response: Response, body: Any = Body(...)) -> dict[str, Any]:
    """``subscription.fairness_monitoring.enable``: ``asset_id`` is the subscription,
    ``parameters`` the configuration. When the subscription does not know its class labels yet
    (no training data), they are taken from the training distributions the SDK sends."""
    body = body_object(body)
    data_mart_id(request, body.get("data_mart_id"))
    sub = find(request, str(body.get("asset_id")))
    params = body.get("parameters")
    if not isinstance(params, dict):
        raise InvalidInput(
            "parameters is required: {features, favourable_class, unfavourable_class, min_records}", field="parameters"
        )
    ignored = Ignored()
    ignored.take(body, {"data_mart_id", "asset_id", "deployment_id", "parameters", "distributions"})
    labels = class_labels(body.get("distributions"), ignored)
    svc = service_of(request)
    if labels is not None and svc.subscriptions.get(sub.id).labels is None:
        await anyio.to_thread.run_sync(lambda: svc.subscriptions.set_labels(sub.id, labels))
    await anyio.to_thread.run_sync(lambda: svc.monitors.configure(sub.id, "fairness", params))
    ignored.report(request, response)
    return fairness_status(request, sub)


@router.get("/v1/fairness_monitoring", dependencies=[READ])
def fairness_details(
    request: Request,
    asset_id: str,
    data_mart_id_: str | None = Query(None, alias="data_mart_id"),
    deployment_id: str | None = None,
    service_binding_id: str | None = None,
) -> dict[str, Any]:
    data_mart_id(request, data_mart_id_)
    return fairness_status(request, find(request, asset_id, service_binding_id))


@router.post("/v1/fairness_monitoring/{subscription_id}/runs", status_code=202, dependencies=[WRITE])
async def run_fairness(subscription_id: str, request: Request, body: Any = Body(None)) -> dict[str, Any]:
    """Runs fairness now; ``GET /v1/fairness_monitoring?asset_id=`` then shows its status."""
    if isinstance(body, dict):
        data_mart_id(request, body.get("data_mart_id"))
    sub = find(request, subscription_id)
    svc = service_of(request)
    m = await anyio.to_thread.run_sync(lambda: svc.monitors.run(sub.id, "fairness"))
    return {"id": m["id"], "status": m["status"], **fairness_status(request, sub)}


# -- quality evaluations -------------------------------------------------------------------------


def evaluation(m: dict[str, Any]) -> dict[str, Any]:
    out = {"id": m["id"], "status": "completed" if m["status"] == "finished" else "failed", "timestamp": m["timestamp"]}
    if m["status"] != "finished":
        out["error"] = m.get("message") or m["status"]
    return out


@router.post(_SUB + "/evaluations", dependencies=[WRITE])
async def run_evaluation(
    dm: str, binding_id: str, subscription_id: str, request: Request, model_type: str = "original"
) -> dict[str, Any]:
    """``subscription.quality_monitoring.run``: runs quality now (``model_type=original``)."""
    data_mart_id(request, dm)
    if model_type != "original":
        raise NotSupported("Scrutiny evaluates the original model only (model_type=original)", field="model_type")
    sub = find(request, subscription_id, binding_id)
    svc = service_of(request)
    return evaluation(await anyio.to_thread.run_sync(lambda: svc.monitors.run(sub.id, "quality")))


@router.get(_SUB + "/evaluations/{evaluation_id}", dependencies=[READ])
def get_evaluation(
    dm: str, binding_id: str, subscription_id: str, evaluation_id: str, request: Request
) -> dict[str, Any]:
    data_mart_id(request, dm)
    sub = find(request, subscription_id, binding_id)
    m = service_of(request).monitors.measurement(sub.id, evaluation_id)
    if m["monitor"] != "quality":
        raise NotFound(f"evaluation {evaluation_id!r} not found")
    return evaluation(m)
