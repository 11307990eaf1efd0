"""The Python SDK against a real server: discovery, subscriptions, logging, reading back."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from scrutiny.demo import credit
from scrutiny.sdk import Client, PayloadRecord, ScrutinyAPIError


@pytest.fixture
def sdk(api):  # type: ignore[no-untyped-def]
    srv, key = api
    with Client(srv.url, key) as c:
        yield c


@pytest.fixture
def subscription(sdk, engine_server):  # type: ignore[no-untyped-def]
    b = sdk.bindings.create(name="demo", engine_type="custom", credentials={"url": engine_server.url})
    assert {d["id"] for d in b.deployments()} >= {"credit-risk"}
    return sdk.subscriptions.create(
        binding_id=b.id,
        deployment_id="credit-risk",
        asset_properties={"problem_type": "binary", "label_column": "Risk", "feature_fields": credit.FEATURES},
        training_data=credit.load_german(),
    )


def test_subscription_with_uploaded_training_data(subscription) -> None:  # type: ignore[no-untyped-def]
    assert subscription.layout["labels"] == ["No Risk", "Risk"]
    assert subscription.has_training_statistics is True


def test_store_records_and_read_back(subscription, german) -> None:  # type: ignore[no-untyped-def]
    rows = german[credit.FEATURES].head(30).values.tolist()
    scored = subscription.score(credit.FEATURES, rows)
    recs = [
        PayloadRecord(
            request={"fields": credit.FEATURES, "values": [row]},
            response={"fields": ["prediction", "probability"], "values": [out[:2]]},
            response_time=12,
        )
        for row, out in zip(rows, scored["values"], strict=True)
    ]
    result = subscription.payload_logging.store(recs, batch_size=7)  # 5 batches
    assert result == {"stored": 30, "duplicates": 0, "records": 30}
    # the SDK gave every record a scoring_id, so sending them again stores nothing new
    again = subscription.payload_logging.store(recs, batch_size=7)
    assert again["stored"] == 0 and again["duplicates"] == 30
    table = subscription.payload_logging.get_table_content()
    assert len(table) == 30
    expected = credit.train_credit_model().predict_proba(german[credit.FEATURES].head(30))
    got = table.set_index("scoring_id").loc[[f"{r.scoring_id}-1" for r in recs]]
    np.testing.assert_allclose(np.stack(got["probability"].to_numpy()), expected, atol=1e-9)
    np.testing.assert_allclose(got["prediction_probability"], expected.max(axis=1), atol=1e-9)
    assert (got["Age"].to_numpy() == german.Age.head(30).to_numpy()).all()
    assert subscription.payload_logging.count() == 30
    assert len(subscription.payload_logging.get_table_content(limit=5)) == 5


def test_store_dataframes(subscription, german) -> None:  # type: ignore[no-untyped-def]
    inputs = german[credit.FEATURES].head(250).reset_index(drop=True)
    proba = credit.train_credit_model().predict_proba(inputs)
    outputs = pd.DataFrame({"prediction": np.where(proba[:, 1] > 0.5, "Risk", "No Risk"), "probability": list(proba)})
    meta = pd.DataFrame({"transaction_id": [f"tx{i}" for i in range(250)]})
    res = subscription.payload_logging.store(inputs, outputs, meta=meta, response_times=[5] * 250, batch_size=100)
    assert res["stored"] == 250
    table = subscription.payload_logging.get_table_content()
    assert len(table) == 250 and set(table.transaction_id) == {f"tx{i}" for i in range(250)}
    assert (table.response_time == 5).all()
    np.testing.assert_allclose(np.sort(table.prediction_probability.to_numpy()), np.sort(proba.max(axis=1)), atol=1e-12)


def test_heterogeneous_records_fall_back_to_json(subscription, german) -> None:  # type: ignore[no-untyped-def]
    row = german[credit.FEATURES].head(1).values.tolist()
    recs = [
        PayloadRecord(
            request={"fields": credit.FEATURES, "values": row},
            response={"fields": ["prediction", "probability"], "values": [["Risk", [0.3, 0.7]]]},
        ),
        PayloadRecord(
            request={"fields": credit.FEATURES, "values": row},
            response='{"fields": ["prediction"], "values": [["No Risk"]]}',
        ),
    ]
    assert subscription.payload_logging.store(recs)["stored"] == 2


def test_errors_carry_code_and_location(subscription, german) -> None:  # type: ignore[no-untyped-def]
    row = german[credit.FEATURES].head(1).values.tolist()
    row[0][credit.FEATURES.index("Age")] = "old"
    bad = PayloadRecord(
        request={"fields": credit.FEATURES, "values": row},
        response={"fields": ["prediction", "probability"], "values": [["Risk", [0.3, 0.7]]]},
    )
    with pytest.raises(ScrutinyAPIError) as info:
        subscription.payload_logging.store([bad])
    assert info.value.status == 422 and info.value.details["field"] == "Age" and info.value.details["record"] == 0


def test_client_finds_its_key_from_the_data_dir(api, tmp_path, monkeypatch, service) -> None:  # type: ignore[no-untyped-def]
    srv, _ = api
    monkeypatch.delenv("SCRUTINY_API_KEY", raising=False)
    monkeypatch.setenv("SCRUTINY_DATA_DIR", str(service.settings.data_dir))
    with Client(srv.url) as c:
        assert c.data_marts()[0]["id"]
