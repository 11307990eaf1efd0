"""Request and response bodies of the feedback, monitor, measurement, alert and webhook endpoints.

Names here are a contract other tools depend on: add fields, do not rename them.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class FeedbackResult(BaseModel):
    stored: int = Field(description="rows written")
    duplicates: int = Field(0, description="rows skipped: their id was already stored")
    records: int = Field(0, description="rows received")
    linked: int = Field(0, description="rows joined to a logged payload row by scoring_id")
    scored: int = Field(0, description="rows scored through the engine (internal, not logged as payload)")
    ignored_fields: list[str] = Field(default_factory=list, description="columns that are no feature or label")
    errors: list[dict[str, Any]] = Field(default_factory=list, description="rows left out (on_error=continue)")


class FeedbackBody(BaseModel):
    """``{"fields", "values"}``; a list of row objects and CSV are accepted too."""

    model_config = ConfigDict(extra="allow")
    fields: list[str]
    values: list[list[Any]]


class ThresholdOut(BaseModel):
    metric: str
    type: str
    value: float | None


class ScheduleOut(BaseModel):
    repeat_interval: int
    repeat_unit: str


class MonitorConfigOut(BaseModel):
    model_config = ConfigDict(extra="allow")
    monitor: str
    enabled: bool
    table: str = Field(description="payload or feedback: the records it evaluates")
    config: dict[str, Any] | None = Field(description="null: never configured (the monitor needs settings)")
    thresholds: list[ThresholdOut]
    schedule: ScheduleOut
    next_run_at: str | None = None
    last_run_at: str | None = None
    last_status: str | None = None
    partials_ready: bool = False
    updated_at: str | None = None


class MonitorConfigs(BaseModel):
    monitors: list[MonitorConfigOut]


class MonitorInfo(BaseModel):
    name: str
    table: str
    description: str
    default_period_seconds: int
    enabled_by_default: bool
    metrics: dict[str, dict[str, Any]]
    config_schema: dict[str, Any]


class MonitorInfos(BaseModel):
    monitors: list[MonitorInfo]


class Measurement(BaseModel):
    model_config = ConfigDict(extra="allow")
    id: str
    subscription_id: str
    monitor: str
    timestamp: str
    status: str = Field(description="finished, insufficient_data or error")
    trigger: str = Field(description="schedule or manual")
    window: dict[str, str | None]
    records: int
    values: dict[str, float | None]
    thresholds: list[dict[str, Any]]
    violations: list[dict[str, Any]]
    details: dict[str, Any]
    message: str | None = None
    duration_ms: int


class Measurements(BaseModel):
    measurements: list[Measurement]


class RunQueued(BaseModel):
    monitor: str
    subscription_id: str
    queued_at: str


class Alert(BaseModel):
    id: str
    subscription_id: str
    monitor: str
    metric: str
    type: str
    limit: float
    status: str = Field(description="open or closed")
    value: float | None
    worst_value: float | None
    opened_at: str
    closed_at: str | None
    opened_measurement_id: str
    last_measurement_id: str
    runs: int = Field(description="violating runs in this episode")
    message: str


class Alerts(BaseModel):
    alerts: list[Alert]


class WebhookCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    url: str = Field(description="http(s) URL that receives alert events as JSON (POST)")
    subscription_id: str | None = Field(None, description="only this subscription's alerts (default: all)")
    monitors: list[str] | None = Field(None, description="only these monitors' alerts (default: all)")
    secret: str | None = Field(
        None, description="HMAC-SHA256 key: each delivery carries X-Scrutiny-Signature: sha256=<hex>; never returned"
    )
    description: str | None = Field(None, max_length=2000)


class Webhook(BaseModel):
    id: str
    url: str
    subscription_id: str | None
    monitors: list[str] | None
    has_secret: bool
    description: str | None
    created_at: str


class Webhooks(BaseModel):
    webhooks: list[Webhook]


class Delivery(BaseModel):
    id: int
    webhook_id: str
    alert_id: str
    event: str
    attempts: int
    delivered_at: str | None
    next_attempt_at: str | None
    last_error: str | None
    created_at: str


class Deliveries(BaseModel):
    deliveries: list[Delivery]
