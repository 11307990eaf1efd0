"""Jinja2 templates and the HTML responses the dashboard sends (with their security headers)."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from functools import cache
from typing import Any
from urllib.parse import urlencode

import orjson
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from markupsafe import Markup
from starlette.requests import Request
from starlette.responses import HTMLResponse

# Scripts and styles come from the package only (no CDN, no inline script); inline style
# attributes draw bar widths. Pages are never framed, cached or sent with a cross-site referrer.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
        "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


MISSING = "\u2013"  # an en dash: no value


def num(value: Any, digits: int = 4) -> str:
    """Numbers for people: integers with thousands separators, others to ``digits`` significant digits."""
    if value is None:
        return MISSING
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if not math.isfinite(value):
            return MISSING
        if value.is_integer() and abs(value) < 1e15:
            return f"{int(value):,}"
        return f"{value:.{digits}g}"
    return str(value)


def pct(value: Any, digits: int = 1) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return MISSING
    return f"{100.0 * float(value):.{digits}f}%"


def parse_time(value: Any) -> datetime | None:
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    text = str(value).replace("Z", "+00:00")
    t = datetime.fromisoformat(text)
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def when(value: Any, seconds: bool = True) -> str:
    """A UTC time as ``2026-03-02 09:00:05 UTC``."""
    t = parse_time(value)
    if t is None:
        return MISSING
    return t.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC" if seconds else "%Y-%m-%d %H:%M UTC")


def cell(value: Any) -> str:
    """A payload cell: numbers formatted, vectors and objects shortened."""
    if isinstance(value, list):
        return "[" + ", ".join(num(v, 3) for v in value[:6]) + (", …" if len(value) > 6 else "") + "]"
    if isinstance(value, float):
        return num(value, 6)
    if value is None:
        return ""
    return str(value)


_SCRIPT_SAFE = str.maketrans({"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "'": "\\u0027"})


def script_json(value: Any) -> Markup:
    """JSON for a ``<script type="application/json">`` block (orjson; ``<``, ``>``, ``&`` and
    quotes escaped so no value can close the element)."""
    return Markup(orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode().translate(_SCRIPT_SAFE))


def query(params: dict[str, Any] | list[tuple[str, Any]], **changes: Any) -> str:
    """A query string from ``params`` with ``changes`` applied (None removes a key)."""
    items = list(params.items()) if isinstance(params, dict) else list(params)
    keys = set(changes)
    out = [(k, v) for k, v in items if k not in keys and v not in (None, "")]
    for k, v in changes.items():
        if v is None or v == "":
            continue
        if isinstance(v, list | tuple):
            out.extend((k, x) for x in v)
        else:
            out.append((k, v))
    return ("?" + urlencode(out)) if out else ""


@cache
def environment() -> Environment:
    env = Environment(
        loader=PackageLoader("scrutiny.web", "templates"),
        autoescape=select_autoescape(["html"]),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(num=num, pct=pct, when=when, cell=cell, script_json=script_json)
    env.globals.update(query=query)
    return env


def base_path(request: Request) -> str:
    return str(request.scope.get("root_path") or "").rstrip("/")


def page(request: Request, template: str, http_status: int = 200, **context: Any) -> HTMLResponse:
    """Render ``template`` with the request, the signed-in user and the path prefix."""
    user = getattr(request.state, "web_user", None)
    html = (
        environment()
        .get_template(template)
        .render(request=request, user=user, base=base_path(request), path=request.url.path, **context)
    )
    return HTMLResponse(html, status_code=http_status, headers=SECURITY_HEADERS)


def fragment(request: Request, template: str, **context: Any) -> HTMLResponse:
    """A piece of a page that the dashboard's script loads into a placeholder."""
    return page(request, template, **context)
