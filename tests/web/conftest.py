"""Dashboard fixtures: the app on a loopback port, and a browser-like client signed in with a key."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from scrutiny._server import BackgroundServer
from scrutiny.service import Service
from tests.support.web import sign_in


@pytest.fixture
def web(service: Service) -> Iterator[tuple[BackgroundServer, Any, str]]:
    """(server, app, admin key)."""
    from scrutiny.api.app import create_app

    app = create_app(service=service)
    key = service.keys.ensure_admin_key()
    assert key
    with BackgroundServer(app) as srv:
        yield srv, app, key


@pytest.fixture
def browser_client(web: tuple[BackgroundServer, Any, str]) -> Iterator[httpx.Client]:
    """An httpx client that keeps cookies, signed in with the admin key, redirects not followed."""
    srv, _, key = web
    with httpx.Client(base_url=srv.url, follow_redirects=False, timeout=30) as c:
        r = sign_in(c, key)
        assert r.status_code == 303, r.text
        yield c
