"""OpenScale data marts (v1 ``/v1/data_marts/{id}``, v2 ``/v2/data_marts``): Scrutiny's one data
mart, whose database is chosen when the server starts (``SCRUTINY_STORE_URL``)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, Request, Response

from scrutiny.api.auth import READ, WRITE, service_of
from scrutiny.api.models import ERRORS
from scrutiny.api.openscale.common import V2, Ignored, data_mart_id, iso, v1_resource, v2_resource, v2_url
from scrutiny.errors import InvalidInput

router = APIRouter(tags=["OpenScale: data marts"], responses=ERRORS)


def _entity(request: Request) -> dict[str, Any]:
    svc = service_of(request)
    dm = svc.store.catalog.data_mart()
    return {
        "name": dm["name"],
        "description": "Scrutiny data mart",
        "internal_database": True,
        # OpenScale's database_configuration needs credentials (never shown): the type is told here
        "database_type": svc.store.dialect,
        "status": {"state": "active"},
        "created_at": iso(dm["created_at"]),
    }


@router.get(V2 + "/data_marts", dependencies=[READ])
def list_v2(instance_id: str, request: Request) -> dict[str, Any]:
    data_mart_id(request, instance_id)
    return {"data_marts": [get_v2(instance_id, service_of(request).data_mart_id, request)]}


@router.get(V2 + "/data_marts/{dm}", dependencies=[READ])
def get_v2(instance_id: str, dm: str, request: Request) -> dict[str, Any]:
    data_mart_id(request, instance_id)
    real = data_mart_id(request, dm)
    entity = _entity(request)
    return v2_resource(real, v2_url(request, f"data_marts/{real}"), entity, entity["created_at"])


@router.get("/v1/data_marts/{dm}", dependencies=[READ])
def get_v1(dm: str, request: Request) -> dict[str, Any]:
    real = data_mart_id(request, dm)
    entity = _entity(request)
    return v1_resource(real, str(request.url), entity, entity["created_at"])


@router.put("/v1/data_marts/{dm}", dependencies=[WRITE])
def setup_v1(dm: str, request: Request, response: Response, body: dict[str, Any] = Body(...)) -> dict[str, Any]:
    """``data_mart.setup()``: the data mart exists already and keeps its database; a request for
    another database is refused (422), since Scrutiny's store is chosen at start-up."""
    data_mart_id(request, dm)
    ignored = Ignored()
    if body.get("database_configuration") or body.get("db_credentials"):
        raise InvalidInput(
            "the data mart's database is chosen when Scrutiny starts (SCRUTINY_STORE_URL), not over the API",
            field="db_credentials" if body.get("db_credentials") else "database_configuration",
        )
    ignored.take(body, {"internal_database", "database_configuration", "db_credentials"})
    ignored.report(request, response)
    return get_v1(dm, request)
