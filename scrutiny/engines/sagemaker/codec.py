"""SageMaker's native bodies: CSV, JSON and JSON Lines, both ways (engines.md §5).

Requests: ``text/csv`` (one row per line, no header, features in training order, RFC 4180
quoting), ``application/json`` (``{"instances": [{"features": [...]}]}`` as the built-in
algorithms take it, or ``instances`` lists / records for custom containers) and
``application/jsonlines``. Responses: linear-learner style ``{"predictions": [{"score",
"predicted_label"}]}``, bare ``{"predictions": [...]}`` lists of labels or vectors, CSV with
one value per row separated by commas or newlines (XGBoost), one vector per line, and JSON
Lines. Invocations are limited to 6 MB, so bodies are cut by encoded size, in order.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson

from scrutiny.core.scoring_format import ScoringRequest
from scrutiny.engines.base import ModelContext
from scrutiny.engines.native_tables import (
    Columns,
    NativeDecodeError,
    NativeShapeError,
    from_list,
    from_records,
    ordered_rows,
    type_value,
)
from scrutiny.errors import InvalidInput

CSV = "text/csv"
JSON = "application/json"
JSONLINES = "application/jsonlines"
MAX_PAYLOAD_BYTES = 6 * 1024 * 1024  # InvokeEndpoint's limit on the request body
JSON_FORMATS = ("features", "instances", "records")
_JSON_OPTS = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS


def media(content_type: str | None) -> str:
    """``text/csv; charset=utf-8`` -> ``text/csv``; the JSON Lines aliases -> ``application/jsonlines``."""
    base = (content_type or "").split(";")[0].strip().lower()
    if base in ("application/jsonl", "application/x-jsonlines", "application/json-lines"):
        return JSONLINES
    return base


@dataclass(frozen=True)
class Codec:
    """How one deployment is spoken to (its ``options``)."""

    content_type: str = JSON
    accept: str = JSON
    json_format: str = "features"
    scalar_output: str = "auto"  # what one number per row is: auto | score | prediction
    max_payload_bytes: int = MAX_PAYLOAD_BYTES

    @classmethod
    def from_options(cls, options: dict[str, Any]) -> Codec:
        ctype = media(options.get("content_type")) or JSON
        if ctype not in (CSV, JSON, JSONLINES):
            raise InvalidInput(
                f"content_type {ctype!r} is not supported; use text/csv, application/json or application/jsonlines",
                field="deployment.options.content_type",
            )
        fmt = str(options.get("json_format") or "features")
        if fmt not in JSON_FORMATS:
            raise InvalidInput(
                f"json_format must be one of {', '.join(JSON_FORMATS)}", field="deployment.options.json_format"
            )
        limit = int(options.get("max_payload_bytes") or MAX_PAYLOAD_BYTES)
        return cls(
            content_type=ctype,
            accept=media(options.get("accept")) or JSON,
            json_format=fmt,
            scalar_output=str(options.get("scalar_output") or "auto"),
            max_payload_bytes=min(limit, MAX_PAYLOAD_BYTES),
        )


# -- requests: common -> native ----------------------------------------------------------------


def _csv_text(rows: Sequence[Sequence[Any]]) -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(rows)
    return buf.getvalue()


def _json_instance(codec: Codec, fields: list[str]) -> Any:
    if codec.json_format == "records":
        return lambda row: dict(zip(fields, row, strict=True))
    if codec.json_format == "instances":
        return lambda row: row
    return lambda row: {"features": row}


def encode(codec: Codec, fields: list[str], rows: Sequence[Sequence[Any]]) -> bytes:
    if codec.content_type == CSV:
        return _csv_text(rows).encode()
    make = _json_instance(codec, fields)
    if codec.content_type == JSONLINES:
        return b"".join(orjson.dumps(make(r), option=_JSON_OPTS) + b"\n" for r in rows)
    if codec.json_format == "records":
        return orjson.dumps([make(r) for r in rows], option=_JSON_OPTS)
    return orjson.dumps({"instances": [make(r) for r in rows]}, option=_JSON_OPTS)


def _sized(
    codec: Codec, fields: list[str], rows: Sequence[Sequence[Any]]
) -> tuple[bytes, np.ndarray, bytes, bytes, bytes]:
    """The rows encoded back to back, each row's size in bytes (its separator included), and the
    separator, prefix and suffix that make a slice of them a body."""
    if codec.content_type == CSV:
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        sizes = np.fromiter((writer.writerow(r) for r in rows), dtype=np.int64, count=len(rows))  # characters
        text = buf.getvalue()
        data = text.encode()
        if len(data) != len(text):  # not ASCII: count bytes, row by row
            ends = np.cumsum(sizes).tolist()
            sizes = np.fromiter(
                (len(text[a:b].encode()) for a, b in zip([0, *ends[:-1]], ends, strict=True)),
                dtype=np.int64,
                count=len(rows),
            )
        return data, sizes, b"", b"", b""
    make = _json_instance(codec, fields)
    pieces = [orjson.dumps(make(r), option=_JSON_OPTS) for r in rows]
    sizes = np.fromiter((len(p) + 1 for p in pieces), dtype=np.int64, count=len(pieces))
    if codec.content_type == JSONLINES:
        return b"\n".join(pieces) + b"\n", sizes, b"", b"", b""
    if codec.json_format == "records":
        return b",".join(pieces), sizes, b",", b"[", b"]"
    return b",".join(pieces), sizes, b",", b'{"instances":[', b"]}"


def batches(
    codec: Codec, fields: list[str], rows: Sequence[Sequence[Any]], max_rows: int
) -> Iterator[tuple[int, int, bytes]]:
    """``(start, stop, body)`` covering every row in order, each body within the payload limit.

    A batch that probably fits is encoded whole (one C-level pass); a larger one is encoded once
    with each row's size, and cut where the running size would cross the limit."""
    limit = codec.max_payload_bytes
    n = len(rows)
    step = max(1, max_rows)
    for start in range(0, n, step):
        stop = min(n, start + step)
        sample = min(stop - start, 64)
        estimate = len(encode(codec, fields, rows[start : start + sample])) * (stop - start) / sample
        if estimate < 2 * limit:
            body = encode(codec, fields, rows[start:stop])
            if len(body) <= limit:
                yield start, stop, body
                continue
        data, sizes, sep, prefix, suffix = _sized(codec, fields, rows[start:stop])
        overhead = len(prefix) + len(suffix) - len(sep)
        too_big = np.flatnonzero(sizes + overhead > limit)
        if too_big.size:
            r = int(too_big[0])
            raise InvalidInput(
                f"the row encodes to {int(sizes[r])} bytes, over SageMaker's {limit}-byte invocation limit",
                row=start + r + 1,
            )
        ends = np.cumsum(sizes)
        lo = 0
        while lo < len(sizes):
            base = int(ends[lo - 1]) if lo else 0
            hi = max(lo + 1, int(np.searchsorted(ends, base + limit - overhead, side="right")))
            yield start + lo, start + hi, prefix + data[base : int(ends[hi - 1]) - len(sep)] + suffix
            lo = hi


