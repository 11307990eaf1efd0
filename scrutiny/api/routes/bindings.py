from __future__ import annotations

from fastapi import APIRouter, Request, Response

from scrutiny.api.auth import READ, WRITE, service_of
from scrutiny.api.models import ERRORS, Binding, BindingCreate, Bindings, DeploymentOut, Deployments

router = APIRouter(prefix="/v1/bindings", tags=["bindings"], responses=ERRORS)


@router.post(
    "",
    status_code=201,
    response_model=Binding,
    dependencies=[WRITE],
    responses={200: {"model": Binding, "description": "this engine was already bound: the existing binding"}},
)
def create_binding(body: BindingCreate, request: Request, response: Response) -> Binding:
    """Register an engine. Binding the same engine with the same credentials again returns it (200)."""
    row, created = service_of(request).bindings.create(
        name=body.name,
        engine_type=body.engine_type,
        credentials=body.credentials,
        request_headers=body.request_headers,
        description=body.description,
    )
    if not created:
        response.status_code = 200
    response.headers["Location"] = f"/v1/bindings/{row.id}"
    return Binding(**row.to_dict())


@router.get("", response_model=Bindings, dependencies=[READ])
def list_bindings(request: Request) -> Bindings:
    return Bindings(bindings=[Binding(**b.to_dict()) for b in service_of(request).bindings.list()])


@router.get("/{binding_id}", response_model=Binding, dependencies=[READ])
def get_binding(binding_id: str, request: Request) -> Binding:
    return Binding(**service_of(request).bindings.get(binding_id).to_dict())


@router.delete("/{binding_id}", status_code=204, dependencies=[WRITE])
def delete_binding(binding_id: str, request: Request) -> Response:
    service_of(request).bindings.delete(binding_id)
    return Response(status_code=204)


@router.get("/{binding_id}/deployments", response_model=Deployments, dependencies=[READ])
def list_deployments(binding_id: str, request: Request) -> Deployments:
    """Discovery: the deployments the engine exposes (its own API is called now)."""
    deps = service_of(request).bindings.deployments(binding_id)
    return Deployments(deployments=[DeploymentOut(**d.to_dict()) for d in deps])
