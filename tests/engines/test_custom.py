"""The custom engine adapter against the demo engine over real HTTP on loopback."""

from __future__ import annotations

import numpy as np
import pytest

from scrutiny._server import BackgroundServer, free_port
from scrutiny.core.outputs import normalize_rows
from scrutiny.core.scoring_format import ScoringRequest
from scrutiny.demo import credit
from scrutiny.demo.engine import EngineOptions, create_engine_app
from scrutiny.engines import BindingConfig, Deployment, ModelContext, engine_class
from scrutiny.engines.errors import (
    DiscoveryUnsupported,
    EngineAuthError,
    EngineBadResponse,
    EngineError,
    EngineRejected,
    EngineResponseShape,
    EngineServerError,
    EngineTimeout,
    EngineUnreachable,
)

ROWS = 12


def make_engine(url: str, **credentials):  # type: ignore[no-untyped-def]
    cls = engine_class("custom")
    cfg = BindingConfig(
        id="b1",
        name="credit engine",
        engine_type="custom",
        settings={"url": url},
        credentials={"url": url, **credentials},
        read_timeout=1.5,
        retries=3,
    )
    return cls(cfg)


def request(german, n: int = ROWS) -> ScoringRequest:  # type: ignore[no-untyped-def]
    rows = german[credit.FEATURES].head(n).values.tolist()
    return ScoringRequest(list(credit.FEATURES), rows)


CTX = ModelContext(feature_fields=credit.FEATURES, labels=credit.LABELS, problem_type="binary")


@pytest.fixture(scope="module")
def model():  # type: ignore[no-untyped-def]
    return credit.train_credit_model()


@pytest.mark.parametrize("form", ["A", "B"])
def test_discovery_in_both_published_forms(form: str) -> None:
    with BackgroundServer(create_engine_app(EngineOptions(discovery_form=form))) as srv:
        deps = {d.id: d for d in make_engine(srv.url).list_deployments()}
    assert set(deps) == {"credit-risk", "loan-purpose", "credit-amount"}
    d = deps["credit-risk"]
    assert d.scoring_url == f"{srv.url}/v1/deployments/credit-risk/online"
    assert d.asset_properties["problem_type"] == "binary"
    if form == "A":
        assert d.asset["asset_id"] == "credit-risk"  # entity.asset.guid
        assert d.created_at == "2026-01-05T09:30:00Z"  # metadata.created_at
        assert d.type == "online"
    else:
        assert d.asset["asset_id"] == "credit-risk-model"  # entity.asset.asset_id wins
        assert d.deployment_rn == "demo:deployment/credit-risk"
        assert d.request_headers == {"Content-Type": "application/json"}
        assert d.asset_properties["label_column"] == "Risk"


def test_scores_match_the_in_process_model_and_ignore_wrong_order_labels(engine_server, german, model) -> None:  # type: ignore[no-untyped-def]
    engine = make_engine(engine_server.url)
    dep = engine.get_deployment("credit-risk")
    req = request(german)
    resp = engine.score(dep, req, CTX)
    # The demo engine sends the reference engine's reversed "labels"; the order must come from
    # the subscription, never from the response.
    assert resp.labels == ["Risk", "No Risk"]
    out = normalize_rows(
        resp.fields,
        resp.values,
        classification=True,
        labels=credit.LABELS,
        prediction_field="prediction",
        probability_fields=["probability"],
    )
    expected = model.predict_proba(german[credit.FEATURES].head(ROWS))
    np.testing.assert_allclose(out.probability, expected, rtol=0, atol=1e-9)
    assert out.prediction.tolist() == model.predict(german[credit.FEATURES].head(ROWS)).tolist()
    np.testing.assert_allclose(out.prediction_probability, expected.max(axis=1), atol=1e-9)


