"""Helpers shared by the monitor tests: a credit-risk subscription and payload records with chosen times."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any

import numpy as np

from scrutiny.demo import credit
from scrutiny.service import Service

T0 = datetime(2026, 3, 2, 9, 0, 0, tzinfo=UTC)
PROPS = {
    "problem_type": "binary",
    "label_column": credit.LABEL,
    "feature_fields": credit.FEATURES,
    "categorical_fields": credit.CATEGORICAL_FEATURES,
    "prediction_field": "prediction",
    "probability_fields": ["probability"],
}


@cache
def credit_model() -> Any:
    return credit.train_credit_model()


def subscribe_credit(service: Service, engine_url: str, **props: Any) -> Any:
    binding, _ = service.bindings.create(name="demo", engine_type="custom", credentials={"url": engine_url})
    return service.subscriptions.create(
        binding_id=binding.id,
        deployment_id="credit-risk",
        asset_properties={**PROPS, **props},
        training_frame=credit.load_german(),
    )


def scored(rows: Any) -> tuple[list[str], list[list[float]]]:
    """The credit model's predictions and probabilities for a frame of features."""
    model = credit_model()
    proba = model.predict_proba(rows[credit.FEATURES])
    classes = np.asarray(model.classes_, dtype=object)
    return classes[proba.argmax(axis=1)].tolist(), proba.tolist()


def payload_records(
    frame: Any, times: list[datetime], response_times: list[int | None], rows_per_record: int = 1, prefix: str = "r"
) -> list[dict[str, Any]]:
    """One record per ``rows_per_record`` rows of ``frame``, stamped ``times[i]``."""
    preds, probs = scored(frame)
    values = frame[credit.FEATURES].values.tolist()
    out = []
    for i, start in enumerate(range(0, len(frame), rows_per_record)):
        stop = min(len(frame), start + rows_per_record)
        rec: dict[str, Any] = {
            "scoring_id": f"{prefix}{i}",
            "scoring_timestamp": times[i].isoformat(),
            "request": {"fields": credit.FEATURES, "values": values[start:stop]},
            "response": {
                "fields": ["prediction", "probability"],
                "values": [[p, q] for p, q in zip(preds[start:stop], probs[start:stop], strict=True)],
            },
        }
        if response_times[i] is not None:
            rec["response_time"] = response_times[i]
        out.append(rec)
    return out


def spread(n: int, start: datetime, span: timedelta, seed: int = 0) -> list[datetime]:
    rng = np.random.default_rng(seed)
    offs = np.sort(rng.uniform(0, span.total_seconds(), n))
    return [start + timedelta(seconds=float(s)) for s in offs]
