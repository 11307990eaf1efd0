"""OpenScale data sets (v2 ``/v2/data_sets``) and v1 payload reads (``scoring_transactions``):
a subscription's payload table and feedback table, under ids ``<subscription>.payload_logging``
and ``<subscription>.feedback``."""

from __future__ import annotations

import threading
import uuid
from collections import OrderedDict
from datetime import datetime
from typing import Any, Literal

import anyio
from fastapi import APIRouter, Body, Query, Request, Response

from scrutiny.api.auth import LOG, READ, WRITE, service_of
from scrutiny.api.models import ERRORS
from scrutiny.api.openscale.common import V2, Ignored, compound_id, data_mart_id, split_id, v2_resource, v2_url
from scrutiny.api.openscale.subscriptions import find
from scrutiny.api.routes.payloads import UnsupportedMediaType, media_type, read_json
from scrutiny.core.subscription import Subscription
from scrutiny.errors import InvalidInput, NotFound
from scrutiny.ingest.writer import FEEDBACK, PAYLOAD

router = APIRouter(tags=["OpenScale: data sets"], responses=ERRORS)

# OpenScale's data set types -> Scrutiny's record tables
TYPES = {"payload_logging": PAYLOAD, "feedback": FEEDBACK}


class Requests:
    """Outcomes of recent record uploads, for ``GET .../requests/{id}`` (the SDK polls it).
    Records are stored before the POST answers, so every known request is already ``active``."""

    def __init__(self, keep: int = 10_000) -> None:
        self.keep = keep
        self._items: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._lock = threading.Lock()

    def add(self, data_set_id: str, outcome: dict[str, Any]) -> str:
        request_id = str(uuid.uuid4())
        with self._lock:
            self._items[request_id] = {"data_set_id": data_set_id, **outcome}
            while len(self._items) > self.keep:
                self._items.popitem(last=False)
        return request_id

    def get(self, data_set_id: str, request_id: str) -> dict[str, Any]:
        with self._lock:
            item = self._items.get(request_id)
        if item is None or item["data_set_id"] != data_set_id:
            raise NotFound(
                f"request {request_id!r} of data set {data_set_id!r} not found (or forgotten after a restart)"
            )
        return item


requests = Requests()


def resolve(request: Request, data_set_id: str) -> tuple[Subscription, str]:
    sub_id, kind = split_id(data_set_id, "data set")
    if kind not in TYPES:
        raise NotFound(f"data set {data_set_id!r} not found")
    return find(request, sub_id), kind


def data_set(request: Request, sub: Subscription, kind: str) -> dict[str, Any]:
    layout = sub.layout
    table = layout.payload_table if TYPES[kind] == PAYLOAD else layout.feedback_table
    columns = layout.payload_columns() if TYPES[kind] == PAYLOAD else layout.feedback_columns()
    fields: list[dict[str, Any]] = [
        {"name": name, "type": getattr(k, "value", k), "nullable": True, "metadata": {}} for name, k in columns
    ]
    entity = {
        "data_mart_id": service_of(request).data_mart_id,
        "name": f"{kind} of {sub.id}",
        "type": kind,
        "target": {"target_type": "subscription", "target_id": sub.id},
        "data_schema": {"type": "struct", "fields": fields},
        "location": {"table_name": table},
        "status": {"state": "active"},
    }
    ds_id = compound_id(sub.id, kind)
    return v2_resource(ds_id, v2_url(request, f"data_sets/{ds_id}"), entity, sub.created_at)


@router.get(V2 + "/data_sets", dependencies=[READ])
def list_data_sets(
    instance_id: str,
    request: Request,
    target_id: str | None = Query(None, alias="target.target_id"),
    target_type: str | None = Query(None, alias="target.target_type"),
    type: str | None = None,
    data_mart_id_: str | None = Query(None, alias="data_mart_id"),
) -> dict[str, Any]:
    """One payload and one feedback data set per subscription."""
    data_mart_id(request, instance_id)
    data_mart_id(request, data_mart_id_)
    if target_type not in (None, "subscription"):
        return {"data_sets": []}
    if type is not None and type not in TYPES:
        return {"data_sets": []}
    subs = [find(request, target_id)] if target_id else service_of(request).subscriptions.list()
    kinds = [type] if type else list(TYPES)
    return {"data_sets": [data_set(request, s, k) for s in subs for k in kinds]}


