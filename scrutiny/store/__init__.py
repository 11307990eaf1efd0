"""The data mart: fixed tables (catalog), per-subscription record tables, bulk writes."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.engine import Engine

from scrutiny.store.catalog import Catalog
from scrutiny.store.database import begin_write, create_db_engine, migrate


@dataclass
class Store:
    engine: Engine
    catalog: Catalog

    @classmethod
    def open(cls, url: str, *, sqlite_synchronous: str = "FULL", run_migrations: bool = True) -> Store:
        engine = create_db_engine(url, sqlite_synchronous=sqlite_synchronous)
        if run_migrations:
            migrate(engine)
        return cls(engine, Catalog(engine))

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def write(self):  # type: ignore[no-untyped-def]
        """A write transaction (``with store.write() as conn: ...``)."""
        return begin_write(self.engine)

    def close(self) -> None:
        self.engine.dispose()


__all__ = ["Catalog", "Store"]
