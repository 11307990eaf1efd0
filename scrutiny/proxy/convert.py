"""Spooled exchanges -> payload records in the common format, with the subscription's adapter.

This is the only place the proxy's native bytes meet an engine's decoders; it runs in the
background writer, never on the scoring path.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Any

import orjson

from scrutiny.engines import Deployment, Engine, ModelContext, NativeRequest, NativeResponse
from scrutiny.engines.errors import EngineError
from scrutiny.errors import ScrutinyError
from scrutiny.spool.record import COMMON, SpoolRecord


class Rejected(Exception):
    """A record that can never be stored as it is; the message is the dead-letter reason."""


@dataclass(frozen=True)
class Codec:
    """What decodes a subscription's native traffic: its engine adapter, deployment and model context."""

    engine: Engine
    deployment: Deployment
    context: ModelContext


def request_body(rec: SpoolRecord) -> bytes:
    enc = (rec.request_encoding or "").lower()
    if enc in ("", "identity"):
        return rec.request
    try:
        if enc in ("gzip", "x-gzip"):
            return zlib.decompress(rec.request, 16 + zlib.MAX_WBITS)
        if enc == "deflate":
            return zlib.decompress(rec.request)
    except zlib.error as exc:
        raise Rejected(f"the request body is not valid {enc}: {exc}") from None
    raise Rejected(f"cannot decode a request body with Content-Encoding {enc!r}")


def payload_record(rec: SpoolRecord, codec: Codec | None) -> dict[str, Any]:
    """The record as ``parse_payloads`` takes it. Raises ``Rejected`` when it cannot be decoded."""
    try:
        if rec.form == COMMON:
            request = orjson.loads(rec.request)
            response = orjson.loads(rec.response)
        else:
            if codec is None:
                raise Rejected("a native record needs the subscription's engine adapter to be decoded")
            native_req = NativeRequest(request_body(rec), rec.request_type, rec.path)
            req = codec.engine.decode_request(codec.deployment, native_req, codec.context)
            native_resp = NativeResponse(rec.status, rec.response, rec.response_type)
            resp = codec.engine.decode_response(codec.deployment, native_resp, codec.context, len(req))
            request = req.to_dict()
            response = resp.to_dict()
    except Rejected:
        raise
    except orjson.JSONDecodeError as exc:
        raise Rejected(f"the logged body is not JSON: {exc}") from None
    except EngineError as exc:
        raise Rejected(f"the engine's answer cannot be read as a scoring response: {exc.message}") from None
    except ScrutinyError as exc:
        raise Rejected(f"the request cannot be read as a scoring request: {exc.message}") from None
    except Exception as exc:  # an adapter's decoder failing on odd input: retrying will not help
        raise Rejected(f"decoding failed: {exc.__class__.__name__}: {exc}") from None
    if rec.transaction_id is not None and isinstance(request, dict):
        request = _with_transaction_id(request, rec.transaction_id)
    out: dict[str, Any] = {
        "scoring_id": rec.scoring_id,
        "scoring_timestamp": rec.timestamp,
        "request": request,
        "response": response,
    }
    if rec.response_time_ms is not None:
        out["response_time"] = round(rec.response_time_ms)
    return out


def _with_transaction_id(request: dict[str, Any], tx: str) -> dict[str, Any]:
    """Store ``X-Global-Transaction-Id`` as the ``transaction_id`` meta column (contract §4.3)."""
    values = request.get("values")
    n = len(values) if isinstance(values, list) and values and isinstance(values[0], (list, dict)) else 1
    meta = request.get("meta")
    if meta is None:
        return {**request, "meta": {"fields": ["transaction_id"], "values": [[tx]] * n}}
    if isinstance(meta, dict) and isinstance(meta.get("fields"), list) and "transaction_id" not in meta["fields"]:
        rows = meta.get("values")
        if isinstance(rows, list) and len(rows) == n and all(isinstance(r, list) for r in rows):
            meta = {"fields": [*meta["fields"], "transaction_id"], "values": [[*r, tx] for r in rows]}
            return {**request, "meta": meta}
    return request