def test_echoed_inputs_are_dropped_and_regression_works(german) -> None:  # type: ignore[no-untyped-def]
    with BackgroundServer(create_engine_app(EngineOptions(echo_inputs=True))) as srv:
        engine = make_engine(srv.url)
        resp = engine.score(engine.get_deployment("credit-risk"), request(german), CTX)
        assert resp.fields == ["prediction", "probability"]
        reg = engine.score(
            engine.get_deployment("credit-amount"),
            ScoringRequest(credit.AMOUNT_FEATURES, german[credit.AMOUNT_FEATURES].head(5).values.tolist()),
            ModelContext(feature_fields=credit.AMOUNT_FEATURES, problem_type="regression"),
        )
    expected = credit.train_amount_model().predict(german[credit.AMOUNT_FEATURES].head(5))
    np.testing.assert_allclose([r[0] for r in reg.values], expected, atol=1e-5)  # engine rounds to 6 decimals


def test_path_prefix(german) -> None:  # type: ignore[no-untyped-def]
    with BackgroundServer(create_engine_app(EngineOptions(prefix="/spaces/abc"))) as srv:
        engine = make_engine(srv.url + "/spaces/abc")
        dep = engine.get_deployment("credit-risk")
        assert dep.scoring_url == f"{srv.url}/spaces/abc/v1/deployments/credit-risk/online"
        assert len(engine.score(dep, request(german, 3), CTX)) == 3


@pytest.mark.parametrize(
    ("auth", "good", "bad"),
    [
        ("basic", {"username": "demo", "password": "demo-password"}, {"username": "demo", "password": "wrong"}),
        ("bearer", {"token": "demo-token"}, {"token": "wrong-token"}),
        (
            "minted",
            {"apikey": "demo-apikey", "auth_url": "{url}/v1/token"},
            {"apikey": "wrong", "auth_url": "{url}/v1/token"},
        ),
    ],
)
def test_each_auth_mode_and_its_wrong_credentials(auth: str, good: dict, bad: dict, german) -> None:  # type: ignore[no-untyped-def]
    app = create_engine_app(EngineOptions(auth=auth, token_ttl=2))
    with BackgroundServer(app) as srv:
        fill = lambda d: {k: v.format(url=srv.url) for k, v in d.items()}  # noqa: E731
        engine = make_engine(srv.url, **fill(good))
        deps = engine.list_deployments()
        assert len(engine.score(deps[0], request(german, 2), CTX)) == 2
        with pytest.raises(EngineAuthError) as err:
            make_engine(srv.url, **fill(bad)).list_deployments()
        assert "credit engine" in str(err.value)
        with pytest.raises(EngineError):
            make_engine(srv.url).list_deployments()  # no credentials at all
        if auth == "minted":
            import time

            minted = app.state.stats["tokens_minted"]
            time.sleep(2.1)  # the token's expires_in runs out: a new one is minted, no 401 reaches us
            engine.score(deps[0], request(german, 1), CTX)
            assert app.state.stats["tokens_minted"] > minted


def _dep(engine_server, name: str) -> Deployment:  # type: ignore[no-untyped-def]
    return Deployment(id=name, name=name, scoring_url=f"{engine_server.url}/v1/deployments/{name}/online")


@pytest.mark.parametrize(
    ("deployment", "error", "words"),
    [
        ("fault-500", EngineServerError, "HTTP 500"),
        ("fault-400", EngineRejected, "HTTP 400"),
        ("fault-html", EngineBadResponse, "not JSON"),
        ("fault-shape", EngineResponseShape, "fields, values"),
        ("fault-rows", EngineResponseShape, "0 output rows for 3 input rows"),
        ("fault-slow", EngineTimeout, "within 1.5 s"),
        ("no-such-deployment", EngineRejected, "HTTP 404"),
    ],
)
def test_each_engine_failure_is_distinct_and_names_binding_and_deployment(
    engine_server, german, deployment, error, words
) -> None:  # type: ignore[no-untyped-def]
    engine = make_engine(engine_server.url)
    with pytest.raises(error) as info:
        engine.score(_dep(engine_server, deployment), request(german, 3), CTX)
    msg = str(info.value)
    assert "'credit engine'" in msg and f"'{deployment}'" in msg and words in msg
    assert type(info.value) is error  # distinct, not a parent class


