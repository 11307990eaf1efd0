"""Explanations of single transactions: ask for one from a payload row, read it back.

Asking scores through the engine (the explanation service's worker pool); the page waits a few
seconds for the result, else shows the explanation in progress and refreshes itself. A stored
explanation is shown again without scoring anything.
"""

from __future__ import annotations

from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

from fastapi import Depends, Form, Request
from starlette.responses import RedirectResponse, Response

from scrutiny.core.subscription import Subscription
from scrutiny.errors import ScrutinyError
from scrutiny.web import access
from scrutiny.web.access import Viewer, read_access, write_access
from scrutiny.web.bars import diverging_bars
from scrutiny.web.render import base_path, page
from scrutiny.web.routing import web_router

router = web_router()

WAIT_SECONDS = 15.0
METHODS = {
    "lime+contrastive": "contributions and contrastive",
    "lime": "contributions (LIME)",
    "contrastive": "contrastive",
}


def available(service: Any) -> bool:
    return getattr(service, "explanations", None) is not None


def explanations_of(service: Any, sub: Subscription, scoring_id: str) -> list[dict[str, Any]]:
    """The stored explanations of one payload row, newest first."""
    _, rows = service.explanations.list(sub.id, scoring_id=scoring_id, limit=20)
    return [r.to_dict() for r in rows]


@router.post("/subscriptions/{sub_id}/explain")
def explain(
    sub_id: str,
    request: Request,
    scoring_id: str = Form(...),
    method: str = Form("lime+contrastive"),
    csrf: str = Form(""),
    viewer: Viewer = Depends(write_access),
) -> Response:
    access.check_csrf(request, viewer, csrf)
    service = request.app.state.service
    sub = service.subscriptions.get(sub_id)
    expl = service.explanations.create(sub.id, scoring_id=scoring_id, method=method)
    future = service.explanations.submit(expl.id)
    try:
        future.result(timeout=WAIT_SECONDS)
    except FutureTimeout:
        pass  # the page shows it in progress and refreshes itself
    except ScrutinyError:
        pass  # stored with status error: the page says what failed
    return RedirectResponse(f"{base_path(request)}/subscriptions/{sub.id}/explanations/{expl.id}", status_code=303)


@router.get("/subscriptions/{sub_id}/explanations/{explanation_id}")
def explanation_page(
    sub_id: str, explanation_id: str, request: Request, viewer: Viewer = Depends(read_access)
) -> Response:
    from scrutiny.web.pages.subscription import header

    service = request.app.state.service
    sub = service.subscriptions.get(sub_id)
    e = service.explanations.get(sub.id, explanation_id).to_dict()
    return page(request, "explanation.html", nav="overview", tab="payload", e=e, view=view(e), **header(service, sub))


def view(e: dict[str, Any]) -> dict[str, Any]:
    """Bars per class (the predicted class first), the contrastive result, the record beside the
    base values."""
    classes = []
    for cls in e.get("classes") or []:
        items = [
            (c["condition"], float(c["weight"]), f"coefficient {c['coefficient']:+.4g}") for c in cls["contributions"]
        ]
        bars, zero = diverging_bars(items)
        classes.append({**cls, "bars": bars, "zero": zero})
    if not classes and e.get("contributions"):  # contrastive only: drop of the predicted class's probability
        items = [
            (f"{c['feature']} = {c['value']}", float(c["weight"]), f"probability drop {c['coefficient']:+.4g}")
            for c in e["contributions"]
        ]
        bars, zero = diverging_bars(items)
        classes.append({"class": e.get("prediction"), "predicted": True, "bars": bars, "zero": zero})
    record = e.get("record") or {"fields": [], "values": [[]]}
    values = dict(zip(record["fields"], record["values"][0], strict=False)) if record["values"] else {}
    base = e.get("base_values") or {}
    pp = {f["feature"]: f for f in (e.get("pertinent_positive") or {}).get("features") or []}
    pn = {f["feature"]: f for f in (e.get("pertinent_negative") or {}).get("features") or []}
    rows = [
        {"feature": k, "value": v, "base": base.get(k), "pp": pp.get(k), "pn": pn.get(k)} for k, v in values.items()
    ]
    return {"classes": classes, "rows": rows, "has_base": bool(base)}
