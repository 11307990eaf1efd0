"""OpenScale subscriptions (v2 ``/v2/subscriptions``, v1 ``.../service_bindings/{b}/subscriptions``):
Scrutiny's subscriptions, created and shown in OpenScale's shapes."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, Query, Request, Response

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
from scrutiny.core.subscription import PREDICTION_PROBABILITY, Subscription
from scrutiny.errors import InvalidInput, NotFound

router = APIRouter(tags=["OpenScale: subscriptions"], responses=ERRORS)

_SPARK = {"integer": "long", "double": "double", "string": "string", "boolean": "boolean", "json": "string"}
_ASSET_KEYS = frozenset(
    {
        "asset_id",
        "url",
        "name",
        "asset_type",
        "asset_rn",
        "created_at",
        "problem_type",
        "input_data_type",
        "description",
    }
)
_DEPLOYMENT_KEYS = frozenset(
    {
        "deployment_id",
        "url",
        "name",
        "deployment_type",
        "scoring_endpoint",
        "created_at",
        "deployment_rn",
        "description",
    }
)


def output_schema(sub: Subscription) -> dict[str, Any]:
    """The payload table's output columns with OpenScale's modeling roles (the 2020 SDK checks
    for the ``prediction`` and ``probability`` roles before it enables quality or fairness)."""
    layout = sub.layout
    kind = layout.prediction_kind.value if layout.prediction_kind else "string"
    fields = [
        {
            "name": layout.prediction_column,
            "type": _SPARK[kind],
            "nullable": True,
            "metadata": {"modeling_role": "prediction"},
        }
    ]
    if layout.probability_column:
        fields.append(
            {
                "name": layout.probability_column,
                "type": {"type": "array", "elementType": "double", "containsNull": True},
                "nullable": True,
                "metadata": {"modeling_role": "probability"},
            }
        )
        fields.append(
            {
                "name": PREDICTION_PROBABILITY,
                "type": "double",
                "nullable": True,
                "metadata": {"modeling_role": "prediction-probability"},
            }
        )
    return {"type": "struct", "fields": fields}


def asset_properties(sub: Subscription) -> dict[str, Any]:
    props = sub.properties.to_dict()
    props["feature_fields"] = sub.feature_fields or props.get("feature_fields", [])
    props["categorical_fields"] = sub.categorical_fields or props.get("categorical_fields", [])
    props["probability_fields"] = sub.properties.probability_columns
    if sub.labels is not None:
        props["labels"] = sub.labels
    if sub.layout.features:
        props["input_data_schema"] = sub.layout.features.to_struct()
    props["output_data_schema"] = output_schema(sub)
    return props


def asset(sub: Subscription) -> dict[str, Any]:
    out = {k: v for k, v in sub.asset.items() if k in _ASSET_KEYS}
    out.setdefault("asset_id", sub.deployment_id)
    out.setdefault("asset_type", "model")
    out.setdefault("name", sub.deployment.get("name") or sub.deployment_id)
    out["problem_type"] = sub.problem_type.value
    out["input_data_type"] = sub.properties.input_data_type
    return out


def deployment(sub: Subscription) -> dict[str, Any]:
    d = sub.deployment
    return {
        "deployment_id": sub.deployment_id,
        "name": d.get("name") or sub.deployment_id,
        "deployment_type": d.get("type") or "online",
        "description": d.get("description") or "",
        "created_at": d.get("created_at"),
        "deployment_rn": d.get("deployment_rn"),
        "url": sub.scoring_url,
        "scoring_endpoint": {"url": sub.scoring_url},
    }


def find(request: Request, sub_id: str, binding_id: str | None = None) -> Subscription:
    sub = service_of(request).subscriptions.get(sub_id)
    if binding_id is not None and sub.binding_id != binding_id:
        raise NotFound(f"binding {binding_id!r} has no subscription {sub_id!r}")
    return sub


def create(
    request: Request,
    *,
    binding_id: Any,
    asset_in: Any,
    deployment_in: Any,
    props_in: Any,
    ignored: Ignored,
    sub_id: str | None = None,
) -> Subscription:
    """One subscription from OpenScale's ``asset``, ``deployment`` and ``asset_properties``."""
    if not isinstance(binding_id, str) or not binding_id:
        raise InvalidInput("the service provider (binding) id is required", field="service_provider_id")
    asset_in = body_object(asset_in or {}, "asset")
    deployment_in = body_object(deployment_in or {}, "deployment")
    props = dict(body_object(props_in or {}, "asset_properties"))
    ignored.take(asset_in, _ASSET_KEYS, "asset.")
    ignored.take(deployment_in, _DEPLOYMENT_KEYS, "deployment.")
    for key in ("problem_type", "input_data_type"):
        if key not in props and asset_in.get(key):
            props[key] = asset_in[key]
    for key in ("training_data_reference", "training_data_schema", "dashboard_configuration"):
        if props.pop(key, None) not in (None, {}, []):
            ignored.add(f"asset_properties.{key}")
    if "probability_fields" in props and not props["probability_fields"]:
        props.pop("probability_fields")  # OpenScale sends [] for "none given"
    dep_id = deployment_in.get("deployment_id") or asset_in.get("asset_id")
    scoring = (deployment_in.get("scoring_endpoint") or {}).get("url") or deployment_in.get("url")
    manual = None
    if scoring:
        manual = {
            "id": dep_id,
            "name": deployment_in.get("name") or asset_in.get("name") or dep_id,
            "scoring_url": scoring,
            "type": deployment_in.get("deployment_type") or "online",
            "description": deployment_in.get("description") or "",
            "created_at": deployment_in.get("created_at"),
            "deployment_rn": deployment_in.get("deployment_rn"),
            "request_headers": (deployment_in.get("scoring_endpoint") or {}).get("request_headers"),
        }
        manual = {k: v for k, v in manual.items() if v is not None}
    asset_out = {k: v for k, v in asset_in.items() if k in _ASSET_KEYS and k not in ("problem_type", "input_data_type")}
    return service_of(request).subscriptions.create(
        binding_id=binding_id,
        deployment_id=dep_id,
        deployment=manual,
        asset_properties=props,
        asset=asset_out or None,
        sub_id=sub_id,
    )


