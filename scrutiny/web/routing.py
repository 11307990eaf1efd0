"""The dashboard's routes answer in HTML, errors included: no session sends the browser to the
login form, a ``ScrutinyError`` becomes an error page with its status and message, and a
failing store or engine is said plainly instead of a stack trace."""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from scrutiny.errors import ScrutinyError
from scrutiny.web.access import LoginRequired
from scrutiny.web.render import base_path, page

log = logging.getLogger("scrutiny.web")


def login_redirect(request: Request) -> RedirectResponse:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"{base_path(request)}/login?next={quote(target, safe='')}", status_code=303)


def error_page(request: Request, status: int, title: str, message: str) -> Response:
    return page(request, "error.html", http_status=status, title=title, message=message)


class WebRoute(APIRoute):
    """An ``APIRoute`` whose failures are pages, not JSON."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            try:
                return await handler(request)
            except LoginRequired:
                return login_redirect(request)
            except ScrutinyError as exc:
                title = {404: "Not found", 403: "Not allowed", 409: "Conflict", 422: "Invalid input"}.get(
                    exc.status, "Error"
                )
                return error_page(request, exc.status, title, exc.message)
            except StarletteHTTPException as exc:
                return error_page(request, exc.status_code, "Error", str(exc.detail))
            except Exception as exc:
                from scrutiny.api.app import is_store_outage

                if is_store_outage(exc):
                    log.error("store unavailable on %s: %s", request.url.path, exc.__class__.__name__)
                    return error_page(request, 503, "Store unavailable", "The data mart cannot be reached right now.")
                log.exception("unexpected error on %s %s", request.method, request.url.path)
                return error_page(
                    request, 500, "Unexpected error", f"{exc.__class__.__name__}: the server log has the details."
                )

        return route


def web_router() -> APIRouter:
    return APIRouter(route_class=WebRoute, include_in_schema=False)
