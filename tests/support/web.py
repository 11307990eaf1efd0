"""Signing in to the dashboard as a browser does: the sign-in form's CSRF token, then the key."""

from __future__ import annotations

import re

import httpx

_CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def login_csrf(client: httpx.Client) -> str:
    r = client.get("/login")
    assert r.status_code == 200
    m = _CSRF.search(r.text)
    assert m, r.text
    return m.group(1)


def sign_in(client: httpx.Client, key: str, next_: str = "/") -> httpx.Response:
    return client.post("/login", data={"api_key": key, "csrf": login_csrf(client), "next": next_})


def page_csrf(html: str) -> str:
    m = _CSRF.search(html)
    assert m, "no CSRF token in the page"
    return m.group(1)
