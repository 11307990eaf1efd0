"""The embeddable logger: decorator and ASGI middleware, through the same spool and writer."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from scrutiny._server import BackgroundServer, free_port
from scrutiny.demo import credit
from scrutiny.demo.engine import EngineOptions, create_engine_app
from scrutiny.proxy import PayloadLogger, PayloadLoggingMiddleware, current_scoring_id, log_payloads
from scrutiny.service import Service
from scrutiny.spool.spool import SpoolFull
from tests.support.proxy import logger_key, payload_rows, rows, subscribe


@pytest.fixture
def api_url(api: tuple[BackgroundServer, str]) -> str:
    return api[0].url


def test_decorator_logs_through_the_api_with_a_logger_key(
    tmp_path: Path, service: Service, api_url: str, engine_server: Any, german: Any
) -> None:
    sub = subscribe(service, engine_server.url, german)
    key = logger_key(service)
    engine_url = f"{engine_server.url}/v1/deployments/credit-risk/online"
    with PayloadLogger(sub.id, spool_dir=tmp_path / "spool", url=api_url, api_key=key) as logger:

        @log_payloads(logger)
        def score(request: dict[str, Any]) -> dict[str, Any]:
            assert current_scoring_id() is not None  # known inside the call, e.g. to return it
            return dict(httpx.post(engine_url, json=request).json())

        ids = []
        for i in range(5):
            out = score({"fields": credit.FEATURES, "values": rows(german, 2, 2 * i)})
            assert out["fields"] == ["prediction", "probability"]
            ids.append(current_scoring_id())
        assert logger.wait_delivered(30)
    stored = {row["scoring_id"] for row in payload_rows(service, sub.id)}
    assert stored == {f"{sid}-{n}" for sid in ids for n in (1, 2)}


def test_async_decorator_and_delivery_after_scrutiny_comes_back(
    tmp_path: Path, service: Service, api_url: str, engine_server: Any, german: Any
) -> None:
    sub = subscribe(service, engine_server.url, german)
    key = logger_key(service)
    spool = tmp_path / "spool"
    dead = f"http://127.0.0.1:{free_port()}"
    logger = PayloadLogger(sub.id, spool_dir=spool, url=dead, api_key=key).start()  # Scrutiny unreachable

    @log_payloads(logger)
    async def score(request: dict[str, Any]) -> dict[str, Any]:
        async with httpx.AsyncClient() as c:
            r = await c.post(f"{engine_server.url}/v1/deployments/credit-risk/online", json=request)
        return dict(r.json())

    async def run() -> list[str | None]:
        out = []
        for i in range(4):
            await score({"fields": credit.FEATURES, "values": rows(german, 1, i)})
            out.append(current_scoring_id())
        return out

    ids = asyncio.run(run())
    assert logger.spool.depth == 4  # durable locally, waiting
    logger.close(drain_timeout=0.5)
    assert payload_rows(service, sub.id) == []
    with PayloadLogger(sub.id, spool_dir=spool, url=api_url, api_key=key) as again:  # next start replays
        assert again.wait_delivered(30)
    assert {row["scoring_id"] for row in payload_rows(service, sub.id)} == {f"{sid}-1" for sid in ids}


def test_records_the_server_rejects_are_dead_lettered_not_retried_forever(
    tmp_path: Path, service: Service, api_url: str, engine_server: Any, german: Any
) -> None:
    sub = subscribe(service, engine_server.url, german)
    with PayloadLogger(sub.id, spool_dir=tmp_path / "s", url=api_url, api_key=logger_key(service)) as logger:
        good = {"fields": credit.FEATURES, "values": rows(german, 1)}
        answer = {"fields": ["prediction", "probability"], "values": [["No Risk", [0.9, 0.1]]]}
        a = logger.log(good, answer)
        bad = logger.log({"fields": ["Nonsense"], "values": [[1]]}, answer)
        c = logger.log(good, answer)
        assert logger.wait_delivered(30)
        dead = logger.dead_letters.read()
    assert [d["record"]["scoring_id"] for d in dead] == [bad]
    assert "Nonsense" in dead[0]["reason"] or "missing" in dead[0]["reason"]
    assert {row["scoring_id"] for row in payload_rows(service, sub.id)} == {f"{a}-1", f"{c}-1"}


def test_a_full_spool_does_not_fail_the_scoring_call_unless_asked(tmp_path: Path) -> None:
    logger = PayloadLogger(
        "sub", spool_dir=tmp_path / "s", url="http://127.0.0.1:9", api_key="k", max_bytes=600
    ).start()
    try:

        @log_payloads(logger)
        def score(request: dict[str, Any]) -> dict[str, Any]:
            return {"fields": ["prediction"], "values": [["x"]]}

        big = {"fields": ["a"], "values": [["y" * 1000]]}
        assert score(big) == {"fields": ["prediction"], "values": [["x"]]}  # the caller still gets its answer
        assert logger.metrics.unlogged._value.get() == 1
        logger.raise_on_error = True
        with pytest.raises(SpoolFull):
            score(big)
    finally:
        logger.close(drain_timeout=0)


@pytest.fixture
def wrapped_engine(
    tmp_path: Path, service: Service, engine_server: Any, german: Any
) -> Iterator[tuple[BackgroundServer, Any, PayloadLogger]]:
    """The demo engine app itself, wrapped in the middleware, logging straight to the store."""
    sub = subscribe(service, engine_server.url, german)
    logger = PayloadLogger(sub.id, spool_dir=tmp_path / "mw", service=service).start()
    app = PayloadLoggingMiddleware(create_engine_app(EngineOptions(faults=True)), logger, paths=["/v1/deployments/*"])
    with BackgroundServer(app) as srv:
        yield srv, sub, logger
    logger.close()


def test_middleware_logs_and_answers_unchanged(
    wrapped_engine: tuple[BackgroundServer, Any, PayloadLogger], service: Service, engine_server: Any, german: Any
) -> None:
    srv, sub, logger = wrapped_engine
    body = orjson.dumps({"fields": credit.FEATURES, "values": rows(german, 3, 50)})
    plain = httpx.post(f"{engine_server.url}/v1/deployments/credit-risk/online", content=body)
    r = httpx.post(
        f"{srv.url}/v1/deployments/credit-risk/online", content=body, headers={"X-Global-Transaction-Id": "t-1"}
    )
    assert (r.status_code, r.content, r.headers["content-type"]) == (200, plain.content, plain.headers["content-type"])
    sid = r.headers["x-scrutiny-scoring-id"]
    caller = httpx.post(
        f"{srv.url}/v1/deployments/credit-risk/online", content=body, headers={"X-Scrutiny-Scoring-Id": "mine-7"}
    )
    assert caller.headers["x-scrutiny-scoring-id"] == "mine-7"
    internal = httpx.post(
        f"{srv.url}/v1/deployments/credit-risk/online", content=body, headers={"X-Scrutiny-Internal": "1"}
    )
    failed = httpx.post(f"{srv.url}/v1/deployments/fault-500/online", content=body)
    discovery = httpx.get(f"{srv.url}/v1/deployments")
    assert internal.status_code == 200 and "x-scrutiny-scoring-id" not in internal.headers
    assert failed.status_code == 500 and "x-scrutiny-scoring-id" not in failed.headers
    assert discovery.status_code == 200 and "x-scrutiny-scoring-id" not in discovery.headers
    assert logger.wait_delivered(30)
    stored = {row["scoring_id"]: row for row in payload_rows(service, sub.id)}
    assert set(stored) == {f"{sid}-{n}" for n in (1, 2, 3)} | {f"mine-7-{n}" for n in (1, 2, 3)}
    assert stored[f"{sid}-1"]["transaction_id"] == "t-1"
    assert stored[f"{sid}-2"]["prediction"] == plain.json()["values"][1][0]