# -- requests: native -> common (the proxy logs what it forwards) -------------------------------


def decode_request(body: bytes, content_type: str, context: ModelContext) -> ScoringRequest:
    ctype = media(content_type)
    if ctype == CSV:
        return _csv_request(body, context)
    if ctype in (JSON, JSONLINES, ""):
        try:
            if ctype == JSONLINES:
                data: Any = [orjson.loads(line) for line in body.splitlines() if line.strip()]
            else:
                data = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise InvalidInput(f"the request body is not valid JSON: {exc}") from None
        return _json_request(data, context)
    raise InvalidInput(f"cannot read a SageMaker request of type {content_type!r}", field="content-type")


def _csv_request(body: bytes, context: ModelContext) -> ScoringRequest:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidInput("the CSV request is not UTF-8") from None
    rows = [r for r in csv.reader(io.StringIO(text)) if r]
    fields = list(context.feature_fields or [])
    if rows and fields and rows[0] == fields:
        rows = rows[1:]  # a header row, although SageMaker's built-ins take none
    if not fields:
        raise InvalidInput(
            "a CSV request has no header: the subscription needs feature_fields to read it", field="feature_fields"
        )
    kinds = [context.feature_kinds.get(f) for f in fields]
    values = []
    for r, row in enumerate(rows, start=1):
        if len(row) != len(fields):
            raise InvalidInput(f"CSV row has {len(row)} values for {len(fields)} features", row=r)
        values.append([type_value(v, k) for v, k in zip(row, kinds, strict=True)])
    return ScoringRequest(fields, values)


