"""The proxy's HTTP surface: ``POST /proxy/{subscription_id}[/{rest}]`` (and ``GET /metrics``, ``GET /health``
in the standalone process).

The same routes serve in two places: inside ``scrutiny serve`` (``install``, registered as an
API extension) and in the lean standalone ``scrutiny proxy`` process (``create_proxy_app``).
Responses are written as raw ASGI messages so the engine's content type passes unchanged
(Starlette would add a charset to ``text/*``).
"""

from __future__ import annotations

import logging
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import anyio
import orjson
from prometheus_client import REGISTRY, generate_latest
from starlette.requests import Request
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from scrutiny.config import Settings
from scrutiny.proxy.forward import ProxyResponse
from scrutiny.proxy.metrics import CONTENT_TYPE as METRICS_TYPE
from scrutiny.proxy.runtime import ProxyRuntime

log = logging.getLogger("scrutiny.proxy")


class _Raw:
    """An ASGI response with exactly the given status, headers and body."""

    def __init__(self, r: ProxyResponse) -> None:
        self.r = r

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        r = self.r
        headers = [(b"content-length", str(len(r.body)).encode())]
        if r.content_type:
            headers.append((b"content-type", r.content_type.encode("latin-1")))
        headers += [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in r.headers.items()]
        await send({"type": "http.response.start", "status": r.status, "headers": headers})
        await send({"type": "http.response.body", "body": r.body})


def _runtime(request: Request) -> ProxyRuntime:
    rt: ProxyRuntime | None = getattr(request.app.state, "proxy_runtime", None)
    if rt is None or not rt.started:
        raise RuntimeError("the proxy runtime is not started")
    return rt


async def proxy_endpoint(request: Request) -> _Raw:
    rt = _runtime(request)
    params = request.path_params
    body = await request.body()
    headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in request.scope["headers"]}
    query = request.scope.get("query_string", b"").decode("latin-1")
    result = await rt.proxy.handle(params["subscription_id"], params.get("rest", ""), query, headers, body)
    return _Raw(result)


async def health_endpoint(request: Request) -> _Raw:
    rt = _runtime(request)
    return _Raw(ProxyResponse(200, orjson.dumps(rt.health())))


# GET /metrics is the API's own route (the default registry, where the runtime publishes).
ROUTES = [
    Route("/proxy/{subscription_id}", proxy_endpoint, methods=["POST"]),
    Route("/proxy/{subscription_id}/{rest:path}", proxy_endpoint, methods=["POST"]),
]


async def start_runtime(app: Any, spool_dir: Path, *, fallback: bool = False) -> ProxyRuntime:
    rt = ProxyRuntime(app.state.service, spool_dir, fallback=fallback)
    await anyio.to_thread.run_sync(rt.start)
    app.state.proxy_runtime = rt
    return rt


async def stop_runtime(app: Any) -> None:
    rt: ProxyRuntime | None = getattr(app.state, "proxy_runtime", None)
    if rt is not None:
        await anyio.to_thread.run_sync(rt.stop)


def install(app: Any) -> None:
    """API extension: the proxy routes and ``/metrics`` inside ``scrutiny serve``."""
    for route in ROUTES:
        app.router.routes.append(route)

    async def startup(app: Any) -> None:
        await start_runtime(app, app.state.settings.spool_dir / "api", fallback=True)

    app.state.startup.append(startup)
    app.state.shutdown.append(stop_runtime)


class StandaloneProxy:
    """The standalone proxy as a bare ASGI app: the three routes need no framework, and every
    microsecond here is paid on each scoring call."""

    def __init__(self, settings: Settings, spool_dir: Path) -> None:
        from scrutiny.service import Service

        self.settings = settings
        self.spool_dir = spool_dir
        self.max_body = settings.max_body_bytes
        self.state = SimpleNamespace(service=Service(settings), settings=settings, proxy_runtime=None)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            await self._http(scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await start_runtime(self, self.spool_dir)
                except Exception as exc:
                    log.exception("the proxy could not start")
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await stop_runtime(self)
                self.state.service.close()
                await send({"type": "lifespan.shutdown.complete"})
                return

    def _metrics_denied(self, scope: Scope) -> ProxyResponse | None:
        """401/403 unless the request carries an API key allowed to read metrics (any role)."""
        from scrutiny.errors import ScrutinyError

        try:
            self.state.service.keys.verify(_bearer(scope), "metrics")
        except ScrutinyError as exc:
            return _error(exc.status, exc.code, exc.message)
        return None

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        rt: ProxyRuntime | None = self.state.proxy_runtime
        path: str = scope["path"]
        method: str = scope["method"]
        if rt is None or not rt.started:
            await _Raw(_error(503, "unavailable", "the proxy is starting or stopping"))(scope, receive, send)
            return
        if path.startswith("/proxy/"):
            if method != "POST":
                await _Raw(_error(405, "method_not_allowed", "the proxy forwards POST requests"))(scope, receive, send)
                return
            sub_id, _, rest = path[7:].partition("/")
            body = await _read_body(receive, self.max_body)
            if body is None:
                msg = f"the body exceeds {self.max_body} bytes (SCRUTINY_MAX_BODY_BYTES)"
                await _Raw(_error(413, "payload_too_large", msg))(scope, receive, send)
                return
            headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
            query = scope.get("query_string", b"").decode("latin-1")
            result = await rt.proxy.handle(sub_id, rest, query, headers, body)
            await _Raw(result)(scope, receive, send)
        elif path == "/metrics" and method == "GET":
            denied = self._metrics_denied(scope)
            if denied is not None:
                await _Raw(denied)(scope, receive, send)
                return
            await _Raw(ProxyResponse(200, generate_latest(REGISTRY), METRICS_TYPE))(scope, receive, send)
        elif path == "/health" and method == "GET":
            await _Raw(ProxyResponse(200, orjson.dumps(rt.health())))(scope, receive, send)
        else:
            await _Raw(_error(404, "not_found", f"no route {path}: POST /proxy/{{subscription_id}}"))(
                scope, receive, send
            )


def _bearer(scope: Scope) -> str | None:
    for name, value in scope.get("headers", []):
        if name == b"authorization":
            text = value.decode("latin-1")
            return text[7:].strip() if text[:7].lower() == "bearer " else None
    return None


async def _read_body(receive: Receive, limit: int) -> bytes | None:
    """The whole request body, or None past ``limit`` bytes."""
    message = await receive()
    body = message.get("body", b"")
    if not message.get("more_body", False):
        return body if len(body) <= limit else None
    parts = [body]
    size = len(body)
    while message.get("more_body", False):
        message = await receive()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        parts.append(chunk)
    return b"".join(parts)


def _error(status: int, code: str, message: str) -> ProxyResponse:
    return ProxyResponse(status, orjson.dumps({"error": {"code": code, "message": message}}))


def create_proxy_app(settings: Settings, spool_dir: Path | None = None) -> StandaloneProxy:
    """The standalone proxy: its own process, spool and metrics, sharing the data mart."""
    return StandaloneProxy(settings, spool_dir or settings.spool_dir / f"proxy-{settings.proxy_port}")
