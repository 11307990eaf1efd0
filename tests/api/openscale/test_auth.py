"""OpenScale's token endpoints: a key is exchanged for a JWT that stands for that key and role."""

from __future__ import annotations

import base64
import json
import time

import httpx
import pytest

from scrutiny._server import BackgroundServer
from scrutiny.security import Role
from scrutiny.service import Service


def claims(token: str) -> dict:
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def test_validate_auth_issues_a_jwt_with_numeric_exp_bound_to_the_key(api: tuple[BackgroundServer, str]) -> None:
    srv, key = api
    r = httpx.get(f"{srv.url}/v1/preauth/validateAuth", auth=("anyone", key), timeout=30)
    assert r.status_code == 200, r.text
    token = r.json()["accessToken"]
    c = claims(token)  # what IBM's 2020 SDK decodes before every request
    assert isinstance(c["exp"], int) and c["exp"] > time.time() + 3600
    assert c["role"] == "admin"
    dm = httpx.get(f"{srv.url}/v1/data_marts", headers={"Authorization": f"Bearer {token}"}, timeout=30)
    assert dm.status_code == 200


def test_token_has_its_keys_role_and_dies_with_the_key(api: tuple[BackgroundServer, str], service: Service) -> None:
    srv, _ = api
    viewer, row = service.keys.create("reader", Role.VIEWER)
    token = httpx.post(f"{srv.url}/v1/preauth/validateAuth", data={"apikey": viewer}, timeout=30).json()["access_token"]
    h = {"Authorization": f"Bearer {token}"}
    assert httpx.get(f"{srv.url}/v1/bindings", headers=h, timeout=30).status_code == 200
    denied = httpx.post(
        f"{srv.url}/v1/bindings", headers=h, json={"name": "x", "credentials": {"url": "http://x"}}, timeout=30
    )
    assert denied.status_code == 403 and "viewer" in denied.json()["error"]["message"]
    service.keys.revoke(row.id)
    assert httpx.get(f"{srv.url}/v1/bindings", headers=h, timeout=30).status_code == 401


def test_cp4d_authorize_takes_the_key_as_password_or_api_key(api: tuple[BackgroundServer, str]) -> None:
    srv, key = api
    for body in ({"username": "admin", "password": key}, {"username": "admin", "api_key": key}):
        r = httpx.post(f"{srv.url}/icp4d-api/v1/authorize", json=body, timeout=30)
        assert r.status_code == 200, r.text
        h = {"Authorization": f"Bearer {r.json()['token']}"}
        assert httpx.get(f"{srv.url}/v1/data_marts", headers=h, timeout=30).status_code == 200


@pytest.mark.parametrize("backend", ["sqlite"])
def test_bad_keys_and_forged_or_expired_tokens_are_refused(api: tuple[BackgroundServer, str], service: Service) -> None:
    srv, key = api
    assert httpx.get(f"{srv.url}/v1/preauth/validateAuth", auth=("admin", "scr_wrong"), timeout=30).status_code == 401
    assert httpx.get(f"{srv.url}/v1/preauth/validateAuth", timeout=30).status_code == 401
    assert httpx.post(f"{srv.url}/icp4d-api/v1/authorize", json={"username": "admin"}, timeout=30).status_code == 422
    token = httpx.get(f"{srv.url}/v1/preauth/validateAuth", auth=("admin", key), timeout=30).json()["accessToken"]
    head, payload, sig = token.split(".")
    forged_claims = {**claims(token), "role": "admin", "kid": "someone-else"}
    forged_payload = base64.urlsafe_b64encode(json.dumps(forged_claims).encode()).rstrip(b"=").decode()
    unsigned = base64.urlsafe_b64encode(b'{"alg":"none"}').rstrip(b"=").decode()
    row = service.keys.verify(key, "read")
    expired = service.box.issue_token({"kid": row.id, "role": "admin"}, ttl_seconds=-1)
    for bad in (f"{head}.{forged_payload}.{sig}", f"{unsigned}.{payload}.", expired):
        r = httpx.get(f"{srv.url}/v1/data_marts", headers={"Authorization": f"Bearer {bad}"}, timeout=30)
        assert r.status_code == 401, bad
