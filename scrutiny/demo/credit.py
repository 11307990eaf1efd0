"""The German credit data set and the credit-risk models the demo engine serves.

The data ships inside the package (``data/german.data``, CC BY 4.0), so nothing is
downloaded at run time. Codes such as ``A11`` are decoded into short readable values,
encoded exactly as the model receives them (OpenScale's rule for training data).
"""

from __future__ import annotations

from functools import cache
from importlib import resources
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd
    from sklearn.pipeline import Pipeline

LABEL = "Risk"
LABELS = ["No Risk", "Risk"]  # sorted, as scikit-learn orders classes_

# (column name, decoding of the UCI codes or None for a number), in file order.
_COLUMNS: list[tuple[str, dict[str, str] | None]] = [
    ("CheckingStatus", {"A11": "less_0", "A12": "0_to_200", "A13": "greater_200", "A14": "no_checking"}),
    ("LoanDuration", None),
    (
        "CreditHistory",
        {
            "A30": "no_credits",
            "A31": "all_credits_paid_here",
            "A32": "credits_paid_to_date",
            "A33": "prior_payments_delayed",
            "A34": "outstanding_credit",
        },
    ),
    (
        "LoanPurpose",
        {
            "A40": "car_new",
            "A41": "car_used",
            "A42": "furniture",
            "A43": "radio_tv",
            "A44": "appliances",
            "A45": "repairs",
            "A46": "education",
            "A47": "vacation",
            "A48": "retraining",
            "A49": "business",
            "A410": "other",
        },
    ),
    ("LoanAmount", None),
    (
        "ExistingSavings",
        {"A61": "less_100", "A62": "100_to_500", "A63": "500_to_1000", "A64": "greater_1000", "A65": "unknown"},
    ),
    (
        "EmploymentDuration",
        {"A71": "unemployed", "A72": "less_1", "A73": "1_to_4", "A74": "4_to_7", "A75": "greater_7"},
    ),
    ("InstallmentPercent", None),
    ("_status_sex", None),  # split into Sex and PersonalStatus below
    ("OthersOnLoan", {"A101": "none", "A102": "co-applicant", "A103": "guarantor"}),
    ("CurrentResidenceDuration", None),
    ("OwnsProperty", {"A121": "real_estate", "A122": "savings_insurance", "A123": "car_other", "A124": "unknown"}),
    ("Age", None),
    ("InstallmentPlans", {"A141": "bank", "A142": "stores", "A143": "none"}),
    ("Housing", {"A151": "rent", "A152": "own", "A153": "free"}),
    ("ExistingCreditsCount", None),
    ("Job", {"A171": "unskilled_nonresident", "A172": "unskilled", "A173": "skilled", "A174": "management"}),
    ("Dependents", None),
    ("Telephone", {"A191": "none", "A192": "yes"}),
    ("ForeignWorker", {"A201": "yes", "A202": "no"}),
]
_SEX = {"A91": "male", "A92": "female", "A93": "male", "A94": "male", "A95": "female"}
_PERSONAL_STATUS = {"A91": "divorced", "A92": "married_or_divorced", "A93": "single", "A94": "married", "A95": "single"}

NUMERIC_FEATURES = [
    "LoanDuration",
    "LoanAmount",
    "InstallmentPercent",
    "CurrentResidenceDuration",
    "Age",
    "ExistingCreditsCount",
    "Dependents",
]
CATEGORICAL_FEATURES = [
    "CheckingStatus",
    "CreditHistory",
    "LoanPurpose",
    "ExistingSavings",
    "EmploymentDuration",
    "Sex",
    "PersonalStatus",
    "OthersOnLoan",
    "OwnsProperty",
    "InstallmentPlans",
    "Housing",
    "Job",
    "Telephone",
    "ForeignWorker",
]
FEATURES = [
    "CheckingStatus",
    "LoanDuration",
    "CreditHistory",
    "LoanPurpose",
    "LoanAmount",
    "ExistingSavings",
    "EmploymentDuration",
    "InstallmentPercent",
    "Sex",
    "PersonalStatus",
    "OthersOnLoan",
    "CurrentResidenceDuration",
    "OwnsProperty",
    "Age",
    "InstallmentPlans",
    "Housing",
    "ExistingCreditsCount",
    "Job",
    "Dependents",
    "Telephone",
    "ForeignWorker",
]


