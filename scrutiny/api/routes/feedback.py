"""Feedback logging over REST: Scrutiny's endpoint and OpenScale's v1 ``feedback_payloads`` paths."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

import anyio
from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import StreamingResponse

from scrutiny.api.auth import LOG, READ, service_of
from scrutiny.api.models import ERRORS, PayloadPage
from scrutiny.api.monitor_models import FeedbackResult
from scrutiny.api.routes.payloads import UnsupportedMediaType, export_response, media_type, read_json
from scrutiny.ingest.writer import FEEDBACK

router = APIRouter(tags=["feedback logging"], responses=ERRORS)

_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "oneOf": [
                        {
                            "type": "object",
                            "required": ["fields", "values"],
                            "properties": {
                                "fields": {"type": "array", "items": {"type": "string"}},
                                "values": {"type": "array", "items": {"type": "array", "items": {}}},
                            },
                        },
                        {"type": "array", "items": {"type": "object"}},
                    ]
                }
            },
            "text/csv": {"schema": {"type": "string"}},
        },
    }
}


async def _body(request: Request) -> tuple[Any, str]:
    ctype = media_type(request)
    if ctype == "text/csv":
        return await request.body(), ctype
    if ctype in ("application/json", "text/json", ""):
        return await read_json(request), "application/json"
    raise UnsupportedMediaType(f"send application/json or text/csv, not {ctype!r}")


@router.post(
    "/v1/subscriptions/{subscription_id}/feedback",
    response_model=FeedbackResult,
    dependencies=[LOG],
    openapi_extra=_BODY,
)
async def store_feedback(
    subscription_id: str,
    request: Request,
    header: bool | None = Query(None, description="CSV: the first row names the columns (default: detected)"),
    delimiter: str = Query(",", min_length=1, max_length=1),
    on_error: Literal["stop", "continue"] = Query(
        "stop", description="continue: store the valid rows, report the others"
    ),
) -> FeedbackResult:
    """Log labelled rows for the quality monitor: ``{"fields", "values"}``, a list of row objects,
    or CSV. A row with the ``scoring_id`` of a logged payload row is joined to that row's
    prediction; a row with the features alone is scored through the engine (not logged as
    payload). The batch is validated whole (422 naming the row and field); rows already stored
    are skipped, so retries never duplicate."""
    svc = service_of(request)
    body, ctype = await _body(request)

    def work() -> FeedbackResult:
        r = svc.feedback.store(
            subscription_id, body, content_type=ctype, header=header, delimiter=delimiter, on_error=on_error
        )
        return FeedbackResult(**r.to_dict())

    return await anyio.to_thread.run_sync(work)


@router.get("/v1/subscriptions/{subscription_id}/feedback", response_model=PayloadPage, dependencies=[READ])
def read_feedback(
    subscription_id: str,
    request: Request,
    limit: int = Query(100, ge=1, le=10_000),
    offset: int = Query(0, ge=0, le=100_000_000),
    start: datetime | None = Query(None, description="inclusive, ISO-8601"),
    end: datetime | None = Query(None, description="exclusive, ISO-8601"),
) -> PayloadPage:
    """Feedback rows, newest first, with the prediction each one judges."""
    total, rows = service_of(request).payloads.read(
        subscription_id, limit=limit, offset=offset, start=start, end=end, kind=FEEDBACK
    )
    return PayloadPage(total=total, rows=rows)


@router.get(
    "/v1/subscriptions/{subscription_id}/feedback/export",
    dependencies=[READ],
    responses={200: {"content": {"text/csv": {}, "application/vnd.apache.parquet": {}}, "description": "the rows"}},
)
def export_feedback(
    subscription_id: str,
    request: Request,
    format: Literal["csv", "parquet"] = "csv",
    start: datetime | None = None,
    end: datetime | None = None,
) -> StreamingResponse:
    """The feedback table (or a time window of it) as CSV or Parquet, streamed in constant memory."""
    return export_response(request, subscription_id, format, start, end, FEEDBACK)


@router.post(
    "/v1/data_marts/{data_mart_id}/feedback_payloads",
    status_code=204,
    dependencies=[LOG],
    openapi_extra={"requestBody": {"required": True, "content": {"application/json": {"schema": {"type": "object"}}}}},
)
async def openscale_feedback(data_mart_id: str, request: Request) -> Response:
    """OpenScale v1 feedback logging, unchanged: one object ``{"binding_id", "subscription_id",
    "fields", "values"}``. 204 once stored."""
    svc = service_of(request)
    body = await read_json(request)
    await anyio.to_thread.run_sync(lambda: svc.feedback.store_openscale(data_mart_id, body))
    return Response(status_code=204)


@router.post(
    "/v1/data_marts/{data_mart_id}/service_bindings/{binding_id}/subscriptions/{subscription_id}/feedback_payloads",
    response_model=FeedbackResult,
    dependencies=[LOG],
    openapi_extra=_BODY,
)
async def openscale_feedback_rows(
    data_mart_id: str,
    binding_id: str,
    subscription_id: str,
    request: Request,
    header: bool | None = Query(None),
    delimiter: str = Query(",", min_length=1, max_length=1),
    on_error: Literal["stop", "continue"] = Query("stop"),
    csv_max_line_length: int | None = Query(None, description="accepted for compatibility; lines are not capped"),
) -> FeedbackResult:
    """OpenScale v1 feedback logging as a list of row objects or CSV (``header``, ``delimiter``,
    ``on_error``)."""
    svc = service_of(request)
    body, ctype = await _body(request)

    def work() -> FeedbackResult:
        sub = svc.feedback.check_path(data_mart_id, binding_id, subscription_id)
        r = svc.feedback.store(sub, body, content_type=ctype, header=header, delimiter=delimiter, on_error=on_error)
        return FeedbackResult(**r.to_dict())

    return await anyio.to_thread.run_sync(work)


__all__ = ["router"]
