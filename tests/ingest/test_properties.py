"""Property-based: malformed payload batches never change the store and always say where they are wrong."""

from __future__ import annotations

import copy
import math
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scrutiny.api.app import create_app
from scrutiny.config import Settings
from scrutiny.demo import credit
from scrutiny.service import Service

NUMERIC = [f for f in credit.FEATURES if f in credit.NUMERIC_FEATURES]
STRINGS = [f for f in credit.FEATURES if f in credit.CATEGORICAL_FEATURES]


@pytest.fixture(scope="module")
def app_client(tmp_path_factory, german) -> Iterator[tuple[TestClient, str, Any]]:  # type: ignore[no-untyped-def]
    svc = Service(Settings(data_dir=tmp_path_factory.mktemp("prop"), sqlite_synchronous="OFF"))
    app = create_app(service=svc)
    key = svc.keys.ensure_admin_key()
    with TestClient(app, headers={"Authorization": f"Bearer {key}"}) as c:
        b = c.post("/v1/bindings", json={"name": "x", "credentials": {}}).json()
        sub = c.post(
            "/v1/subscriptions",
            json={
                "binding_id": b["id"],
                "deployment": {"name": "m", "scoring_url": "http://127.0.0.1:9/score"},
                "asset_properties": {
                    "problem_type": "binary",
                    "feature_fields": credit.FEATURES,
                    "labels": credit.LABELS,
                },
                "training_data": None,
            },
        ).json()
        # the schema comes from the first payload: log a valid one
        rows = german[credit.FEATURES].head(2).values.tolist()
        first = [
            {
                "request": {"fields": credit.FEATURES, "values": rows},
                "response": {"fields": ["prediction", "probability"], "values": [["Risk", [0.4, 0.6]]] * 2},
            }
        ]
        assert c.post(f"/v1/subscriptions/{sub['id']}/payloads", json=first).status_code == 200
        yield c, sub["id"], german
    svc.close()


def valid_batch(german: Any, draw: st.DrawFn) -> list[dict[str, Any]]:
    n_records = draw(st.integers(1, 4))
    batch = []
    for _ in range(n_records):
        n_rows = draw(st.integers(1, 3))
        idx = draw(st.lists(st.integers(0, 999), min_size=n_rows, max_size=n_rows))
        rows = german[credit.FEATURES].iloc[idx].values.tolist()
        probs = [
            [round(1 - p, 3), round(p, 3)] for p in draw(st.lists(st.floats(0, 1), min_size=n_rows, max_size=n_rows))
        ]
        batch.append(
            {
                "request": {"fields": list(credit.FEATURES), "values": rows},
                "response": {
                    "fields": ["prediction", "probability"],
                    "values": [[credit.LABELS[int(p[1] >= 0.5)], p] for p in probs],
                },
            }
        )
    return batch


wrong_for_number = st.one_of(
    st.text(min_size=1).filter(lambda s: not _numeric(s)),
    st.booleans(),
    st.lists(st.integers(), max_size=2),
    st.sampled_from([math.nan, math.inf, -math.inf, "NaN", "inf"]),
)
wrong_for_string = st.one_of(
    st.integers(),
    st.floats(allow_nan=False),
    st.booleans(),
    st.lists(st.text(), max_size=2),
    st.dictionaries(st.text(), st.integers(), max_size=1),
)


def _numeric(s: str) -> bool:
    try:
        return math.isfinite(float(s))
    except ValueError:
        return False


@st.composite
def malformed(draw: st.DrawFn, german: Any) -> tuple[list[dict[str, Any]], int, str]:
    """A batch with exactly one defect, and the record index and field the error must name."""
    batch = valid_batch(german, draw)
    r = draw(st.integers(0, len(batch) - 1))
    rec = batch[r]
    kind = draw(
        st.sampled_from(
            [
                "wrong_number",
                "wrong_string",
                "unknown_field",
                "missing_field",
                "short_row",
                "row_count",
                "bad_probability",
                "no_request",
            ]
        )
    )
    if kind == "wrong_number":
        f = draw(st.sampled_from(NUMERIC))
        row = draw(st.integers(0, len(rec["request"]["values"]) - 1))
        rec["request"]["values"][row][credit.FEATURES.index(f)] = draw(wrong_for_number)
        return batch, r, f
    if kind == "wrong_string":
        f = draw(st.sampled_from(STRINGS))
        row = draw(st.integers(0, len(rec["request"]["values"]) - 1))
        rec["request"]["values"][row][credit.FEATURES.index(f)] = draw(wrong_for_string)
        return batch, r, f
    if kind == "unknown_field":
        i = draw(st.integers(0, len(credit.FEATURES) - 1))
        name = draw(st.text(alphabet="abcxyz_", min_size=3, max_size=8).filter(lambda s: s not in credit.FEATURES))
        rec["request"]["fields"][i] = name
        return batch, r, name
    if kind == "missing_field":
        i = draw(st.integers(0, len(credit.FEATURES) - 1))
        name = rec["request"]["fields"].pop(i)
        for row in rec["request"]["values"]:
            row.pop(i)
        return batch, r, name
    if kind == "short_row":
        row = draw(st.integers(0, len(rec["request"]["values"]) - 1))
        rec["request"]["values"][row].pop()
        return batch, r, "request.values"
    if kind == "row_count":
        rec["response"]["values"].append(rec["response"]["values"][0])
        return batch, r, "response.values"
    if kind == "bad_probability":
        row = draw(st.integers(0, len(rec["response"]["values"]) - 1))
        rec["response"]["values"][row][1] = draw(st.sampled_from([[1.5, -0.5], [math.nan, 1.0], ["a", "b"], [0.1]]))
        return batch, r, "probability"
    rec.pop("request")
    return batch, r, "request"


def test_malformed_batches_never_change_the_store(app_client) -> None:  # type: ignore[no-untyped-def]
    client, sid, german = app_client
    before = client.get(f"/v1/subscriptions/{sid}/payloads").json()["total"]

    @settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(data=st.data())
    def check(data: st.DataObject) -> None:
        batch, record, field = data.draw(malformed(german))
        import json

        r = client.post(
            f"/v1/subscriptions/{sid}/payloads",
            content=json.dumps(copy.deepcopy(batch)),
            headers={"Content-Type": "application/json"},
        )
        assert 400 <= r.status_code < 500, r.text
        err = r.json()["error"]
        assert err.get("field") == field, err
        # a defect shared by every row of a column (wrong class count) may name no single record;
        # every defect generated here is in one record, which must be named
        assert err.get("record") == record, err
        assert f"record {record}" in err["message"]

    check()
    assert client.get(f"/v1/subscriptions/{sid}/payloads").json()["total"] == before
