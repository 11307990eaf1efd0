"""Sign in with an API key, with a one-time link, and sign out."""

from __future__ import annotations

import secrets

from fastapi import Form, Request
from starlette.responses import RedirectResponse, Response

from scrutiny.errors import Forbidden, Unauthorized
from scrutiny.web import access
from scrutiny.web.render import base_path, page
from scrutiny.web.routing import web_router

router = web_router()


def safe_next(request: Request, target: str | None) -> str:
    """Only paths on this site (no ``//host`` or scheme): never an open redirect."""
    base = base_path(request)
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return base + "/"
    return target if target.startswith(base + "/") else base + target


def _login_form(request: Request, *, error: str | None = None, status: int = 200, next_: str = "") -> Response:
    token = access.login_csrf(request)
    response = page(request, "login.html", http_status=status, error=error, csrf=token, next=next_)
    access.set_login_csrf(response, request, token)
    return response


@router.get("/login")
def login_page(request: Request, next: str = "") -> Response:
    return _login_form(request, next_=next)


@router.post("/login")
def login(
    request: Request,
    api_key: str = Form(""),
    csrf: str = Form(""),
    next: str = Form(""),
) -> Response:
    expected = request.cookies.get(access.LOGIN_CSRF_COOKIE)
    if not access.same_origin(request) or not expected or not secrets.compare_digest(csrf, expected):
        return _login_form(
            request, error="The form expired or came from another site; please sign in again.", status=403, next_=next
        )
    key = api_key.strip()
    try:
        row = request.app.state.service.keys.verify(key, "read")
    except Unauthorized:
        return _login_form(request, error="This API key is not valid (unknown or revoked).", status=401, next_=next)
    except Forbidden:
        return _login_form(
            request,
            error="This key may only log payloads; sign in with a viewer or admin key.",
            status=403,
            next_=next,
        )
    token = access.sessions(request).create(key, key_name=row.name, role=row.role.value)
    response = RedirectResponse(safe_next(request, next), status_code=303)
    access.set_session(response, request, token)
    response.delete_cookie(access.LOGIN_CSRF_COOKIE, path="/")
    return response


@router.get("/login/once")
def login_once(request: Request, token: str = "") -> Response:
    """A one-time link (``scrutiny demo`` prints one): used once, valid a few minutes."""
    key = access.sessions(request).redeem(token)
    row = None
    if key is not None:
        try:
            row = request.app.state.service.keys.verify(key, "read")
        except (Unauthorized, Forbidden):
            row = None
    if row is None or key is None:
        return _login_form(
            request,
            error="This login link has expired or was already used. Sign in with your API key.",
            status=401,
        )
    session = access.sessions(request).create(key, key_name=row.name, role=row.role.value)
    response = RedirectResponse(base_path(request) + "/", status_code=303)
    access.set_session(response, request, session)
    return response


@router.post("/logout")
def logout(request: Request, csrf: str = Form("")) -> Response:
    viewer = access.current(request)
    access.check_csrf(request, viewer, csrf)
    access.sessions(request).end(request.cookies.get(access.COOKIE))
    response = RedirectResponse(base_path(request) + "/login", status_code=303)
    access.clear_session(response)
    return response
