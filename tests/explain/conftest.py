"""Fixtures of the explanation tests (builders in ``tests.support.explain``)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from scrutiny._server import BackgroundServer
from scrutiny.demo import credit
from scrutiny.demo.engine import EngineOptions, _Model, create_engine_app
from scrutiny.service import Service
from tests.support.explain import ADULT_FEATURES, ADULT_LABELS, Subscribed, adult_model, subscribe


@pytest.fixture
def credit_sub(service: Service, engine_server: BackgroundServer) -> Subscribed:
    return subscribe(
        service,
        engine_server.url,
        "credit-risk",
        credit.load_german(),
        problem_type="binary",
        label=credit.LABEL,
        features=credit.FEATURES,
    )


@pytest.fixture
def amount_sub(service: Service, engine_server: BackgroundServer) -> Subscribed:
    return subscribe(
        service,
        engine_server.url,
        "credit-amount",
        credit.load_german(),
        problem_type="regression",
        label="LoanAmount",
        features=credit.AMOUNT_FEATURES,
    )


@pytest.fixture(scope="session")
def adult_engine() -> Iterator[BackgroundServer]:
    """A custom engine serving a scikit-learn model trained on Adult census."""
    model = _Model("adult-income", "binary", ADULT_FEATURES, adult_model(), ADULT_LABELS, label_column="income")
    with BackgroundServer(create_engine_app(EngineOptions(), models={"adult-income": model})) as srv:
        yield srv
