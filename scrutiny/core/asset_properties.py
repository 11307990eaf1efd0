"""Asset properties: what the monitored model takes and returns (OpenScale contract §1.5)."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from scrutiny.core.schema import RESERVED, check_name
from scrutiny.errors import InvalidInput


class ProblemType(StrEnum):
    BINARY = "binary"
    MULTICLASS = "multiclass"
    REGRESSION = "regression"

    @property
    def classification(self) -> bool:
        return self is not ProblemType.REGRESSION


class AssetProperties(BaseModel):
    """How to read the model's inputs and outputs. Unknown keys are kept (OpenScale sends more)."""

    model_config = ConfigDict(extra="allow", use_enum_values=False)

    problem_type: ProblemType
    input_data_type: str = "structured"
    feature_fields: list[str] = Field(default_factory=list)
    categorical_fields: list[str] = Field(default_factory=list)
    label_column: str | None = None
    prediction_field: str = "prediction"
    predicted_target_field: str | None = None
    probability_fields: list[str] | None = None
    class_probability_fields: list[str] | None = None
    labels: list[Any] | None = None
    transaction_id_field: str | None = None
    input_data_schema: Any = None
    output_data_schema: Any = None
    asset_revision: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _aliases(cls, data: Any) -> Any:
        if isinstance(data, dict) and "probability_fields" not in data and data.get("prediction_probability_field"):
            data = {**data, "probability_fields": [data["prediction_probability_field"]]}
        return data

    def checked(self) -> AssetProperties:
        """Cross-field rules, with errors that name the field."""
        for name in [*self.feature_fields, *self.categorical_fields]:
            check_name(name)
        if len(set(self.feature_fields)) != len(self.feature_fields):
            raise InvalidInput("feature_fields lists a column twice", field="feature_fields")
        unknown = [c for c in self.categorical_fields if c not in self.feature_fields]
        if unknown and self.feature_fields:
            raise InvalidInput(f"categorical_fields {unknown} are not in feature_fields", field="categorical_fields")
        if self.label_column and self.label_column in self.feature_fields:
            raise InvalidInput(f"label_column {self.label_column!r} must not be a model input", field="label_column")
        clash = sorted(RESERVED & set(self.feature_fields))
        if clash:
            raise InvalidInput(f"feature names {clash} are reserved for Scrutiny's own columns", field="feature_fields")
        outputs = [self.prediction_field, *(self.probability_fields or []), *(self.class_probability_fields or [])]
        both = sorted(set(outputs) & set(self.feature_fields))
        if both:
            raise InvalidInput(f"{both} cannot be both a feature and an output", field="prediction_field")
        if self.problem_type.classification and self.labels is not None and len(self.labels) < 2:
            raise InvalidInput("labels needs at least two classes", field="labels")
        if self.problem_type is ProblemType.BINARY and self.labels is not None and len(self.labels) != 2:
            raise InvalidInput("a binary model has exactly two labels", field="labels")
        return self

    @property
    def probability_columns(self) -> list[str]:
        """Where the response carries class probabilities (empty for regression)."""
        if self.class_probability_fields:
            return list(self.class_probability_fields)
        if self.probability_fields is not None:
            return list(self.probability_fields)
        return ["probability"] if self.problem_type.classification else []

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_none=True)
