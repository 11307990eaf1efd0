"""Shared fixtures: a fresh data mart per test (SQLite, or PostgreSQL when marked), the demo
engine on a real loopback port, and the API server on another."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import httpx
import pytest

from scrutiny._server import BackgroundServer
from scrutiny.config import Settings
from scrutiny.demo import credit
from scrutiny.demo.engine import EngineOptions, create_engine_app
from scrutiny.service import Service
from tests.support.nats import NATS_URL, nats_unavailable
from tests.support.postgres import PG_URL, postgres_unavailable, private_schema


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    reason = postgres_unavailable()
    if reason:
        pytest.skip(reason)
    yield PG_URL


@pytest.fixture(scope="session")
def nats_url() -> Iterator[str]:
    """NATS with JetStream (``nats://127.0.0.1:4222``); the test skips with the reason without it."""
    reason = nats_unavailable()
    if reason:
        pytest.skip(reason)
    yield NATS_URL


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def backend(request: pytest.FixtureRequest) -> str:
    """Parametrise a test over both stores."""
    return str(request.param)


@pytest.fixture
def settings(tmp_path: Path, backend: str, request: pytest.FixtureRequest) -> Iterator[Settings]:
    with ExitStack() as stack:
        url = None
        if backend == "postgresql":
            reason = postgres_unavailable()
            if reason:
                pytest.skip(reason)
            url = stack.enter_context(private_schema())
        yield Settings(
            data_dir=tmp_path / "data",
            database_url=url,
            sqlite_synchronous="NORMAL",
            engine_retries=2,
            engine_read_timeout=60,  # a busy machine answers slowly; tests of timeouts set short ones
        )


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
