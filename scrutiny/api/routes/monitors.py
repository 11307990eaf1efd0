"""Monitors over REST: configuration, runs, measurements and drill-down."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

import anyio
from fastapi import APIRouter, Body, Query, Request, Response

from scrutiny.api.auth import READ, WRITE, service_of
from scrutiny.api.models import ERRORS
from scrutiny.api.monitor_models import (
    Measurement,
    Measurements,
    MonitorConfigOut,
    MonitorConfigs,
    MonitorInfo,
    MonitorInfos,
    RunQueued,
)
from scrutiny.errors import InvalidInput
from scrutiny.monitors import registry

router = APIRouter(tags=["monitors"], responses=ERRORS)
MonitorName = str


@router.get("/v1/monitors", response_model=MonitorInfos, dependencies=[READ])
def list_monitor_types() -> MonitorInfos:
    """The available monitors: what each measures, its metrics and its configuration schema."""
    out = []
    for mon in registry.all_monitors():
        out.append(
            MonitorInfo(
                name=mon.name,
                table=mon.table,
                description=mon.description,
                default_period_seconds=int(mon.default_period.total_seconds()),
                enabled_by_default=mon.enabled_by_default,
                metrics={
                    k: {"better": m.direction.value, "min": m.low, "max": m.high, "description": m.description}
                    for k, m in mon.metrics.items()
                },
                config_schema=mon.config_model.model_json_schema(),
            )
        )
    return MonitorInfos(monitors=out)


@router.post("/v1/monitors", status_code=201, dependencies=[WRITE])
def define_monitor(
    request: Request,
    body: dict[str, Any] = Body(
        ...,
        description='a custom monitor: {"name", "description", "metrics": [{"name", "description", "thresholds":'
        ' [{"type": "lower_limit"|"upper_limit", "default"}]}], "tags": [{"name", "description", "required"}]}',
    ),
) -> dict[str, Any]:
    """Define a custom monitor: metrics you compute and post (its id is a slug of its name).
    Enabled per subscription like any monitor; its measurements get limits, alerts and charts."""
    return service_of(request).monitors.define(body)


@router.post(
    "/v1/subscriptions/{subscription_id}/monitors/{monitor}/measurements",
    status_code=201,
    response_model=Measurement,
    dependencies=[WRITE],
)
def post_measurement(
    subscription_id: str,
    monitor: MonitorName,
    request: Request,
    body: dict[str, Any] = Body(
        ...,
        description='{"metrics": [{"<metric>": value, "<tag>": value}], "timestamp" (default: now)}',
    ),
) -> Measurement:
    """Post a custom monitor's values; they are stored as a measurement with the limits in force."""
    m = service_of(request).monitors.record(
        subscription_id, monitor, body.get("metrics"), timestamp=body.get("timestamp")
    )
    return Measurement(**m)


@router.get("/v1/subscriptions/{subscription_id}/monitors", response_model=MonitorConfigs, dependencies=[READ])
def list_monitors(subscription_id: str, request: Request) -> MonitorConfigs:
    """Every monitor of the subscription, configured or not, with its thresholds and schedule."""
    views = service_of(request).monitors.configs(subscription_id)
    return MonitorConfigs(monitors=[MonitorConfigOut(**v) for v in views])


@router.get(
    "/v1/subscriptions/{subscription_id}/monitors/{monitor}", response_model=MonitorConfigOut, dependencies=[READ]
)
def get_monitor(subscription_id: str, monitor: MonitorName, request: Request) -> MonitorConfigOut:
    return MonitorConfigOut(**service_of(request).monitors.get(subscription_id, monitor))


@router.put(
    "/v1/subscriptions/{subscription_id}/monitors/{monitor}", response_model=MonitorConfigOut, dependencies=[WRITE]
)
async def configure_monitor(
    subscription_id: str,
    monitor: MonitorName,
    request: Request,
    body: dict[str, Any] = Body(
        default_factory=dict,
        description="the monitor's configuration (see GET /v1/monitors for each schema), plus"
        ' "thresholds": [{"metric", "type": "lower_limit"|"upper_limit", "value"}], "schedule":'
        ' {"repeat_interval", "repeat_unit"} and "enabled" (default true)',
    ),
) -> MonitorConfigOut:
    """Enable or reconfigure a monitor. The configuration is validated against the subscription
    (unknown columns, group values never seen, thresholds out of range: 422 naming the field).
    Partial aggregates are rebuilt from the stored records when what they depend on changed."""
    svc = service_of(request)
    body = dict(body or {})
    enabled = body.pop("enabled", True)
    if not isinstance(enabled, bool):
        raise InvalidInput("enabled must be true or false", field="enabled")
    view = await anyio.to_thread.run_sync(
        lambda: svc.monitors.configure(subscription_id, monitor, body, enabled=enabled)
    )
    return MonitorConfigOut(**view)


