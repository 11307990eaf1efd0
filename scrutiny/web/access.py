"""Who is looking: the session behind the cookie, the API key's permissions, CSRF checks.

Every page needs a session whose API key is still valid and has the ``read`` permission
(revoking the key ends its sessions within the key cache's 30 s); pages that change something
need ``write`` and a form that carries the session's CSRF token from a same-origin page.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import Response

from scrutiny.errors import Forbidden, ScrutinyError, Unauthorized
from scrutiny.store.catalog import ApiKeyRow
from scrutiny.web.sessions import COOKIE, LIFETIME_SECONDS, Session, SessionStore

LOGIN_CSRF_COOKIE = "scrutiny_login_csrf"


class LoginRequired(Exception):
    """No valid session: the page answers with a redirect to the login form."""


class CsrfFailed(ScrutinyError):
    code = "csrf_failed"
    status = 403


@dataclass
class Viewer:
    key: ApiKeyRow
    session: Session

    @property
    def csrf(self) -> str:
        return self.session.csrf

    def can(self, grant: str) -> bool:
        from scrutiny.security import ROLE_GRANTS

        return grant in ROLE_GRANTS[self.key.role]


def sessions(request: Request) -> SessionStore:
    store: SessionStore = request.app.state.sessions
    return store


def current(request: Request, grant: str = "read") -> Viewer:
    """The signed-in viewer, or ``LoginRequired``; ``Forbidden`` when the key lacks ``grant``."""
    session = sessions(request).session(request.cookies.get(COOKIE))
    if session is None:
        raise LoginRequired()
    try:
        row = request.app.state.service.keys.verify(session.api_key, grant)
    except Unauthorized:  # the key was revoked since sign-in
        sessions(request).end(request.cookies.get(COOKIE))
        raise LoginRequired() from None
    viewer = Viewer(row, session)
    request.state.web_user = viewer
    return viewer


def read_access(request: Request) -> Viewer:
    """FastAPI dependency: a session whose key may read."""
    viewer = current(request, "read")
    return viewer


def write_access(request: Request) -> Viewer:
    """FastAPI dependency: a session whose key may change bindings and subscriptions."""
    viewer = current(request, "read")
    if not viewer.can("write"):
        raise Forbidden(f"a {viewer.key.role.value} key cannot change anything here (needs the 'write' permission)")
    return viewer


def same_origin(request: Request) -> bool:
    """False when the browser says the request comes from another site (Origin or Referer)."""
    source = request.headers.get("origin") or request.headers.get("referer")
    if not source or source == "null":
        return source is None  # no header: not a browser's cross-site form post; "null": sandboxed
    hosts = {request.headers.get("host", ""), request.headers.get("x-forwarded-host", "")} - {""}
    return urlsplit(source).netloc in hosts


def check_csrf(request: Request, viewer: Viewer, token: Any) -> None:
    """A form post must come from this site and carry the session's CSRF token."""
    if not same_origin(request):
        raise CsrfFailed("this form was posted from another site")
    if not isinstance(token, str) or not secrets.compare_digest(token, viewer.csrf):
        raise CsrfFailed("the form's security token is missing or stale: reload the page and try again")


def secure(request: Request) -> bool:
    return request.url.scheme == "https"


def set_session(response: Response, request: Request, token: str) -> None:
    response.set_cookie(
        COOKIE,
        token,
        max_age=LIFETIME_SECONDS,
        path="/",
        httponly=True,
        samesite="strict",
        secure=secure(request),
    )


def clear_session(response: Response) -> None:
    response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict")


def login_csrf(request: Request) -> str:
    """The login form's token (double-submit: the same value in a cookie and in the form)."""
    return request.cookies.get(LOGIN_CSRF_COOKIE) or secrets.token_urlsafe(24)


def set_login_csrf(response: Response, request: Request, token: str) -> None:
    response.set_cookie(
        LOGIN_CSRF_COOKIE, token, max_age=3600, path="/", httponly=True, samesite="strict", secure=secure(request)
    )
