"""``GET /metrics``: Prometheus text format from the default ``prometheus_client`` registry.

Every component registers its collectors there (the monitors' latest values, the proxy's
counters...); this is the one route that serves them.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

from scrutiny.api.auth import require
from scrutiny.api.models import ERRORS

router = APIRouter(tags=["metrics"])


@router.get(
    "/metrics",
    response_class=Response,
    dependencies=[Depends(require("metrics"))],
    responses={200: {"content": {CONTENT_TYPE_LATEST: {}}}, 401: ERRORS[401]},
)
def metrics() -> Response:
    """Prometheus metrics. Like every route it needs an API key (any role): monitor values are
    about the models' behaviour. In Prometheus: ``authorization: {credentials_file: ...}``."""
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)
