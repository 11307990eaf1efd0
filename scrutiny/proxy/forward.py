"""One proxied scoring call: check the key, forward to the engine, spool the exchange, answer.

The application's request is forwarded byte for byte (the engine's own credentials come from
the binding), and the engine's answer is returned byte for byte with its status and content
type, plus ``X-Scrutiny-Scoring-Id``. The answer is sent only once the exchange is durable
in the spool; the data mart is never on this path.

Not logged: requests with ``X-Scrutiny-Internal`` (stripped before forwarding) and failed
engine calls (non-2xx, timeouts, unreachable engines), which are passed through and counted.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import orjson

from scrutiny.core.scoring_format import parse_scoring_request
from scrutiny.engines import INTERNAL_HEADER, NativeRequest, NativeResponse
from scrutiny.engines.errors import EngineError, EngineTimeout, EngineUnreachable
from scrutiny.errors import InvalidInput, ScrutinyError
from scrutiny.ingest.batch import new_ids
from scrutiny.proxy.keys import KeyCheck
from scrutiny.proxy.metrics import ProxyMetrics
from scrutiny.proxy.targets import Target, Targets
from scrutiny.spool.record import COMMON, NATIVE, SpoolRecord
from scrutiny.spool.spool import Spool

SCORING_ID_HEADER = "X-Scrutiny-Scoring-Id"
API_KEY_HEADER = "X-Scrutiny-Api-Key"
FORMAT_HEADER = "X-Scrutiny-Format"
TRANSACTION_HEADER = "X-Global-Transaction-Id"
MAX_SCORING_ID = 160  # row ids append "-<n>"; the store takes 200

# Caller headers never forwarded: hop-by-hop, framing, the caller's credentials for Scrutiny
# (the engine's come from the binding), and Scrutiny's own.
_NOT_FORWARDED = frozenset(
    {
        "host",
        "content-length",
        "content-type",
        "transfer-encoding",
        "connection",
        "keep-alive",
        "te",
        "trailer",
        "upgrade",
        "expect",
        "proxy-authorization",
        "proxy-connection",
        "authorization",
        "cookie",
        "accept-encoding",
    }
)
# Engine response headers never passed back: framing and what this server sets itself.
_NOT_RETURNED = frozenset(
    {
        "content-length",
        "content-type",
        "content-encoding",
        "transfer-encoding",
        "connection",
        "keep-alive",
        "date",
        "server",
        "set-cookie",
        "te",
        "trailer",
        "upgrade",
    }
)
_TRUE = frozenset({"1", "true", "yes", "on"})


log = logging.getLogger("scrutiny.proxy")


class ProxyError(ScrutinyError):
    code = "internal_error"
    status = 500


@dataclass
class ProxyResponse:
    status: int
    body: bytes
    content_type: str | None = "application/json"
    headers: dict[str, str] = field(default_factory=dict)


def _canonical(name: str) -> str:
    return "-".join(p.capitalize() for p in name.split("-"))


def error_response(exc: ScrutinyError) -> ProxyResponse:
    body = orjson.dumps({"error": exc.to_dict()}, default=str)
    headers = {}
    if exc.context.get("retry_after"):
        headers["Retry-After"] = str(exc.context["retry_after"])
    return ProxyResponse(exc.status, body, "application/json", headers)


class Proxy:
    def __init__(self, spool: Spool, targets: Targets, keys: KeyCheck, metrics: ProxyMetrics) -> None:
        self.spool = spool
        self.targets = targets
        self.keys = keys
        self.metrics = metrics

    async def handle(
        self, subscription_id: str, rest: str, query: str, headers: dict[str, str], body: bytes
    ) -> ProxyResponse:
        """``headers`` has lower-case names. Never raises: every failure is an HTTP answer."""
        t0 = time.perf_counter()
        outcome = "refused"
        metrics = self.metrics.of("")  # until the subscription is known: no series per made-up id
        try:
            token = headers.get("x-scrutiny-api-key")
            if token is None:
                auth = headers.get("authorization", "")
                if auth[:7].lower() == "bearer ":
                    token = auth[7:].strip()
            await self.keys.check(token)
            target = await self.targets.get(subscription_id)
            metrics = self.metrics.of(subscription_id)
            log_it = headers.get("x-scrutiny-internal", "").strip().lower() not in _TRUE
            common = self._is_common(target, headers, body)
            scoring_id = self._scoring_id(headers) if log_it else None
            native, request_rows = self._native_request(target, common, rest, query, headers, body)
            if log_it and not self.spool.room(len(body) * 2 + 4096):
                self.spool.refused += 1
                raise _spool_full(self.spool)
            try:
                response = await target.codec.engine.asend(target.codec.deployment, native, internal=False)
            except EngineError as exc:
                outcome = "engine_error"
                metrics.engine_error(_failure_kind(exc))
                return error_response(exc)
            metrics.engine_latency.observe(response.elapsed_ms / 1000)
            if not 200 <= response.status < 300:
                outcome = "engine_error"
                kind = "status_5xx" if response.status >= 500 else "status_4xx"
                metrics.engine_error(kind)
                return self._passthrough(response)
            try:
                answer, logged_request, logged_response = self._answer(target, common, response, request_rows, body)
            except EngineError as exc:  # a common-format caller needs a decodable answer
                outcome = "engine_error"
                metrics.engine_error("bad_response")
                return error_response(exc)
            if scoring_id is None:
                outcome = "not_logged"
                return answer
            record = SpoolRecord(
                subscription_id=subscription_id,
                scoring_id=scoring_id,
                request=logged_request,
                response=logged_response,
                form=COMMON if common else NATIVE,
                timestamp=time.time() - (time.perf_counter() - t0),
                response_time_ms=response.elapsed_ms,
                request_type=native.content_type,
                response_type=response.content_type or "application/octet-stream",
                status=response.status,
                path=native.path,
                transaction_id=headers.get("x-global-transaction-id"),
                request_encoding=None if common else headers.get("content-encoding"),
            )
            await self.spool.append(record.encode())
            answer.headers[SCORING_ID_HEADER] = scoring_id
            outcome = "logged"
            self.metrics.overhead.observe(max(0.0, time.perf_counter() - t0 - response.elapsed_ms / 1000))
            return answer
        except ScrutinyError as exc:
            if exc.code == "spool_full":
                outcome = "spool_full"
            elif exc.status == 503:
                outcome = "unavailable"
            return error_response(exc)
        except Exception as exc:  # a bug (an adapter failing on odd input...): a clear 500, nothing logged
            log.exception("proxy: unexpected error for subscription %s", subscription_id)
            outcome = "error"
            return error_response(ProxyError(f"unexpected error: {exc.__class__.__name__}; nothing was logged"))
        finally:
            metrics.outcome(outcome)

    # -- pieces ----------------------------------------------------------------------------------
    @staticmethod
    def _is_common(target: Target, headers: dict[str, str], body: bytes) -> bool:
        """Whether the body is the common format rather than the engine's own.

        ``X-Scrutiny-Format: common | native`` decides; without it a JSON object holding only
        ``fields``, ``values`` (and ``meta``) is taken as common, unless that already is the
        engine's native format, in which case it is forwarded untouched."""
        declared = headers.get("x-scrutiny-format", "").strip().lower()
        if declared == "native":
            return False
        if declared == "common":
            return True
        if declared not in ("", "auto"):
            raise InvalidInput("X-Scrutiny-Format must be native, common or auto", field=FORMAT_HEADER)
        if target.speaks_common or not body.lstrip().startswith(b"{"):
            return False
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError:
            return False
        return isinstance(data, dict) and {"fields", "values"} <= data.keys() <= {"fields", "values", "meta"}

    @staticmethod
    def _native_request(
        target: Target, common: bool, rest: str, query: str, headers: dict[str, str], body: bytes
    ) -> tuple[NativeRequest, int | None]:
        forwarded = {
            _canonical(k): v
            for k, v in headers.items()
            if k not in _NOT_FORWARDED and not k.startswith("x-scrutiny-") and k != INTERNAL_HEADER.lower()
        }
        path = rest + (f"?{query}" if query else "")
        if not common:
            ctype = headers.get("content-type") or "application/json"
            return NativeRequest(body, ctype, path, forwarded), None
        try:
            request = parse_scoring_request(orjson.loads(body))
        except orjson.JSONDecodeError as exc:
            raise InvalidInput(f"the body is not valid JSON: {exc}") from None
        if not request.values:
            raise InvalidInput("no rows to score", field="values")
        codec = target.codec
        native = codec.engine.encode_request(codec.deployment, request, codec.context)
        forwarded.pop("Content-Encoding", None)
        native.path = path or native.path
        native.headers = {**forwarded, **native.headers}
        return native, len(request)

    def _answer(
        self, target: Target, common: bool, response: NativeResponse, rows: int | None, body: bytes
    ) -> tuple[ProxyResponse, bytes, bytes]:
        """The caller's answer, and the request/response bytes to spool."""
        if not common:
            return self._passthrough(response), body, response.body
        codec = target.codec
        decoded = codec.engine.decode_response(codec.deployment, response, codec.context, rows)
        if rows is not None and len(decoded) != rows:
            raise EngineError(
                f"the engine returned {len(decoded)} output rows for {rows} input rows",
                engine=codec.engine.engine_type,
                binding=codec.engine.binding.name,
                deployment=codec.deployment.id,
            )
        out = orjson.dumps(decoded.to_dict(), option=orjson.OPT_SERIALIZE_NUMPY)
        return ProxyResponse(200, out, "application/json"), body, out

    @staticmethod
    def _passthrough(response: NativeResponse) -> ProxyResponse:
        headers = {k: v for k, v in response.headers.items() if k.lower() not in _NOT_RETURNED}
        return ProxyResponse(response.status, response.body, response.content_type or None, headers)

    @staticmethod
    def _scoring_id(headers: dict[str, str]) -> str:
        given = headers.get("x-scrutiny-scoring-id")
        if given is None:
            return _new_id()
        given = given.strip()
        if not given or len(given) > MAX_SCORING_ID or any(c.isspace() for c in given):
            raise InvalidInput(
                f"{SCORING_ID_HEADER} must be 1 to {MAX_SCORING_ID} characters without spaces", field=SCORING_ID_HEADER
            )
        return given


def _failure_kind(exc: EngineError) -> str:
    if isinstance(exc, EngineTimeout):
        return "timeout"
    if isinstance(exc, EngineUnreachable):
        return "unreachable"
    return "failed"


_ids: list[str] = []


def _new_id() -> str:
    """A uuid4, drawn from a pool filled 256 at a time (one urandom call instead of 256)."""
    if not _ids:
        _ids.extend(new_ids(256))
    return _ids.pop()


def _spool_full(spool: Spool) -> ScrutinyError:
    from scrutiny.spool.spool import SpoolFull

    return SpoolFull(
        f"the payload spool is full ({spool.max_bytes} bytes): the data mart has not accepted records; "
        "the request was not forwarded",
        retry_after=5,
    )