# -- v2 ------------------------------------------------------------------------------------------


def v2_subscription(request: Request, sub: Subscription) -> dict[str, Any]:
    entity = {
        "data_mart_id": service_of(request).data_mart_id,
        "service_provider_id": sub.binding_id,
        "asset": asset(sub),
        "deployment": deployment(sub),
        "asset_properties": asset_properties(sub),
        "status": {"state": "active"},
    }
    return v2_resource(sub.id, v2_url(request, f"subscriptions/{sub.id}"), entity, sub.created_at)


@router.get(V2 + "/subscriptions", dependencies=[READ])
def list_v2(
    instance_id: str,
    request: Request,
    data_mart_id_: str | None = Query(None, alias="data_mart_id"),
    service_provider_id: str | None = None,
    asset_asset_id: str | None = Query(None, alias="asset.asset_id"),
    deployment_deployment_id: str | None = Query(None, alias="deployment.deployment_id"),
) -> dict[str, Any]:
    data_mart_id(request, instance_id)
    data_mart_id(request, data_mart_id_)
    subs = service_of(request).subscriptions.list(service_provider_id)
    if asset_asset_id:
        subs = [s for s in subs if asset(s)["asset_id"] == asset_asset_id]
    if deployment_deployment_id:
        subs = [s for s in subs if s.deployment_id == deployment_deployment_id]
    return {"subscriptions": [v2_subscription(request, s) for s in subs]}


