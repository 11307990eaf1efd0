"""Explanations: LIME-style and contrastive explanations of scored records, with their cost.

Revision ID: 0004
Revises: 0003_drift
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from scrutiny.store.types import JSONType, UTCDateTime

revision = "0004"
down_revision = "0003_drift"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "explanations",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column(
            "subscription_id",
            sa.String(64),
            sa.ForeignKey("subscriptions.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("scoring_id", sa.Text, nullable=True),
        sa.Column("method", sa.String(40), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("request", JSONType, nullable=False),
        sa.Column("record", JSONType, nullable=False),
        sa.Column("result", JSONType, nullable=True),
        sa.Column("error", JSONType, nullable=True),
        sa.Column("scoring_calls", sa.Integer, nullable=False, server_default="0"),
        sa.Column("scored_rows", sa.Integer, nullable=False, server_default="0"),
        sa.Column("timings", JSONType, nullable=True),
        sa.Column("owner", sa.String(64), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("started_at", UTCDateTime(), nullable=True),
        sa.Column("finished_at", UTCDateTime(), nullable=True),
    )
    op.create_index("ix_explanations_subscription_scoring", "explanations", ["subscription_id", "scoring_id"])
    op.create_index("ix_explanations_status", "explanations", ["status"])


def downgrade() -> None:
    op.drop_index("ix_explanations_status", "explanations")
    op.drop_index("ix_explanations_subscription_scoring", "explanations")
    op.drop_table("explanations")
