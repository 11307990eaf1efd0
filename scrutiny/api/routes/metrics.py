"""``GET /metrics``: Prometheus text format from the default ``prometheus_client`` registry.

Every component registers its collectors there (the monitors' latest values, the proxy's
counters...); this is the one route that serves them.
"""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

router = APIRouter(tags=["metrics"])


@router.get("/metrics", response_class=Response, responses={200: {"content": {CONTENT_TYPE_LATEST: {}}}})
def metrics() -> Response:
    """Prometheus metrics (no API key needed, like most exporters: they hold no record data,
    only metric values and ids)."""
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)
