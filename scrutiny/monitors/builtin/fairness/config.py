"""The fairness configuration as users write it (OpenScale contract §1.8 and §7.1).

Both OpenScale shapes are accepted: v1 (``minority``/``majority``, ``threshold`` as a ratio such
as 0.8) and v2 (``thresholds`` as percentages such as 80, with per-attribute
``specific_values``). Scrutiny's own names (``monitored``/``reference``) are accepted as well.
This module only checks the shape; ``resolve.resolve`` checks it against the subscription.
"""

from __future__ import annotations

from typing import Any

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, field_validator, model_validator

from scrutiny.errors import InvalidInput
from scrutiny.monitors.base import MonitorConfig

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


class PerturbationConfig(BaseModel):
    """Perturbation-augmented evaluation (contract §7.1 steps 2-6): each window row gets a twin
    with the attribute moved to the other group, scored through the engine (never logged)."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = False
    max_records: int = Field(10_000, ge=1, le=1_000_000, description="most recent window rows perturbed per run")
    batch_rows: int = Field(1_000, ge=1, le=100_000, description="rows per internal scoring call")
    max_listed: int = Field(100, ge=0, le=10_000, description="biased transactions kept for drill-down")


class FairnessConfig(MonitorConfig):
    """The fairness monitor's configuration (``PUT /v1/subscriptions/{id}/monitors/fairness``).

    ``thresholds`` takes Scrutiny's form (``{"metric": "fairness_value.Age", "type":
    "lower_limit", "value": 0.9}``) and OpenScale v2's (``{"metric_id": "fairness_value",
    "type": "lower_limit", "value": 80, "specific_values": [...]}``); percentages become ratios.
    """

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
    perturbation: PerturbationConfig = Field(default_factory=PerturbationConfig)
    max_feedback_rows: int = Field(
        10_000, ge=1, le=10_000_000, description="label-based metrics use the most recent N feedback rows"
    )
    # Written by OpenScale's export; accepted and ignored (Scrutiny computes them itself).
    distributions: list[Any] | None = Field(None, exclude=True)
    perform_debias: bool | None = Field(None, exclude=True)

    @model_validator(mode="before")
    @classmethod
    def _v2_instance(cls, data: Any) -> Any:
        # OpenScale v2 monitor instance: {"parameters": {...}, "thresholds": [...]}
        if isinstance(data, dict) and "parameters" in data and "features" not in data:
            params = data.get("parameters")
            if isinstance(params, dict):
                rest = {
                    k: v
                    for k, v in data.items()
                    if k not in ("parameters", "target", "data_mart_id", "monitor_definition_id")
                }
                return {**params, **rest}
        return data

    @field_validator("perturbation", mode="before")
    @classmethod
    def _flag(cls, v: Any) -> Any:
        return {"enabled": v} if isinstance(v, bool) else v

    @field_validator("thresholds", mode="before")
    @classmethod
    def _openscale_thresholds(cls, v: Any) -> Any:
        return openscale_thresholds(v) if isinstance(v, list) else v


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


RATIO_METRICS = ("fairness_value", "average_fairness_value")


def openscale_thresholds(items: list[Any]) -> list[Any]:
    """OpenScale v2 threshold entries as Scrutiny thresholds; fairness percentages as ratios."""
    out: list[Any] = []
    for i, t in enumerate(items):
        if not isinstance(t, dict):
            out.append(t)
            continue
        if "metric_id" in t:  # v2: {"metric_id", "type", "value" (%), "specific_values": [...]}
            metric = t["metric_id"]
            kind = t.get("type", "lower_limit")
            if t.get("value") is not None:
                out.append(
                    {
                        "metric": metric,
                        "type": kind,
                        "value": _as_ratio(metric, t["value"], f"thresholds[{i}].value", True),
                    }
                )
            for j, sv in enumerate(t.get("specific_values") or []):
                for tag in sv.get("applies_to") or []:
                    if tag.get("key") in ("feature", "attribute") and isinstance(tag.get("value"), str):
                        where = f"thresholds[{i}].specific_values[{j}].value"
                        value = _as_ratio(metric, sv.get("value"), where, True)
                        out.append({"metric": f"{metric}.{tag['value']}", "type": kind, "value": value})
            continue
        metric = t.get("metric")
        if isinstance(metric, str) and t.get("value") is not None:
            t = {**t, "value": _as_ratio(metric, t["value"], f"thresholds[{i}].value", None)}
        out.append(t)
    return out


def _as_ratio(metric: str, value: Any, field: str, percent: bool | None) -> Any:
    if metric.split(".", 1)[0] not in RATIO_METRICS or not isinstance(value, (int, float)):
        return value
    return ratio(value, field=field, percent=percent)


def default_thresholds(config: FairnessConfig) -> list[tuple[str, float]]:
    """The monitor's default limits: ``fairness_value`` 80% (contract §7.0), and each
    attribute's v1 ``threshold`` as a limit of its own (``fairness_value.<attribute>``)."""
    out = [("fairness_value", DEFAULT_THRESHOLD)]
    for i, a in enumerate(config.features):
        if a.threshold is not None:
            out.append((f"fairness_value.{a.feature}", ratio(a.threshold, field=f"features[{i}].threshold")))
    return out


def attribute_thresholds(config: FairnessConfig) -> dict[str, float | None]:
    """The lower limit of each attribute's ``fairness_value``, as the framework applies it: a
    limit of the attribute's own (the user's, else its v1 ``threshold``) beats one on
    ``fairness_value``, the user's beats the default; ``value: null`` removes a limit."""
    user = {t.metric: t.value for t in config.thresholds if t.type.value == "lower_limit"}
    limits: dict[str, float | None] = dict(default_thresholds(config))
    limits.update(user)
    out = {}
    for a in config.features:
        key = f"fairness_value.{a.feature}"
        out[a.feature] = limits[key] if key in limits else limits.get("fairness_value")
    return out


def parse_config(body: Any) -> FairnessConfig:
    """The configuration from JSON, with errors that name the field."""
    if isinstance(body, FairnessConfig):
        return body
    if not isinstance(body, dict):
        raise InvalidInput("the fairness configuration must be an object")
    try:
        return FairnessConfig.model_validate(body)
    except Exception as exc:  # pydantic.ValidationError
        errors = getattr(exc, "errors", None)
        if not callable(errors):
            raise
        first = errors()[0]
        loc = ".".join(str(x) for x in first.get("loc", ()))
        raise InvalidInput(str(first.get("msg")), field=loc or None) from None
