"""Fixtures of the fairness tests: real data with real models' predictions."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from scrutiny.core.subscription import Subscription
from scrutiny.demo import credit
from tests.support.datasets import ADULT_COLUMNS
from tests.support.fairness import ADULT_CATEGORICAL, ADULT_NUMERIC, adult_path, make_subscription


@pytest.fixture(scope="session")
def adult() -> pd.DataFrame:
    """Adult census (32,561 rows) with a logistic regression's predictions in ``prediction``."""
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    df = pd.read_csv(adult_path(), header=None, names=ADULT_COLUMNS, skipinitialspace=True, na_values="?")
    df = df.dropna().reset_index(drop=True)
    features = ADULT_NUMERIC + ADULT_CATEGORICAL
    model = Pipeline(
        [
            (
                "pre",
                ColumnTransformer(
                    [
                        ("cat", OneHotEncoder(handle_unknown="ignore"), ADULT_CATEGORICAL),
                        ("num", StandardScaler(), ADULT_NUMERIC),
                    ]
                ),
            ),
            ("clf", LogisticRegression(max_iter=1000)),
        ]
    )
    model.fit(df[features], df["income"])
    df["prediction"] = model.predict(df[features])
    return df


@pytest.fixture(scope="session")
def german_scored() -> pd.DataFrame:
    """German credit with the demo models' predictions: binary, multiclass and regression."""
    df = credit.load_german()
    df["prediction"] = credit.train_credit_model(df).predict(df[credit.FEATURES])
    df["purpose_prediction"] = credit.train_purpose_model(df).predict(df[credit.PURPOSE_FEATURES])
    df["amount_prediction"] = credit.train_amount_model(df).predict(df[credit.AMOUNT_FEATURES])
    df["amount_per_month"] = df["LoanAmount"] / df["LoanDuration"]
    return df


@pytest.fixture(scope="session")
def german_sub() -> Subscription:
    return make_subscription(
        credit.load_german(),
        credit.FEATURES,
        credit.CATEGORICAL_FEATURES,
        label=credit.LABEL,
        labels=credit.LABELS,
        extra=[{"name": "Region", "type": "string"}],
    )


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(12345)