@cache
def _load() -> pd.DataFrame:
    import pandas as pd

    text = resources.files("scrutiny.demo").joinpath("data/german.data").read_text()
    rows = [line.split() for line in text.splitlines() if line.strip()]
    frame: dict[str, Any] = {}
    for i, (name, codes) in enumerate(_COLUMNS):
        raw = [r[i] for r in rows]
        if name == "_status_sex":
            frame["Sex"] = [_SEX[v] for v in raw]
            frame["PersonalStatus"] = [_PERSONAL_STATUS[v] for v in raw]
        elif codes is None:
            frame[name] = [int(v) for v in raw]
        else:
            frame[name] = [codes[v] for v in raw]
    frame[LABEL] = ["No Risk" if r[20] == "1" else "Risk" for r in rows]
    df = pd.DataFrame(frame)
    return df[[*FEATURES, LABEL]]


def load_german() -> pd.DataFrame:
    """The 1000 German credit applicants, decoded, with the ``Risk`` label (a fresh copy)."""
    return _load().copy()


def train_credit_model(data: pd.DataFrame | None = None, *, seed: int = 0) -> Pipeline:
    """A real scikit-learn credit-risk classifier: one-hot + scaled numbers -> logistic regression."""
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    df = load_german() if data is None else data
    pre = ColumnTransformer(
        [
            ("cat", OneHotEncoder(handle_unknown="ignore"), CATEGORICAL_FEATURES),
            ("num", StandardScaler(), NUMERIC_FEATURES),
        ]
    )
    model = Pipeline([("pre", pre), ("clf", LogisticRegression(max_iter=2000, C=1.0, random_state=seed))])
    model.fit(df[FEATURES], df[LABEL])
    return model


def train_amount_model(data: pd.DataFrame | None = None) -> Pipeline:
    """A regression model on the same data: the loan amount from the other attributes."""
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import Ridge
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    df = load_german() if data is None else data
    numeric = [c for c in NUMERIC_FEATURES if c != "LoanAmount"]
    pre = ColumnTransformer(
        [
            ("cat", OneHotEncoder(handle_unknown="ignore"), CATEGORICAL_FEATURES),
            ("num", StandardScaler(), numeric),
        ]
    )
    model = Pipeline([("pre", pre), ("reg", Ridge(alpha=1.0))])
    model.fit(df[AMOUNT_FEATURES], df["LoanAmount"].astype(float))
    return model


def train_purpose_model(data: pd.DataFrame | None = None, *, seed: int = 0) -> Pipeline:
    """A multiclass model on the same data: the loan purpose, grouped into four classes."""
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    df = load_german() if data is None else data
    cats = [c for c in CATEGORICAL_FEATURES if c != "LoanPurpose"]
    pre = ColumnTransformer(
        [
            ("cat", OneHotEncoder(handle_unknown="ignore"), cats),
            ("num", StandardScaler(), NUMERIC_FEATURES),
        ]
    )
    model = Pipeline([("pre", pre), ("clf", LogisticRegression(max_iter=3000, random_state=seed))])
    model.fit(df[PURPOSE_FEATURES], purpose_class(df["LoanPurpose"]))
    return model


AMOUNT_FEATURES = [c for c in FEATURES if c != "LoanAmount"]
PURPOSE_FEATURES = [c for c in FEATURES if c != "LoanPurpose"]
PURPOSE_CLASSES = ["car", "education_business", "home", "other"]
_PURPOSE_GROUP = {
    "car_new": "car",
    "car_used": "car",
    "furniture": "home",
    "radio_tv": "home",
    "appliances": "home",
    "repairs": "home",
    "education": "education_business",
    "retraining": "education_business",
    "business": "education_business",
    "vacation": "other",
    "other": "other",
}


def purpose_class(purpose: pd.Series) -> pd.Series:
    """The four-class target of the multiclass demo model."""
    return purpose.map(_PURPOSE_GROUP)
