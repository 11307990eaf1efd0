"""Fairness (bias detection): disparate impact of a model's outcomes between a monitored and a
reference group of each protected attribute (OpenScale contract §7.1).

``config`` (what users write) -> ``resolve`` (checked against the subscription: a ``spec``
with each numeric attribute's bins) -> ``counting`` (mergeable counts per time bucket, from
``crosstab``) -> ``evaluate`` (rates, disparate impact, source of bias) -> ``report``;
``perturb`` scores twins through the engine, ``feedback`` adds label-based metrics,
``training_profile`` the training rates, ``recommend`` the attributes worth monitoring,
``sql`` the same counts computed by the database. ``monitor`` ties them to the framework.
"""

from scrutiny.monitors.builtin.fairness.config import FairnessConfig
from scrutiny.monitors.builtin.fairness.monitor import FairnessMonitor
from scrutiny.monitors.builtin.fairness.recommend import Recommendation, recommend

__all__ = ["FairnessConfig", "FairnessMonitor", "Recommendation", "recommend"]
