"""Explanations of single transactions (when the explanations component is installed)."""

from __future__ import annotations

from typing import Any

from scrutiny.subscription import Subscription
from scrutiny.web.routing import web_router

router = web_router()


def available(service: Any) -> bool:
    return getattr(service, "explanations", None) is not None


def explanations_of(service: Any, sub: Subscription, scoring_id: str) -> list[dict[str, Any]]:
    return []
