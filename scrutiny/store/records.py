"""Per-subscription payload and feedback tables, built from the subscription's layout.

Each table is plain SQL that users can query: one typed column per feature, the prediction,
the probability vector (``double precision[]`` on PostgreSQL, a JSON array on SQLite) and
``prediction_probability``. The layout lives in ``subscriptions.layout``; this module turns it
into ``sqlalchemy.Table`` objects and DDL.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Dialect

from scrutiny.core.schema import Kind
from scrutiny.core.subscription import SCORING_ID, SCORING_TIMESTAMP
from scrutiny.store.types import UTCDateTime

ColumnSpec = tuple[tuple[str, str], ...]  # ((name, kind), ...) hashable, for the table cache


class Vector(sa.TypeDecorator[list[float]]):
    """A probability vector: ``double precision[]`` on PostgreSQL, JSON text elsewhere."""

    impl = sa.Text
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> Any:
        if dialect.name == "postgresql":
            return dialect.type_descriptor(postgresql.ARRAY(sa.Double()))
        return dialect.type_descriptor(sa.Text())

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if value is None or dialect.name == "postgresql":
            return value
        return orjson.dumps(value).decode()

    def process_result_value(self, value: Any, dialect: Dialect) -> Any:
        if value is None or dialect.name == "postgresql":
            return value
        return orjson.loads(value)


class JSONText(sa.TypeDecorator[Any]):
    """Lists and objects from meta or response columns: ``jsonb`` on PostgreSQL, JSON text elsewhere."""

    impl = sa.Text
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> Any:
        if dialect.name == "postgresql":
            return dialect.type_descriptor(postgresql.JSONB())
        return dialect.type_descriptor(sa.Text())

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if value is None or dialect.name == "postgresql":
            return value
        return orjson.dumps(value).decode()

    def process_result_value(self, value: Any, dialect: Dialect) -> Any:
        if value is None or dialect.name == "postgresql":
            return value
        return orjson.loads(value)


def sql_type(kind: Kind | str) -> Any:
    if kind == "timestamp":
        return UTCDateTime()
    if kind == "vector":
        return Vector()
    return {
        Kind.INT: sa.BigInteger(),
        Kind.FLOAT: sa.Double(),
        Kind.STR: sa.Text(),
        Kind.BOOL: sa.Boolean(),
        Kind.JSON: JSONText(),
    }[Kind(kind)]


def spec(columns: list[tuple[str, Kind | str]]) -> ColumnSpec:
    return tuple((name, str(kind.value if isinstance(kind, Kind) else kind)) for name, kind in columns)


@lru_cache(maxsize=512)
def table(name: str, columns: ColumnSpec) -> sa.Table:
    """The ``Table`` for a record table of this layout (cached: layouts rarely change)."""
    md = sa.MetaData()
    cols = []
    for col_name, kind in columns:
        if col_name == SCORING_ID:
            cols.append(sa.Column(col_name, sa.Text(), primary_key=True))
        else:
            cols.append(sa.Column(col_name, sql_type(kind), nullable=True))
    t = sa.Table(name, md, *cols)
    if any(c == SCORING_TIMESTAMP for c, _ in columns):
        sa.Index(f"ix_{name}_ts", t.c[SCORING_TIMESTAMP])
    return t


def create(conn: sa.Connection, name: str, columns: ColumnSpec) -> sa.Table:
    t = table(name, columns)
    t.create(conn, checkfirst=True)
    return t


def add_columns(conn: sa.Connection, name: str, columns: list[tuple[str, Kind | str]]) -> None:
    """``ALTER TABLE ADD COLUMN`` for columns first seen in a batch (meta, extra response fields)."""
    prep = conn.dialect.identifier_preparer
    for col_name, kind in columns:
        type_sql = sql_type(kind).compile(dialect=conn.dialect)
        conn.exec_driver_sql(f"ALTER TABLE {prep.quote(name)} ADD COLUMN {prep.quote(col_name)} {type_sql}")


def drop(conn: sa.Connection, name: str) -> None:
    conn.exec_driver_sql(f"DROP TABLE IF EXISTS {conn.dialect.identifier_preparer.quote(name)}")


def exists(conn: sa.Connection, name: str) -> bool:
    return sa.inspect(conn).has_table(name)
