"""Dashboard sign-in over plain HTTP: redirects, refused keys, cookie flags, CSRF, one-time links,
sign-out, revoked keys, permissions, and the session cookie on the REST API."""

from __future__ import annotations

import httpx
import pytest

from scrutiny.security import Role
from scrutiny.web import login_link
from scrutiny.web.access import LOGIN_CSRF_COOKIE
from scrutiny.web.sessions import COOKIE
from tests.support.web import login_csrf, page_csrf, sign_in

PAGES = ["/", "/engines", "/alerts", "/subscriptions/nope", "/subscriptions/nope/payload"]


@pytest.fixture
def backend() -> str:
    return "sqlite"  # sessions live in the process, not in the store


@pytest.fixture
def anon(web):  # type: ignore[no-untyped-def]
    srv, _, _ = web
    with httpx.Client(base_url=srv.url, follow_redirects=False, timeout=30) as c:
        yield c


@pytest.mark.parametrize("path", PAGES)
def test_no_cookie_redirects_to_login_with_the_page_to_return_to(anon: httpx.Client, path: str) -> None:
    r = anon.get(path)
    assert r.status_code == 303
    assert r.headers["location"].startswith("/login?next=")
    assert httpx.URL(r.headers["location"]).params["next"] == path


def test_a_forged_cookie_is_no_session(anon: httpx.Client) -> None:
    anon.cookies.set(COOKIE, "not-a-session")
    assert anon.get("/").status_code == 303


def test_sign_in_sets_a_strict_http_only_cookie_and_returns_to_next(web, anon: httpx.Client) -> None:
    _, app, key = web
    r = sign_in(anon, key, next_="/alerts")
    assert r.status_code == 303 and r.headers["location"] == "/alerts"
    cookie = r.headers["set-cookie"].lower()
    assert f"{COOKIE}=" in cookie
    assert "httponly" in cookie and "samesite=strict" in cookie
    assert "secure" not in cookie  # plain http: a Secure cookie would never come back
    page = anon.get("/alerts")
    assert page.status_code == 200 and "Alerts" in page.text
    assert page.headers["x-frame-options"] == "DENY"
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert page.headers["cache-control"] == "no-store"
    assert len(app.state.sessions) == 1


def test_cookie_is_secure_over_https(web) -> None:
    """Behind a TLS proxy on loopback (uvicorn trusts X-Forwarded-Proto from 127.0.0.1)."""
    srv, _, key = web
    with httpx.Client(base_url=srv.url, follow_redirects=False, headers={"X-Forwarded-Proto": "https"}) as c:
        form = c.get("/login")
        assert "secure" in form.headers["set-cookie"].lower()
        token = page_csrf(form.text)
        # httpx talks plain http to the proxy's backend, so it holds back Secure cookies: send it as the browser would
        r = c.post("/login", data={"api_key": key, "csrf": token}, headers={"Cookie": f"{LOGIN_CSRF_COOKIE}={token}"})
        assert r.status_code == 303
        assert "secure" in r.headers["set-cookie"].lower()


def test_bad_key_is_refused_and_no_session_is_made(web, anon: httpx.Client) -> None:
    _, app, _ = web
    r = sign_in(anon, "scr_" + "x" * 43)
    assert r.status_code == 401
    assert "not valid" in r.text
    assert COOKIE not in r.headers.get("set-cookie", "")
    assert len(app.state.sessions) == 0


def test_a_logging_only_key_cannot_sign_in(web, service, anon: httpx.Client) -> None:
    key, _ = service.keys.create("ingest", Role.LOGGER)
    r = sign_in(anon, key)
    assert r.status_code == 403 and "only log payloads" in r.text


def test_login_without_its_csrf_token_is_refused(web, anon: httpx.Client) -> None:
    _, _, key = web
    r = anon.post("/login", data={"api_key": key, "csrf": "forged"})
    assert r.status_code == 403
    login_csrf(anon)  # the token cookie now exists, but the form still carries a wrong one
    r = anon.post("/login", data={"api_key": key, "csrf": "forged"})
    assert r.status_code == 403 and COOKIE not in r.headers.get("set-cookie", "")


