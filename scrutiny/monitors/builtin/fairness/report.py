"""A fairness run's results as the framework stores them: flat values per attribute, and the
details a user drills into (rates per group, training rates, source of bias, twins, feedback)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from scrutiny.monitors.builtin.fairness.counting import FairnessCounts
from scrutiny.monitors.builtin.fairness.evaluate import AttributeResult
from scrutiny.monitors.builtin.fairness.feedback import METRICS as FEEDBACK_METRICS
from scrutiny.monitors.builtin.fairness.perturb import PerturbationResult
from scrutiny.monitors.builtin.fairness.spec import FairnessSpec

VALUE_KEYS = ("fairness_value", "average_fairness_value", "statistical_parity_difference")


@dataclass
class FairnessReport:
    spec: FairnessSpec
    counts: FairnessCounts
    payload: list[AttributeResult]  # the window's own rows
    perturbed: dict[str, AttributeResult] = field(default_factory=dict)  # payload + perturbed, per attribute
    perturbation: PerturbationResult | None = None
    feedback: dict[str, Any] | None = None
    training: dict[str, Any] = field(default_factory=dict)  # per attribute, from training_profile

    def headline(self) -> list[AttributeResult]:
        """What is compared with the thresholds: payload + perturbed where twins were scored
        (OpenScale's definition), the payload alone otherwise."""
        return [self.perturbed.get(r.feature, r) for r in self.payload]

    def values(self) -> dict[str, float | None]:
        """``{"fairness_value.Sex": 0.85, ...}``; null where undefined (the reason is in details)."""
        out: dict[str, float | None] = {}
        for r in self.headline():
            for key in VALUE_KEYS:
                out[f"{key}.{r.feature}"] = getattr(r, key)
            out[f"monitored_favourable_rate.{r.feature}"] = r.monitored.rate
            out[f"reference_favourable_rate.{r.feature}"] = r.reference.rate
            for key in FEEDBACK_METRICS:
                fb = (self.feedback or {}).get(r.feature)
                if fb is not None:
                    out[f"{key}.{r.feature}"] = fb.get(key)
        return out

    def details(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "records": self.counts.rows,
            "outcome": self.spec.outcome.to_dict(),
            "view": "payload_perturbed" if self.perturbed else "payload",
        }
        attrs = {}
        for r in self.payload:
            entry: dict[str, Any] = {
                "payload": r.to_dict(),
                "training": (self.training.get(r.feature) or {}).get("rates"),
            }
            if r.feature in self.perturbed:
                entry["payload_perturbed"] = self.perturbed[r.feature].to_dict()
            if self.feedback and r.feature in self.feedback:
                entry["feedback"] = self.feedback[r.feature]
            if r.reason:
                entry["reason"] = r.reason
            attrs[r.feature] = entry
        d["attributes"] = attrs
        d["fairness_metrics"] = [row for r in self.headline() for row in r.metric_rows()]
        if self.perturbation is not None:
            d["perturbation"] = self.perturbation.to_dict()
        if self.spec.warnings:
            d["warnings"] = list(self.spec.warnings)
        return d
