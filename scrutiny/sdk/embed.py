"""Payload logging inside a Python service that cannot route its traffic through the proxy.

The same spool and background writer as the proxy, in the application's own process:

* ``PayloadLogger``: ``log(request, response)`` returns once the record is durable in a local
  spool; a background thread delivers it to Scrutiny (``url`` + a logger key) or, when the
  process has a ``Service``, straight to the data mart.
* ``log_payloads(logger)``: a decorator around a scoring function taking and returning the
  common format (sync or async).
* ``PayloadLoggingMiddleware``: ASGI middleware around a scoring app; the response is sent once
  its record is durable and carries ``X-Scrutiny-Scoring-Id``.

A logging failure (the spool full or unwritable) does not fail the scoring call (OpenScale
contract §6.4): it is logged and counted in ``scrutiny_embedded_unlogged``; pass
``raise_on_error=True`` to fail instead.
"""

from __future__ import annotations

import contextvars
import functools
import inspect
import logging
import time
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import orjson

from scrutiny.core.scoring_format import ScoringRequest, ScoringResponse
from scrutiny.engines import BindingConfig, Deployment, ModelContext, engine_class
from scrutiny.errors import ScrutinyError
from scrutiny.proxy.convert import Codec
from scrutiny.proxy.forward import SCORING_ID_HEADER
from scrutiny.proxy.metrics import ProxyMetrics, publish, unpublish
from scrutiny.spool.deadletter import FILE_NAME, DeadLetters
from scrutiny.spool.drain import Drainer
from scrutiny.spool.record import COMMON, NATIVE, SpoolRecord
from scrutiny.spool.sinks import ApiSink, Sink, StoreSink
from scrutiny.spool.spool import Spool

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

    from scrutiny.service import Service

log = logging.getLogger("scrutiny.embedded")
F = TypeVar("F", bound=Callable[..., Any])

_scoring_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("scrutiny_scoring_id", default=None)


def current_scoring_id() -> str | None:
    """Inside (and after) a ``log_payloads`` call: the scoring id the exchange is logged under."""
    return _scoring_id.get()


def codec_for(
    engine_type: str, *, feature_fields: list[str] | None = None, labels: list[Any] | None = None, **context: Any
) -> Codec:
    """Decoders of an engine's native format without a binding (no credentials needed to decode)."""
    cls = engine_class(engine_type)
    engine = cls(BindingConfig(id="embedded", name="embedded", engine_type=engine_type, settings={}, credentials={}))
    return Codec(
        engine,
        Deployment(id="embedded", name="embedded"),
        ModelContext(feature_fields=feature_fields, labels=labels, **context),
    )


def _json(part: Any) -> bytes:
    if isinstance(part, ScoringRequest | ScoringResponse):
        part = part.to_dict()
    elif isinstance(part, (bytes, bytearray)):
        return bytes(part)
    elif isinstance(part, str):
        return part.encode()
    return orjson.dumps(part, option=orjson.OPT_SERIALIZE_NUMPY)


class PayloadLogger:
    """A local spool and its background writer for one subscription."""

    def __init__(
        self,
        subscription_id: str,
        *,
        spool_dir: Path | str,
        url: str | None = None,
        api_key: str | None = None,
        service: Service | None = None,
        codec: Codec | None = None,
        max_bytes: int = 256 << 20,
        raise_on_error: bool = False,
        metrics: ProxyMetrics | None = None,
        batch_records: int = 500,
    ) -> None:
        self.subscription_id = subscription_id
        self.codec = codec
        self.raise_on_error = raise_on_error
        self.metrics = metrics or ProxyMetrics()
        self.spool = Spool(spool_dir, max_bytes=max_bytes)
        self.dead_letters = DeadLetters(Path(spool_dir) / FILE_NAME)
        self._client = None
        sink: Sink
        if service is not None:
            from scrutiny.proxy.targets import Targets

            sink = StoreSink(service, Targets(service))
            self.native_ok = True
        else:
            import httpx

            if not url or not api_key:
                raise ValueError("give url= and api_key= (a logger key) of the Scrutiny server, or service=")
            self._client = httpx.Client(
                base_url=url.rstrip("/"), headers={"Authorization": f"Bearer {api_key}"}, timeout=30.0
            )
            sink = ApiSink(self._client, codec)
            self.native_ok = codec is not None
        self.drainer = Drainer(self.spool, sink, self.dead_letters, self.metrics, batch_records=batch_records)
        self._started = False

    def start(self) -> PayloadLogger:
        if not self._started:
            self.spool.open()
            self.metrics.watch_spool(self.spool)
            publish(self.metrics)
            self.drainer.start()
            self._started = True
        return self

    def close(self, drain_timeout: float = 5.0) -> None:
        """Deliver what it can within ``drain_timeout``; the rest stays spooled for the next start."""
        if self._started:
            self._started = False
            unpublish(self.metrics)
            self.drainer.stop(drain_timeout)
            self.spool.close()
        if self._client is not None:
            self._client.close()

    def __enter__(self) -> PayloadLogger:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # -- logging ---------------------------------------------------------------------------------
    def record(
        self,
        request: Any,
        response: Any,
        *,
        scoring_id: str | None = None,
        response_time_ms: float | None = None,
        transaction_id: str | None = None,
        native: bool = False,
        request_type: str = "application/json",
        response_type: str = "application/json",
    ) -> SpoolRecord:
        if not self._started:
            self.start()
        form = NATIVE if native and self.native_ok else COMMON
        return SpoolRecord(
            subscription_id=self.subscription_id,
            scoring_id=scoring_id or str(uuid.uuid4()),
            request=_json(request),
            response=_json(response),
            form=form,
            response_time_ms=response_time_ms,
            transaction_id=transaction_id,
            request_type=request_type,
            response_type=response_type,
        )

    def log(self, request: Any, response: Any, **kw: Any) -> str | None:
        """Spool one exchange (common format, or native bytes with ``native=True``); returns its
        scoring id once durable, or None if it could not be spooled (see ``raise_on_error``)."""
        rec = self.record(request, response, **kw)
        try:
            self.spool.append_sync(rec.encode())
        except ScrutinyError as exc:
            self._failed(exc)
            return None
        return rec.scoring_id

    async def alog(self, request: Any, response: Any, **kw: Any) -> str | None:
        """``log`` for async code: awaits the group fsync without blocking the event loop."""
        rec = self.record(request, response, **kw)
        try:
            await self.spool.append(rec.encode())
        except ScrutinyError as exc:
            self._failed(exc)
            return None
        return rec.scoring_id

    def _failed(self, exc: ScrutinyError) -> None:
        self.metrics.unlogged.inc()
        if self.raise_on_error:
            raise exc
        log.error("payload not logged (the scoring call still succeeds): %s", exc.message)
        return None

    def wait_delivered(self, timeout: float = 30.0) -> bool:
        """Block until everything spooled so far is delivered (tests, batch jobs before exit)."""
        return self.drainer.wait_empty(timeout)


