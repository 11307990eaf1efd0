from __future__ import annotations

import anyio
from fastapi import APIRouter, Body, Request, Response

from scrutiny.api.auth import READ, WRITE, service_of
from scrutiny.api.models import ERRORS, ScoringBody, ScoringResult, SubscriptionCreate, SubscriptionOut, Subscriptions
from scrutiny.core.training_stats import read_training_data
from scrutiny.errors import InvalidInput

router = APIRouter(prefix="/v1/subscriptions", tags=["subscriptions"], responses=ERRORS)


@router.post("", status_code=201, response_model=SubscriptionOut, dependencies=[WRITE])
def create_subscription(body: SubscriptionCreate, request: Request, response: Response) -> SubscriptionOut:
    """Subscribe a discovered deployment, or a scoring URL given by hand, with its asset properties
    and optionally training data (statistics are computed once and stored)."""
    sub = service_of(request).subscriptions.create(
        binding_id=body.binding_id,
        deployment_id=body.deployment_id,
        deployment=body.deployment.model_dump(exclude_none=True) if body.deployment else None,
        asset_properties=body.asset_properties.model_dump(exclude_unset=True),
        training_data=body.training_data.model_dump(exclude_none=True) if body.training_data else None,
        asset=body.asset,
    )
    response.headers["Location"] = f"/v1/subscriptions/{sub.id}"
    return SubscriptionOut(**sub.to_dict())


@router.get("", response_model=Subscriptions, dependencies=[READ])
def list_subscriptions(request: Request, binding_id: str | None = None) -> Subscriptions:
    subs = service_of(request).subscriptions.list(binding_id)
    return Subscriptions(subscriptions=[SubscriptionOut(**s.to_dict()) for s in subs])


@router.get("/{subscription_id}", response_model=SubscriptionOut, dependencies=[READ])
def get_subscription(subscription_id: str, request: Request) -> SubscriptionOut:
    return SubscriptionOut(**service_of(request).subscriptions.get(subscription_id).to_dict())


@router.delete("/{subscription_id}", status_code=204, dependencies=[WRITE])
def delete_subscription(subscription_id: str, request: Request) -> Response:
    service_of(request).subscriptions.delete(subscription_id)
    return Response(status_code=204)


@router.put(
    "/{subscription_id}/training_data",
    response_model=SubscriptionOut,
    dependencies=[WRITE],
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "text/csv": {"schema": {"type": "string"}},
                "application/vnd.apache.parquet": {"schema": {"type": "string", "format": "binary"}},
            },
        }
    },
)
async def upload_training_data(subscription_id: str, request: Request) -> SubscriptionOut:
    """Upload training data (CSV with a header, or Parquet); statistics are recomputed."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    fmt = {"text/csv": "csv", "application/vnd.apache.parquet": "parquet", "application/octet-stream": None}.get(
        ctype, "?"
    )
    if fmt == "?":
        raise InvalidInput("send training data as text/csv or application/vnd.apache.parquet", field="content-type")
    data = await request.body()
    if not data:
        raise InvalidInput("the body is empty", field="training_data")
    svc = service_of(request)
    frame = await anyio.to_thread.run_sync(lambda: read_training_data(data=data, fmt=fmt))
    sub = await anyio.to_thread.run_sync(lambda: svc.subscriptions.set_training_data(subscription_id, frame))
    return SubscriptionOut(**sub.to_dict())


@router.get("/{subscription_id}/training_statistics", dependencies=[READ])
def training_statistics(subscription_id: str, request: Request) -> dict:
    sub = service_of(request).subscriptions.get(subscription_id)
    if sub.training_statistics is None:
        from scrutiny.errors import NotFound

        raise NotFound(f"subscription {subscription_id!r} has no training statistics")
    return sub.training_statistics


@router.post("/{subscription_id}/score", response_model=ScoringResult, dependencies=[WRITE])
def score(subscription_id: str, request: Request, body: ScoringBody = Body(...)) -> ScoringResult:
    """Score rows through the engine in the common format. This is internal scoring: it is never
    logged as payload. The output carries the prediction, the probability vector in label order and
    ``prediction_probability``."""
    result = service_of(request).subscriptions.score(subscription_id, body.model_dump(exclude_none=True))
    return ScoringResult(**result)
