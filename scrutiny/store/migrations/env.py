"""Alembic environment: runs against the engine Scrutiny passes in, or SCRUTINY_DATABASE_URL."""

from __future__ import annotations

import os

from alembic import context

from scrutiny.store.database import create_db_engine
from scrutiny.store.tables import metadata

config = context.config
engine = config.attributes.get("connection_engine")
if engine is None:
    url = os.environ.get("SCRUTINY_DATABASE_URL") or config.get_main_option("sqlalchemy.url")
    if not url:
        raise SystemExit("set SCRUTINY_DATABASE_URL to the data mart to migrate")
    engine = create_db_engine(url)

with engine.connect() as connection:
    context.configure(
        connection=connection, target_metadata=metadata, render_as_batch=True, version_table="scrutiny_alembic_version"
    )
    with context.begin_transaction():
        context.run_migrations()
    connection.commit()
