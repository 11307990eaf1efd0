"""Small builders shared by tests."""

from __future__ import annotations

from typing import Any

import httpx

from scrutiny.demo import credit


def bind_and_subscribe(
    client: httpx.Client, engine_url: str, training_csv: Any = None, **props: Any
) -> tuple[str, str]:
    """A custom binding on the demo engine and a credit-risk subscription; returns their ids."""
    r = client.post(
        "/v1/bindings", json={"name": "demo engine", "engine_type": "custom", "credentials": {"url": engine_url}}
    )
    assert r.status_code in (200, 201), r.text
    binding_id = r.json()["id"]
    body: dict[str, Any] = {
        "binding_id": binding_id,
        "deployment_id": "credit-risk",
        "asset_properties": {
            "problem_type": "binary",
            "label_column": "Risk",
            "feature_fields": credit.FEATURES,
            **props,
        },
    }
    if training_csv is not None:
        body["training_data"] = {"path": str(training_csv)}
    else:
        body["asset_properties"].setdefault("labels", credit.LABELS)
    r = client.post("/v1/subscriptions", json=body)
    assert r.status_code == 201, r.text
    return binding_id, r.json()["id"]


def records(
    german: Any, n: int, *, start: int = 0, scoring_id: str | None = None, rows_per_record: int = 1
) -> list[dict[str, Any]]:
    """Payload records for ``n`` applicants, outputs in the custom engine's format."""
    out = []
    frame = german[credit.FEATURES]
    for i in range(n):
        rows = frame.iloc[start + i * rows_per_record : start + (i + 1) * rows_per_record].values.tolist()
        resp = [
            ["Risk" if (start + i + k) % 3 == 0 else "No Risk", [0.3, 0.7] if (start + i + k) % 3 == 0 else [0.8, 0.2]]
            for k in range(len(rows))
        ]
        rec: dict[str, Any] = {
            "request": {"fields": list(credit.FEATURES), "values": rows},
            "response": {"fields": ["prediction", "probability"], "values": resp},
            "response_time": 10 + i,
        }
        if scoring_id is not None:
            rec["scoring_id"] = f"{scoring_id}{i}"
        out.append(rec)
    return out
