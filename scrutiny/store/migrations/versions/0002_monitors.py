"""Monitors: configurations, partial aggregates, measurements, alerts, webhooks.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from scrutiny.store.types import JSONType, UTCDateTime

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _sub_fk(primary_key: bool = False, nullable: bool = False) -> sa.Column:
    return sa.Column(
        "subscription_id",
        sa.String(64),
        sa.ForeignKey("subscriptions.id", ondelete="CASCADE"),
        primary_key=primary_key,
        nullable=nullable,
    )


def upgrade() -> None:
    op.create_table(
        "monitor_configs",
        _sub_fk(primary_key=True),
        sa.Column("monitor", sa.String(40), primary_key=True),
        sa.Column("enabled", sa.Boolean, nullable=False),
        sa.Column("table_kind", sa.String(20), nullable=False),
        sa.Column("config", JSONType, nullable=False),
        sa.Column("plan", JSONType, nullable=True),
        sa.Column("plan_id", sa.String(32), nullable=True),
        sa.Column("plan_ready", sa.Boolean, nullable=False),
        sa.Column("period_seconds", sa.Integer, nullable=False),
        sa.Column("next_run_at", UTCDateTime(), nullable=True),
        sa.Column("run_requested_at", UTCDateTime(), nullable=True),
        sa.Column("last_run_at", UTCDateTime(), nullable=True),
        sa.Column("last_status", sa.String(20), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
    )
    op.create_table(
        "monitor_partials",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        _sub_fk(),
        sa.Column("monitor", sa.String(40), nullable=False),
        sa.Column("plan_id", sa.String(32), nullable=False),
        sa.Column("bucket", UTCDateTime(), nullable=False),
        sa.Column("rows", sa.BigInteger, nullable=False),
        sa.Column("min_ts", UTCDateTime(), nullable=False),
        sa.Column("max_ts", UTCDateTime(), nullable=False),
        sa.Column("state", sa.LargeBinary, nullable=False),
    )
    op.create_index(
        "ix_monitor_partials_lookup", "monitor_partials", ["subscription_id", "monitor", "plan_id", "bucket"]
    )
    op.create_table(
        "measurements",
        sa.Column("id", sa.String(36), primary_key=True),
        _sub_fk(),
        sa.Column("monitor", sa.String(40), nullable=False),
        sa.Column("timestamp", UTCDateTime(), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("trigger", sa.String(20), nullable=False),
        sa.Column("window_start", UTCDateTime(), nullable=True),
        sa.Column("window_end", UTCDateTime(), nullable=True),
        sa.Column("records", sa.BigInteger, nullable=False),
        sa.Column("values", JSONType, nullable=False),
        sa.Column("thresholds", JSONType, nullable=False),
        sa.Column("violations", JSONType, nullable=False),
        sa.Column("details", JSONType, nullable=False),
        sa.Column("message", sa.Text, nullable=True),
        sa.Column("duration_ms", sa.Integer, nullable=False),
    )
    op.create_index("ix_measurements_lookup", "measurements", ["subscription_id", "monitor", "timestamp"])
    op.create_table(
        "alerts",
        sa.Column("id", sa.String(36), primary_key=True),
        _sub_fk(),
        sa.Column("monitor", sa.String(40), nullable=False),
        sa.Column("metric", sa.String(200), nullable=False),
        sa.Column("limit_type", sa.String(20), nullable=False),
        sa.Column("limit_value", sa.Double, nullable=False),
        sa.Column("status", sa.String(10), nullable=False),
        sa.Column("value", sa.Double, nullable=True),
        sa.Column("worst_value", sa.Double, nullable=True),
        sa.Column("opened_at", UTCDateTime(), nullable=False),
        sa.Column("closed_at", UTCDateTime(), nullable=True),
        sa.Column("opened_measurement_id", sa.String(36), nullable=False),
        sa.Column("last_measurement_id", sa.String(36), nullable=False),
        sa.Column("runs", sa.Integer, nullable=False),
        sa.Column("message", sa.Text, nullable=False),
    )
    op.create_index("ix_alerts_open", "alerts", ["subscription_id", "monitor", "status"])
    op.create_table(
        "webhooks",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("url", sa.Text, nullable=False),
        _sub_fk(nullable=True),
        sa.Column("monitors", JSONType, nullable=True),
        sa.Column("sealed_secret", sa.LargeBinary, nullable=True),
        sa.Column("description", sa.Text, nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
    )
    op.create_table(
        "alert_notifications",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("webhook_id", sa.String(36), sa.ForeignKey("webhooks.id", ondelete="CASCADE"), nullable=False),
        sa.Column("alert_id", sa.String(36), sa.ForeignKey("alerts.id", ondelete="CASCADE"), nullable=False),
        sa.Column("event", sa.String(20), nullable=False),
        sa.Column("body", JSONType, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("next_attempt_at", UTCDateTime(), nullable=True),
        sa.Column("delivered_at", UTCDateTime(), nullable=True),
        sa.Column("last_error", sa.Text, nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
    )
    op.create_index("ix_alert_notifications_due", "alert_notifications", ["next_attempt_at"])


def downgrade() -> None:
    op.drop_index("ix_alert_notifications_due", "alert_notifications")
    op.drop_table("alert_notifications")
    op.drop_table("webhooks")
    op.drop_index("ix_alerts_open", "alerts")
    op.drop_table("alerts")
    op.drop_index("ix_measurements_lookup", "measurements")
    op.drop_table("measurements")
    op.drop_index("ix_monitor_partials_lookup", "monitor_partials")
    op.drop_table("monitor_partials")
    op.drop_table("monitor_configs")
