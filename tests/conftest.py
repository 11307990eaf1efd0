"""Shared fixtures: a fresh data mart per test (SQLite, or PostgreSQL when marked), the demo
engine on a real loopback port, and the API server on another."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from scrutiny._server import BackgroundServer
from scrutiny.config import Settings
from scrutiny.demo import credit
from scrutiny.demo.engine import EngineOptions, create_engine_app
from scrutiny.service import Service

PG_URL = os.environ.get("SCRUTINY_TEST_PG_URL", "postgresql+psycopg://127.0.0.1:5432/test")
_pg_state: dict[str, str | None] = {}


def postgres_unavailable() -> str | None:
    """None when the test PostgreSQL answers, else the reason (shown in the skip message)."""
    if "reason" not in _pg_state:
        try:
            import sqlalchemy as sa

            eng = sa.create_engine(PG_URL, connect_args={"connect_timeout": 3})
            with eng.connect() as c:
                c.exec_driver_sql("select 1")
            eng.dispose()
            _pg_state["reason"] = None
        except Exception as exc:
            _pg_state["reason"] = (
                f"PostgreSQL at {PG_URL} does not answer ({exc.__class__.__name__}); start it or set SCRUTINY_TEST_PG_URL"
            )
    return _pg_state["reason"]


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    reason = postgres_unavailable()
    if reason:
        pytest.skip(reason)
    yield PG_URL


def _fresh_pg_schema(url: str) -> tuple[str, str]:
    """A private schema per test, so tests never see each other's tables."""
    import sqlalchemy as sa

    schema = "t_" + uuid.uuid4().hex[:12]
    eng = sa.create_engine(url)
    with eng.begin() as c:
        c.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    eng.dispose()
    sep = "&" if "?" in url else "?"
    return schema, f"{url}{sep}options=-csearch_path%3D{schema}"


def _drop_pg_schema(url: str, schema: str) -> None:
    import sqlalchemy as sa

    eng = sa.create_engine(url)
    with eng.begin() as c:
        c.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    eng.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def backend(request: pytest.FixtureRequest) -> str:
    """Parametrise a test over both stores."""
    return str(request.param)


@pytest.fixture
def settings(tmp_path: Path, backend: str, request: pytest.FixtureRequest) -> Iterator[Settings]:
    url = None
    schema = None
    if backend == "postgresql":
        reason = postgres_unavailable()
        if reason:
            pytest.skip(reason)
        schema, url = _fresh_pg_schema(PG_URL)
    yield Settings(
        data_dir=tmp_path / "data",
        database_url=url,
        sqlite_synchronous="NORMAL",
        engine_retries=2,
        engine_read_timeout=10,
    )
    if schema:
        _drop_pg_schema(PG_URL, schema)


@pytest.fixture
def service(settings: Settings) -> Iterator[Service]:
    svc = Service(settings)
    yield svc
    svc.close()


@pytest.fixture(scope="session")
def engine_server() -> Iterator[BackgroundServer]:
    """The demo custom engine (Form A discovery, no auth, with fault deployments)."""
    with BackgroundServer(create_engine_app(EngineOptions(faults=True, slow_seconds=3.0))) as srv:
        yield srv


@pytest.fixture
def api(service: Service) -> Iterator[tuple[BackgroundServer, str]]:
    """The API on a loopback port, and its admin key."""
    from scrutiny.api.app import create_app

    app = create_app(service=service)
    key = service.keys.ensure_admin_key()
    assert key
    with BackgroundServer(app) as srv:
        yield srv, key


@pytest.fixture
def client(api: tuple[BackgroundServer, str]) -> Iterator[httpx.Client]:
    srv, key = api
    with httpx.Client(base_url=srv.url, headers={"Authorization": f"Bearer {key}"}, timeout=30) as c:
        yield c


@pytest.fixture(scope="session")
def german():  # type: ignore[no-untyped-def]
    return credit.load_german()


@pytest.fixture
def training_csv(tmp_path: Path, german) -> Path:  # type: ignore[no-untyped-def]
    path = tmp_path / "german.csv"
    german.to_csv(path, index=False)
    return path
