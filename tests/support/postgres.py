"""The test PostgreSQL: whether it answers (and why not), and a private schema per test.

Tests that need it skip with the reason when it does not answer; ``.ci/run`` starts it first, so
in CI they really run.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa

PG_URL = os.environ.get("SCRUTINY_TEST_PG_URL", "postgresql+psycopg://127.0.0.1:5432/test")
_state: dict[str, str | None] = {}


def postgres_unavailable() -> str | None:
    """None when the test PostgreSQL answers, else the reason (shown in the skip message)."""
    if "reason" not in _state:
        try:
            eng = sa.create_engine(PG_URL, connect_args={"connect_timeout": 3})
            with eng.connect() as c:
                c.exec_driver_sql("select 1")
            eng.dispose()
            _state["reason"] = None
        except Exception as exc:
            _state["reason"] = (
                f"PostgreSQL at {PG_URL} does not answer ({exc.__class__.__name__}); start it or set SCRUTINY_TEST_PG_URL"
            )
    return _state["reason"]


@contextmanager
def private_schema(url: str = PG_URL) -> Iterator[str]:
    """A fresh schema, dropped afterwards; yields a URL whose search_path is it, so tests never
    see each other's tables."""
    schema = "t_" + uuid.uuid4().hex[:12]
    eng = sa.create_engine(url)
    try:
        with eng.begin() as c:
            c.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
        eng.dispose()  # no idle connection held while the test runs
        sep = "&" if "?" in url else "?"
        yield f"{url}{sep}options=-csearch_path%3D{schema}"
    finally:
        with eng.begin() as c:
            c.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        eng.dispose()