@router.post(V2 + "/subscriptions", status_code=201, dependencies=[WRITE])
def create_v2(instance_id: str, request: Request, response: Response, body: Any = Body(...)) -> dict[str, Any]:
    """``{data_mart_id, service_provider_id, asset, deployment, asset_properties}``."""
    data_mart_id(request, instance_id)
    body = body_object(body)
    data_mart_id(request, body.get("data_mart_id"))
    ignored = Ignored()
    ignored.take(body, {"data_mart_id", "service_provider_id", "asset", "deployment", "asset_properties"})
    sub = create(
        request,
        binding_id=body.get("service_provider_id"),
        asset_in=body.get("asset"),
        deployment_in=body.get("deployment"),
        props_in=body.get("asset_properties"),
        ignored=ignored,
    )
    ignored.report(request, response)
    response.headers["Location"] = v2_url(request, f"subscriptions/{sub.id}")
    return v2_subscription(request, sub)


@router.get(V2 + "/subscriptions/{subscription_id}", dependencies=[READ])
def get_v2(instance_id: str, subscription_id: str, request: Request) -> dict[str, Any]:
    data_mart_id(request, instance_id)
    return v2_subscription(request, find(request, subscription_id))


@router.delete(V2 + "/subscriptions/{subscription_id}", status_code=202, dependencies=[WRITE])
def delete_v2(instance_id: str, subscription_id: str, request: Request) -> Response:
    data_mart_id(request, instance_id)
    service_of(request).subscriptions.delete(subscription_id)
    return Response(status_code=202)


# -- v1 ------------------------------------------------------------------------------------------

_V1 = "/v1/data_marts/{dm}/service_bindings/{binding_id}/subscriptions"


def v1_subscription(request: Request, dm: str, sub: Subscription) -> dict[str, Any]:
    entity = {
        "asset": asset(sub),
        "asset_properties": asset_properties(sub),
        "deployments": [deployment(sub)],
        "service_binding_id": sub.binding_id,
        "status": {"state": "active"},
    }
    url = v1_url(request, f"data_marts/{dm}/service_bindings/{sub.binding_id}/subscriptions/{sub.id}")
    return v1_resource(sub.id, url, entity, sub.created_at)


@router.get(_V1, dependencies=[READ])
def list_v1(dm: str, binding_id: str, request: Request) -> dict[str, Any]:
    real = data_mart_id(request, dm)
    service_of(request).bindings.get(binding_id)
    subs = service_of(request).subscriptions.list(binding_id)
    return {"subscriptions": [v1_subscription(request, real, s) for s in subs]}


@router.put(_V1 + "/{subscription_id}", status_code=201, dependencies=[WRITE])
def create_v1(
    dm: str, binding_id: str, subscription_id: str, request: Request, response: Response, body: Any = Body(...)
) -> dict[str, Any]:
    """``client.data_mart.subscriptions.add``: the client chooses the id; ``deployments`` holds one."""
    real = data_mart_id(request, dm)
    body = body_object(body)
    ignored = Ignored()
    ignored.take(body, {"asset", "asset_properties", "deployments"})
    deps = body.get("deployments") or []
    if not isinstance(deps, list):
        raise InvalidInput("deployments must be a list", field="deployments")
    if len(deps) > 1:
        raise InvalidInput("a subscription monitors one deployment; subscribe each deployment", field="deployments")
    sub = create(
        request,
        binding_id=binding_id,
        asset_in=body.get("asset"),
        deployment_in=deps[0] if deps else {},
        props_in=body.get("asset_properties"),
        ignored=ignored,
        sub_id=subscription_id,
    )
    ignored.report(request, response)
    return v1_subscription(request, real, sub)


@router.get(_V1 + "/{subscription_id}", dependencies=[READ])
def get_v1(dm: str, binding_id: str, subscription_id: str, request: Request) -> dict[str, Any]:
    real = data_mart_id(request, dm)
    return v1_subscription(request, real, find(request, subscription_id, binding_id))


@router.delete(_V1 + "/{subscription_id}", status_code=202, dependencies=[WRITE])
def delete_v1(dm: str, binding_id: str, subscription_id: str, request: Request) -> Response:
    data_mart_id(request, dm)
    find(request, subscription_id, binding_id)
    service_of(request).subscriptions.delete(subscription_id)
    return Response(status_code=202)
