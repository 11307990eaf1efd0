"""Feedback logging: every accepted shape, the join to logged predictions, re-scoring, validation, idempotency."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest

from scrutiny.demo import credit
from tests.support.monitors import T0, credit_model, payload_records, spread, subscribe_credit


@pytest.fixture
def sub(service, engine_server, german):
    s = subscribe_credit(service, engine_server.url)
    recs = payload_records(german.iloc[:40], spread(40, T0, timedelta(hours=1)), [20] * 40, prefix="p")
    service.payloads.store(s.id, recs)
    return s


def feedback_rows(service, sub_id):
    _, rows = service.payloads.read(sub_id, kind="feedback", limit=10_000)
    return {r["scoring_id"]: r for r in rows}


def test_rows_with_a_scoring_id_take_the_logged_prediction(service, client, sub, german) -> None:
    _, payload = service.payloads.read(sub.id, limit=100)
    logged = {r["scoring_id"]: r for r in payload}
    ids = [f"p{i}-1" for i in range(10)]
    labels = german[credit.LABEL].iloc[:10].tolist()
    r = client.post(
        f"/v1/subscriptions/{sub.id}/feedback",
        json={"fields": ["scoring_id", credit.LABEL], "values": [[i, y] for i, y in zip(ids, labels, strict=True)]},
    )
    assert r.status_code == 200, r.text
    assert r.json() | {"ignored_fields": []} == {
        "stored": 10,
        "duplicates": 0,
        "records": 10,
        "linked": 10,
        "scored": 0,
        "ignored_fields": [],
        "errors": [],
    }
    stored = feedback_rows(service, sub.id)
    for sid, y in zip(ids, labels, strict=True):
        row = stored[sid]
        assert row[credit.LABEL] == y
        assert row["prediction"] == logged[sid]["prediction"]
        assert row["probability"] == pytest.approx(logged[sid]["probability"])
        assert row["prediction_probability"] == pytest.approx(logged[sid]["prediction_probability"])
        assert row["Age"] == logged[sid]["Age"] and row["CheckingStatus"] == logged[sid]["CheckingStatus"]
    # the same rows again are duplicates, not new rows
    again = client.post(
        f"/v1/subscriptions/{sub.id}/feedback",
        json=[{"scoring_id": i, credit.LABEL: y} for i, y in zip(ids, labels, strict=True)],
    ).json()
    assert (again["stored"], again["duplicates"]) == (0, 10)


def test_rows_with_features_alone_are_scored_not_logged(service, client, sub, german, engine_server) -> None:
    rows = german.iloc[100:130]
    payload_before = service.payloads.read(sub.id, limit=1)[0]
    stats = engine_server.server.config.app.state.stats
    internal_before = stats["internal_calls"]
    body = {
        "fields": [*credit.FEATURES, credit.LABEL],
        "values": rows[[*credit.FEATURES, credit.LABEL]].values.tolist(),
    }
    r = client.post(f"/v1/subscriptions/{sub.id}/feedback", json=body)
    assert r.status_code == 200, r.text
    assert (r.json()["scored"], r.json()["linked"], r.json()["stored"]) == (30, 0, 30)
    assert service.payloads.read(sub.id, limit=1)[0] == payload_before  # internal scoring is never payload
    model = credit_model()
    expected = dict(
        zip(
            map(tuple, rows[credit.FEATURES].astype(str).values.tolist()),
            model.predict(rows[credit.FEATURES]),
            strict=False,
        )
    )
    proba = model.predict_proba(rows[credit.FEATURES])
    stored = list(feedback_rows(service, sub.id).values())
    assert len(stored) == 30
    by_features = {tuple(str(row[f]) for f in credit.FEATURES): row for row in stored}
    for i, key in enumerate(map(tuple, rows[credit.FEATURES].astype(str).values.tolist())):
        assert by_features[key]["prediction"] == expected[key]
        assert by_features[key]["probability"] == pytest.approx(proba[i].tolist(), abs=1e-9)
    assert stats["internal_calls"] == internal_before + 1  # one batched call, marked internal


def test_csv_with_and_without_header_and_row_dicts(service, client, sub, german) -> None:
    rows = german.iloc[200:205]
    cols = [credit.LABEL, "note", *reversed(credit.FEATURES)]  # any order, an extra column
    lines = [",".join(cols)] + [
        ",".join(str(v) for v in [r[credit.LABEL], "x", *[r[f] for f in reversed(credit.FEATURES)]])
        for _, r in rows.iterrows()
    ]
    r = client.post(
        f"/v1/subscriptions/{sub.id}/feedback", content="\n".join(lines), headers={"Content-Type": "text/csv"}
    )
    assert r.status_code == 200, r.text
    assert r.json()["stored"] == 5 and r.json()["ignored_fields"] == ["note"]
    plain = "\n".join(
        ",".join(str(v) for v in row) for row in german.iloc[205:208][[*credit.FEATURES, credit.LABEL]].values.tolist()
    )
    r = client.post(
        f"/v1/subscriptions/{sub.id}/feedback?header=false", content=plain, headers={"Content-Type": "text/csv"}
    )
    assert r.status_code == 200, r.text
    assert r.json()["stored"] == 3
    dicts = german.iloc[208:210][[*credit.FEATURES, credit.LABEL]].to_dict("records")
    dicts[0]["Age"] = str(dicts[0]["Age"])  # numbers may arrive as strings (contract §5)
    r = client.post(f"/v1/subscriptions/{sub.id}/feedback", json=dicts)
    assert r.status_code == 200, r.text
    r = client.post(
        f"/v1/subscriptions/{sub.id}/feedback",
        json={"data": german.iloc[210:212][[*credit.FEATURES, credit.LABEL]].values.tolist()},
    )
    assert r.status_code == 200, r.text
    stored = feedback_rows(service, sub.id)
    assert len(stored) == 12
    ages = sorted(row["Age"] for row in stored.values())
    assert ages == sorted(german.iloc[200:212]["Age"].tolist())


@pytest.mark.parametrize(
    ("row", "field", "text"),
    [
        ({"scoring_id": "p1-1", credit.LABEL: "Maybe"}, credit.LABEL, "not one of the model's labels"),
        ({"scoring_id": "p1-1", credit.LABEL: 1.0}, credit.LABEL, "expected a string"),
        ({"scoring_id": "nope-1", credit.LABEL: "Risk"}, "scoring_id", "not a logged payload row"),
        ({"scoring_id": "p1-1", credit.LABEL: None}, credit.LABEL, "the label is missing"),
        ({"Age": 30, credit.LABEL: "Risk"}, "CheckingStatus", "missing feature field"),
    ],
)
def test_bad_rows_are_rejected_naming_row_and_field(service, client, sub, row, field, text) -> None:
    good = {"scoring_id": "p2-1", credit.LABEL: "Risk"}
    r = client.post(f"/v1/subscriptions/{sub.id}/feedback", json=[good, row])
    assert r.status_code == 422, r.text
    err = r.json()["error"]
    assert err["row"] == 2 and err["field"] == field and text in err["message"]
    assert feedback_rows(service, sub.id) == {}  # nothing stored


def test_bad_cast_names_row_and_column(service, client, sub, german) -> None:
    values = german.iloc[:3][[*credit.FEATURES, credit.LABEL]].values.tolist()
    values[2][credit.FEATURES.index("Age")] = "old"
    r = client.post(
        f"/v1/subscriptions/{sub.id}/feedback", json={"fields": [*credit.FEATURES, credit.LABEL], "values": values}
    )
    assert r.status_code == 422
    assert (r.json()["error"]["row"], r.json()["error"]["field"]) == (3, "Age")


def test_openscale_v1_paths(service, client, sub, german) -> None:
    dm = client.get("/v1/data_marts").json()["data_marts"][0]["id"]
    body = {
        "binding_id": sub.binding_id,
        "subscription_id": sub.id,
        "fields": [*credit.FEATURES, credit.LABEL],
        "values": german.iloc[300:304][[*credit.FEATURES, credit.LABEL]].values.tolist(),
    }
    r = client.post(f"/v1/data_marts/{dm}/feedback_payloads", json=body)
    assert r.status_code == 204, r.text
    rows = [
        {"scoring_id": "p5-1", credit.LABEL: "Risk"},
        {"scoring_id": "p6-1", credit.LABEL: "bad"},
        {"scoring_id": "p7-1", credit.LABEL: "No Risk"},
    ]
    path = f"/v1/data_marts/{dm}/service_bindings/{sub.binding_id}/subscriptions/{sub.id}/feedback_payloads"
    r = client.post(path + "?on_error=continue", json=rows)
    assert r.status_code == 200, r.text
    assert r.json()["stored"] == 2 and r.json()["errors"][0]["row"] == 2
    assert client.post(path, json=rows).status_code == 422
    r = client.post(f"/v1/data_marts/{dm}/service_bindings/wrong/subscriptions/{sub.id}/feedback_payloads", json=rows)
    assert r.status_code == 404
    assert len(feedback_rows(service, sub.id)) == 6
    assert np.isfinite([row["prediction_probability"] for row in feedback_rows(service, sub.id).values()]).all()
