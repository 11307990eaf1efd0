"""OpenScale's token endpoints: a Scrutiny API key is exchanged for an access token.

The token is a JWT with a numeric ``exp`` (IBM's 2020 SDK decodes it before every request),
signed by this server and accepted as ``Authorization: Bearer <token>`` with the key's role;
revoking the key revokes its tokens. The API key is the credential: it is sent as the password
(HTTP Basic, Cloud Pak for Data's ``password``/``api_key``) or as ``apikey``; the user name is
not checked.
"""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, Depends, Form, Request
from fastapi.security import HTTPBasic, HTTPBasicCredentials

from scrutiny.api.auth import service_of
from scrutiny.api.models import ERRORS
from scrutiny.api.routes.payloads import read_json
from scrutiny.errors import InvalidInput, Unauthorized
from scrutiny.service.keys import TOKEN_SECONDS

router = APIRouter(tags=["OpenScale: authentication"], responses=ERRORS)
basic = HTTPBasic(auto_error=False, description="user name (not checked) and a Scrutiny API key as the password")


def _token(request: Request, key: str | None) -> tuple[str, Any]:
    return service_of(request).keys.issue_token(key)


@router.get("/v1/preauth/validateAuth")
def validate_auth(request: Request, creds: HTTPBasicCredentials | None = Depends(basic)) -> dict[str, Any]:
    """Cloud Pak for Data's login (``APIClient4ICP`` with ``username``/``password``): HTTP Basic
    with a Scrutiny API key as the password."""
    if creds is None:
        raise Unauthorized("send HTTP Basic credentials: any user name and a Scrutiny API key as the password")
    token, row = _token(request, creds.password)
    return {
        "username": creds.username,
        "role": row.role.value,
        "accessToken": token,
        "messageCode": "success",
        "message": "success",
    }


@router.post("/v1/preauth/validateAuth")
def validate_apikey(request: Request, apikey: str = Form(...), grant_type: str | None = Form(None)) -> dict[str, Any]:
    """IBM Cloud's API-key grant (``APIClient`` with ``apikey``): the form's ``apikey`` is a Scrutiny API key."""
    token, _ = _token(request, apikey)
    now = int(time.time())
    return {
        "access_token": token,
        "token_type": "Bearer",
        "expires_in": TOKEN_SECONDS,
        "expiration": now + TOKEN_SECONDS,
    }


@router.post("/icp4d-api/v1/authorize")
async def authorize(request: Request) -> dict[str, Any]:
    """Cloud Pak for Data's ``/icp4d-api/v1/authorize`` (``CloudPakForDataAuthenticator``):
    ``{"username", "password"}`` or ``{"username", "api_key"}``, either holding a Scrutiny API key."""
    body = await read_json(request)
    if not isinstance(body, dict):
        raise InvalidInput("the body must be a JSON object {username, password | api_key}")
    key = body.get("api_key") or body.get("password")
    if not isinstance(key, str) or not key:
        raise InvalidInput("give a Scrutiny API key as password or api_key", field="password")
    token, _ = _token(request, key)
    return {"_messageCode_": "200", "message": "Success", "token": token}
