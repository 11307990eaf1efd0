"""What fairness keeps from the training data, computed once at configuration.

* the favourable rate per group of the training *labels*, shown beside each run's rates
  (contract §7.1 step 8; OpenScale's ``training_data_distributions``);
* per attribute and group, the pool of training values a perturbed twin draws its new value
  from (step 2: categorical values by training frequency, numeric values from the training
  values inside the other group's ranges), kept compact: at most ``MAX_POOL`` distinct values.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from scrutiny.monitors.builtin.fairness.counting import count_frame
from scrutiny.monitors.builtin.fairness.crosstab import canonical, factorize
from scrutiny.monitors.builtin.fairness.evaluate import evaluate_attribute
from scrutiny.monitors.builtin.fairness.spec import AttributeSpec, FairnessSpec

if TYPE_CHECKING:
    import pandas as pd

MAX_POOL = 2000


def training_profile(spec: FairnessSpec, frame: pd.DataFrame, label_column: str | None) -> dict[str, Any]:
    """``{attribute: {"rates": ..., "pools": {"monitored": pool, "reference": pool}}}``."""
    out: dict[str, Any] = {}
    counts = None
    if label_column and label_column in frame.columns:
        present = [a for a in spec.attributes if a.name in frame.columns]
        sub = FairnessSpec(present, spec.outcome, spec.min_records)
        counts = count_frame(frame[[*(a.name for a in present), label_column]], sub, outcome_column=label_column)
    for attr in spec.attributes:
        if attr.name not in frame.columns:
            continue
        entry: dict[str, Any] = {"records": len(frame)}
        if counts is not None:
            r = evaluate_attribute(counts.attributes[attr.name], attr, spec.outcome)
            entry["rates"] = {
                "monitored": r.monitored.rate,
                "reference": r.reference.rate,
                "fairness_value": r.fairness_value,
                "groups": [{"group": g.group, "rate": g.rate, "records": g.records} for g in r.groups],
                "reference_records": r.reference.records,
                "monitored_records": r.monitored.records,
            }
        entry["pools"] = pools(attr, frame[attr.name])
        out[attr.name] = entry
    return out


def pools(attr: AttributeSpec, series: pd.Series) -> dict[str, dict[str, list[Any]]]:
    """The training values of each group with their frequencies."""
    import pandas as pd

    values = series.dropna()
    if attr.categorical:
        codes, keys = factorize(values.astype(object).to_numpy())
        freq = np.bincount(codes[codes >= 0], minlength=len(keys))
        mon, ref = attr.membership(keys)
        return {
            "monitored": _pool([keys[i] for i in np.flatnonzero(mon >= 0)], freq[mon >= 0]),
            "reference": _pool([keys[i] for i in np.flatnonzero(ref)], freq[ref]),
        }
    x = pd.to_numeric(values, errors="coerce").dropna().to_numpy(dtype=np.float64)
    from scrutiny.monitors.builtin.fairness.binning import bin_index

    idx = bin_index(x, attr.edge_array)
    mon, ref = attr.membership(list(range(len(attr.edge_array) - 1)))
    out = {}
    for name, mask in (("monitored", mon[idx] >= 0), ("reference", ref[idx])):
        uniq, cnt = np.unique(x[mask], return_counts=True)
        if len(uniq) > MAX_POOL:  # many distinct reals: evenly spaced quantiles, equal weights
            uniq = np.quantile(x[mask], np.linspace(0, 1, MAX_POOL))
            cnt = np.ones(MAX_POOL, dtype=np.int64)
        out[name] = _pool(uniq.tolist(), cnt)
    return out


def _pool(values: list[Any], weights: np.ndarray) -> dict[str, list[Any]]:
    return {"values": [canonical(v) for v in values], "weights": [int(w) for w in weights]}
