"""The store away while traffic flows: scoring continues, the spool grows to its bound and then
refuses clearly (503), and everything acknowledged is stored once the store is back."""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path
from typing import Any

import httpx
import pytest

from scrutiny._server import BackgroundServer
from scrutiny.api.app import create_app
from scrutiny.config import Settings
from scrutiny.demo import credit
from scrutiny.service import Service
from tests.support.proxy import logger_key, payload_rows, proxy_client, rows, served, subscribe, wait_for


def test_spool_bound_reached_while_the_store_is_locked(
    tmp_path: Path, engine_server: Any, german: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="scrutiny.spool")  # other tests raise the root level
    settings = Settings(data_dir=tmp_path / "d", sqlite_synchronous="NORMAL", spool_max_bytes=48 * 1024)
    svc = Service(settings)
    sub = subscribe(svc, engine_server.url, german)
    key = logger_key(svc)
    app = create_app(service=svc)
    stats = served(engine_server).state.stats
    answered: list[str] = []
    try:
        with BackgroundServer(app) as srv, proxy_client(srv.url, key) as c:
            rt = app.state.proxy_runtime

            def score(i: int) -> httpx.Response:
                return c.post(f"/proxy/{sub.id}", json={"fields": credit.FEATURES, "values": rows(german, 1, i % 900)})

            r = score(0)
            assert r.status_code == 200
            answered.append(r.headers["x-scrutiny-scoring-id"])
            assert rt.drainer.wait_empty(20)
            lock = sqlite3.connect(settings.store_url.removeprefix("sqlite:///"), timeout=30)
            lock.execute("BEGIN IMMEDIATE")  # the data mart stops taking writes
            try:
                refused = None
                for i in range(1, 400):
                    r = score(i)
                    if r.status_code != 200:
                        refused = r
                        break
                    answered.append(r.headers["x-scrutiny-scoring-id"])
                assert refused is not None, "the spool never reached its bound"
                assert len(answered) > 20  # scoring went on well past the outage's start
                assert refused.status_code == 503
                assert refused.json()["error"]["code"] == "spool_full"
                assert refused.headers["retry-after"] == "5"
                calls = stats["calls"]
                assert score(999).status_code == 503
                assert stats["calls"] == calls  # refused before reaching the engine: nothing scored unlogged
                metrics = c.get("/metrics").text
                assert "scrutiny_spool_near_full 1.0" in metrics
                assert any("bound" in rec.getMessage() for rec in caplog.records if rec.levelno >= logging.WARNING)
                assert rt.spool.depth >= len(answered) - 1
            finally:
                lock.rollback()
                lock.close()
            # the store is back: the spool drains, frees its space, and requests are accepted again
            assert rt.drainer.wait_empty(60)
            wait_for(lambda: score(1000).status_code == 200, 30, "the spool to accept requests again")
            assert rt.drainer.wait_empty(30)
    finally:
        pass
    stored = {row["scoring_id"] for row in payload_rows(svc, sub.id)}
    assert {f"{sid}-1" for sid in answered} <= stored
    svc.close()


def test_a_record_that_keeps_failing_on_a_healthy_store_is_set_aside(
    tmp_path: Path, engine_server: Any, german: Any
) -> None:
    """A "transient" error that persists while the store answers (here: the table was dropped
    underneath) must not hold the spool hostage: after a few retries the records go to the
    dead-letter file with the database's reason, and later traffic flows."""
    settings = Settings(data_dir=tmp_path / "d", sqlite_synchronous="NORMAL")
    svc = Service(settings)
    sub = subscribe(svc, engine_server.url, german)
    key = logger_key(svc)
    app = create_app(service=svc)
    with BackgroundServer(app) as srv, proxy_client(srv.url, key) as c:
        rt = app.state.proxy_runtime
        rt.drainer.backoff_initial = rt.drainer.backoff_max = 0.02
        body = {"fields": credit.FEATURES, "values": rows(german, 1)}
        assert c.post(f"/proxy/{sub.id}", json=body).status_code == 200
        assert rt.drainer.wait_empty(20)
        with svc.store.write() as conn:
            conn.exec_driver_sql(f"DROP TABLE {sub.layout.payload_table}")
        r = c.post(f"/proxy/{sub.id}", json=body)
        assert r.status_code == 200
        assert rt.drainer.wait_empty(30)
        dead = rt.dead_letters.read()
        assert len(dead) == 1 and "no such table" in dead[0]["reason"]
        assert dead[0]["record"]["scoring_id"] == r.headers["x-scrutiny-scoring-id"]
        assert rt.drainer.errors >= rt.drainer.isolate_after
    svc.close()
