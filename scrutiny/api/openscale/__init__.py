"""OpenScale's REST API (v1 and v2) over Scrutiny's own resources, so that code written with
IBM's Python SDKs (``ibm-watson-openscale``, ``ibm-ai-openscale``) runs unchanged.

One module per OpenScale resource; each maps onto Scrutiny's service layer and keeps no data of
its own: a service provider is a binding, a data set is a subscription's payload or feedback
table, a monitor instance is a subscription's monitor configuration, a run is a measurement.
See docs/openscale.md.
"""

from __future__ import annotations

from fastapi import FastAPI

from scrutiny.api.openscale import (
    auth,
    configurations,
    data_marts,
    data_sets,
    metrics,
    monitor_definitions,
    monitor_instances,
    service_providers,
    subscriptions,
)

MODULES = (
    auth,
    data_marts,
    monitor_definitions,
    service_providers,
    subscriptions,
    data_sets,
    monitor_instances,
    configurations,
    metrics,
)


def install(app: FastAPI) -> None:
    for module in MODULES:
        app.include_router(module.router)
