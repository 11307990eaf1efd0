"""One logged scoring exchange as it sits in the spool.

The proxy spools what crossed the wire (the native request and response bytes) and converts
them to the common format only when the background writer drains the spool, so conversion
costs nothing on the scoring path. Records that are already in the common format (the
embedded logger, common-format proxy calls) are spooled as such.
"""

from __future__ import annotations

import struct
import time
from dataclasses import dataclass, field
from typing import Any

import orjson

NATIVE = "native"  # engine bytes, decoded by the subscription's adapter when drained
COMMON = "common"  # {"fields", "values"[, "meta"]} JSON on both sides

_SIZES = struct.Struct("<III")


@dataclass
class SpoolRecord:
    subscription_id: str
    scoring_id: str
    request: bytes
    response: bytes
    form: str = NATIVE
    timestamp: float = field(default_factory=time.time)  # epoch seconds, when the request arrived
    response_time_ms: float | None = None
    request_type: str = "application/json"
    response_type: str = "application/json"
    status: int = 200
    path: str = ""
    transaction_id: str | None = None
    request_encoding: str | None = None  # Content-Encoding of the request body (gzip, deflate)

    def encode(self) -> bytes:
        meta: dict[str, Any] = {"s": self.subscription_id, "i": self.scoring_id, "t": self.timestamp}
        if self.form != NATIVE:
            meta["f"] = self.form
        if self.response_time_ms is not None:
            meta["r"] = round(self.response_time_ms, 3)
        if self.request_type != "application/json":
            meta["qt"] = self.request_type
        if self.response_type != "application/json":
            meta["pt"] = self.response_type
        if self.status != 200:
            meta["c"] = self.status
        if self.path:
            meta["p"] = self.path
        if self.transaction_id is not None:
            meta["x"] = self.transaction_id
        if self.request_encoding:
            meta["e"] = self.request_encoding
        head = orjson.dumps(meta)
        return b"".join(
            (_SIZES.pack(len(head), len(self.request), len(self.response)), head, self.request, self.response)
        )

    @classmethod
    def decode(cls, payload: bytes) -> SpoolRecord:
        """Raises ``ValueError`` for bytes that are not a record (a damaged spool)."""
        try:
            n_head, n_req, n_resp = _SIZES.unpack_from(payload, 0)
            start = _SIZES.size
            if start + n_head + n_req + n_resp != len(payload):
                raise ValueError("record sizes do not add up")
            meta = orjson.loads(payload[start : start + n_head])
            req = payload[start + n_head : start + n_head + n_req]
            resp = payload[start + n_head + n_req :]
            return cls(
                subscription_id=str(meta["s"]),
                scoring_id=str(meta["i"]),
                request=req,
                response=resp,
                form=meta.get("f", NATIVE),
                timestamp=float(meta["t"]),
                response_time_ms=meta.get("r"),
                request_type=meta.get("qt", "application/json"),
                response_type=meta.get("pt", "application/json"),
                status=int(meta.get("c", 200)),
                path=meta.get("p", ""),
                transaction_id=meta.get("x"),
                request_encoding=meta.get("e"),
            )
        except (struct.error, orjson.JSONDecodeError, KeyError, TypeError) as exc:
            raise ValueError(f"not a spool record: {exc}") from None

    def describe(self) -> dict[str, Any]:
        """A JSON-safe view for the dead-letter file: bodies as text when they are UTF-8."""
        out: dict[str, Any] = {
            "subscription_id": self.subscription_id,
            "scoring_id": self.scoring_id,
            "form": self.form,
            "timestamp": self.timestamp,
            "response_time_ms": self.response_time_ms,
            "status": self.status,
            "path": self.path,
            "transaction_id": self.transaction_id,
            "request_content_type": self.request_type,
            "response_content_type": self.response_type,
        }
        for name, body in (("request", self.request), ("response", self.response)):
            try:
                out[name] = body.decode("utf-8")
            except UnicodeDecodeError:
                import base64

                out[name + "_base64"] = base64.b64encode(body).decode()
        return out
