"""The `lime` package as oracle for explanations made through engines on loopback: German credit
(the demo engine's credit-risk) and Adult census (a scikit-learn model in a custom engine). Both
explainers score through the same engine: Scrutiny in its one batched call, `lime` through a
plain per-call predict function."""

from __future__ import annotations

import pytest

from scrutiny._server import BackgroundServer
from scrutiny.demo import credit
from scrutiny.service import Service
from tests.support.explain import (
    ADULT_CATEGORICAL,
    ADULT_FEATURES,
    ADULT_LABELS,
    agreement,
    engine_predictor,
    engine_stats,
    lime_oracle,
    load_adult,
    subscribe,
)


@pytest.fixture
def backend() -> str:
    """The store plays no part here: SQLite only."""
    return "sqlite"


def _compare(
    service: Service,
    engine: BackgroundServer,
    deployment: str,
    frame,  # type: ignore[no-untyped-def]
    features: list[str],
    categorical: list[str],
    labels: list[str],
    label_column: str,
    rows: int,
) -> list[bool]:
    s = subscribe(
        service,
        engine.url,
        deployment,
        frame,
        problem_type="binary",
        label=label_column,
        features=features,
        rows=rows,
    )
    predict = engine_predictor(engine.url, deployment, features)
    explainer, X, lime_predict = lime_oracle(frame, predict, "classification", features, categorical)
    agree = []
    for i in range(rows):
        before = engine_stats(engine.url)
        ours = service.explanations.explain(s.sub.id, scoring_id=f"tx-{i}")
        assert engine_stats(engine.url)[f"calls:{deployment}"] - before.get(f"calls:{deployment}", 0) == 1
        assert ours.result is not None, ours.error
        label = labels.index(ours.result["prediction"])
        before = engine_stats(engine.url)
        exp = explainer.explain_instance(X[i], lime_predict, labels=(label,), num_features=10, num_samples=5000)
        assert engine_stats(engine.url)[f"calls:{deployment}"] - before.get(f"calls:{deployment}", 0) == 1
        theirs = [(features[j], w) for j, w in exp.local_exp[label]]
        mine = [(c["feature"], c["coefficient"]) for c in ours.result["contributions"]]
        agree.append(agreement(mine, theirs, f"{deployment} row {i}"))
        assert ours.result["r2"] == pytest.approx(exp.score, abs=0.1)
    return agree


def test_german_credit_through_the_demo_engine(service: Service, engine_server: BackgroundServer) -> None:
    german = credit.load_german()
    agree = _compare(
        service,
        engine_server,
        "credit-risk",
        german,
        credit.FEATURES,
        credit.CATEGORICAL_FEATURES,
        credit.LABELS,
        credit.LABEL,
        rows=10,
    )
    assert sum(agree) >= len(agree) - 1, agree


def test_adult_census_through_a_custom_engine(service: Service, adult_engine: BackgroundServer) -> None:
    agree = _compare(
        service,
        adult_engine,
        "adult-income",
        load_adult(),
        ADULT_FEATURES,
        ADULT_CATEGORICAL,
        ADULT_LABELS,
        "income",
        rows=12,
    )
    assert sum(agree) >= len(agree) - 1, agree
