"""A subscription as the rest of Scrutiny sees it: the model's asset properties and the
resolved layout of its payload and feedback tables.

The layout is decided once (at subscription, or from the first payload when no schema was
given) and stored, so every writer and reader agrees on table names, column names and types.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from scrutiny.core.asset_properties import AssetProperties, ProblemType
from scrutiny.core.schema import Column, Kind, Schema

# Fixed columns at the head of every payload and feedback table, in order.
SCORING_ID = "scoring_id"
SCORING_TIMESTAMP = "scoring_timestamp"
DEPLOYMENT_ID = "deployment_id"
ASSET_REVISION = "asset_revision"
PREDICTION_PROBABILITY = "prediction_probability"
RESPONSE_TIME = "response_time"


def kind_of_labels(labels: list[Any] | None) -> Kind | None:
    if not labels:
        return None
    if all(isinstance(v, bool) for v in labels):
        return Kind.BOOL
    if all(isinstance(v, int) and not isinstance(v, bool) for v in labels):
        return Kind.INT
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in labels):
        return Kind.FLOAT
    return Kind.STR


@dataclass
class Layout:
    """Names and kinds of a subscription's record columns."""

    payload_table: str
    feedback_table: str
    features: Schema = field(default_factory=lambda: Schema(()))
    extra: Schema = field(default_factory=lambda: Schema(()))  # meta and extra response columns, added on sight
    prediction_column: str = "prediction"
    prediction_kind: Kind | None = None
    probability_column: str | None = "probability"
    label_column: str | None = None
    labels: list[Any] | None = None

    @property
    def complete(self) -> bool:
        """True when the tables can be created (the first payload is not needed to decide types)."""
        return bool(self.features) and self.prediction_kind is not None

    def to_dict(self) -> dict[str, Any]:
        return {
            "payload_table": self.payload_table,
            "feedback_table": self.feedback_table,
            "features": self.features.to_list(),
            "extra": self.extra.to_list(),
            "prediction_column": self.prediction_column,
            "prediction_kind": self.prediction_kind.value if self.prediction_kind else None,
            "probability_column": self.probability_column,
            "label_column": self.label_column,
            "labels": self.labels,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Layout:
        return cls(
            payload_table=d["payload_table"],
            feedback_table=d["feedback_table"],
            features=Schema.from_list(d.get("features") or []),
            extra=Schema.from_list(d.get("extra") or []),
            prediction_column=d.get("prediction_column") or "prediction",
            prediction_kind=Kind(d["prediction_kind"]) if d.get("prediction_kind") else None,
            probability_column=d.get("probability_column"),
            label_column=d.get("label_column"),
            labels=d.get("labels"),
        )

    def payload_columns(self) -> list[tuple[str, Kind | str]]:
        """(name, kind) of every payload column in table order; the probability vector has kind ``"vector"``."""
        cols: list[tuple[str, Kind | str]] = [
            (SCORING_ID, Kind.STR),
            (SCORING_TIMESTAMP, "timestamp"),
            (DEPLOYMENT_ID, Kind.STR),
            (ASSET_REVISION, Kind.STR),
        ]
        cols += [(c.name, c.kind) for c in self.features]
        cols += [(c.name, c.kind) for c in self.extra]
        cols.append((self.prediction_column, self.prediction_kind or Kind.STR))
        if self.probability_column:
            cols.append((self.probability_column, "vector"))
            cols.append((PREDICTION_PROBABILITY, Kind.FLOAT))
        cols.append((RESPONSE_TIME, Kind.INT))
        return cols

    def feedback_columns(self) -> list[tuple[str, Kind | str]]:
        """Feedback rows: the features and the label, beside the prediction they judge.

        ``scoring_id`` is the payload row a feedback row labels when the client gave it; the
        prediction columns are then copied from that payload row (or re-scored), so quality
        metrics read one table.
        """
        cols: list[tuple[str, Kind | str]] = [
            (SCORING_ID, Kind.STR),
            (SCORING_TIMESTAMP, "timestamp"),
            (DEPLOYMENT_ID, Kind.STR),
            (ASSET_REVISION, Kind.STR),
        ]
        cols += [(c.name, c.kind) for c in self.features]
        label_kind = self.prediction_kind or Kind.STR
        if self.label_column:
            cols.append((self.label_column, label_kind))
        cols.append((self.prediction_column, label_kind))
        if self.probability_column:
            cols.append((self.probability_column, "vector"))
            cols.append((PREDICTION_PROBABILITY, Kind.FLOAT))
        return cols


@dataclass
class Subscription:
    id: str
    binding_id: str
    deployment_id: str
    deployment: dict[str, Any]
    asset: dict[str, Any]
    properties: AssetProperties
    layout: Layout
    training_statistics: dict[str, Any] | None
    status: str
    created_at: datetime
    updated_at: datetime

    @property
    def problem_type(self) -> ProblemType:
        return self.properties.problem_type

    @property
    def labels(self) -> list[Any] | None:
        return self.layout.labels

    @property
    def feature_fields(self) -> list[str]:
        return self.layout.features.names

    @property
    def categorical_fields(self) -> list[str]:
        return [c.name for c in self.layout.features if c.categorical]

    def feature(self, name: str) -> Column | None:
        return self.layout.features.get(name)

    @property
    def scoring_url(self) -> str | None:
        return (self.deployment.get("scoring_endpoint") or {}).get("url") or self.deployment.get("scoring_url")

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "binding_id": self.binding_id,
            "deployment_id": self.deployment_id,
            "deployment": {k: v for k, v in self.deployment.items() if k not in ("credentials", "sealed_credentials")},
            "asset": self.asset,
            "asset_properties": self.properties.to_dict(),
            "layout": self.layout.to_dict(),
            "has_training_statistics": self.training_statistics is not None,
            "status": self.status,
            "created_at": self.created_at.isoformat().replace("+00:00", "Z"),
            "updated_at": self.updated_at.isoformat().replace("+00:00", "Z"),
        }
