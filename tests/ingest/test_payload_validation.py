"""Every bad-input case: 422 naming the record, row and field; the batch changes nothing."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from scrutiny.demo import credit
from tests.support.api import bind_and_subscribe, records

AGE = credit.FEATURES.index("Age")
SEX = credit.FEATURES.index("Sex")


def _set(rec: dict[str, Any], row: int, col: int, value: Any) -> None:
    rec["request"]["values"][row][col] = value


CASES: list[tuple[str, Callable[[list[dict[str, Any]]], None], dict[str, Any], str]] = [
    (
        "unknown field",
        lambda b: b[2]["request"]["fields"].__setitem__(AGE, "Agee"),
        {"record": 2, "field": "Agee"},
        "unknown field",
    ),
    (
        "string in a number column",
        lambda b: _set(b[3], 1, AGE, "forty"),
        {"record": 3, "row": 2, "field": "Age"},
        "expected a number",
    ),
    (
        "number in a string column",
        lambda b: _set(b[1], 0, SEX, 1),
        {"record": 1, "row": 1, "field": "Sex"},
        "expected a string",
    ),
    (
        "boolean in a number column",
        lambda b: _set(b[0], 1, AGE, True),
        {"record": 0, "row": 2, "field": "Age"},
        "expected a number",
    ),
    (
        "integer beyond 64 bits",
        lambda b: _set(b[2], 1, AGE, 2**70),
        {"record": 2, "row": 2, "field": "Age"},
        "beyond ±2**53",
    ),
    (
        "integer that float64 would round",
        lambda b: _set(b[3], 0, AGE, 2**53 + 1),
        {"record": 3, "row": 1, "field": "Age"},
        "beyond ±2**53",
    ),
    (
        "fraction in an integer column",
        lambda b: _set(b[4], 0, AGE, 30.5),
        {"record": 4, "row": 1, "field": "Age"},
        "expected an integer",
    ),
    (
        "non-finite number",
        lambda b: _set(b[2], 1, AGE, float("nan")),
        {"record": 2, "row": 2, "field": "Age"},
        "not a finite number",
    ),
    (
        "infinite number as text",
        lambda b: _set(b[2], 0, AGE, "Infinity"),
        {"record": 2, "row": 1, "field": "Age"},
        "not a finite number",
    ),
    (
        "fields/values length mismatch",
        lambda b: b[3]["request"]["values"][1].pop(),
        {"record": 3, "row": 2, "field": "request.values"},
        "values for 21 fields",
    ),
    (
        "response row count differs",
        lambda b: b[1]["response"]["values"].pop(),
        {"record": 1, "field": "response.values"},
        "1 rows for 2 request rows",
    ),
    (
        "missing scoring field",
        lambda b: [b[0]["request"]["fields"].pop(AGE), *(r.pop(AGE) for r in b[0]["request"]["values"])],
        {"record": 0, "field": "Age"},
        "missing scoring field",
    ),
    ("missing request", lambda b: b[2].pop("request"), {"record": 2, "field": "request"}, "missing"),
    (
        "missing prediction",
        lambda b: b[4]["response"].__setitem__("fields", ["label", "score"]),
        {"record": 4, "field": "prediction"},
        "no prediction field",
    ),
    (
        "probability out of range",
        lambda b: b[1]["response"]["values"][0].__setitem__(1, [1.4, -0.4]),
        {"record": 1, "row": 1, "field": "probability"},
        "between 0 and 1",
    ),
    (
        "probability not a vector",
        lambda b: b[3]["response"]["values"][1].__setitem__(1, ["a", "b"]),
        {"record": 3, "row": 2, "field": "probability"},
        "list of numbers",
    ),
    (
        "wrong number of classes",
        lambda b: [row.__setitem__(1, [0.2, 0.3, 0.5]) for rec in b for row in rec["response"]["values"]],
        {"field": "probability"},
        "3 classes",
    ),
    (
        "bad timestamp",
        lambda b: b[2].__setitem__("scoring_timestamp", "yesterday"),
        {"record": 2, "field": "scoring_timestamp"},
        "ISO-8601",
    ),
    ("bad scoring_id", lambda b: b[1].__setitem__("scoring_id", ""), {"record": 1, "field": "scoring_id"}, "non-empty"),
    (
        "response not JSON",
        lambda b: b[0].__setitem__("response", "{not json"),
        {"record": 0, "field": "response"},
        "not valid JSON",
    ),
    (
        "duplicate field",
        lambda b: b[2]["request"]["fields"].__setitem__(0, "Age"),
        {"record": 2, "field": "Age"},
        "twice",
    ),
    (
        "a quote in a meta field name",
        lambda b: b[1]["request"].__setitem__("meta", {"fields": ['tx"id'], "values": [["a"], ["b"]]}),
        {"record": 1},
        "not allowed",
    ),
]


@pytest.mark.parametrize(("name", "mutate", "where", "words"), CASES, ids=[c[0] for c in CASES])
def test_bad_batch_is_rejected_whole_and_names_where(client, engine_server, german, name, mutate, where, words) -> None:  # type: ignore[no-untyped-def]
    _, sid = bind_and_subscribe(client, engine_server.url)
    assert (
        client.post(f"/v1/subscriptions/{sid}/payloads", json=records(german, 2, scoring_id="ok-")).status_code == 200
    )
    batch = records(german, 5, start=100, rows_per_record=2, scoring_id="b-")
    mutate(batch)
    r = client.post(
        f"/v1/subscriptions/{sid}/payloads", content=json.dumps(batch), headers={"Content-Type": "application/json"}
    )
    assert r.status_code == 422, r.text
    err = r.json()["error"]
    assert err["code"] == "invalid_input"
    for key, value in where.items():
        assert err.get(key) == value, (key, err)
    assert words in err["message"]
    if "record" in where:
        assert f"record {where['record']}" in err["message"]
    assert client.get(f"/v1/subscriptions/{sid}/payloads").json()["total"] == 2  # nothing of the batch stored


def test_not_json_and_not_a_list(client, engine_server) -> None:  # type: ignore[no-untyped-def]
    _, sid = bind_and_subscribe(client, engine_server.url)
    r = client.post(f"/v1/subscriptions/{sid}/payloads", content=b"{oops", headers={"Content-Type": "application/json"})
    assert r.status_code == 422 and "not valid JSON" in r.json()["error"]["message"]
    assert client.post(f"/v1/subscriptions/{sid}/payloads", json=[]).status_code == 422
    assert client.post(f"/v1/subscriptions/{sid}/payloads", json="text").status_code == 422
    r = client.post(f"/v1/subscriptions/{sid}/payloads", content=b"a,b", headers={"Content-Type": "text/plain"})
    assert r.status_code == 415
    assert client.post("/v1/subscriptions/nope/payloads", json=[{}]).status_code == 404


def test_arrow_batches_are_validated_the_same_way(client, engine_server, german) -> None:  # type: ignore[no-untyped-def]
    import pyarrow as pa

    from scrutiny.sdk.records import ARROW, arrow_bytes, frames_to_arrow

    _, sid = bind_and_subscribe(client, engine_server.url)
    inputs = german[credit.FEATURES].head(6).copy()
    outputs = __import__("pandas").DataFrame({"prediction": ["Risk"] * 6, "probability": [[0.3, 0.7]] * 6})
    table = frames_to_arrow(inputs, outputs, scoring_ids=[f"a{i}" for i in range(6)])
    ok = client.post(f"/v1/subscriptions/{sid}/payloads", content=arrow_bytes(table), headers={"Content-Type": ARROW})
    assert ok.status_code == 200 and ok.json()["stored"] == 6
    bad_inputs = inputs.copy()
    bad_inputs["Age"] = bad_inputs["Age"].astype(float)
    bad_inputs.loc[bad_inputs.index[4], "Age"] = float("inf")
    table = frames_to_arrow(bad_inputs, outputs, scoring_ids=[f"b{i}" for i in range(6)])
    r = client.post(f"/v1/subscriptions/{sid}/payloads", content=arrow_bytes(table), headers={"Content-Type": ARROW})
    assert r.status_code == 422
    assert r.json()["error"] | {} and r.json()["error"]["record"] == 4 and r.json()["error"]["field"] == "Age"
    extra = table.append_column("surprise", pa.array([1] * 6))
    r = client.post(f"/v1/subscriptions/{sid}/payloads", content=arrow_bytes(extra), headers={"Content-Type": ARROW})
    assert r.status_code == 422 and r.json()["error"]["field"] == "surprise"
    r = client.post(f"/v1/subscriptions/{sid}/payloads", content=b"not arrow", headers={"Content-Type": ARROW})
    assert r.status_code == 422
    assert client.get(f"/v1/subscriptions/{sid}/payloads").json()["total"] == 6
