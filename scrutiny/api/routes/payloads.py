"""Payload logging over REST: Scrutiny's own endpoint and OpenScale's v1 ``scoring_payloads``."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from typing import Any, Literal

import anyio
import orjson
from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import StreamingResponse

from scrutiny.api.auth import LOG, READ, service_of
from scrutiny.api.models import ERRORS, OpenScalePayloadRecordIn, PayloadPage, PayloadRecordIn, StoreResult
from scrutiny.errors import InvalidInput, ScrutinyError
from scrutiny.ingest.arrow import CONTENT_TYPE as ARROW
from scrutiny.ingest.arrow import parse_arrow
from scrutiny.ingest.payloads import ParsedPayload, parse_payloads
from scrutiny.ingest.writer import PAYLOAD

router = APIRouter(tags=["payload logging"], responses=ERRORS)


def _records_body(model: type) -> dict[str, Any]:
    return {
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {"type": "array", "items": {"$ref": f"#/components/schemas/{model.__name__}"}}
                },
                ARROW: {"schema": {"type": "string", "format": "binary"}},
            },
        }
    }


async def read_json(request: Request) -> Any:
    body = await request.body()
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        # NaN, Infinity and 1e999 are not JSON, but clients (Python's json among them) send them:
        # parse leniently so validation can name the record and field that holds the bad number.
        try:
            return json.loads(body)
        except (ValueError, RecursionError):
            raise InvalidInput(f"the body is not valid JSON: {exc}") from None


def media_type(request: Request) -> str:
    return request.headers.get("content-type", "application/json").split(";")[0].strip().lower()


class UnsupportedMediaType(ScrutinyError):
    code = "unsupported_media_type"
    status = 415


@router.post(
    "/v1/subscriptions/{subscription_id}/payloads",
    response_model=StoreResult,
    dependencies=[LOG],
    openapi_extra=_records_body(PayloadRecordIn),
)
async def store_payloads(subscription_id: str, request: Request) -> StoreResult:
    """Log scoring transactions. The batch is validated whole: one bad record rejects it (422 naming
    the record, row and field) and nothing is stored. A record whose ``scoring_id`` is already
    stored is skipped, so retries never duplicate rows. JSON records, or an Arrow IPC stream (the
    SDK's columnar fast path). The reply is sent once the rows are committed."""
    svc = service_of(request)
    ctype = media_type(request)
    parse: Callable[..., ParsedPayload]
    if ctype == ARROW:
        body: Any = await request.body()
        parse = parse_arrow
    elif ctype in ("application/json", "text/json", ""):
        body = await read_json(request)
        parse = parse_payloads
    else:
        raise UnsupportedMediaType(f"send application/json or {ARROW}, not {ctype!r}")

    def work() -> StoreResult:
        sub = svc.subscriptions.cached(subscription_id)
        parsed = parse(body, sub)
        result = svc.writer.write(sub, parsed.batch, parsed.layout, PAYLOAD)
        if parsed.layout != sub.layout:
            svc.subscriptions.forget(subscription_id)
        return StoreResult(stored=result.stored, duplicates=result.duplicates, records=parsed.records)

    return await anyio.to_thread.run_sync(work)


@router.get("/v1/subscriptions/{subscription_id}/payloads", response_model=PayloadPage, dependencies=[READ])
def read_payloads(
    subscription_id: str,
    request: Request,
    limit: int = Query(100, ge=1, le=10_000),
    offset: int = Query(0, ge=0, le=100_000_000),
    start: datetime | None = Query(None, description="inclusive, ISO-8601"),
    end: datetime | None = Query(None, description="exclusive, ISO-8601"),
) -> PayloadPage:
    """Payload rows, newest first, in a time window."""
    total, rows = service_of(request).payloads.read(subscription_id, limit=limit, offset=offset, start=start, end=end)
    return PayloadPage(total=total, rows=rows)


@router.get(
    "/v1/subscriptions/{subscription_id}/payloads/export",
    dependencies=[READ],
    responses={200: {"content": {"text/csv": {}, "application/vnd.apache.parquet": {}}, "description": "the rows"}},
)
def export_payloads(
    subscription_id: str,
    request: Request,
    format: Literal["csv", "parquet"] = "csv",
    start: datetime | None = None,
    end: datetime | None = None,
) -> StreamingResponse:
    """The payload table (or a time window of it) as CSV or Parquet, streamed in constant memory."""
    return export_response(request, subscription_id, format, start, end, PAYLOAD)


def export_response(
    request: Request, subscription_id: str, format: str, start: datetime | None, end: datetime | None, kind: str
) -> StreamingResponse:
    """A record table as a streamed CSV or Parquet download (payload or feedback)."""
    svc = service_of(request)
    svc.subscriptions.get(subscription_id)  # 404 before streaming starts
    media = "text/csv" if format == "csv" else "application/vnd.apache.parquet"
    filename = f"{kind}-{subscription_id}.{format}"
    return StreamingResponse(
        svc.payloads.export(subscription_id, format, start=start, end=end, kind=kind),
        media_type=media,
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


@router.post(
    "/v1/data_marts/{data_mart_id}/scoring_payloads",
    status_code=202,
    response_model=StoreResult,
    dependencies=[LOG],
    openapi_extra=_records_body(OpenScalePayloadRecordIn),
    responses={204: {"description": "stored (Prefer: return=minimal)"}},
)
async def openscale_scoring_payloads(data_mart_id: str, request: Request) -> Any:
    """OpenScale v1 payload logging, unchanged: a JSON array of records, each naming its
    ``binding_id`` and ``subscription_id``. 202 once durable; 204 with ``Prefer: return=minimal``."""
    svc = service_of(request)
    body = await read_json(request)
    result = await anyio.to_thread.run_sync(lambda: svc.payloads.store_openscale(data_mart_id, body))
    if "return=minimal" in request.headers.get("prefer", ""):
        return Response(status_code=204)
    return StoreResult(stored=result.stored, duplicates=result.duplicates, records=result.records)
