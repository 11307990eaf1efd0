"""Initial data mart: data marts, API keys, bindings, subscriptions.

Revision ID: 0001
Revises:
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from scrutiny.store.types import JSONType, UTCDateTime

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "data_marts",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
    )
    op.create_table(
        "api_keys",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("role", sa.String(20), nullable=False),
        sa.Column("key_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("hint", sa.String(40), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("revoked_at", UTCDateTime(), nullable=True),
    )
    op.create_table(
        "bindings",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("engine_type", sa.String(40), nullable=False),
        sa.Column("description", sa.Text, nullable=True),
        sa.Column("settings", JSONType, nullable=False),
        sa.Column("secrets", sa.LargeBinary, nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
    )
    op.create_table(
        "subscriptions",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("binding_id", sa.String(64), sa.ForeignKey("bindings.id"), nullable=False),
        sa.Column("deployment_id", sa.String(200), nullable=False),
        sa.Column("deployment", JSONType, nullable=False),
        sa.Column("asset", JSONType, nullable=False),
        sa.Column("asset_properties", JSONType, nullable=False),
        sa.Column("layout", JSONType, nullable=False),
        sa.Column("training_statistics", JSONType, nullable=True),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
    )
    op.create_index("ix_subscriptions_binding_id", "subscriptions", ["binding_id"])


def downgrade() -> None:
    op.drop_index("ix_subscriptions_binding_id", "subscriptions")
    op.drop_table("subscriptions")
    op.drop_table("bindings")
    op.drop_table("api_keys")
    op.drop_table("data_marts")
