"""Monitors: quality, fairness, drift, performance; their configuration, runs, measurements and alerts.

``base.py`` holds the contract a monitor implements (partial aggregates per time bucket, merged
at run time); ``registry.py`` finds monitors by name; ``partials.py`` keeps the aggregates up to
date from the ingest path (``scrutiny.ingest.writer.on_write``); ``runner.py`` runs a monitor;
``service.py`` is what the API, SDK and scheduler call.
"""

from scrutiny.monitors import partials as _partials
from scrutiny.monitors.base import (
    FEEDBACK,
    PAYLOAD,
    Direction,
    LimitType,
    Metric,
    Monitor,
    MonitorConfig,
    Result,
    Run,
    Schedule,
    Status,
    Threshold,
    Window,
)
from scrutiny.monitors.registry import register

_partials.install()

__all__ = [
    "FEEDBACK",
    "PAYLOAD",
    "Direction",
    "LimitType",
    "Metric",
    "Monitor",
    "MonitorConfig",
    "Result",
    "Run",
    "Schedule",
    "Status",
    "Threshold",
    "Window",
    "register",
]
