"""Opening the data mart: an SQLAlchemy engine tuned per backend, migrated to the latest schema."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Engine

log = logging.getLogger("scrutiny.store")

MIGRATIONS = Path(__file__).parent / "migrations"


def normalize_url(url: str) -> str:
    """``postgresql://`` and ``postgres://`` mean the psycopg 3 driver."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def create_db_engine(url: str, *, sqlite_synchronous: str = "FULL", **kwargs: Any) -> Engine:
    url = normalize_url(url)
    if url.startswith("sqlite"):
        db_path = sa.engine.make_url(url).database
        if db_path and db_path != ":memory:":
            Path(db_path).parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(
            url, connect_args={"timeout": 30, "check_same_thread": False}, pool_size=8, max_overflow=8, **kwargs
        )
        sync = sqlite_synchronous.upper()
        if sync not in {"OFF", "NORMAL", "FULL", "EXTRA"}:
            raise ValueError(f"SCRUTINY_SQLITE_SYNCHRONOUS must be NORMAL, FULL or EXTRA, not {sqlite_synchronous!r}")

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            # Let SQLAlchemy issue BEGIN itself (IMMEDIATE for writers, see begin_write).
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute(f"PRAGMA synchronous={sync}")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.execute("PRAGMA cache_size=-65536")
            cur.execute("PRAGMA temp_store=MEMORY")
            cur.close()

        @event.listens_for(engine, "begin")
        def _begin(conn: sa.Connection) -> None:
            mode = conn.info.pop("sqlite_begin", "DEFERRED")
            conn.exec_driver_sql(f"BEGIN {mode}")

        return engine
    return sa.create_engine(url, pool_size=10, max_overflow=10, pool_pre_ping=True, **kwargs)


def begin_write(engine: Engine) -> Any:
    """A write transaction. On SQLite it takes the write lock up front (BEGIN IMMEDIATE), so two
    writers queue on ``busy_timeout`` instead of failing with a lock upgrade error."""
    conn = engine.connect()
    if engine.dialect.name == "sqlite":
        conn.info["sqlite_begin"] = "IMMEDIATE"
    return _Tx(conn)


class _Tx:
    def __init__(self, conn: sa.Connection) -> None:
        self.conn = conn

    def __enter__(self) -> sa.Connection:
        self.tx = self.conn.begin()
        return self.conn

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        try:
            if exc_type is None:
                self.tx.commit()
            else:
                self.tx.rollback()
        finally:
            self.conn.close()


def migrate(engine: Engine) -> None:
    """Bring the fixed tables to the latest Alembic revision (idempotent)."""
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection_engine"] = engine
    cfg.attributes["configure_logger"] = False
    command.upgrade(cfg, "head")