def _json_request(data: Any, context: ModelContext) -> ScoringRequest:
    items = data.get("instances") if isinstance(data, dict) else data
    if isinstance(data, dict) and items is None and isinstance(data.get("features"), list):
        items = [data]
    if not isinstance(items, list):
        raise InvalidInput("a JSON request must hold an 'instances' list (or be a list of rows)")
    if items and all(isinstance(i, dict) and "features" in i for i in items):
        items = [i["features"] for i in items]
    if items and all(isinstance(i, dict) for i in items):
        try:
            cols = from_records(items, "instances")
        except NativeShapeError as exc:
            raise InvalidInput(str(exc), field="instances") from None
        return ScoringRequest(list(cols), [list(r) for r in zip(*cols.values(), strict=True)])
    fields = list(context.feature_fields or [])
    if not fields:
        raise InvalidInput("positional instances need the subscription's feature_fields", field="feature_fields")
    for r, row in enumerate(items, start=1):
        if not isinstance(row, list) or len(row) != len(fields):
            raise InvalidInput(f"instance is not a list of {len(fields)} values", row=r, field="instances")
    return ScoringRequest(fields, [list(row) for row in items])


# -- responses: native -> common ---------------------------------------------------------------


_SNIFFED = frozenset({"", "application/octet-stream", "binary/octet-stream", "text/plain"})


def decode_response(body: bytes, content_type: str, context: ModelContext, codec: Codec, n_rows: int | None) -> Columns:
    """Output columns named as the engine names them (``predicted_label``, ``score``...), read
    by the response's own content type (sniffed when the container sends none)."""
    ctype = media(content_type)
    if ctype in _SNIFFED:
        head = body.lstrip()[:1]
        if head in (b"{", b"["):
            ctype = JSONLINES if head == b"{" and body.strip().count(b"\n") and codec.accept == JSONLINES else JSON
        else:
            ctype = CSV
    if ctype == CSV:
        return _csv_response(body, context, codec, n_rows)
    if ctype == JSONLINES:
        try:
            lines = [orjson.loads(line) for line in body.splitlines() if line.strip()]
        except orjson.JSONDecodeError as exc:
            raise NativeDecodeError(f"a JSON Lines response line is not JSON: {exc}") from None
        return _items(lines, context, codec, "lines")
    if ctype != JSON and not ctype.endswith("+json"):
        raise NativeDecodeError(f"response has content type {content_type!r}, not CSV or JSON")
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise NativeDecodeError(f"response is not JSON (content type {content_type or 'unknown'!r})") from None
    if isinstance(data, dict):
        for key in ("predictions", "outputs", "results"):
            if isinstance(data.get(key), list):
                return _items(data[key], context, codec, key)
        if "score" in data or "predicted_label" in data:
            return _items([data], context, codec, "response")
        raise NativeShapeError(f"JSON response has no 'predictions' list (keys: {sorted(data)[:8]})")
    if isinstance(data, list):
        return _items(data, context, codec, "response")
    raise NativeShapeError("JSON response is neither an object nor a list")


def _items(items: list[Any], context: ModelContext, codec: Codec, what: str) -> Columns:
    return from_list(
        items, context, prediction="predicted_label", probability="score", scalar_hint=codec.scalar_output, what=what
    )


def _csv_response(body: bytes, context: ModelContext, codec: Codec, n_rows: int | None) -> Columns:
    """One value per row, separated by commas or newlines; or one vector per line."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise NativeDecodeError("CSV response is not UTF-8") from None
    lines = [r for r in csv.reader(io.StringIO(text.strip())) if r]
    if not lines:
        raise NativeShapeError("CSV response is empty")
    total = sum(len(r) for r in lines)
    if n_rows is not None and total == n_rows:
        rows = [[v] for r in lines for v in r]  # "0.2,0.7,0.1" or one per line
    elif (n_rows is not None and len(lines) == n_rows) or (n_rows is None and len(lines) > 1):
        rows = lines
    elif n_rows is None:
        rows = [[v] for v in lines[0]]
    else:
        raise NativeShapeError(f"CSV response has {len(lines)} lines and {total} values for {n_rows} rows")
    width = {len(r) for r in rows}
    if len(width) > 1:
        raise NativeShapeError(f"CSV response lines have different numbers of values {sorted(width)}")
    typed = [[type_value(v.strip(), None) for v in r] for r in rows]
    if width == {1}:
        return _items([r[0] for r in typed], context, codec, "CSV response")
    return _items(typed, context, codec, "CSV response")


__all__ = [
    "CSV",
    "JSON",
    "JSONLINES",
    "MAX_PAYLOAD_BYTES",
    "Codec",
    "batches",
    "decode_request",
    "decode_response",
    "encode",
    "media",
    "ordered_rows",
]
