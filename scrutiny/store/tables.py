"""The data mart's fixed tables. Payload and feedback tables are per subscription (``records.py``).

Changes to these tables go through an Alembic revision in ``migrations/versions``.
"""

from __future__ import annotations

import sqlalchemy as sa

from scrutiny.store.types import JSONType, UTCDateTime

metadata = sa.MetaData()

data_marts = sa.Table(
    "data_marts",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
)

api_keys = sa.Table(
    "api_keys",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("role", sa.String(20), nullable=False),
    sa.Column("key_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("hint", sa.String(40), nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("revoked_at", UTCDateTime(), nullable=True),
)

bindings = sa.Table(
    "bindings",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("engine_type", sa.String(40), nullable=False),
    sa.Column("description", sa.Text, nullable=True),
    # Non-secret settings (url, region, protocol...): shown by the API.
    sa.Column("settings", JSONType, nullable=False),
    # Credentials and request headers, Fernet-encrypted: never returned.
    sa.Column("secrets", sa.LargeBinary, nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
)

subscriptions = sa.Table(
    "subscriptions",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("binding_id", sa.String(64), sa.ForeignKey("bindings.id"), nullable=False, index=True),
    sa.Column("deployment_id", sa.String(200), nullable=False),
    sa.Column("deployment", JSONType, nullable=False),
    sa.Column("asset", JSONType, nullable=False),
    sa.Column("asset_properties", JSONType, nullable=False),
    # Resolved record layout: schema, labels, column kinds, table names (see scrutiny.core.subscription).
    sa.Column("layout", JSONType, nullable=False),
    sa.Column("training_statistics", JSONType, nullable=True),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
)
