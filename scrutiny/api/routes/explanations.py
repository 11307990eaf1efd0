"""Explanations of logged transactions (or inline records): Scrutiny's API and OpenScale's task API.

``POST`` checks the request, stores the explanation ``in_progress`` and runs it on the
service's worker pool. It waits up to ``wait`` seconds (default 10): a LIME explanation takes
one scoring call and usually well under a second, so most requests answer ``201`` with the
finished explanation; slower ones answer ``202`` with the id to poll. The stored explanation
is read back later without scoring again.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Literal

import anyio
from fastapi import APIRouter, FastAPI, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from scrutiny.api.auth import READ, WRITE, service_of
from scrutiny.api.models import ERRORS
from scrutiny.errors import NotFound
from scrutiny.explain.openscale import task, v2_task
from scrutiny.explain.service import METHODS
from scrutiny.explain.store import ERROR, FINISHED, Explanation


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Start: explanations a stopped server left in progress are marked interrupted.
    Stop: queued explanations are cancelled (stored as interrupted), running ones finish."""
    svc = app.state.service
    await anyio.to_thread.run_sync(svc.explanations.start)
    try:
        yield
    finally:
        await anyio.to_thread.run_sync(svc.explanations.close)


router = APIRouter(tags=["explanations"], responses=ERRORS, lifespan=lifespan)


class RecordIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    fields: list[str]
    values: list[Any] = Field(description="one row: [[v1, v2, ...]] (a flat [v1, v2, ...] is accepted)")


class ExplanationCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    scoring_id: str | None = Field(
        None, description="a logged row id '<record id>-<n>', or a record id when the record has one row"
    )
    record: RecordIn | None = Field(None, description="an inline record to explain instead of a logged one")
    method: Literal["lime", "contrastive", "lime+contrastive"] = "lime"
    options: dict[str, Any] | None = Field(
        None,
        description=(
            "lime: perturbations (5000), num_features (10), feature_selection (auto), kernel_width, seed (0), "
            "time_budget_s (120); contrastive: max_calls (10), steps (20), time_budget_s (60), alternatives (5)"
        ),
    )


class Contribution(BaseModel):
    model_config = ConfigDict(extra="allow")
    feature: str
    value: Any
    weight: float = Field(description="signed share of Σ|coefficient|, in %")
    coefficient: float | None = None
    condition: str | None = None


class ExplanationOut(BaseModel):
    model_config = ConfigDict(extra="allow")
    id: str
    subscription_id: str
    scoring_id: str | None = None
    method: str
    status: Literal["in_progress", "finished", "error"]
    prediction: Any = None
    probability: float | None = None
    contributions: list[Contribution] | None = None
    pertinent_positive: dict[str, Any] | None = None
    pertinent_negative: dict[str, Any] | None = None
    scoring_calls: int
    scored_rows: int
    error: dict[str, Any] | None = None


class ExplanationStarted(BaseModel):
    id: str
    status: str
    location: str


class ExplanationList(BaseModel):
    total: int
    explanations: list[ExplanationOut]


def _location(expl: Explanation) -> str:
    return f"/v1/subscriptions/{expl.subscription_id}/explanations/{expl.id}"


def _failed(expl: Explanation) -> JSONResponse:
    err = dict(expl.error or {})
    status = int(err.pop("http_status", 502))
    return JSONResponse(
        {"error": {**err, "explanation_id": expl.id, "location": _location(expl)}},
        status_code=status,
        headers={"Location": _location(expl)},
    )


async def _start(request: Request, create: Any, wait: float) -> Explanation:
    """Create (fast checks, in a thread), submit to the pool, wait up to ``wait`` seconds."""
    svc = service_of(request)
    expl: Explanation = await anyio.to_thread.run_sync(create)
    future = svc.explanations.submit(expl.id)
    if wait > 0:
        await asyncio.wait([asyncio.wrap_future(future)], timeout=wait)
    return await anyio.to_thread.run_sync(lambda: svc.explanations.get(None, expl.id))


@router.post(
    "/v1/subscriptions/{subscription_id}/explanations",
    status_code=201,
    response_model=ExplanationOut,
    dependencies=[WRITE],
    responses={202: {"model": ExplanationStarted, "description": "still running: poll the Location"}},
)
async def create_explanation(
    subscription_id: str,
    body: ExplanationCreate,
    request: Request,
    wait: float = Query(10.0, ge=0, le=120, description="seconds to wait for the result before answering 202"),
) -> Any:
    """Explain a logged transaction (``scoring_id``) or an inline ``record``. 201 with the
    explanation when it finishes within ``wait`` seconds, else 202 with its id. An engine failure
    answers 502/504 with the stored explanation's id (status ``error``, no partial result)."""
    svc = service_of(request)

    def create() -> Explanation:
        return svc.explanations.create(
            subscription_id,
            scoring_id=body.scoring_id,
            record=body.record.model_dump() if body.record else None,
            method=body.method,
            options=body.options,
        )

    expl = await _start(request, create, wait)
    if expl.status == FINISHED:
        return JSONResponse(expl.to_dict(), status_code=201, headers={"Location": _location(expl)})
    if expl.status == ERROR:
        return _failed(expl)
    return JSONResponse(
        {"id": expl.id, "status": expl.status, "location": _location(expl)},
        status_code=202,
        headers={"Location": _location(expl)},
    )


