"""What every OpenScale resource shares: the data mart id (and its alias), the v2 path prefix,
the ``{"metadata", "entity"}`` envelope, compound ids, and reporting fields that are ignored."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from fastapi import Request, Response

from scrutiny.errors import InvalidInput, NotFound, ScrutinyError
from scrutiny.service import DEFAULT_DATA_MART_ID

log = logging.getLogger("scrutiny.api.openscale")

ZERO_GUID = DEFAULT_DATA_MART_ID
V2 = "/openscale/{instance_id}/v2"
IGNORED_HEADER = "X-Scrutiny-Ignored-Fields"


def data_mart_id(request: Request, given: str | None) -> str:
    """The data mart's id for ``given`` (its id or OpenScale's default id); 404 for any other."""
    real: str = request.app.state.service.check_data_mart(given)
    return real


def iso(t: datetime | str | None) -> str | None:
    if t is None or isinstance(t, str):
        return t
    return t.isoformat().replace("+00:00", "Z")


def v2_url(request: Request, path: str) -> str:
    """The absolute v2 URL of a resource, under the instance the client called."""
    instance = request.path_params.get("instance_id", ZERO_GUID)
    return f"{str(request.base_url).rstrip('/')}/openscale/{instance}/v2/{path}"


def v1_url(request: Request, path: str) -> str:
    return f"{str(request.base_url).rstrip('/')}/v1/{path}"


def v2_resource(id_: str, url: str, entity: dict[str, Any], created_at: Any = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"id": id_, "url": url}
    if created_at is not None:
        meta["created_at"] = iso(created_at)
    return {"metadata": meta, "entity": entity}


def v1_resource(guid: str, url: str, entity: dict[str, Any], created_at: Any = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"guid": guid, "url": url}
    if created_at is not None:
        meta["created_at"] = iso(created_at)
    return {"metadata": meta, "entity": entity}


def compound_id(sub_id: str, part: str) -> str:
    """An id that names a part of a subscription (its payload data set, its quality monitor):
    decoded again by ``split_id``, so nothing is stored to map it."""
    return f"{sub_id}.{part}"


def split_id(value: str, what: str) -> tuple[str, str]:
    sub_id, dot, part = value.rpartition(".")
    if not dot or not sub_id or not part:
        raise NotFound(f"{what} {value!r} not found")
    return sub_id, part


class NotSupported(ScrutinyError):
    """An OpenScale feature Scrutiny does not have; the message says what to use instead."""

    code = "not_supported"
    status = 400


def body_object(body: Any, what: str = "the body") -> dict[str, Any]:
    if not isinstance(body, dict):
        raise InvalidInput(f"{what} must be a JSON object")
    return body


class Ignored:
    """Fields of an OpenScale request that Scrutiny accepts without acting on them: reported in
    the ``X-Scrutiny-Ignored-Fields`` response header and the log, never silently dropped."""

    def __init__(self) -> None:
        self.fields: list[str] = []

    def take(self, body: dict[str, Any], known: set[str] | frozenset[str], prefix: str = "") -> None:
        for key, value in body.items():
            if key not in known and value not in (None, {}, []):
                self.fields.append(f"{prefix}{key}")

    def add(self, field: str) -> None:
        self.fields.append(field)

    def report(self, request: Request, response: Response) -> None:
        if self.fields:
            response.headers[IGNORED_HEADER] = ",".join(self.fields)
            log.info("%s %s: ignored %s", request.method, request.url.path, ", ".join(self.fields))
