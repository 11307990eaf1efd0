"""The scoring proxy inside ``scrutiny serve``: forwarding fidelity, ids, keys, what is (not) logged."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest

from scrutiny._server import BackgroundServer, free_port
from scrutiny.api.app import create_app
from scrutiny.config import Settings
from scrutiny.demo import credit
from scrutiny.demo.engine import EngineOptions, create_engine_app
from scrutiny.proxy.runtime import ProxyRuntime
from scrutiny.security import Role
from scrutiny.service import Service
from tests.support.proxy import (
    Proxied,
    logger_key,
    mlflow_style_app,
    payload_rows,
    proxy_client,
    rows,
    serve,
    served,
    subscribe,
    to_csv,
    wait_for,
)


@pytest.fixture
def proxied(service: Service) -> Iterator[Proxied]:
    yield from serve(service)


@pytest.fixture(scope="module")
def mlflow_server(german) -> Iterator[BackgroundServer]:  # type: ignore[no-untyped-def]
    with BackgroundServer(mlflow_style_app(credit.train_credit_model(german))) as srv:
        yield srv


def test_custom_engine_forwarded_byte_for_byte_and_logged(proxied: Proxied, engine_server, german) -> None:  # type: ignore[no-untyped-def]
    sub = subscribe(proxied.svc, engine_server.url, german)
    body = orjson.dumps({"fields": credit.FEATURES, "values": rows(german, 3)})
    direct = httpx.post(
        f"{engine_server.url}/v1/deployments/credit-risk/online",
        content=body,
        headers={"Content-Type": "application/json"},
    )
    with proxied.client() as c:
        r = c.post(f"/proxy/{sub.id}", content=body, headers={"Content-Type": "application/json"})
    assert r.status_code == direct.status_code == 200
    assert r.content == direct.content
    assert r.headers["content-type"] == direct.headers["content-type"]
    sid = r.headers["x-scrutiny-scoring-id"]
    proxied.flush()
    stored = {row["scoring_id"]: row for row in payload_rows(proxied.svc, sub.id)}
    assert set(stored) == {f"{sid}-1", f"{sid}-2", f"{sid}-3"}
    answer = direct.json()
    for n, (features, (pred, prob)) in enumerate(zip(rows(german, 3), answer["values"], strict=True), start=1):
        row = stored[f"{sid}-{n}"]
        assert [row[f] for f in credit.FEATURES] == features
        assert row["prediction"] == pred
        assert row["probability"] == pytest.approx(prob, abs=1e-12)
        assert row["prediction_probability"] == pytest.approx(max(prob), abs=1e-12)
        assert row["response_time"] is not None and row["response_time"] >= 0


@pytest.mark.parametrize("form", ["dataframe_split", "dataframe_records", "csv"])
def test_native_format_forwarded_byte_for_byte_and_logged(
    proxied: Proxied, mlflow_server: BackgroundServer, german: Any, form: str
) -> None:
    sub = subscribe(
        proxied.svc,
        mlflow_server.url,
        german,
        engine_type="mlflow-test",
        deployment={"name": "credit (mlflow)", "scoring_url": f"{mlflow_server.url}/invocations"},
    )
    values = rows(german, 4, start=10)
    if form == "csv":
        body, ctype = to_csv(credit.FEATURES, values), "text/csv"
    elif form == "dataframe_split":
        body, ctype = (
            orjson.dumps({"dataframe_split": {"columns": credit.FEATURES, "data": values}}),
            "application/json",
        )
    else:
        recs = [dict(zip(credit.FEATURES, v, strict=True)) for v in values]
        body, ctype = orjson.dumps({"dataframe_records": recs}), "application/json"
    direct = httpx.post(f"{mlflow_server.url}/invocations", content=body, headers={"Content-Type": ctype})
    with proxied.client() as c:
        r = c.post(f"/proxy/{sub.id}", content=body, headers={"Content-Type": ctype})
    assert (r.status_code, r.content, r.headers["content-type"]) == (
        200,
        direct.content,
        direct.headers["content-type"],
    )
    assert served(mlflow_server).state.seen[-1]["headers"]["content-type"] == ctype
    proxied.flush()
    stored = sorted(payload_rows(proxied.svc, sub.id), key=lambda x: int(x["scoring_id"].rsplit("-", 1)[1]))
    assert len(stored) == 4
    for row, features, pred in zip(stored, values, direct.json()["predictions"], strict=True):
        assert [row[f] for f in credit.FEATURES] == features
        assert row["prediction"] == pred["prediction"]
        assert row["probability"] == pytest.approx(pred["probability"], abs=1e-12)


def test_common_format_accepted_for_a_native_engine(
    proxied: Proxied, mlflow_server: BackgroundServer, german: Any
) -> None:
    sub = subscribe(
        proxied.svc,
        mlflow_server.url,
        german,
        engine_type="mlflow-test",
        deployment={"name": "credit (mlflow)", "scoring_url": f"{mlflow_server.url}/invocations"},
    )
    values = rows(german, 2, start=20)
    with proxied.client() as c:
        r = c.post(f"/proxy/{sub.id}", json={"fields": credit.FEATURES, "values": values})
        # the engine itself refuses {fields, values}: the proxy converted it with the adapter
        refused = httpx.post(f"{mlflow_server.url}/invocations", json={"fields": credit.FEATURES, "values": values})
        assert refused.status_code == 400
        assert r.status_code == 200, r.text
        answer = r.json()
        assert answer["fields"] == ["prediction", "probability"] and len(answer["values"]) == 2
        # an explicit X-Scrutiny-Format: native forwards the same body untouched (and the engine refuses it)
        n = c.post(
            f"/proxy/{sub.id}",
            json={"fields": credit.FEATURES, "values": values},
            headers={"X-Scrutiny-Format": "native"},
        )
        assert n.status_code == 400 and n.json()["error_code"] == "BAD_REQUEST"
        assert "x-scrutiny-scoring-id" not in n.headers
    proxied.flush()
    stored = payload_rows(proxied.svc, sub.id)
    assert {row["scoring_id"] for row in stored} == {f"{r.headers['x-scrutiny-scoring-id']}-{i}" for i in (1, 2)}


def test_sub_paths_and_query_strings_are_forwarded(
    proxied: Proxied, mlflow_server: BackgroundServer, german: Any
) -> None:
    sub = subscribe(
        proxied.svc,
        mlflow_server.url,
        german,
        engine_type="mlflow-test",
        deployment={"name": "credit (mlflow)", "scoring_url": f"{mlflow_server.url}/invocations"},
    )
    body = orjson.dumps({"dataframe_split": {"columns": credit.FEATURES, "data": rows(german, 1)}})
    with proxied.client() as c:
        r = c.post(
            f"/proxy/{sub.id}/models/credit/versions/2?verbose=1",
            content=body,
            headers={"Content-Type": "application/json", "X-Request-Tag": "abc"},
        )
    assert r.status_code == 200
    seen = served(mlflow_server).state.seen[-1]
    assert seen["path"] == "/invocations/models/credit/versions/2"
    assert seen["query"] == "verbose=1"
    assert seen["headers"]["x-request-tag"] == "abc"  # the application's own headers pass
    assert "authorization" not in seen["headers"]  # its Scrutiny key does not
    proxied.flush()
    assert len(payload_rows(proxied.svc, sub.id)) == 1


def test_caller_scoring_id_and_transaction_id(proxied: Proxied, engine_server, german) -> None:  # type: ignore[no-untyped-def]
    sub = subscribe(proxied.svc, engine_server.url, german)
    body = {"fields": credit.FEATURES, "values": rows(german, 2)}
    with proxied.client() as c:
        r = c.post(
            f"/proxy/{sub.id}",
            json=body,
            headers={"X-Scrutiny-Scoring-Id": "order-42", "X-Global-Transaction-Id": "tx-9"},
        )
        assert r.status_code == 200 and r.headers["x-scrutiny-scoring-id"] == "order-42"
        calls = served(engine_server).state.stats["calls"]
        bad = c.post(f"/proxy/{sub.id}", json=body, headers={"X-Scrutiny-Scoring-Id": "has space"})
        assert bad.status_code == 422 and bad.json()["error"]["field"] == "X-Scrutiny-Scoring-Id"
        assert served(engine_server).state.stats["calls"] == calls  # refused before forwarding
        again = c.post(f"/proxy/{sub.id}", json=body, headers={"X-Scrutiny-Scoring-Id": "order-42"})
        assert again.status_code == 200  # a retry with the same id is answered, and stored once
    proxied.flush()
    stored = {row["scoring_id"]: row for row in payload_rows(proxied.svc, sub.id)}
    assert set(stored) == {"order-42-1", "order-42-2"}
    assert {row["transaction_id"] for row in stored.values()} == {"tx-9"}
    assert proxied.runtime.drainer.duplicates == 2


def test_logger_key_scores_but_cannot_read_or_configure(proxied: Proxied, engine_server, german) -> None:  # type: ignore[no-untyped-def]
    sub = subscribe(proxied.svc, engine_server.url, german)
    body = {"fields": credit.FEATURES, "values": rows(german, 1)}
    with proxied.client() as c:
        assert c.post(f"/proxy/{sub.id}", json=body).status_code == 200
        assert (
            c.post(
                f"/proxy/{sub.id}", json=body, headers={"Authorization": "", "X-Scrutiny-Api-Key": proxied.key}
            ).status_code
            == 200
        )
        for method, path in [
            ("GET", "/v1/subscriptions"),
            ("GET", f"/v1/subscriptions/{sub.id}"),
            ("GET", f"/v1/subscriptions/{sub.id}/payloads"),
            ("GET", "/v1/bindings"),
            ("POST", "/v1/bindings"),
            ("DELETE", f"/v1/subscriptions/{sub.id}"),
            ("GET", "/v1/api_keys"),
        ]:
            r = c.request(method, path, json={} if method == "POST" else None)
            assert r.status_code == 403, (method, path, r.status_code)
    viewer, _ = proxied.svc.keys.create("dashboards", Role.VIEWER)
    with proxied.client(viewer) as c:
        r = c.post(f"/proxy/{sub.id}", json=body)
        assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden"
    with httpx.Client(base_url=proxied.url) as anonymous:
        assert anonymous.post(f"/proxy/{sub.id}", json=body).status_code == 401
        assert (
            anonymous.post(f"/proxy/{sub.id}", json=body, headers={"Authorization": "Bearer scr_nope"}).status_code
            == 401
        )
    with proxied.client() as c:
        r = c.post("/proxy/no-such-subscription", json=body)
        assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"


def test_engine_credentials_come_from_the_binding(proxied: Proxied, german: Any) -> None:
    opts = EngineOptions(auth="bearer", token="engine-secret")
    with BackgroundServer(create_engine_app(opts)) as engine:
        sub = subscribe(proxied.svc, engine.url, german, credentials={"url": engine.url, "token": "engine-secret"})
        body = {"fields": credit.FEATURES, "values": rows(german, 1)}
        assert httpx.post(f"{engine.url}/v1/deployments/credit-risk/online", json=body).status_code == 401
        with proxied.client() as c:  # the caller holds only its Scrutiny key
            r = c.post(f"/proxy/{sub.id}", json=body)
        assert r.status_code == 200, r.text


def test_internal_marker_is_not_logged_and_not_forwarded(proxied: Proxied, engine_server, german) -> None:  # type: ignore[no-untyped-def]
    sub = subscribe(proxied.svc, engine_server.url, german)
    stats = served(engine_server).state.stats
    internal_before = stats["internal_calls"]
    body = {"fields": credit.FEATURES, "values": rows(german, 2)}
    with proxied.client() as c:
        r = c.post(f"/proxy/{sub.id}", json=body, headers={"X-Scrutiny-Internal": "1"})
        assert r.status_code == 200 and "x-scrutiny-scoring-id" not in r.headers
        logged = c.post(f"/proxy/{sub.id}", json=body)
    assert stats["internal_calls"] == internal_before  # the marker is stripped before forwarding
    proxied.flush()
    sid = logged.headers["x-scrutiny-scoring-id"]
    assert {row["scoring_id"] for row in payload_rows(proxied.svc, sub.id)} == {f"{sid}-1", f"{sid}-2"}
    metrics = proxied.client().get("/metrics").text
    assert f'scrutiny_proxy_requests_total{{outcome="not_logged",subscription="{sub.id}"}} 1.0' in metrics


@pytest.mark.parametrize("fault,status", [("fault-500", 500), ("fault-400", 400)])
def test_engine_errors_pass_through_unchanged_and_are_not_logged(
    proxied: Proxied, engine_server, german, fault: str, status: int
) -> None:  # type: ignore[no-untyped-def]
    sub = subscribe(proxied.svc, engine_server.url, german, deployment_id=fault)
    body = orjson.dumps({"fields": credit.FEATURES, "values": rows(german, 1)})
    direct = httpx.post(f"{engine_server.url}/v1/deployments/{fault}/online", content=body)
    with proxied.client() as c:
        r = c.post(f"/proxy/{sub.id}", content=body, headers={"Content-Type": "application/json"})
    assert (r.status_code, r.content, r.headers["content-type"]) == (
        status,
        direct.content,
        direct.headers["content-type"],
    )
    assert "x-scrutiny-scoring-id" not in r.headers
    assert proxied.runtime.spool.appended == 0
    metrics = proxied.client().get("/metrics").text
    kind = "status_5xx" if status >= 500 else "status_4xx"
    assert f'scrutiny_proxy_engine_errors_total{{kind="{kind}",subscription="{sub.id}"}} 1.0' in metrics
    assert f'scrutiny_proxy_requests_total{{outcome="engine_error",subscription="{sub.id}"}} 1.0' in metrics


def test_timeouts_and_unreachable_engines(tmp_path, engine_server, german) -> None:  # type: ignore[no-untyped-def]
    svc = Service(Settings(data_dir=tmp_path / "d", sqlite_synchronous="NORMAL", engine_read_timeout=0.5))
    try:
        slow = subscribe(svc, engine_server.url, german, deployment_id="fault-slow")
        dead_url = f"http://127.0.0.1:{free_port()}/score"
        gone = subscribe(svc, "", german, deployment={"name": "gone", "scoring_url": dead_url}, credentials={})
        for p in serve(svc):
            body = {"fields": credit.FEATURES, "values": rows(german, 1)}
            with p.client() as c:
                r = c.post(f"/proxy/{slow.id}", json=body)
                assert r.status_code == 504 and r.json()["error"]["code"] == "engine_timeout"
                r = c.post(f"/proxy/{gone.id}", json=body)
                assert r.status_code == 502 and r.json()["error"]["code"] == "engine_unreachable"
                assert "/score" not in r.json()["error"]["message"]  # no paths (keys) echoed
            assert p.runtime.spool.appended == 0
            metrics = p.client().get("/metrics").text
            assert f'scrutiny_proxy_engine_errors_total{{kind="timeout",subscription="{slow.id}"}} 1.0' in metrics
            assert f'scrutiny_proxy_engine_errors_total{{kind="unreachable",subscription="{gone.id}"}} 1.0' in metrics
    finally:
        svc.close()


def test_answers_that_cannot_be_stored_go_to_the_dead_letter_file(proxied: Proxied, engine_server, german) -> None:  # type: ignore[no-untyped-def]
    subs = {
        f: subscribe(proxied.svc, engine_server.url, german, deployment_id=f)
        for f in ("fault-html", "fault-rows", "fault-shape")
    }
    good = subscribe(proxied.svc, engine_server.url, german)
    body = orjson.dumps({"fields": credit.FEATURES, "values": rows(german, 1)})
    with proxied.client() as c:
        for fault, sub in subs.items():
            direct = httpx.post(f"{engine_server.url}/v1/deployments/{fault}/online", content=body)
            r = c.post(f"/proxy/{sub.id}", content=body, headers={"Content-Type": "application/json"})
            # the application gets exactly what its engine said ...
            assert (r.status_code, r.content, r.headers["content-type"]) == (
                200,
                direct.content,
                direct.headers["content-type"],
            )
        # ... a request whose extra field the engine ignores but the subscription does not know
        extra = {"fields": [*credit.FEATURES, "Surprise"], "values": [[*rows(german, 1)[0], 1]]}
        assert c.post(f"/proxy/{good.id}", json=extra).status_code == 200
        ok = c.post(f"/proxy/{good.id}", content=body, headers={"Content-Type": "application/json"})
    proxied.flush()
    dead = proxied.runtime.dead_letters.read()
    reasons = {d["record"]["subscription_id"]: d["reason"] for d in dead}
    assert set(reasons) == {*(s.id for s in subs.values()), good.id}
    assert "not JSON" in reasons[subs["fault-html"].id]
    assert "0 rows for 1 request rows" in reasons[subs["fault-rows"].id]
    assert "fields" in reasons[subs["fault-shape"].id]
    assert "Surprise" in reasons[good.id]
    assert all(d["record"]["request"] for d in dead)  # kept whole, so it can be fixed and replayed
    # none of this blocked the spool: the good record behind them is stored
    assert {row["scoring_id"] for row in payload_rows(proxied.svc, good.id)} == {
        ok.headers["x-scrutiny-scoring-id"] + "-1"
    }
    metrics = proxied.client().get("/metrics").text
    assert "scrutiny_spool_dead_letters_total 4.0" in metrics
    assert "scrutiny_spool_records_flushed_total 1.0" in metrics


def test_bad_common_format_input_is_refused_clearly(
    proxied: Proxied, mlflow_server: BackgroundServer, german: Any
) -> None:
    sub = subscribe(
        proxied.svc,
        mlflow_server.url,
        german,
        engine_type="mlflow-test",
        deployment={"name": "credit (mlflow)", "scoring_url": f"{mlflow_server.url}/invocations"},
    )
    with proxied.client() as c:
        r = c.post(f"/proxy/{sub.id}", content=b"{not json", headers={"X-Scrutiny-Format": "common"})
        assert r.status_code == 422 and "JSON" in r.json()["error"]["message"]
        r = c.post(f"/proxy/{sub.id}", json={"fields": ["a"], "values": [[1, 2]]})
        assert r.status_code == 422 and r.json()["error"]["row"] == 1
        r = c.post(f"/proxy/{sub.id}", json={"dataframe_split": {}}, headers={"X-Scrutiny-Format": "sometimes"})
        assert r.status_code == 422 and r.json()["error"]["field"] == "X-Scrutiny-Format"


def test_metrics_report_requests_latency_and_spool(proxied: Proxied, engine_server, german) -> None:  # type: ignore[no-untyped-def]
    sub = subscribe(proxied.svc, engine_server.url, german)
    with proxied.client() as c:
        for i in range(5):
            assert (
                c.post(f"/proxy/{sub.id}", json={"fields": credit.FEATURES, "values": rows(german, 1, i)}).status_code
                == 200
            )
    proxied.flush()
    assert httpx.get(f"{proxied.url}/metrics").status_code == 401  # a scraper needs a key too
    text = httpx.get(f"{proxied.url}/metrics", headers={"Authorization": f"Bearer {proxied.key}"}).text
    values = _samples(text)
    assert values[("scrutiny_proxy_requests_total", f'outcome="logged",subscription="{sub.id}"')] == 5
    assert values[("scrutiny_proxy_engine_latency_seconds_count", f'subscription="{sub.id}"')] == 5
    assert values[("scrutiny_proxy_overhead_seconds_count", "")] == 5
    assert values[("scrutiny_spool_records_flushed_total", "")] == 5
    assert values[("scrutiny_spool_depth_records", "")] == 0
    assert values[("scrutiny_spool_limit_bytes", "")] == proxied.svc.settings.spool_max_bytes
    assert values[("scrutiny_spool_fsync_group_records_sum", "")] == 5
    assert values[("scrutiny_spool_flush_errors_total", "")] == 0


def _samples(text: str) -> dict[tuple[str, str], float]:
    out = {}
    for line in text.splitlines():
        if line.startswith("#") or not line.strip():
            continue
        name_labels, value = line.rsplit(" ", 1)
        if "{" in name_labels:
            name, labels = name_labels.split("{", 1)
            out[(name, labels.rstrip("}"))] = float(value)
        else:
            out[(name_labels, "")] = float(value)
    return out


def test_health_of_the_standalone_app(tmp_path, engine_server, german) -> None:  # type: ignore[no-untyped-def]
    from scrutiny.proxy.asgi import create_proxy_app

    settings = Settings(data_dir=tmp_path / "d", sqlite_synchronous="NORMAL")
    svc = Service(settings)
    sub = subscribe(svc, engine_server.url, german)
    key = logger_key(svc)
    svc.close()
    app = create_proxy_app(settings)
    with BackgroundServer(app) as srv, proxy_client(srv.url, key) as c:
        r = c.post(f"/proxy/{sub.id}", json={"fields": credit.FEATURES, "values": rows(german, 1)})
        assert r.status_code == 200
        assert app.state.proxy_runtime.drainer.wait_empty(20)
        health = httpx.get(f"{srv.url}/health").json()
        assert health["status"] == "ok" and health["spool"]["records"] == 0
        assert (settings.spool_dir / f"proxy-{settings.proxy_port}").is_dir()
        assert json.loads(httpx.get(f"{srv.url}/health").content)["store"] == "ok"


def test_a_second_api_process_spools_apart_and_its_leftovers_are_adopted(
    service: Service, engine_server, german
) -> None:  # type: ignore[no-untyped-def]
    sub = subscribe(service, engine_server.url, german)
    key = logger_key(service)
    body = {"fields": credit.FEATURES, "values": rows(german, 1)}
    first = create_app(service=service)
    second = create_app(service=service)
    with BackgroundServer(first), BackgroundServer(second) as srv2:
        rt2: ProxyRuntime = second.state.proxy_runtime
        assert rt2.spool.directory.name == f"api-{os.getpid()}"  # the first holds spool/api
        rt2.drainer.stop(0)  # this process dies before its writer could deliver anything
        with proxy_client(srv2.url, key) as c:
            ids = [c.post(f"/proxy/{sub.id}", json=body).headers["x-scrutiny-scoring-id"] for _ in range(3)]
    leftover = rt2.spool.directory
    assert leftover.is_dir() and payload_rows(service, sub.id) == []
    third = create_app(service=service)
    with BackgroundServer(third):
        wait_for(lambda: not leftover.exists(), 30, "the leftover spool to be adopted")
    assert {row["scoring_id"] for row in payload_rows(service, sub.id)} == {f"{i}-1" for i in ids}


def test_query_string_alone_keeps_the_scoring_path(
    proxied: Proxied, mlflow_server: BackgroundServer, german: Any
) -> None:
    sub = subscribe(
        proxied.svc,
        mlflow_server.url,
        german,
        engine_type="mlflow-test",
        deployment={"name": "credit (mlflow)", "scoring_url": f"{mlflow_server.url}/invocations"},
    )
    body = orjson.dumps({"dataframe_split": {"columns": credit.FEATURES, "data": rows(german, 1)}})
    with proxied.client() as c:
        r = c.post(f"/proxy/{sub.id}?trace=on", content=body, headers={"Content-Type": "application/json"})
    assert r.status_code == 200
    seen = served(mlflow_server).state.seen[-1]
    assert (seen["path"], seen["query"]) == ("/invocations", "trace=on")


def test_the_first_proxied_payload_defines_the_schema(proxied: Proxied, engine_server, german) -> None:  # type: ignore[no-untyped-def]
    binding, _ = proxied.svc.bindings.create(name="e", engine_type="custom", credentials={"url": engine_server.url})
    sub = proxied.svc.subscriptions.create(
        binding_id=binding.id, deployment_id="credit-risk", asset_properties={"problem_type": "binary"}
    )
    assert not sub.layout.complete
    with proxied.client() as c:
        for i in range(3):
            r = c.post(f"/proxy/{sub.id}", json={"fields": credit.FEATURES, "values": rows(german, 2, 2 * i)})
            assert r.status_code == 200
    proxied.flush()
    stored = payload_rows(proxied.svc, sub.id)
    assert len(stored) == 6 and not proxied.runtime.dead_letters.read()
    assert list(proxied.svc.subscriptions.get(sub.id).layout.features.names) == credit.FEATURES