@router.get("/v1/subscriptions/{subscription_id}/explanations", response_model=ExplanationList, dependencies=[READ])
def list_explanations(
    subscription_id: str,
    request: Request,
    scoring_id: str | None = Query(None, description="a row id, or a record id (all its rows)"),
    method: str | None = Query(None, description=f"one of {list(METHODS)}"),
    status: Literal["in_progress", "finished", "error"] | None = None,
    limit: int = Query(50, ge=1, le=1000),
    offset: int = Query(0, ge=0),
) -> Any:
    """Stored explanations, newest first: show one again without scoring again."""
    total, rows = service_of(request).explanations.list(
        subscription_id, scoring_id=scoring_id, method=method, status=status, limit=limit, offset=offset
    )
    return JSONResponse({"total": total, "explanations": [r.to_dict() for r in rows]})


@router.get(
    "/v1/subscriptions/{subscription_id}/explanations/{explanation_id}",
    response_model=ExplanationOut,
    dependencies=[READ],
)
def get_explanation(subscription_id: str, explanation_id: str, request: Request) -> Any:
    """One explanation as stored: the same body ``POST`` answered with once it finished."""
    return JSONResponse(service_of(request).explanations.get(subscription_id, explanation_id).to_dict())


# -- OpenScale v1 task API ----------------------------------------------------------------------
class ExplanationTaskCreate(BaseModel):
    model_config = ConfigDict(extra="allow")
    scoring_id: str = Field(description="'<record id>-<n>'")
    cem: bool | str | None = Field(None, description='"true": add a contrastive explanation')
    subscription_id: str | None = None


def _check_data_mart(request: Request, data_mart_id: str) -> None:
    if data_mart_id != service_of(request).data_mart_id:
        raise NotFound(f"data mart {data_mart_id!r} not found")


@router.post(
    "/v1/data_marts/{data_mart_id}/explanation_tasks",
    status_code=202,
    dependencies=[WRITE],
    tags=["OpenScale compatibility"],
)
async def create_explanation_task(data_mart_id: str, body: ExplanationTaskCreate, request: Request) -> Any:
    """OpenScale v1: 202 ``{"metadata": {"id"}}``; poll ``GET .../explanation_tasks/{id}``."""
    await anyio.to_thread.run_sync(lambda: _check_data_mart(request, data_mart_id))
    svc = service_of(request)
    cem = body.cem is True or (isinstance(body.cem, str) and body.cem.strip().lower() == "true")

    def create() -> Explanation:
        sub_id = body.subscription_id or svc.explanations.find_subscription_of(body.scoring_id).id
        sub = svc.subscriptions.get(sub_id)
        method = "lime+contrastive" if cem and sub.problem_type.classification else "lime"
        return svc.explanations.create(sub_id, scoring_id=body.scoring_id, method=method)

    expl = await _start(request, create, 0)
    return JSONResponse(task(expl), status_code=202)


@router.get(
    "/v1/data_marts/{data_mart_id}/explanation_tasks/{task_id}",
    dependencies=[READ],
    tags=["OpenScale compatibility"],
)
def get_explanation_task(data_mart_id: str, task_id: str, request: Request) -> Any:
    """``entity.status.state`` (in_progress, finished, error) and ``entity.predictions[i].explanation_features``."""
    _check_data_mart(request, data_mart_id)
    return task(service_of(request).explanations.get(None, task_id))


# -- OpenScale v2 task API ----------------------------------------------------------------------
class ExplanationTasksV2Create(BaseModel):
    model_config = ConfigDict(extra="allow")
    scoring_ids: list[str] = Field(min_length=1, max_length=1000)
    explanation_types: list[Literal["lime", "contrastive"]] = Field(["lime"], min_length=1)
    subscription_id: str | None = None


@router.post("/v2/explanation_tasks", status_code=202, dependencies=[WRITE], tags=["OpenScale compatibility"])
async def create_explanation_tasks_v2(body: ExplanationTasksV2Create, request: Request) -> Any:
    """OpenScale v2: one task per scoring id, ``202 {"metadata": {"explanation_task_ids"}}``. Every
    id is checked before any task starts (an unknown one is a 404 and starts nothing)."""
    svc = service_of(request)
    types = set(body.explanation_types)

    def create() -> list[Explanation]:
        subs = {}
        for sid in body.scoring_ids:
            sub_id = body.subscription_id or svc.explanations.find_subscription_of(sid).id
            sub = svc.subscriptions.get(sub_id)
            svc.explanations.find_row(sub, sid)
            subs[sid] = sub
        out = []
        for sid, sub in subs.items():
            classification = sub.problem_type.classification
            if types == {"contrastive"} and classification:
                method = "contrastive"
            elif "contrastive" in types and classification:
                method = "lime+contrastive"
            else:
                method = "lime"
            out.append(svc.explanations.create(sub.id, scoring_id=sid, method=method))
        return out

    created = await anyio.to_thread.run_sync(create)
    for expl in created:
        svc.explanations.submit(expl.id)
    return JSONResponse(
        {
            "metadata": {
                "explanation_task_ids": [e.id for e in created],
                "created_at": created[0].created_at.isoformat().replace("+00:00", "Z"),
            }
        },
        status_code=202,
    )


@router.get("/v2/explanation_tasks/{task_id}", dependencies=[READ], tags=["OpenScale compatibility"])
def get_explanation_task_v2(task_id: str, request: Request) -> Any:
    """``entity.status.state`` and ``entity.explanations[]`` (one per explanation type)."""
    return JSONResponse(v2_task(service_of(request).explanations.get(None, task_id)))
