"""Request and response bodies of the REST API (the OpenAPI document is generated from them).

Names here are a contract other tools depend on: add fields, do not rename them.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class ErrorDetail(BaseModel):
    model_config = ConfigDict(extra="allow")
    code: str = Field(description="stable machine-readable code, e.g. invalid_input, engine_unreachable")
    message: str
    record: int | None = Field(None, description="0-based index of the bad record in the batch")
    row: int | None = Field(None, description="1-based row within that record")
    field: str | None = None


class ErrorResponse(BaseModel):
    error: ErrorDetail


ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorResponse, "description": desc}
    for status, desc in {
        400: "Malformed request",
        401: "Missing or invalid API key",
        403: "The key's role does not allow this",
        404: "Not found",
        409: "Conflict",
        413: "Body too large",
        415: "Unsupported content type",
        422: "Invalid input (names the record, row and field)",
        502: "The engine failed (unreachable, 4xx, 5xx, bad response)",
        503: "The store is unavailable",
        504: "The engine did not answer in time",
    }.items()
}


class DataMart(BaseModel):
    id: str
    name: str
    database: dict[str, Any]
    created_at: str


class DataMarts(BaseModel):
    data_marts: list[DataMart]


class BindingCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=200)
    engine_type: str = Field(
        "custom",
        description="custom, sagemaker, azure_ml_studio, azure_ml_service, mlflow or kserve (OpenScale service_type names accepted)",
    )
    credentials: dict[str, Any] = Field(default_factory=dict, description="write-only: never returned")
    request_headers: dict[str, str] | None = None
    description: str | None = Field(None, max_length=2000)


class Binding(BaseModel):
    id: str
    name: str
    engine_type: str
    description: str | None = None
    settings: dict[str, Any]
    credential_keys: list[str]
    created_at: str


class Bindings(BaseModel):
    bindings: list[Binding]


class DeploymentOut(BaseModel):
    model_config = ConfigDict(extra="allow")
    id: str
    name: str
    scoring_url: str | None = None
    description: str = ""
    type: str = "online"
    created_at: str | None = None
    deployment_rn: str | None = None
    status: str | None = None
    asset: dict[str, Any] = Field(default_factory=dict)
    asset_properties: dict[str, Any] = Field(default_factory=dict)


class Deployments(BaseModel):
    deployments: list[DeploymentOut]


class AssetPropertiesIn(BaseModel):
    model_config = ConfigDict(extra="allow")
    problem_type: Literal["binary", "multiclass", "regression"]
    feature_fields: list[str] = Field(default_factory=list)
    categorical_fields: list[str] = Field(default_factory=list)
    label_column: str | None = None
    prediction_field: str = "prediction"
    probability_fields: list[str] | None = None
    class_probability_fields: list[str] | None = None
    labels: list[Any] | None = None
    input_data_schema: Any = None


class TrainingDataRef(BaseModel):
    model_config = ConfigDict(extra="forbid")
    path: str = Field(description="CSV or Parquet file readable by the server")
    format: Literal["csv", "parquet"] | None = None


class ManualDeployment(BaseModel):
    model_config = ConfigDict(extra="allow")
    id: str | None = None
    name: str | None = None
    scoring_url: str | None = None
    request_headers: dict[str, str] | None = None
    options: dict[str, Any] | None = None


class SubscriptionCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    binding_id: str
    deployment_id: str | None = Field(None, description="a discovered deployment")
    deployment: ManualDeployment | None = Field(None, description="or a scoring URL given by hand (no discovery)")
    asset_properties: AssetPropertiesIn
    training_data: TrainingDataRef | None = None
    asset: dict[str, Any] | None = None


class SubscriptionOut(BaseModel):
    model_config = ConfigDict(extra="allow")
    id: str
    binding_id: str
    deployment_id: str
    deployment: dict[str, Any]
    asset: dict[str, Any]
    asset_properties: dict[str, Any]
    layout: dict[str, Any]
    has_training_statistics: bool
    status: str
    created_at: str
    updated_at: str


class Subscriptions(BaseModel):
    subscriptions: list[SubscriptionOut]


class ScoringBody(BaseModel):
    model_config = ConfigDict(extra="allow")
    fields: list[str]
    values: list[Any]
    meta: dict[str, Any] | None = None


class ScoringResult(BaseModel):
    fields: list[str]
    values: list[list[Any]]
    labels: list[Any] | None = None
    prediction_derived: bool = False


class TableIn(BaseModel):
    model_config = ConfigDict(extra="allow")
    fields: list[str] | None = None
    values: list[Any]


class RequestIn(TableIn):
    meta: TableIn | None = None


class PayloadRecordIn(BaseModel):
    """One scoring transaction: the request sent to the model and the response it gave."""

    model_config = ConfigDict(extra="allow")
    scoring_id: str | None = None
    scoring_timestamp: str | None = None
    response_time: float | str | None = None
    deployment_id: str | None = None
    asset_revision: str | None = None
    request: RequestIn
    response: TableIn | str


class OpenScalePayloadRecordIn(PayloadRecordIn):
    binding_id: str
    subscription_id: str


class StoreResult(BaseModel):
    stored: int = Field(description="rows written")
    duplicates: int = Field(0, description="rows skipped: their scoring_id was already stored")
    records: int = 0


class PayloadPage(BaseModel):
    total: int = Field(description="rows in the time window")
    rows: list[dict[str, Any]]


class ApiKeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=200)
    role: Literal["admin", "viewer", "logger"] = "viewer"


class ApiKeyOut(BaseModel):
    id: str
    name: str
    role: str
    hint: str
    created_at: str
    revoked: bool = False
    key: str | None = Field(None, description="the key itself, shown once at creation")


class ApiKeys(BaseModel):
    api_keys: list[ApiKeyOut]


class Health(BaseModel):
    status: str
    version: str
    database: str