@router.get(V2 + "/data_sets/{data_set_id}", dependencies=[READ])
def get_data_set(instance_id: str, data_set_id: str, request: Request) -> dict[str, Any]:
    data_mart_id(request, instance_id)
    return data_set(request, *resolve(request, data_set_id))


@router.post(V2 + "/data_sets/{data_set_id}/records", status_code=202, dependencies=[LOG])
async def store_records(
    instance_id: str,
    data_set_id: str,
    request: Request,
    response: Response,
    header: bool | None = None,
    delimiter: str = Query(",", min_length=1, max_length=1),
    on_error: Literal["stop", "continue"] = "stop",
    csv_max_line_length: int | None = None,
    split_to_multi_req: bool | None = None,
    is_historical_data: bool | None = None,
) -> dict[str, Any]:
    """Payload records (``[{request, response, scoring_id, ...}]``) or feedback rows (``[{fields,
    values}]``, row objects, CSV), stored before the answer. ``Location`` names the request,
    whose status is ``active`` at once."""
    data_mart_id(request, instance_id)
    svc = service_of(request)
    sub, kind = resolve(request, data_set_id)
    ctype = media_type(request)
    body: Any
    if ctype == "text/csv" and TYPES[kind] == FEEDBACK:
        body = await request.body()
    elif ctype in ("application/json", "text/json", ""):
        body = await read_json(request)
        ctype = "application/json"
    else:
        raise UnsupportedMediaType(f"send application/json (or text/csv for feedback), not {ctype!r}")

    def work() -> dict[str, Any]:
        if TYPES[kind] == PAYLOAD:
            r = svc.payloads.store(sub, body)
            svc.subscriptions.forget(sub.id)
            return {"stored": r.stored, "duplicates": r.duplicates, "records": r.records}
        fb = svc.feedback.store(sub.id, body, content_type=ctype, header=header, delimiter=delimiter, on_error=on_error)
        return fb.to_dict()

    outcome = await anyio.to_thread.run_sync(work)
    request_id = requests.add(data_set_id, outcome)
    response.headers["Location"] = v2_url(request, f"data_sets/{data_set_id}/requests/{request_id}")
    return {"state": "active", "request_id": request_id, **outcome}


@router.get(V2 + "/data_sets/{data_set_id}/requests/{request_id}", dependencies=[READ])
def request_status(instance_id: str, data_set_id: str, request_id: str, request: Request) -> dict[str, Any]:
    data_mart_id(request, instance_id)
    item = requests.get(data_set_id, request_id)
    return {"state": "active", **{k: v for k, v in item.items() if k != "data_set_id"}}


def read_page(
    request: Request,
    sub: Subscription,
    kind: str,
    limit: int,
    offset: int,
    start: datetime | None,
    end: datetime | None,
) -> tuple[int, list[dict[str, Any]]]:
    """(rows in the window, a page of rows newest first); ``limit=0`` counts only."""
    total, rows = service_of(request).payloads.read(
        sub.id, limit=max(limit, 1), offset=offset, start=start, end=end, kind=kind
    )
    return total, rows if limit else []