def test_unreachable_engine(german) -> None:  # type: ignore[no-untyped-def]
    url = f"http://127.0.0.1:{free_port()}"
    engine = make_engine(url)
    with pytest.raises(EngineUnreachable) as info:
        engine.score(Deployment("d1", "d1", url + "/v1/deployments/d1/online"), request(german, 1), CTX)
    assert "cannot connect" in str(info.value) and "'d1'" in str(info.value)
    with pytest.raises(EngineUnreachable):
        engine.list_deployments()


def test_transient_failures_are_retried(engine_server, german) -> None:  # type: ignore[no-untyped-def]
    engine = make_engine(engine_server.url)
    before = engine_server.server.config.app.state.stats["calls:fault-flaky"]
    resp = engine.score(_dep(engine_server, "fault-flaky"), request(german, 2), CTX)
    assert len(resp) == 2
    assert engine_server.server.config.app.state.stats["calls:fault-flaky"] - before == 2  # one 503, one retry


def test_no_discovery_endpoint(german) -> None:  # type: ignore[no-untyped-def]
    with BackgroundServer(create_engine_app(EngineOptions(discovery=False))) as srv:
        engine = make_engine(srv.url)
        with pytest.raises(DiscoveryUnsupported):
            engine.list_deployments()
        # the individual scoring endpoint mode still scores
        dep = Deployment("manual", "manual", f"{srv.url}/v1/deployments/credit-risk/online")
        assert len(engine.score(dep, request(german, 2), CTX)) == 2


def test_internal_calls_are_marked_and_batches_split(engine_server, german) -> None:  # type: ignore[no-untyped-def]
    stats = engine_server.server.config.app.state.stats
    engine = make_engine(engine_server.url)
    dep = engine.get_deployment("credit-risk")
    dep.options["max_batch_rows"] = 5
    calls, internal = stats["calls"], stats["internal_calls"]
    resp = engine.score(dep, request(german, 12), CTX, internal=True)
    assert len(resp) == 12
    assert stats["calls"] - calls == 3 and stats["internal_calls"] - internal == 3


def test_batches_answered_with_different_columns_are_an_engine_error(german) -> None:  # type: ignore[no-untyped-def]
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    calls = {"n": 0}

    async def score(request: Request) -> JSONResponse:
        body = await request.json()
        calls["n"] += 1
        field = "prediction" if calls["n"] == 1 else "label"
        return JSONResponse({"fields": [field], "values": [["Risk"]] * len(body["values"])})

    with BackgroundServer(Starlette(routes=[Route("/score", score, methods=["POST"])])) as srv:
        engine = make_engine(srv.url)
        dep = Deployment("d", "d", srv.url + "/score", options={"max_batch_rows": 2})
        with pytest.raises(EngineResponseShape) as info:
            engine.score(dep, request(german, 4), CTX)
    assert "later batch" in str(info.value) and "'d'" in str(info.value)


def test_scoring_url_with_a_query_string_and_a_sub_path() -> None:
    from scrutiny.engines import NativeRequest

    engine = make_engine("http://127.0.0.1:9")
    dep = Deployment("d", "d", "http://h/workspaces/w/services/s/execute?api-version=2.0")
    assert (
        engine.scoring_url(dep, NativeRequest(b"", path="jobs"))
        == "http://h/workspaces/w/services/s/execute/jobs?api-version=2.0"
    )
    assert (
        engine.scoring_url(dep, NativeRequest(b"", path="?details=true"))
        == "http://h/workspaces/w/services/s/execute?api-version=2.0&details=true"
    )
