"""Bearer API-key authentication as FastAPI dependencies, one per permission."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from scrutiny.store.catalog import ApiKeyRow

bearer = HTTPBearer(auto_error=False, description="Authorization: Bearer <Scrutiny API key>")


def service_of(request: Request) -> Any:
    return request.app.state.service


def require(grant: str) -> Callable[..., ApiKeyRow]:
    """A dependency that admits keys whose role has ``grant`` (read, write, log, admin)."""

    def dependency(request: Request, creds: HTTPAuthorizationCredentials | None = Depends(bearer)) -> ApiKeyRow:
        token = creds.credentials if creds is not None else None
        if token is None:
            token = request.cookies.get("scrutiny_session")  # the dashboard's session cookie
            if token is not None:
                token = request.app.state.sessions.get(token)
        row: ApiKeyRow = service_of(request).keys.verify(token, grant)
        request.state.api_key = row
        return row

    dependency.__name__ = f"require_{grant}"
    return dependency


READ = Depends(require("read"))
WRITE = Depends(require("write"))
LOG = Depends(require("log"))
ADMIN = Depends(require("admin"))