def test_login_posted_from_another_site_is_refused(web, anon: httpx.Client) -> None:
    _, _, key = web
    token = login_csrf(anon)
    r = anon.post("/login", data={"api_key": key, "csrf": token}, headers={"Origin": "https://evil.example"})
    assert r.status_code == 403


@pytest.mark.parametrize("target", ["//evil.example/x", "https://evil.example/", "/\\evil.example"])
def test_next_never_leaves_the_site(web, anon: httpx.Client, target: str) -> None:
    _, _, key = web
    r = sign_in(anon, key, next_=target)
    assert r.status_code == 303 and r.headers["location"] == "/"


def test_logout_needs_the_session_csrf_token_then_ends_the_session(web, browser_client: httpx.Client) -> None:
    _, app, _ = web
    html = browser_client.get("/").text
    assert browser_client.post("/logout", data={"csrf": "wrong"}).status_code == 403
    assert (
        browser_client.post(
            "/logout", data={"csrf": page_csrf(html)}, headers={"Origin": "https://evil.example"}
        ).status_code
        == 403
    )
    r = browser_client.post("/logout", data={"csrf": page_csrf(html)})
    assert r.status_code == 303 and r.headers["location"] == "/login"
    assert len(app.state.sessions) == 0
    assert browser_client.get("/").status_code == 303


def test_one_time_link_signs_in_once(web) -> None:
    srv, app, key = web
    link = login_link(app, srv.url, key)
    with httpx.Client(follow_redirects=False) as c:
        r = c.get(link)
        assert r.status_code == 303 and r.headers["location"] == "/"
        assert c.get(srv.url + "/").status_code == 200
    with httpx.Client(follow_redirects=False) as other:
        again = other.get(link)
        assert again.status_code == 401 and "expired or was already used" in again.text
        assert other.get(srv.url + "/").status_code == 303


def test_one_time_link_expires(web) -> None:
    srv, app, key = web
    app.state.sessions.link_seconds = -1  # already expired when used
    with httpx.Client(follow_redirects=False) as c:
        assert c.get(login_link(app, srv.url, key)).status_code == 401


def test_revoking_the_key_ends_its_sessions(web, service, anon: httpx.Client) -> None:
    key, row = service.keys.create("viewer", Role.VIEWER)
    assert sign_in(anon, key).status_code == 303
    assert anon.get("/").status_code == 200
    service.keys.revoke(row.id)
    assert anon.get("/").status_code == 303


def test_a_viewer_reads_but_cannot_bind_or_subscribe(web, service, anon: httpx.Client) -> None:
    key, _ = service.keys.create("viewer", Role.VIEWER)
    sign_in(anon, key)
    engines = anon.get("/engines")
    assert engines.status_code == 200 and "Bind an engine" not in engines.text
    csrf = page_csrf(engines.text)
    r = anon.post("/engines", data={"name": "x", "engine_type": "custom", "credentials": "{}", "csrf": csrf})
    assert r.status_code == 403 and "write" in r.text
    assert service.bindings.list() == []


def test_session_cookie_authenticates_the_rest_api(web, browser_client: httpx.Client) -> None:
    """The dashboard's script and the pages share one sign-in (scrutiny.api.auth reads the cookie)."""
    r = browser_client.get("/v1/data_marts")
    assert r.status_code == 200
    browser_client.cookies.clear()
    assert browser_client.get("/v1/data_marts").status_code == 401


def test_static_assets_are_served_from_the_package(anon: httpx.Client) -> None:
    js = anon.get("/static/uPlot.iife.min.js")
    assert js.status_code == 200 and "uPlot" in js.text[:200]
    assert anon.get("/static/uPlot.LICENSE.txt").text.startswith("The MIT License")
    assert anon.get("/static/app.js").status_code == 200


def test_dashboard_routes_stay_out_of_the_api_schema(anon: httpx.Client) -> None:
    paths = anon.get("/openapi.json").json()["paths"]
    api = ("/v1", "/v2", "/health", "/metrics", "/openscale/", "/icp4d-api/")  # the last two: OpenScale's paths
    assert not [p for p in paths if not p.startswith(api)]
