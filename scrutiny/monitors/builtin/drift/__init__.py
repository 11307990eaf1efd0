"""Drift (contract §7.4): per-feature drift against training, drop in accuracy, drop in data consistency.

Small modules, one job each: ``reference`` (training bins), ``binning`` and ``histograms``
(mergeable partial results), ``measures`` (distances and tests), ``data_drift`` (verdicts per
feature), ``constraints`` (data consistency), ``detector`` (accuracy drift), ``transactions``
(both per transaction, clusters), ``archive`` (what is learned, stored versioned), ``monitor``
(the monitor of the framework).
"""

from scrutiny.monitors.builtin.drift.data_drift import DataDriftResult, DataDriftSettings, FeatureDrift, evaluate
from scrutiny.monitors.builtin.drift.histograms import DriftHistograms
from scrutiny.monitors.builtin.drift.monitor import DriftConfig, DriftMonitor
from scrutiny.monitors.builtin.drift.reference import DriftReference

__all__ = [
    "DataDriftResult",
    "DataDriftSettings",
    "DriftConfig",
    "DriftHistograms",
    "DriftMonitor",
    "DriftReference",
    "FeatureDrift",
    "evaluate",
]
