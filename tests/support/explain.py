"""Helpers of the explanation tests: real models (German credit, Adult census) scored in-process
or served by the demo engine's app on loopback, and subscriptions with payload rows to explain."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from typing import Any

import httpx
import numpy as np
import pandas as pd

from scrutiny.core.schema import Kind
from scrutiny.core.subscription import Subscription
from scrutiny.core.training_stats import compute_statistics
from scrutiny.demo import credit
from scrutiny.explain.features import FeatureSpace
from scrutiny.explain.scoring import Scored
from scrutiny.service import Service
from tests.support.datasets import ADULT_COLUMNS, adult_file

ADULT_NUMERIC = ["age", "fnlwgt", "education_num", "capital_gain", "capital_loss", "hours_per_week"]
ADULT_CATEGORICAL = [
    "workclass",
    "education",
    "marital_status",
    "occupation",
    "relationship",
    "race",
    "sex",
    "native_country",
]
ADULT_FEATURES = [c for c in ADULT_COLUMNS if c != "income"]
ADULT_LABELS = ["<=50K", ">50K"]


@cache
def _adult() -> pd.DataFrame:
    df = pd.read_csv(adult_file(), header=None, names=ADULT_COLUMNS, skipinitialspace=True)
    for c in [*ADULT_CATEGORICAL, "income"]:
        df[c] = df[c].astype(object)
    return df.sample(n=8000, random_state=0).reset_index(drop=True)


def load_adult() -> pd.DataFrame:
    """8000 rows of Adult census (a fixed sample: fast to subscribe, still real)."""
    return _adult().copy()


@cache
def adult_model() -> Any:
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    df = _adult()
    pre = ColumnTransformer(
        [
            ("cat", OneHotEncoder(handle_unknown="ignore"), ADULT_CATEGORICAL),
            ("num", StandardScaler(), ADULT_NUMERIC),
        ]
    )
    model = Pipeline([("pre", pre), ("clf", LogisticRegression(max_iter=3000))])
    model.fit(df[ADULT_FEATURES], df["income"])
    return model


@cache
def credit_model() -> Any:
    return credit.train_credit_model(credit.load_german())


def python_row(frame: pd.DataFrame, i: int, features: list[str]) -> list[Any]:
    return [v.item() if isinstance(v, np.generic) else v for v in frame.iloc[i][features].tolist()]


def space_of(
    frame: pd.DataFrame, features: list[str], categorical: list[str], label: str, problem: str
) -> FeatureSpace:
    """The feature space from statistics that went through JSON, as the store keeps them."""
    stats = compute_statistics(
        frame, feature_fields=features, categorical_fields=categorical, label_column=label, problem_type=problem
    )
    stats = json.loads(json.dumps(stats))
    kinds = {f: (Kind.STR if f in categorical else Kind.INT) for f in features}
    return FeatureSpace.from_statistics(stats, features, kinds)


class LocalScorer:
    """Scores with a scikit-learn model in-process, counting calls like the engine scorer."""

    def __init__(self, model: Any, labels: list[Any] | None, *, regression: bool = False) -> None:
        self.model = model
        self.labels = list(labels or [])
        self.classification = not regression
        self.truncated = False
        self.calls = 0
        self.rows = 0

    def score(self, fields: list[str], values: list[list[Any]], *, min_rows: int | None = None) -> Scored:
        self.calls += 1
        self.rows += len(values)
        df = pd.DataFrame(values, columns=fields)
        if not self.classification:
            return Scored(self.model.predict(df).astype(np.float64), None, None)
        proba = self.model.predict_proba(df)
        idx = proba.argmax(axis=1)
        return Scored(np.asarray(self.model.classes_, dtype=object)[idx], proba, idx)


def engine_stats(url: str) -> dict[str, int]:
    return dict(httpx.get(f"{url}/_stats", timeout=10).json())


@dataclass
class Subscribed:
    service: Service
    sub: Subscription
    frame: pd.DataFrame
    features: list[str]
    engine_url: str

    def stats(self) -> dict[str, int]:
        return engine_stats(self.engine_url)

    def payload_count(self) -> int:
        return self.service.payloads.read(self.sub.id, limit=1)[0]


def subscribe(
    service: Service,
    engine_url: str,
    deployment_id: str,
    frame: pd.DataFrame,
    *,
    problem_type: str,
    label: str,
    features: list[str],
    rows: int = 6,
    deployment: dict[str, Any] | None = None,
) -> Subscribed:
    """Bind the engine, subscribe ``deployment_id`` with training data, and log ``rows`` payload
    rows: record ``tx-<i>`` holds row i alone, record ``multi`` holds rows 0-2."""
    binding, _ = service.bindings.create(name="engine", engine_type="custom", credentials={"url": engine_url})
    props = {"problem_type": problem_type, "label_column": label, "feature_fields": features}
    sub = service.subscriptions.create(
        binding_id=binding.id,
        deployment_id=None if deployment else deployment_id,
        deployment=deployment,
        asset_properties=props,
        training_frame=frame[[*features, label]],
    )
    values = [python_row(frame, i, features) for i in range(rows)]
    scored = service.subscriptions.score(sub.id, {"fields": features, "values": values})
    out_fields = scored["fields"][:2] if problem_type != "regression" else scored["fields"][:1]
    outputs = [r[: len(out_fields)] for r in scored["values"]]
    records = [
        {
            "scoring_id": f"tx-{i}",
            "request": {"fields": features, "values": [values[i]]},
            "response": {"fields": out_fields, "values": [outputs[i]]},
        }
        for i in range(rows)
    ]
    records.append(
        {
            "scoring_id": "multi",
            "request": {"fields": features, "values": values[:3]},
            "response": {"fields": out_fields, "values": outputs[:3]},
        }
    )
    service.payloads.store(sub.id, records)
    return Subscribed(service, service.subscriptions.get(sub.id), frame, features, engine_url)


def lime_oracle(german: pd.DataFrame, model: Any, mode: str, features: list[str], categorical: list[str]):  # type: ignore[no-untyped-def]
    """The `lime` package on the same data: categories label-encoded, decoded again for the model.

    Numbers are clipped to their training range before the model sees them. That corrects a bug
    of lime 0.2.0.1 and only that: ``BaseDiscretizer.get_undiscretize_values`` returns the
    z-score (0) instead of the value for a bin whose minimum equals its maximum, so every
    perturbation in the first quartile bin of ``Dependents`` (all 1s) reaches the model as 0, a
    value outside the training data (85% of its rows). Such a bin only occurs at the bottom
    (min == first quartile), where clipping restores the right value."""
    from lime.lime_tabular import LimeTabularExplainer

    codes = {c: sorted(german[c].unique()) for c in categorical}
    X = german[features].copy()
    for c in categorical:
        X[c] = X[c].map({v: i for i, v in enumerate(codes[c])})
    X = X.to_numpy(np.float64)
    numeric = [c for c in features if c not in categorical]
    lows, highs = german[numeric].min(), german[numeric].max()

    def decode(arr: np.ndarray) -> pd.DataFrame:
        df = pd.DataFrame(arr, columns=features)
        for c in categorical:
            df[c] = np.asarray(codes[c], dtype=object)[df[c].astype(int)]
        for c in numeric:
            df[c] = df[c].clip(lows[c], highs[c]).round().astype(int)
        return df

    explainer = LimeTabularExplainer(
        X,
        mode=mode,
        feature_names=features,
        categorical_features=[features.index(c) for c in categorical],
        discretize_continuous=True,
        random_state=42,
    )
    if callable(model) and not hasattr(model, "predict"):  # a function of a DataFrame (an engine)
        return explainer, X, lambda a: model(decode(a))
    predict = (
        (lambda a: model.predict_proba(decode(a))) if mode == "classification" else (lambda a: model.predict(decode(a)))
    )
    return explainer, X, predict


def agreement(ours: list[tuple[str, float]], theirs: list[tuple[str, float]], where: str) -> bool:
    """The oracle comparison. Signs must never disagree: no feature in both top-5 lists has
    opposite signs. Returns whether the top features agree: each top 3 (feature and sign) lies
    within the other's top 5. On 40 German credit rows the `lime` package meets that against
    itself with another seed on 39 (near-ties swap places), and Scrutiny against `lime` on 38;
    neither ever had opposite signs."""
    signs = {f: np.sign(w) for f, w in ours[:5]}
    clash = [f for f, w in theirs[:5] if f in signs and signs[f] != np.sign(w)]
    assert not clash, (where, clash, ours[:5], theirs[:5])

    def top(c: list[tuple[str, float]], k: int) -> set[tuple[str, float]]:
        return {(f, float(np.sign(w))) for f, w in c[:k]}

    return top(ours, 3) <= top(theirs, 5) and top(theirs, 3) <= top(ours, 5)


def engine_predictor(url: str, deployment: str, features: list[str]) -> Any:
    """A plain per-call predict function over the engine's HTTP API (what a `lime` user writes)."""

    def predict(frame: pd.DataFrame) -> np.ndarray:
        values = [
            [v.item() if isinstance(v, np.generic) else v for v in row] for row in frame[features].to_numpy(object)
        ]
        r = httpx.post(
            f"{url}/v1/deployments/{deployment}/online", json={"fields": features, "values": values}, timeout=60
        )
        r.raise_for_status()
        out = r.json()
        i = out["fields"].index("probability")
        return np.array([row[i] for row in out["values"]], dtype=np.float64)

    return predict