@router.delete(
    "/v1/subscriptions/{subscription_id}/monitors/{monitor}", response_model=MonitorConfigOut, dependencies=[WRITE]
)
def disable_monitor(subscription_id: str, monitor: MonitorName, request: Request) -> MonitorConfigOut:
    """Disable a monitor. Its configuration and measurements are kept."""
    return MonitorConfigOut(**service_of(request).monitors.disable(subscription_id, monitor))


@router.get("/v1/subscriptions/{subscription_id}/monitors/{monitor}/recommendations", dependencies=[READ])
def monitor_recommendations(subscription_id: str, monitor: MonitorName, request: Request) -> dict[str, Any]:
    """What the monitor suggests configuring on this subscription (fairness: the protected
    attributes found by column name and values, each with a ready configuration entry to review)."""
    return {"recommendations": service_of(request).monitors.recommendations(subscription_id, monitor)}


@router.post(
    "/v1/subscriptions/{subscription_id}/monitors/{monitor}/runs",
    status_code=201,
    response_model=Measurement | RunQueued,
    dependencies=[WRITE],
    responses={202: {"model": RunQueued, "description": "queued for the scheduler (wait=false)"}},
)
async def run_monitor(
    subscription_id: str,
    monitor: MonitorName,
    request: Request,
    response: Response,
    start: datetime | None = Query(None, description="evaluate records from this time (inclusive)"),
    end: datetime | None = Query(None, description="evaluate records before this time (exclusive)"),
    wait: bool = Query(True, description="false: queue the run for the scheduler and return at once"),
) -> Any:
    """Run the monitor now and return the measurement it stored (a failed run returns its
    ``error`` measurement). With ``wait=false`` the run is queued (it survives a restart)."""
    svc = service_of(request)
    if not wait:
        queued = await anyio.to_thread.run_sync(lambda: svc.monitors.request_run(subscription_id, monitor))
        response.status_code = 202
        return RunQueued(**queued)
    m = await anyio.to_thread.run_sync(lambda: svc.monitors.run(subscription_id, monitor, start=start, end=end))
    return Measurement(**m)


@router.get("/v1/subscriptions/{subscription_id}/measurements", response_model=Measurements, dependencies=[READ])
def list_measurements(
    subscription_id: str,
    request: Request,
    monitor: str | None = Query(None, description="quality, fairness, drift or performance"),
    start: datetime | None = Query(None, description="measured at or after (ISO-8601)"),
    end: datetime | None = Query(None, description="measured before (ISO-8601)"),
    status: Literal["finished", "insufficient_data", "error"] | None = None,
    limit: int = Query(1000, ge=1, le=100_000),
    offset: int = Query(0, ge=0, le=100_000_000),
) -> Measurements:
    """Measurements, newest first: values, the limits in force at the time, violations, details."""
    rows = service_of(request).monitors.measurements(
        subscription_id, monitor=monitor, start=start, end=end, status=status, limit=limit, offset=offset
    )
    return Measurements(measurements=[Measurement(**m) for m in rows])


@router.get(
    "/v1/subscriptions/{subscription_id}/measurements/{measurement_id}",
    response_model=Measurement,
    dependencies=[READ],
)
def get_measurement(subscription_id: str, measurement_id: str, request: Request) -> Measurement:
    return Measurement(**service_of(request).monitors.measurement(subscription_id, measurement_id))


@router.get("/v1/subscriptions/{subscription_id}/measurements/{measurement_id}/records", dependencies=[READ])
def measurement_records(
    subscription_id: str,
    measurement_id: str,
    request: Request,
    actual: str | None = Query(None, description="quality: the confusion-matrix row (actual label)"),
    predicted: str | None = Query(None, description="quality: the confusion-matrix column (predicted label)"),
    limit: int = Query(100, ge=1, le=10_000),
    offset: int = Query(0, ge=0, le=100_000_000),
) -> dict[str, Any]:
    """The records a measurement evaluated, newest first; for quality, optionally one cell of
    its confusion matrix."""
    rows = service_of(request).monitors.records(
        subscription_id, measurement_id, actual=actual, predicted=predicted, limit=limit, offset=offset
    )
    return {"records": rows}


def install(app: Any) -> None:
    """Start-up and shutdown of the monitors' background work: /metrics always, the scheduler
    when ``settings.scheduler`` is on (``scrutiny serve``)."""

    async def start(app: Any) -> None:
        svc = app.state.service
        # import every built-in monitor now (drift brings SciPy): the first run should not pay for it
        await anyio.to_thread.run_sync(registry.all_monitors)
        svc.monitors.expose_metrics()
        if app.state.settings.scheduler:
            svc.monitors.start_scheduler()

    async def stop(app: Any) -> None:
        svc = app.state.service
        await anyio.to_thread.run_sync(svc.monitors.stop_scheduler)
        svc.monitors.hide_metrics()

    app.state.startup.append(start)
    app.state.shutdown.append(stop)
