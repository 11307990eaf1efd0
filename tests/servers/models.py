"""The real scikit-learn models the fake cloud servers serve (German credit, trained once per process)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any

import numpy as np
import pandas as pd

from scrutiny.demo import credit


@dataclass(frozen=True)
class ServedModel:
    name: str
    problem_type: str  # binary | multiclass | regression
    features: list[str]
    estimator: Any
    label_column: str

    @property
    def classes(self) -> list[str]:
        return [str(c) for c in self.estimator.classes_] if self.problem_type != "regression" else []

    def frame(self, rows: list[list[Any]], fields: list[str] | None = None) -> pd.DataFrame:
        """Rows (possibly all strings, as CSV delivers them) as the typed frame the pipeline takes."""
        df = pd.DataFrame(rows, columns=fields or self.features)
        missing = [f for f in self.features if f not in df.columns]
        if missing:
            raise ValueError(f"missing features {missing}")
        df = df[self.features].copy()
        for col in credit.NUMERIC_FEATURES:
            if col in df.columns:
                df[col] = pd.to_numeric(df[col], errors="raise")
        return df

    def predict(self, df: pd.DataFrame) -> tuple[np.ndarray, np.ndarray | None]:
        """(prediction, probabilities [n, C] in ``classes`` order, or None for a regression)."""
        if self.problem_type == "regression":
            return np.asarray(self.estimator.predict(df), dtype=np.float64), None
        proba = np.asarray(self.estimator.predict_proba(df), dtype=np.float64)
        return np.asarray(self.classes, dtype=object)[proba.argmax(axis=1)], proba


@cache
def served_models() -> dict[str, ServedModel]:
    data = credit.load_german()
    return {
        "credit-risk": ServedModel(
            "credit-risk", "binary", credit.FEATURES, credit.train_credit_model(data), credit.LABEL
        ),
        "loan-purpose": ServedModel(
            "loan-purpose", "multiclass", credit.PURPOSE_FEATURES, credit.train_purpose_model(data), "LoanPurposeClass"
        ),
        "credit-amount": ServedModel(
            "credit-amount", "regression", credit.AMOUNT_FEATURES, credit.train_amount_model(data), "LoanAmount"
        ),
    }


def sample_rows(model: ServedModel, n: int, *, start: int = 0) -> tuple[list[str], list[list[Any]]]:
    """``n`` German credit applicants as common-format fields and values (JSON-native types)."""
    df = credit.load_german().iloc[start : start + n][model.features]
    return list(model.features), [
        [v.item() if hasattr(v, "item") else v for v in row] for row in df.itertuples(index=False)
    ]