@router.get(V2 + "/data_sets/{data_set_id}/records", dependencies=[READ])
def list_records(
    instance_id: str,
    data_set_id: str,
    request: Request,
    limit: int = Query(100, ge=0, le=10_000),
    offset: int = Query(0, ge=0, le=100_000_000),
    start: datetime | None = None,
    end: datetime | None = None,
    include_total_count: bool = False,
    format: Literal["dict", "list"] = "dict",
) -> dict[str, Any]:
    data_mart_id(request, instance_id)
    sub, kind = resolve(request, data_set_id)
    total, rows = read_page(request, sub, TYPES[kind], limit, offset, start, end)
    if format == "list":
        fields: list[str] = list(rows[0]) if rows else []
        out: dict[str, Any] = {"records": [{"fields": fields, "values": [[r[f] for f in fields] for r in rows]}]}
    else:
        out = {
            "records": [
                {
                    "metadata": {"id": r.get("scoring_id"), "created_at": r.get("scoring_timestamp")},
                    "entity": {"values": r},
                }
                for r in rows
            ]
        }
    if include_total_count:
        out["total_count"] = total
    return out


# -- v1 ------------------------------------------------------------------------------------------


@router.get("/v1/data_marts/{dm}/scoring_transactions", dependencies=[READ])
def scoring_transactions(
    dm: str,
    request: Request,
    subscription_id: str,
    limit: int = Query(100, ge=0, le=10_000),
    offset: int = Query(0, ge=0, le=100_000_000),
    include_total_count: bool = False,
    start: datetime | None = None,
    end: datetime | None = None,
    binding_id: str | None = None,
) -> dict[str, Any]:
    """The payload table as ``{fields, values}``, newest first (``total_count`` on request)."""
    data_mart_id(request, dm)
    sub = find(request, subscription_id, binding_id)
    total, rows = read_page(request, sub, PAYLOAD, limit, offset, start, end)
    fields = [name for name, _ in sub.layout.payload_columns()]
    out: dict[str, Any] = {"fields": fields, "values": [[r.get(f) for f in fields] for r in rows]}
    if include_total_count:
        out["total_count"] = total
    return out


_SPARK = {"integer": "long", "double": "double", "string": "string", "boolean": "boolean", "json": "string"}


def spark_type(kind: Any) -> str:
    value = getattr(kind, "value", kind)
    return {"vector": "array", "timestamp": "timestamp"}.get(value) or _SPARK[value]


@router.get(
    "/v1/data_marts/{dm}/service_bindings/{binding_id}/subscriptions/{subscription_id}/payload_table_schema",
    dependencies=[READ],
)
def payload_table_schema(dm: str, binding_id: str, subscription_id: str, request: Request) -> dict[str, Any]:
    """The payload table's columns in ``scoring_transactions`` order."""
    data_mart_id(request, dm)
    sub = find(request, subscription_id, binding_id)
    fields = [{"name": n, "type": spark_type(k), "nullable": True} for n, k in sub.layout.payload_columns()]
    return {"table_schema": {"type": "struct", "fields": fields}}


_CONFIG = (
    "/v1/data_marts/{dm}/service_bindings/{binding_id}/subscriptions/{subscription_id}/configurations/payload_logging"
)


def payload_logging(request: Request, sub: Subscription) -> dict[str, Any]:
    return {
        "enabled": True,
        "parameters": {"dynamic_schema_update": True, "table_name": sub.layout.payload_table},
        "output_data_schema": None,
    }


@router.get(_CONFIG, dependencies=[READ])
def get_payload_logging(dm: str, binding_id: str, subscription_id: str, request: Request) -> dict[str, Any]:
    data_mart_id(request, dm)
    return payload_logging(request, find(request, subscription_id, binding_id))


@router.put(_CONFIG, dependencies=[WRITE])
def put_payload_logging(
    dm: str, binding_id: str, subscription_id: str, request: Request, response: Response, body: Any = Body(None)
) -> dict[str, Any]:
    """Payload logging is always on in Scrutiny: ``enabled: true`` is a no-op, ``false`` is refused."""
    data_mart_id(request, dm)
    sub = find(request, subscription_id, binding_id)
    body = body if isinstance(body, dict) else {}
    if body.get("enabled") is False:
        raise InvalidInput(
            "payload logging cannot be disabled: Scrutiny logs every payload it is sent", field="enabled"
        )
    ignored = Ignored()
    ignored.take(body, {"enabled"})
    ignored.report(request, response)
    return payload_logging(request, sub)
