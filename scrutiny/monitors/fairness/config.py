"""The fairness configuration as users write it (OpenScale contract §1.8 and §7.1).

Both OpenScale shapes are accepted: v1 (``minority``/``majority``, ``threshold`` as a ratio such
as 0.8) and v2 (``thresholds`` as percentages such as 80, with per-attribute
``specific_values``). Scrutiny's own names (``monitored``/``reference``) are accepted as well.
This module only checks the shape; ``resolve.resolve`` checks it against the subscription.
"""

from __future__ import annotations

from typing import Any

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, field_validator

from scrutiny.errors import InvalidInput

DEFAULT_THRESHOLD = 0.8
DEFAULT_MIN_RECORDS = 100


class AttributeConfig(BaseModel):
    """One protected attribute: its monitored group, its reference group, its threshold."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    feature: str = Field(validation_alias=AliasChoices("feature", "attribute", "name"))
    monitored: list[Any] = Field(
        validation_alias=AliasChoices("minority", "monitored"),
        description="values (categorical) or closed [lo, hi] ranges (numeric) of the monitored group",
    )
    reference: list[Any] | None = Field(
        None,
        validation_alias=AliasChoices("majority", "reference"),
        description="the reference group; omitted = every value outside the monitored group",
    )
    threshold: float | None = Field(
        None, description="lower limit of disparate impact: a ratio (0.8, v1) or a percentage (80, v2)"
    )
    type: str | None = Field(None, description="categorical, integer, float or double; default from the schema")


class ThresholdValue(BaseModel):
    """v2 ``specific_values`` entry: a threshold for the attributes its tags name."""

    model_config = ConfigDict(extra="allow")

    applies_to: list[dict[str, Any]] = Field(default_factory=list)
    value: float


class V2Threshold(BaseModel):
    model_config = ConfigDict(extra="allow")

    metric_id: str = "fairness_value"
    type: str = "lower_limit"
    value: float
    specific_values: list[ThresholdValue] = Field(default_factory=list)


class PerturbationConfig(BaseModel):
    """Perturbation-augmented evaluation (contract §7.1 steps 2-6): each window row gets a twin
    with the attribute moved to the other group, scored through the engine (never logged)."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = False
    max_records: int = Field(10_000, ge=1, le=1_000_000, description="most recent window rows perturbed per run")
    batch_rows: int = Field(1_000, ge=1, le=100_000, description="rows per internal scoring call")
    max_listed: int = Field(100, ge=0, le=10_000, description="biased transactions kept for drill-down")


class FairnessConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    features: list[AttributeConfig] = Field(validation_alias=AliasChoices("features", "attributes"), min_length=1)
    favourable_class: list[Any] = Field(
        validation_alias=AliasChoices("favourable_class", "favourable_classes", "favorable_class", "favourable"),
        min_length=1,
        description="labels (classification) or [lo, hi] prediction ranges (regression)",
    )
    unfavourable_class: list[Any] | None = Field(
        None,
        validation_alias=AliasChoices(
            "unfavourable_class", "unfavourable_classes", "unfavorable_class", "unfavourable"
        ),
        description="omitted = every outcome that is not favourable",
    )
    min_records: int = Field(DEFAULT_MIN_RECORDS, ge=1, le=10_000_000)
    class_label: str | None = Field(None, description="the output column judged; default the prediction column")
    thresholds: list[V2Threshold] | None = None
    perturbation: PerturbationConfig = Field(default_factory=PerturbationConfig)
    # Written by OpenScale's export; accepted and ignored (Scrutiny computes them itself).
    distributions: list[Any] | None = None
    perform_debias: bool | None = None

    @field_validator("perturbation", mode="before")
    @classmethod
    def _flag(cls, v: Any) -> Any:
        return {"enabled": v} if isinstance(v, bool) else v


def ratio(value: float, *, field: str, percent: bool | None = None) -> float:
    """A threshold as a ratio. v1 writes ratios (0.8); v2 writes percentages (80).

    Without a hint, a value in (0, 1] is a ratio and one in (1, 100] a percentage: a lower limit
    above 100% would flag a model that favours the monitored group, which is not bias.
    """
    v = float(value)
    if percent is True:
        if not 0 < v <= 100:
            raise InvalidInput(f"threshold {value!r}% must be a percentage in (0, 100]", field=field)
        return v / 100
    if 0 < v <= 1:
        return v
    if 1 < v <= 100 and percent is None:
        return v / 100
    raise InvalidInput(
        f"threshold {value!r} is out of range: give a ratio in (0, 1] (v1, e.g. 0.8) or a percentage in (1, 100] (v2, e.g. 80)",
        field=field,
    )


def thresholds(config: FairnessConfig) -> dict[str, float]:
    """The threshold of each attribute as a ratio: its own, else a v2 specific value, else the
    v2 default, else 0.8."""
    default = DEFAULT_THRESHOLD
    specific: dict[str, float] = {}
    for i, t in enumerate(config.thresholds or []):
        if t.metric_id != "fairness_value":
            continue
        if t.type != "lower_limit":
            raise InvalidInput(
                "fairness_value takes a lower_limit (bias is a value below it)", field=f"thresholds[{i}].type"
            )
        default = ratio(t.value, field=f"thresholds[{i}].value", percent=True)
        for j, sv in enumerate(t.specific_values):
            for tag in sv.applies_to:
                if tag.get("key") in ("feature", "attribute") and isinstance(tag.get("value"), str):
                    specific[tag["value"]] = ratio(
                        sv.value, field=f"thresholds[{i}].specific_values[{j}].value", percent=True
                    )
    out = {}
    for i, a in enumerate(config.features):
        if a.threshold is not None:
            out[a.feature] = ratio(a.threshold, field=f"features[{i}].threshold")
        else:
            out[a.feature] = specific.get(a.feature, default)
    return out


def parse_config(body: Any) -> FairnessConfig:
    """The configuration from JSON, with errors that name the field."""
    if isinstance(body, FairnessConfig):
        return body
    if not isinstance(body, dict):
        raise InvalidInput("the fairness configuration must be an object")
    if "parameters" in body and "features" not in body:  # OpenScale v2 monitor-instance shape
        body = {**body["parameters"], **({"thresholds": body["thresholds"]} if "thresholds" in body else {})}
    try:
        return FairnessConfig.model_validate(body)
    except Exception as exc:  # pydantic.ValidationError
        errors = getattr(exc, "errors", None)
        if not callable(errors):
            raise
        first = errors()[0]
        loc = ".".join(str(x) for x in first.get("loc", ()))
        raise InvalidInput(str(first.get("msg")), field=loc or None) from None
