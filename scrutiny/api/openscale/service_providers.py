"""OpenScale service providers (v2) and service bindings (v1): Scrutiny's engine bindings, and
discovery of their deployments in the gateway's normalised shape (``/v1/ml_instances``)."""

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
from scrutiny.engines import Deployment
from scrutiny.errors import InvalidInput
from scrutiny.store.catalog import BindingRow

router = APIRouter(tags=["OpenScale: service providers"], responses=ERRORS)

# Scrutiny's engine type -> OpenScale's service_type (OpenScale's names are accepted on input as
# aliases by the engine registry).
SERVICE_TYPES = {
    "custom": "custom_machine_learning",
    "sagemaker": "amazon_sagemaker",
    "azure_ml_studio": "azure_machine_learning",
    "azure_ml_service": "azure_machine_learning_service",
}
_KNOWN = frozenset({"name", "service_type", "credentials", "request_headers", "description"})
# Where OpenScale files the provider (pre-production or production space, a project): Scrutiny
# has one space, so these are reported as ignored.
_PLACEMENT = frozenset(
    {"operational_space_id", "deployment_space_id", "integrated_project_id", "group_ids", "user_ids"}
)


def service_type(row: BindingRow) -> str:
    return SERVICE_TYPES.get(row.engine_type, row.engine_type)


def _entity(row: BindingRow) -> dict[str, Any]:
    return {
        "name": row.name,
        "service_type": service_type(row),
        "description": row.description,
        "instance_id": row.id,
        "request_headers": {},
        "status": {"state": "active"},
    }


def create_binding(request: Request, body: dict[str, Any], ignored: Ignored) -> BindingRow:
    body = body_object(body)
    ignored.take(body, _KNOWN)
    name = body.get("name")
    if not isinstance(name, str) or not name:
        raise InvalidInput("name is required", field="name")
    if not isinstance(body.get("service_type"), str):
        raise InvalidInput("service_type is required (e.g. custom_machine_learning)", field="service_type")
    row, _ = service_of(request).bindings.create(
        name=name,
        engine_type=body["service_type"],
        credentials=body.get("credentials") or {},
        request_headers=body.get("request_headers"),
        description=body.get("description"),
    )
    return row


# -- v2 ------------------------------------------------------------------------------------------


def v2_provider(request: Request, row: BindingRow) -> dict[str, Any]:
    return v2_resource(row.id, v2_url(request, f"service_providers/{row.id}"), _entity(row), row.created_at)


@router.get(V2 + "/service_providers", dependencies=[READ])
def list_v2(
    instance_id: str,
    request: Request,
    service_type_: str | None = Query(None, alias="service_type"),
    operational_space_id: str | None = None,
    show_deleted: bool | None = None,
) -> dict[str, Any]:
    """Every binding; ``service_type`` filters (``operational_space_id``: Scrutiny has one space)."""
    data_mart_id(request, instance_id)
    rows = service_of(request).bindings.list()
    if service_type_:
        rows = [r for r in rows if service_type(r) == service_type_ or r.engine_type == service_type_]
    return {"service_providers": [v2_provider(request, r) for r in rows]}


@router.post(V2 + "/service_providers", status_code=201, dependencies=[WRITE])
def create_v2(instance_id: str, request: Request, response: Response, body: Any = Body(...)) -> dict[str, Any]:
    data_mart_id(request, instance_id)
    ignored = Ignored()
    row = create_binding(request, body, ignored)
    ignored.report(request, response)
    response.headers["Location"] = v2_url(request, f"service_providers/{row.id}")
    return v2_provider(request, row)


@router.get(V2 + "/service_providers/{provider_id}", dependencies=[READ])
def get_v2(instance_id: str, provider_id: str, request: Request) -> dict[str, Any]:
    data_mart_id(request, instance_id)
    return v2_provider(request, service_of(request).bindings.get(provider_id))


@router.delete(V2 + "/service_providers/{provider_id}", status_code=202, dependencies=[WRITE])
def delete_v2(instance_id: str, provider_id: str, request: Request) -> Response:
    data_mart_id(request, instance_id)
    service_of(request).bindings.delete(provider_id)
    return Response(status_code=202)


# -- v1 ------------------------------------------------------------------------------------------


def v1_binding(request: Request, dm: str, row: BindingRow) -> dict[str, Any]:
    return v1_resource(
        row.id, v1_url(request, f"data_marts/{dm}/service_bindings/{row.id}"), _entity(row), row.created_at
    )


@router.get("/v1/data_marts/{dm}/service_bindings", dependencies=[READ])
def list_v1(dm: str, request: Request) -> dict[str, Any]:
    real = data_mart_id(request, dm)
    return {"service_bindings": [v1_binding(request, real, r) for r in service_of(request).bindings.list()]}


@router.post("/v1/data_marts/{dm}/service_bindings", status_code=201, dependencies=[WRITE])
def create_v1(dm: str, request: Request, response: Response, body: Any = Body(...)) -> dict[str, Any]:
    """``client.data_mart.bindings.add``. OpenScale's ``instance_id`` is the client's: Scrutiny
    derives the binding id from the engine and its credentials, as OpenScale does for custom engines."""
    real = data_mart_id(request, dm)
    ignored = Ignored()
    row = create_binding(request, body, ignored)
    ignored.report(request, response)
    return v1_binding(request, real, row)


@router.get("/v1/data_marts/{dm}/service_bindings/{binding_id}", dependencies=[READ])
def get_v1(dm: str, binding_id: str, request: Request) -> dict[str, Any]:
    real = data_mart_id(request, dm)
    return v1_binding(request, real, service_of(request).bindings.get(binding_id))


@router.delete("/v1/data_marts/{dm}/service_bindings/{binding_id}", status_code=202, dependencies=[WRITE])
def delete_v1(dm: str, binding_id: str, request: Request) -> Response:
    data_mart_id(request, dm)
    service_of(request).bindings.delete(binding_id)
    return Response(status_code=202)


# -- discovery -----------------------------------------------------------------------------------


def gateway_deployment(dep: Deployment) -> dict[str, Any]:
    """A discovered deployment in OpenScale's normalised shape (contract §2.3, form B)."""
    asset = dict(dep.asset)
    asset.setdefault("asset_id", asset.get("guid") or dep.id)
    asset.setdefault("name", dep.name)
    asset.setdefault("asset_type", "model")
    asset.setdefault("url", dep.scoring_url)
    asset.setdefault("created_at", dep.created_at)
    entity = {
        "name": dep.name,
        "description": dep.description,
        "type": dep.type,
        "deployment_rn": dep.deployment_rn,
        "scoring_endpoint": {"url": dep.scoring_url, "request_headers": dict(dep.request_headers)},
        "asset": asset,
        "asset_properties": dict(dep.asset_properties),
    }
    meta = {"guid": dep.id, "url": dep.scoring_url, "created_at": dep.created_at}
    return {"metadata": meta, "entity": entity}


@router.get("/v1/ml_instances/{binding_id}/deployments", dependencies=[READ])
def deployments(
    binding_id: str,
    request: Request,
    datamart_id: str | None = None,
    limit: int = Query(1000, ge=1, le=100_000),
    offset: int = Query(0, ge=0),
) -> dict[str, Any]:
    """Discovery (the engine's own API is called now), as OpenScale's gateway answers it."""
    data_mart_id(request, datamart_id)
    deps = service_of(request).bindings.deployments(binding_id)
    page = deps[offset : offset + limit]
    return {"count": len(deps), "resources": [gateway_deployment(d) for d in page]}
