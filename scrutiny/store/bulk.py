"""The fast write path of each backend: ``executemany`` in one transaction on SQLite, ``COPY``
on PostgreSQL. Rows arrive as tuples already in table-column order; no ORM, no per-row SQL."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import sqlalchemy as sa

_SQLITE_MAX_VARS = 30000


def _dbapi(conn: sa.Connection) -> Any:
    return conn.connection.driver_connection


def insert_rows(conn: sa.Connection, table: str, columns: Sequence[str], rows: Iterable[tuple[Any, ...]]) -> None:
    """Insert ``rows`` (tuples in ``columns`` order; any iterable, consumed once)."""
    prep = conn.dialect.identifier_preparer
    qt = prep.quote(table)
    cols = ", ".join(prep.quote(c) for c in columns)
    if conn.dialect.name == "postgresql":
        with _dbapi(conn).cursor() as cur, cur.copy(f"COPY {qt} ({cols}) FROM STDIN") as copy:
            write = copy.write_row
            for row in rows:
                write(row)
        return
    if conn.dialect.name == "sqlite":
        marks = ", ".join("?" * len(columns))
        cur = _dbapi(conn).cursor()
        try:
            cur.executemany(f"INSERT INTO {qt} ({cols}) VALUES ({marks})", rows)
        finally:
            cur.close()
        return
    t = sa.table(table, *[sa.column(c) for c in columns])
    conn.execute(t.insert(), [dict(zip(columns, r, strict=True)) for r in rows])


def copy_csv(conn: sa.Connection, table: str, columns: Sequence[str], data: bytes) -> None:
    """PostgreSQL: ``COPY`` rows already formatted as CSV (``scrutiny.ingest.batch.csv_for``)."""
    prep = conn.dialect.identifier_preparer
    cols = ", ".join(prep.quote(c) for c in columns)
    with _dbapi(conn).cursor() as cur, cur.copy(f"COPY {prep.quote(table)} ({cols}) FROM STDIN (FORMAT csv)") as copy:
        copy.write(data)


def existing_ids(conn: sa.Connection, table: str, ids: list[str], column: str = "scoring_id") -> set[str]:
    """Which of ``ids`` are already stored (the idempotency check before a write)."""
    if not ids:
        return set()
    prep = conn.dialect.identifier_preparer
    qt, qc = prep.quote(table), prep.quote(column)
    found: set[str] = set()
    if conn.dialect.name == "postgresql":
        with _dbapi(conn).cursor() as cur:
            # one array literal as text: psycopg would adapt a Python list element by element
            cur.execute(f"SELECT {qc} FROM {qt} WHERE {qc} = ANY(%s::text[])", (_text_array(ids),))
            found.update(r[0] for r in cur.fetchall())
        return found
    cur = _dbapi(conn).cursor()
    try:
        for i in range(0, len(ids), _SQLITE_MAX_VARS):
            chunk = ids[i : i + _SQLITE_MAX_VARS]
            marks = ", ".join("?" * len(chunk))
            cur.execute(f"SELECT {qc} FROM {qt} WHERE {qc} IN ({marks})", chunk)
            found.update(r[0] for r in cur.fetchall())
    finally:
        cur.close()
    return found


def _text_array(values: list[str]) -> str:
    """A PostgreSQL ``text[]`` literal: every element double-quoted, ``\\`` and ``"`` escaped."""
    return "{" + ",".join('"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"' for v in values) + "}"


def is_duplicate_key(exc: BaseException) -> bool:
    """True for a primary-key violation from any backend, wrapped by SQLAlchemy or raw from the driver."""
    if isinstance(exc, sa.exc.IntegrityError):
        exc = exc.orig or exc
    name = type(exc).__name__
    text = str(exc)
    return name in {"UniqueViolation", "IntegrityError"} and (
        "UNIQUE" in text or "unique" in text or "duplicate" in text
    )