def log_payloads(
    logger: PayloadLogger,
    *,
    request_of: Callable[[tuple[Any, ...], dict[str, Any]], Any] | None = None,
    response_of: Callable[[Any], Any] | None = None,
) -> Callable[[F], F]:
    """Decorate a scoring function: the first argument is the request, the result the response
    (both in the common format; ``request_of`` / ``response_of`` adapt other signatures).
    The result is returned once the exchange is durable in the spool."""

    def pick_request(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        if request_of is not None:
            return request_of(args, kwargs)
        if "request" in kwargs:
            return kwargs["request"]
        return args[0]

    def decorate(fn: F) -> F:
        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                sid = str(uuid.uuid4())
                _scoring_id.set(sid)
                t0 = time.perf_counter()
                result = await fn(*args, **kwargs)
                elapsed = (time.perf_counter() - t0) * 1000
                resp = response_of(result) if response_of else result
                await logger.alog(pick_request(args, kwargs), resp, scoring_id=sid, response_time_ms=elapsed)
                return result

            return async_wrapper  # type: ignore[return-value]

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            sid = str(uuid.uuid4())
            _scoring_id.set(sid)
            t0 = time.perf_counter()
            result = fn(*args, **kwargs)
            elapsed = (time.perf_counter() - t0) * 1000
            resp = response_of(result) if response_of else result
            logger.log(pick_request(args, kwargs), resp, scoring_id=sid, response_time_ms=elapsed)
            return result

        return wrapper  # type: ignore[return-value]

    return decorate


class PayloadLoggingMiddleware:
    """ASGI middleware that logs the scoring requests of the app it wraps.

    ``paths``: the scoring paths (exact, or ending in ``*`` for a prefix); POSTs to them with a
    2xx answer are logged, others pass untouched. Bodies are the app's own format: the common
    format unless the logger has a ``codec`` (or a ``service``) to decode the native one.
    """

    def __init__(self, app: ASGIApp, logger: PayloadLogger, paths: Iterable[str] = ("*",)) -> None:
        self.app = app
        self.logger = logger
        self.exact = {p for p in paths if not p.endswith("*")}
        self.prefixes = tuple(p[:-1] for p in paths if p.endswith("*"))

    def _matches(self, path: str) -> bool:
        return path in self.exact or (bool(self.prefixes) and path.startswith(self.prefixes))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or not self._matches(scope["path"]):
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        if headers.get("x-scrutiny-internal", "").lower() in ("1", "true", "yes", "on"):
            await self.app(scope, receive, send)
            return
        body_parts: list[bytes] = []
        held: list[Message] = []
        t0 = time.perf_counter()

        async def capture_receive() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                body_parts.append(message.get("body", b""))
            return message

        async def hold_send(message: Message) -> None:
            held.append(message)
            if message["type"] == "http.response.body" and not message.get("more_body", False):
                await self._finish(headers, b"".join(body_parts), held, send, t0)

        await self.app(scope, capture_receive, hold_send)

    async def _finish(
        self, headers: dict[str, str], request: bytes, held: list[Message], send: Send, t0: float
    ) -> None:
        start = held[0]
        status = int(start["status"])
        if 200 <= status < 300:
            resp_headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in start.get("headers", [])}
            response = b"".join(m.get("body", b"") for m in held[1:])
            sid = await self.logger.alog(
                request,
                response,
                scoring_id=headers.get("x-scrutiny-scoring-id"),
                response_time_ms=(time.perf_counter() - t0) * 1000,
                transaction_id=headers.get("x-global-transaction-id"),
                native=True,
                request_type=headers.get("content-type", "application/json"),
                response_type=resp_headers.get("content-type", "application/json"),
            )
            if sid is not None:
                start = {
                    **start,
                    "headers": [*start.get("headers", []), (SCORING_ID_HEADER.lower().encode(), sid.encode())],
                }
        await send(start)
        for message in held[1:]:
            await send(message)
