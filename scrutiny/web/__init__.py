"""The dashboard: server-rendered pages at ``/``, behind the same API keys as the REST API.

``install(app)`` adds the pages, the static assets (the vendored uPlot chart library and the
dashboard's own script and styles, served from the package: it works offline) and the session
store that ``scrutiny.api.auth`` reads the ``scrutiny_session`` cookie from.
"""

from __future__ import annotations

from importlib import resources
from typing import Any

from scrutiny.web.sessions import LINK_SECONDS, SessionStore

LINK_MINUTES = LINK_SECONDS // 60


def install(app: Any) -> None:
    from starlette.staticfiles import StaticFiles

    from scrutiny.web.pages import alerts, auth, engines, overview, payload, subscription

    if not isinstance(getattr(app.state, "sessions", None), SessionStore):
        app.state.sessions = SessionStore()
    static = resources.files("scrutiny.web").joinpath("static")
    app.mount("/static", StaticFiles(directory=str(static)), name="static")
    for module in (auth, overview, engines, subscription, payload, alerts):
        app.include_router(module.router)
    _optional_pages(app)


def _optional_pages(app: Any) -> None:
    """Pages of components that may not be installed (explanations)."""
    from scrutiny.web.pages import explain

    if explain.available(app.state.service):
        app.include_router(explain.router)


def login_link(app: Any, base_url: str, api_key: str) -> str:
    """A one-time link that signs the browser in as ``api_key`` (valid a few minutes, used once)."""
    sessions: SessionStore = app.state.sessions
    return f"{base_url.rstrip('/')}/login/once?token={sessions.link_token(api_key)}"
