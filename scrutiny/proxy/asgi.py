"""The proxy's HTTP surface: ``POST /proxy/{subscription_id}[/{rest}]`` and ``GET /metrics``.

The same routes serve in two places: inside ``scrutiny serve`` (``install``, registered as an
API extension) and in the lean standalone ``scrutiny proxy`` process (``create_proxy_app``).
Responses are written as raw ASGI messages so the engine's content type passes unchanged
(Starlette would add a charset to ``text/*``).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import orjson
from starlette.applications import Starlette
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


async def metrics_endpoint(request: Request) -> _Raw:
    rt = _runtime(request)
    return _Raw(ProxyResponse(200, rt.metrics.render(), METRICS_TYPE))


async def health_endpoint(request: Request) -> _Raw:
    rt = _runtime(request)
    return _Raw(ProxyResponse(200, orjson.dumps(rt.health())))


ROUTES = [
    Route("/proxy/{subscription_id}", proxy_endpoint, methods=["POST"]),
    Route("/proxy/{subscription_id}/{rest:path}", proxy_endpoint, methods=["POST"]),
    Route("/metrics", metrics_endpoint, methods=["GET"]),
]


async def start_runtime(app: Any, spool_dir: Path) -> ProxyRuntime:
    rt = ProxyRuntime(app.state.service, spool_dir)
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
        await start_runtime(app, app.state.settings.spool_dir / "api")

    app.state.startup.append(startup)
    app.state.shutdown.append(stop_runtime)


def create_proxy_app(settings: Settings, spool_dir: Path | None = None) -> Starlette:
    """The standalone proxy: its own process, spool and metrics, sharing the data mart."""
    from scrutiny.api.app import BodyLimit
    from scrutiny.service import Service

    spool = spool_dir or settings.spool_dir / f"proxy-{settings.proxy_port}"

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await start_runtime(app, spool)
        try:
            yield
        finally:
            await stop_runtime(app)
            app.state.service.close()

    app = Starlette(
        routes=[*ROUTES, Route("/health", health_endpoint, methods=["GET"])],
        lifespan=lifespan,
    )
    app.state.service = Service(settings)
    app.state.settings = settings
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    return app
