"""The FastAPI application: routers, error handling, body limits, start-up."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from scrutiny import __version__
from scrutiny.config import Settings
from scrutiny.errors import ScrutinyError
from scrutiny.service import Service

log = logging.getLogger("scrutiny.api")


def error_response(status: int, code: str, message: str, **context: Any) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message, **context}}, status_code=status)


class BodyLimit:
    """413 for bodies over ``max_bytes``, by Content-Length up front or by counting a streamed body."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    too_big = int(value) > self.max_bytes
                except ValueError:
                    too_big = False
                if too_big:
                    await self._reject(scope, receive, send)
                    return
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise _TooLarge()
            return message

        try:
            await self.app(scope, counted, send)
        except _TooLarge:
            await self._reject(scope, receive, send)

    async def _reject(self, scope: Scope, receive: Receive, send: Send) -> None:
        resp = error_response(
            413, "payload_too_large", f"the body exceeds {self.max_bytes} bytes (SCRUTINY_MAX_BODY_BYTES)"
        )
        await resp(scope, receive, send)


class _TooLarge(Exception):
    pass


def is_store_outage(exc: BaseException) -> bool:
    """The store cannot be reached or written (locked, disk error, connection lost): a 503, not a
    500. The bulk paths talk to the driver directly, so its own errors count too."""
    import sqlite3

    import psycopg
    from sqlalchemy.exc import InterfaceError, OperationalError

    return isinstance(
        exc,
        (OperationalError, InterfaceError, sqlite3.OperationalError, psycopg.OperationalError, psycopg.InterfaceError),
    )


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ScrutinyError)
    async def scrutiny_error(request: Request, exc: ScrutinyError) -> JSONResponse:
        if exc.status >= 500:
            log.warning("%s %s -> %s: %s", request.method, request.url.path, exc.status, exc.message)
        return JSONResponse({"error": exc.to_dict()}, status_code=exc.status)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        first = errors[0] if errors else {}
        loc = [str(x) for x in first.get("loc", ()) if x not in ("body", "query", "path")]
        field = ".".join(loc) or None
        msg = "; ".join(
            f"{'.'.join(str(x) for x in e.get('loc', ()) if x != 'body') or 'body'}: {e.get('msg')}" for e in errors[:5]
        )
        return error_response(422, "invalid_input", msg, field=field)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed", 401: "unauthorized", 403: "forbidden"}.get(
            exc.status_code, "error"
        )
        return error_response(exc.status_code, code, str(exc.detail))

    async def store_error(request: Request, exc: Exception) -> JSONResponse:
        """Database errors answer in JSON here rather than in the last-resort handler, which
        Starlette follows with a re-raise that makes the server drop the connection."""
        if is_store_outage(exc):
            log.error("store unavailable on %s %s: %s", request.method, request.url.path, exc.__class__.__name__)
            return error_response(503, "store_unavailable", "the data mart is unavailable; nothing was stored")
        orig = getattr(exc, "orig", None) or exc
        first_line = (str(orig).strip().splitlines() or [""])[0][:200]
        log.error("store error on %s %s", request.method, request.url.path, exc_info=exc)
        return error_response(
            500,
            "store_error",
            f"the data mart refused the operation, which was rolled back: {orig.__class__.__name__}: {first_line}",
        )

    import sqlite3

    import psycopg
    from sqlalchemy.exc import DBAPIError

    for cls in (DBAPIError, sqlite3.Error, psycopg.Error):
        app.add_exception_handler(cls, store_error)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        if is_store_outage(exc):
            log.error("store unavailable on %s %s: %s", request.method, request.url.path, exc.__class__.__name__)
            return error_response(503, "store_unavailable", "the data mart is unavailable; nothing was stored")
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return error_response(500, "internal_error", f"unexpected error: {exc.__class__.__name__}")


def create_app(settings: Settings | None = None, service: Service | None = None) -> FastAPI:
    """The API. Pass a ``Service`` to share one with other components (the demo, tests)."""
    settings = settings or (service.settings if service else Settings.from_env())
    owned = service is None

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        svc: Service = app.state.service
        for hook in app.state.startup:
            await hook(app)
        try:
            yield
        finally:
            for hook in reversed(app.state.shutdown):
                await hook(app)
            if owned:
                svc.close()

    app = FastAPI(
        title="Scrutiny",
        version=__version__,
        description=(
            "Model monitoring for models served anywhere. Every request needs "
            '`Authorization: Bearer <api key>`; errors are JSON `{"error": {"code", "message", ...}}`.'
        ),
        lifespan=lifespan,
    )
    app.state.service = service or Service(settings)
    app.state.settings = settings
    app.state.sessions = {}
    app.state.startup = []
    app.state.shutdown = []
    install_error_handlers(app)

    from scrutiny.api.routes import (
        admin,
        alerts,
        bindings,
        drift,
        explanations,
        feedback,
        metrics,
        monitors,
        payloads,
        subscriptions,
    )

    for module in (admin, bindings, subscriptions, payloads, feedback, monitors, drift, explanations, alerts, metrics):
        app.include_router(module.router)
    monitors.install(app)
    from scrutiny.web import install as install_dashboard

    install_dashboard(app)
    for extension in extensions:
        extension(app)
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    return app


# Components of later layers (monitors, proxy, dashboard) register a function here that adds
# their routers and start-up hooks to the app.
extensions: list[Any] = []


def _install_proxy(app: FastAPI) -> None:
    """The scoring proxy (``scrutiny.proxy``): its routes, spool and background writer; its metrics
    are published to the registry ``GET /metrics`` serves."""
    from scrutiny.proxy.asgi import install

    install(app)


extensions.append(_install_proxy)


def _install_openscale(app: FastAPI) -> None:
    """OpenScale's v1 and v2 REST API over the same services (``scrutiny.api.openscale``)."""
    from scrutiny.api.openscale import install

    install(app)


extensions.append(_install_openscale)
