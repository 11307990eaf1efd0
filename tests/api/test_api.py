"""The REST API end to end over real HTTP: bindings, discovery, subscriptions, scoring, payloads."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest

from scrutiny.demo import credit
from tests.support.api import bind_and_subscribe, records


def test_data_marts_and_health(client) -> None:  # type: ignore[no-untyped-def]
    marts = client.get("/v1/data_marts").json()["data_marts"]
    assert len(marts) == 1 and marts[0]["id"]
    assert client.get("/health").json()["status"] == "ok"


def test_binding_lifecycle_never_returns_credentials(client, engine_server) -> None:  # type: ignore[no-untyped-def]
    body = {
        "name": "secure engine",
        "engine_type": "custom",
        "credentials": {"url": engine_server.url, "username": "u", "password": "s3cret-pw"},
        "request_headers": {"X-Tenant": "t1"},
    }
    r = client.post("/v1/bindings", json=body)
    assert r.status_code == 201
    b = r.json()
    assert "s3cret-pw" not in r.text and "password" not in b["settings"]
    assert b["credential_keys"] == ["password", "username"] and b["settings"]["url"] == engine_server.url
    # binding the same engine again yields the same id (OpenScale behaviour), 200 not 201
    again = client.post("/v1/bindings", json=body)
    assert again.status_code == 200 and again.json()["id"] == b["id"]
    assert [x["id"] for x in client.get("/v1/bindings").json()["bindings"]] == [b["id"]]
    assert "s3cret-pw" not in client.get(f"/v1/bindings/{b['id']}").text
    assert client.delete(f"/v1/bindings/{b['id']}").status_code == 204
    assert client.get(f"/v1/bindings/{b['id']}").status_code == 404


def test_credentials_are_encrypted_at_rest(service, client, engine_server) -> None:  # type: ignore[no-untyped-def]
    import sqlalchemy as sa

    client.post(
        "/v1/bindings", json={"name": "e", "credentials": {"url": engine_server.url, "token": "tok-very-secret-123"}}
    )
    with service.store.engine.connect() as conn:
        raw = b"".join(bytes(r[0]) for r in conn.execute(sa.text("select secrets from bindings")))
        dump = " ".join(str(r) for r in conn.execute(sa.text("select * from bindings")))
    assert b"tok-very-secret-123" not in raw and "tok-very-secret-123" not in dump


def test_unknown_engine_type_and_bad_credentials(client) -> None:  # type: ignore[no-untyped-def]
    r = client.post("/v1/bindings", json={"name": "x", "engine_type": "nope", "credentials": {}})
    assert r.status_code == 422 and r.json()["error"]["field"] == "engine_type"
    r = client.post("/v1/bindings", json={"name": "x", "credentials": {"url": "ftp://x"}})
    assert r.status_code == 422 and "credentials.url" in r.text
    r = client.post("/v1/bindings", json={"name": "x", "credentials": {"apikey": 2**70}})
    assert r.status_code == 422 and r.json()["error"]["field"] == "credentials"


def test_discovery_and_subscription_with_training_statistics(client, engine_server, training_csv, german) -> None:  # type: ignore[no-untyped-def]
    b = client.post("/v1/bindings", json={"name": "demo", "credentials": {"url": engine_server.url}}).json()
    deps = client.get(f"/v1/bindings/{b['id']}/deployments").json()["deployments"]
    assert {"credit-risk", "loan-purpose", "credit-amount"} <= {d["id"] for d in deps}
    r = client.post(
        "/v1/subscriptions",
        json={
            "binding_id": b["id"],
            "deployment_id": "credit-risk",
            "asset_properties": {"problem_type": "binary", "label_column": "Risk"},
            "training_data": {"path": str(training_csv)},
        },
    )
    assert r.status_code == 201, r.text
    sub = r.json()
    layout = sub["layout"]
    assert layout["labels"] == ["No Risk", "Risk"]  # sorted training labels = scikit-learn's classes_
    assert [f["name"] for f in layout["features"]] == credit.FEATURES  # every column but the label
    kinds = {f["name"]: (f["type"], f["categorical"]) for f in layout["features"]}
    assert kinds["Age"] == ("integer", False) and kinds["Sex"] == ("string", True)
    stats = client.get(f"/v1/subscriptions/{sub['id']}/training_statistics").json()
    age = stats["features"]["Age"]
    assert age["count"] == 1000 and age["min"] == german.Age.min() and age["max"] == german.Age.max()
    assert age["median"] == pytest.approx(german.Age.median())
    assert age["quantiles"][25] == pytest.approx(german.Age.quantile(0.25))
    assert age["std"] == pytest.approx(german.Age.std())
    assert stats["features"]["Sex"]["distinct"] == german.Sex.value_counts().to_dict()
    assert stats["label"]["classes"] == {"No Risk": 700, "Risk": 300}
    # a subscription can be fetched, listed, deleted
    assert client.get(f"/v1/subscriptions/{sub['id']}").json()["has_training_statistics"] is True
    assert [s["id"] for s in client.get("/v1/subscriptions").json()["subscriptions"]] == [sub["id"]]
    assert client.delete(f"/v1/bindings/{b['id']}").status_code == 409  # still subscribed
    assert client.delete(f"/v1/subscriptions/{sub['id']}").status_code == 204


def test_subscription_errors_are_clear(client, engine_server, tmp_path) -> None:  # type: ignore[no-untyped-def]
    b = client.post("/v1/bindings", json={"name": "demo", "credentials": {"url": engine_server.url}}).json()
    base = {"binding_id": b["id"], "deployment_id": "credit-risk"}
    r = client.post(
        "/v1/subscriptions", json={**base, "deployment_id": "nope", "asset_properties": {"problem_type": "binary"}}
    )
    assert r.status_code == 404 and "nope" in r.text
    r = client.post(
        "/v1/subscriptions",
        json={**base, "asset_properties": {"problem_type": "binary", "feature_fields": ["Age"], "label_column": "Age"}},
    )
    assert r.status_code == 422 and r.json()["error"]["field"] == "label_column"
    r = client.post(
        "/v1/subscriptions",
        json={
            **base,
            "asset_properties": {"problem_type": "binary"},
            "training_data": {"path": str(tmp_path / "missing.csv")},
        },
    )
    assert r.status_code == 422 and "does not exist" in r.text
    r = client.post("/v1/subscriptions", json={**base, "asset_properties": {"problem_type": "trinary"}})
    assert r.status_code == 422


def test_score_endpoint_returns_normalised_outputs_and_logs_nothing(
    client, engine_server, german, training_csv
) -> None:  # type: ignore[no-untyped-def]
    _, sid = bind_and_subscribe(client, engine_server.url, training_csv)
    rows = german[credit.FEATURES].head(4).values.tolist()
    r = client.post(f"/v1/subscriptions/{sid}/score", json={"fields": credit.FEATURES, "values": rows})
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["fields"] == ["prediction", "probability", "prediction_probability"]
    expected = credit.train_credit_model().predict_proba(german[credit.FEATURES].head(4))
    np.testing.assert_allclose([v[1] for v in out["values"]], expected, atol=1e-9)
    np.testing.assert_allclose([v[2] for v in out["values"]], expected.max(axis=1), atol=1e-9)
    assert client.get(f"/v1/subscriptions/{sid}/payloads").json()["total"] == 0  # internal scoring is never payload
    # bad input is rejected before it reaches the engine, naming the field
    bad = client.post(
        f"/v1/subscriptions/{sid}/score", json={"fields": [*credit.FEATURES[:-1], "Unknown"], "values": [rows[0]]}
    )
    assert bad.status_code == 422 and bad.json()["error"]["field"] == "Unknown"


def test_score_engine_failure_is_a_502_naming_binding_and_deployment(client, engine_server, german) -> None:  # type: ignore[no-untyped-def]
    b = client.post("/v1/bindings", json={"name": "faulty", "credentials": {"url": engine_server.url}}).json()
    sub = client.post(
        "/v1/subscriptions",
        json={
            "binding_id": b["id"],
            "deployment_id": "fault-500",
            "asset_properties": {"problem_type": "binary", "feature_fields": credit.FEATURES, "labels": credit.LABELS},
        },
    ).json()
    r = client.post(
        f"/v1/subscriptions/{sub['id']}/score",
        json={"fields": credit.FEATURES, "values": german[credit.FEATURES].head(1).values.tolist()},
    )
    assert r.status_code == 502
    err = r.json()["error"]
    assert err["code"] == "engine_server_error" and err["deployment"] == "fault-500" and err["binding"] == "faulty"


def test_individual_scoring_endpoint_mode(client, engine_server, german) -> None:  # type: ignore[no-untyped-def]
    b = client.post("/v1/bindings", json={"name": "no discovery", "credentials": {}}).json()
    r = client.post(
        "/v1/subscriptions",
        json={
            "binding_id": b["id"],
            "deployment": {"name": "my model", "scoring_url": f"{engine_server.url}/v1/deployments/credit-risk/online"},
            "asset_properties": {"problem_type": "binary", "feature_fields": credit.FEATURES, "labels": credit.LABELS},
        },
    )
    assert r.status_code == 201, r.text
    sid = r.json()["id"]
    out = client.post(
        f"/v1/subscriptions/{sid}/score",
        json={"fields": credit.FEATURES, "values": german[credit.FEATURES].head(2).values.tolist()},
    )
    assert out.status_code == 200 and len(out.json()["values"]) == 2
    assert client.get(f"/v1/bindings/{b['id']}/deployments").json()["error"]["code"] == "engine_discovery_unsupported"


def test_payloads_stored_read_back_and_exported(client, engine_server, german) -> None:  # type: ignore[no-untyped-def]
    _, sid = bind_and_subscribe(client, engine_server.url)
    recs = records(german, 5, rows_per_record=2, scoring_id="rec-")
    recs[0]["scoring_timestamp"] = "2026-01-02T03:04:05.123Z"
    recs[1]["response"] = __import__("json").dumps(recs[1]["response"])  # a response may arrive as a JSON string
    recs[2]["request"]["meta"] = {"fields": ["transaction_id", "channel"], "values": [["tx-1", "web"], ["tx-2", "app"]]}
    r = client.post(f"/v1/subscriptions/{sid}/payloads", json=recs)
    assert r.status_code == 200, r.text
    assert r.json() == {"stored": 10, "duplicates": 0, "records": 5}
    page = client.get(f"/v1/subscriptions/{sid}/payloads", params={"limit": 100}).json()
    assert page["total"] == 10
    rows = {row["scoring_id"]: row for row in page["rows"]}
    assert set(rows) == {f"rec-{i}-{k}" for i in range(5) for k in (1, 2)}
    first = rows["rec-0-1"]
    assert first["scoring_timestamp"] == "2026-01-02T03:04:05.123000Z"
    assert first["Age"] == int(german.Age[0]) and first["Sex"] == german.Sex[0]
    assert (
        first["prediction"] == "Risk" and first["probability"] == [0.3, 0.7] and first["prediction_probability"] == 0.7
    )
    assert first["response_time"] == 10 and first["deployment_id"] == "credit-risk"
    assert rows["rec-2-2"]["transaction_id"] == "tx-2" and rows["rec-2-2"]["channel"] == "app"
    assert rows["rec-0-1"]["transaction_id"] is None
    # time window
    w = client.get(
        f"/v1/subscriptions/{sid}/payloads", params={"start": "2026-01-01T00:00:00Z", "end": "2026-01-03T00:00:00Z"}
    ).json()
    assert w["total"] == 2 and {x["scoring_id"] for x in w["rows"]} == {"rec-0-1", "rec-0-2"}
    # pagination: newest first, no row twice
    seen = []
    for off in range(0, 10, 3):
        seen += [
            x["scoring_id"]
            for x in client.get(f"/v1/subscriptions/{sid}/payloads", params={"limit": 3, "offset": off}).json()["rows"]
        ]
    assert sorted(seen) == sorted(rows)
    # exports
    csv = client.get(f"/v1/subscriptions/{sid}/payloads/export", params={"format": "csv"})
    assert csv.headers["content-type"].startswith("text/csv")
    df = pd.read_csv(io.StringIO(csv.text))
    assert len(df) == 10 and "prediction_probability" in df.columns
    pq = client.get(f"/v1/subscriptions/{sid}/payloads/export", params={"format": "parquet"})
    df2 = pd.read_parquet(io.BytesIO(pq.content))
    assert len(df2) == 10 and sorted(df2.scoring_id) == sorted(rows)
    assert list(df2.loc[df2.scoring_id == "rec-0-1", "probability"].iloc[0]) == [0.3, 0.7]


def test_scalar_probability_index_prediction_and_class_probabilities(client, engine_server, german) -> None:  # type: ignore[no-untyped-def]
    b = client.post("/v1/bindings", json={"name": "demo", "credentials": {"url": engine_server.url}}).json()
    sub = client.post(
        "/v1/subscriptions",
        json={
            "binding_id": b["id"],
            "deployment_id": "credit-risk",
            "asset_properties": {
                "problem_type": "binary",
                "feature_fields": credit.FEATURES,
                "labels": ["No Risk", "Risk"],
                "prediction_field": "predicted_label",
                "probability_fields": ["score"],
            },
        },
    ).json()
    row = german[credit.FEATURES].head(1).values.tolist()
    rec = [
        {
            "scoring_id": "sm",
            "request": {"fields": credit.FEATURES, "values": row},
            "response": {"fields": ["score", "predicted_label"], "values": [[0.2024, 0.0]]},
        }
    ]
    assert client.post(f"/v1/subscriptions/{sub['id']}/payloads", json=rec).status_code == 200
    stored = client.get(f"/v1/subscriptions/{sub['id']}/payloads").json()["rows"][0]
    # contract §4.4 example: score=0.2024, predicted_label=0.0 -> prediction_probability=0.7976
    assert stored["predicted_label"] == "No Risk"
    assert stored["score"] == pytest.approx([0.7976, 0.2024])
    assert stored["prediction_probability"] == pytest.approx(0.7976)


def test_idempotent_on_scoring_id(client, engine_server, german) -> None:  # type: ignore[no-untyped-def]
    _, sid = bind_and_subscribe(client, engine_server.url)
    recs = records(german, 4, scoring_id="same-")
    assert client.post(f"/v1/subscriptions/{sid}/payloads", json=recs).json()["stored"] == 4
    again = client.post(
        f"/v1/subscriptions/{sid}/payloads", json=recs + records(german, 2, start=10, scoring_id="new-")
    ).json()
    assert again == {"stored": 2, "duplicates": 4, "records": 6}
    dup_in_batch = records(german, 1, scoring_id="twice-") * 2
    assert client.post(f"/v1/subscriptions/{sid}/payloads", json=dup_in_batch).json()["stored"] == 1
    assert client.get(f"/v1/subscriptions/{sid}/payloads").json()["total"] == 7


def test_openscale_compatible_path(client, engine_server, german) -> None:  # type: ignore[no-untyped-def]
    bid, sid = bind_and_subscribe(client, engine_server.url)
    dm = client.get("/v1/data_marts").json()["data_marts"][0]["id"]
    recs = [
        dict(r, binding_id=bid, subscription_id=sid, deployment_id="credit-risk")
        for r in records(german, 3, scoring_id="os-")
    ]
    r = client.post(f"/v1/data_marts/{dm}/scoring_payloads", json=recs)
    assert r.status_code == 202 and r.json()["stored"] == 3
    r = client.post(f"/v1/data_marts/{dm}/scoring_payloads", json=recs, headers={"Prefer": "return=minimal"})
    assert r.status_code == 204
    assert client.get(f"/v1/subscriptions/{sid}/payloads").json()["total"] == 3
    bad = [*recs, dict(recs[0], subscription_id="no-such-subscription", scoring_id="x")]
    r = client.post(f"/v1/data_marts/{dm}/scoring_payloads", json=bad)
    assert r.status_code == 404 and r.json()["error"]["record"] == 3
    r = client.post(f"/v1/data_marts/{dm}/scoring_payloads", json=[dict(recs[0], binding_id="wrong", scoring_id="y")])
    assert r.status_code == 404 and "binding" in r.json()["error"]["message"]
    r = client.post("/v1/data_marts/not-this-one/scoring_payloads", json=recs)
    assert r.status_code == 404
    assert client.get(f"/v1/subscriptions/{sid}/payloads").json()["total"] == 3


def test_openscale_request_for_two_subscriptions_is_stored_whole_or_not_at_all(
    service, client, engine_server, german
) -> None:  # type: ignore[no-untyped-def]
    """One OpenScale request may log to several subscriptions: if the store refuses the rows of
    the second, none of the first are kept either (a real trigger makes the store refuse)."""
    bid, sid1 = bind_and_subscribe(client, engine_server.url)
    r = client.post(
        "/v1/subscriptions",
        json={
            "binding_id": bid,
            "deployment_id": "credit-risk",
            "asset_properties": {"problem_type": "binary", "feature_fields": credit.FEATURES, "labels": credit.LABELS},
        },
    )
    assert r.status_code == 201, r.text
    sid2 = r.json()["id"]
    dm = client.get("/v1/data_marts").json()["data_marts"][0]["id"]

    def recs(sid: str, prefix: str) -> list[dict]:  # type: ignore[type-arg]
        return [
            dict(rec, binding_id=bid, subscription_id=sid, deployment_id="credit-risk")
            for rec in records(german, 3, scoring_id=prefix)
        ]

    assert client.post(f"/v1/data_marts/{dm}/scoring_payloads", json=recs(sid2, "first-")).status_code == 202
    table2 = service.subscriptions.get(sid2).layout.payload_table
    with service.store.engine.begin() as conn:
        if service.store.dialect == "postgresql":
            conn.exec_driver_sql(
                "CREATE FUNCTION refuse_rows() RETURNS trigger AS $$ BEGIN RAISE EXCEPTION 'refused'; END $$"
                " LANGUAGE plpgsql"
            )
            conn.exec_driver_sql(
                f'CREATE TRIGGER refuse BEFORE INSERT ON "{table2}" FOR EACH STATEMENT EXECUTE FUNCTION refuse_rows()'
            )
        else:
            conn.exec_driver_sql(
                f"CREATE TRIGGER refuse BEFORE INSERT ON \"{table2}\" BEGIN SELECT RAISE(ABORT, 'refused'); END"
            )
    r = client.post(f"/v1/data_marts/{dm}/scoring_payloads", json=[*recs(sid1, "a-"), *recs(sid2, "b-")])
    assert r.status_code == 500 and r.json()["error"]["code"] == "store_error", r.text
    assert "refused" in r.json()["error"]["message"]
    assert client.get(f"/v1/subscriptions/{sid1}/payloads").json()["total"] == 0
    assert client.get(f"/v1/subscriptions/{sid2}/payloads").json()["total"] == 3


def test_authentication_and_roles(api, client, engine_server, german) -> None:  # type: ignore[no-untyped-def]
    import httpx

    srv, _ = api
    assert httpx.get(f"{srv.url}/v1/bindings").status_code == 401
    assert httpx.get(f"{srv.url}/metrics").status_code == 401  # every route but /health needs a key
    assert httpx.get(f"{srv.url}/v1/bindings", headers={"Authorization": "Bearer scr_wrong"}).status_code == 401
    _, sid = bind_and_subscribe(client, engine_server.url)
    logger = client.post("/v1/api_keys", json={"name": "app logger", "role": "logger"}).json()
    viewer = client.post("/v1/api_keys", json={"name": "analyst", "role": "viewer"}).json()
    as_logger = {"Authorization": f"Bearer {logger['key']}"}
    as_viewer = {"Authorization": f"Bearer {viewer['key']}"}
    assert (
        httpx.post(f"{srv.url}/v1/subscriptions/{sid}/payloads", json=records(german, 1), headers=as_logger).status_code
        == 200
    )
    assert httpx.get(f"{srv.url}/v1/subscriptions/{sid}/payloads", headers=as_logger).status_code == 403
    assert httpx.get(f"{srv.url}/v1/bindings", headers=as_logger).status_code == 403
    assert httpx.get(f"{srv.url}/v1/subscriptions/{sid}/payloads", headers=as_viewer).status_code == 200
    assert (
        httpx.post(f"{srv.url}/v1/subscriptions/{sid}/payloads", json=records(german, 1), headers=as_viewer).status_code
        == 403
    )
    assert (
        httpx.post(f"{srv.url}/v1/bindings", json={"name": "x", "credentials": {}}, headers=as_viewer).status_code
        == 403
    )
    keys = client.get("/v1/api_keys").json()["api_keys"]
    assert all("key" not in k or k["key"] is None for k in keys) and logger["key"] not in str(keys)
    client.delete(f"/v1/api_keys/{logger['id']}")
    assert (
        httpx.post(f"{srv.url}/v1/subscriptions/{sid}/payloads", json=records(german, 1), headers=as_logger).status_code
        == 401
    )


def test_oversized_body_gets_413_and_stores_nothing(service, engine_server, german) -> None:  # type: ignore[no-untyped-def]
    import httpx

    from scrutiny._server import BackgroundServer
    from scrutiny.api.app import create_app

    service.settings = service.settings.with_(max_body_bytes=20_000)
    app = create_app(service=service)
    key = service.keys.ensure_admin_key()
    with BackgroundServer(app) as srv, httpx.Client(base_url=srv.url, headers={"Authorization": f"Bearer {key}"}) as c:
        _, sid = bind_and_subscribe(c, engine_server.url)
        r = c.post(f"/v1/subscriptions/{sid}/payloads", json=records(german, 200))
        assert r.status_code == 413 and r.json()["error"]["code"] == "payload_too_large"

        def chunked():  # no Content-Length: the limit is enforced on the stream too
            body = __import__("json").dumps(records(german, 200)).encode()
            for i in range(0, len(body), 4096):
                yield body[i : i + 4096]

        r = c.post(f"/v1/subscriptions/{sid}/payloads", content=chunked(), headers={"Content-Type": "application/json"})
        assert r.status_code == 413
        assert c.get(f"/v1/subscriptions/{sid}/payloads").json()["total"] == 0


def test_first_payload_defines_the_schema_when_none_was_given(client, engine_server, german) -> None:  # type: ignore[no-untyped-def]
    b = client.post("/v1/bindings", json={"name": "demo", "credentials": {"url": engine_server.url}}).json()
    sub = client.post(
        "/v1/subscriptions",
        json={"binding_id": b["id"], "deployment_id": "credit-risk", "asset_properties": {"problem_type": "binary"}},
    ).json()
    assert sub["layout"]["features"] == []
    r = client.post(f"/v1/subscriptions/{sub['id']}/payloads", json=records(german, 3))
    assert r.status_code == 200, r.text
    layout = client.get(f"/v1/subscriptions/{sub['id']}").json()["layout"]
    assert [f["name"] for f in layout["features"]] == credit.FEATURES
    assert {f["name"]: f["type"] for f in layout["features"]}["Age"] == "integer"
    assert layout["prediction_kind"] == "string"
    # later payloads are checked against it
    bad = records(german, 1)
    bad[0]["request"]["values"][0][credit.FEATURES.index("Age")] = "forty"
    r = client.post(f"/v1/subscriptions/{sub['id']}/payloads", json=bad)
    assert r.status_code == 422 and r.json()["error"]["field"] == "Age"
