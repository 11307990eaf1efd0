"""Data marts, API keys and health."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from scrutiny import __version__
from scrutiny.api.auth import ADMIN, READ, service_of
from scrutiny.api.models import ERRORS, ApiKeyCreate, ApiKeyOut, ApiKeys, DataMart, DataMarts, Health
from scrutiny.security import Role

router = APIRouter(responses=ERRORS)


def _iso(dt) -> str:  # type: ignore[no-untyped-def]
    return dt.isoformat().replace("+00:00", "Z")


@router.get("/health", response_model=Health, tags=["health"])
def health(request: Request) -> Health:
    """Liveness: no authentication."""
    svc = service_of(request)
    return Health(status="ok", version=__version__, database=svc.store.dialect)


@router.get("/v1/data_marts", response_model=DataMarts, dependencies=[READ], tags=["data marts"])
def data_marts(request: Request) -> DataMarts:
    """The data mart of this instance; its id is the one OpenScale-shaped paths take."""
    svc = service_of(request)
    dm = svc.store.catalog.data_mart()
    return DataMarts(
        data_marts=[
            DataMart(
                id=dm["id"], name=dm["name"], database={"type": svc.store.dialect}, created_at=_iso(dm["created_at"])
            )
        ]
    )


@router.post("/v1/api_keys", status_code=201, response_model=ApiKeyOut, dependencies=[ADMIN], tags=["api keys"])
def create_api_key(body: ApiKeyCreate, request: Request) -> ApiKeyOut:
    """A new key; the key itself is in this response only (it is stored hashed). ``logger`` keys
    can log payloads and score through the proxy, and nothing else."""
    key, row = service_of(request).keys.create(body.name, Role(body.role))
    return ApiKeyOut(
        id=row.id, name=row.name, role=row.role.value, hint=row.hint, created_at=_iso(row.created_at), key=key
    )


@router.get("/v1/api_keys", response_model=ApiKeys, dependencies=[ADMIN], tags=["api keys"])
def list_api_keys(request: Request) -> ApiKeys:
    rows = service_of(request).store.catalog.list_api_keys()
    return ApiKeys(
        api_keys=[
            ApiKeyOut(
                id=r.id,
                name=r.name,
                role=r.role.value,
                hint=r.hint,
                created_at=_iso(r.created_at),
                revoked=r.revoked_at is not None,
            )
            for r in rows
        ]
    )


@router.delete("/v1/api_keys/{key_id}", status_code=204, dependencies=[ADMIN], tags=["api keys"])
def revoke_api_key(key_id: str, request: Request) -> Response:
    service_of(request).keys.revoke(key_id)
    return Response(status_code=204)
