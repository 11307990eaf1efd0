"""Dashboard fixtures: the app on a loopback port, and a browser-like client signed in with a key."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from scrutiny._server import BackgroundServer
from scrutiny.service import Service


@pytest.fixture
def web(service: Service) -> Iterator[tuple[BackgroundServer, Any, str]]:
    """(server, app, admin key)."""
    from scrutiny.api.app import create_app

    app = create_app(service=service)
    key = service.keys.ensure_admin_key()
    assert key
    with BackgroundServer(app) as srv:
        yield srv, app, key


def login_csrf(client: httpx.Client) -> str:
    r = client.get("/login")
    assert r.status_code == 200
    m = re.search(r'name="csrf" value="([^"]+)"', r.text)
    assert m, r.text
    return m.group(1)


def sign_in(client: httpx.Client, key: str, next_: str = "/") -> httpx.Response:
    return client.post("/login", data={"api_key": key, "csrf": login_csrf(client), "next": next_})


def page_csrf(html: str) -> str:
    m = re.search(r'name="csrf" value="([^"]+)"', html)
    assert m, "no CSRF token in the page"
    return m.group(1)


@pytest.fixture
def browser_client(web: tuple[BackgroundServer, Any, str]) -> Iterator[httpx.Client]:
    """An httpx client that keeps cookies, signed in with the admin key, redirects not followed."""
    srv, _, key = web
    with httpx.Client(base_url=srv.url, follow_redirects=False, timeout=30) as c:
        r = sign_in(c, key)
        assert r.status_code == 303, r.text
        yield c
