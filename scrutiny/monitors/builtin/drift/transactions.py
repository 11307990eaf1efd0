"""Per-transaction drift: accuracy (the detector) and consistency (the constraints) together.

OpenScale reports, for the transactions analysed, which drifted on accuracy only, on both, and
on data consistency only, and groups the drifted ones into clusters whose features carry an
impact class (*large*, *some*, *small*). Here a cluster is a set of drifted transactions that
share a cause: the same broken constraints (consistency), or the same predicted class
(accuracy only). A feature's impact in a cluster is the Jensen-Shannon distance between the
cluster's values and the training data on the reference bins: at least 0.3 is *large*, at
least 0.1 *some*, below that *small*.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from scrutiny.monitors.builtin.drift import measures
from scrutiny.monitors.builtin.drift.constraints import ConsistencyCheck
from scrutiny.monitors.builtin.drift.histograms import DriftHistograms
from scrutiny.monitors.builtin.drift.reference import DriftReference

LARGE = 0.3
SOME = 0.1
MAX_CLUSTERS = 10
CLUSTER_FEATURES = 5
CLUSTER_EXAMPLES = 10


def impact_class(js: float) -> str:
    return "large" if js >= LARGE else "some" if js >= SOME else "small"


@dataclass
class TransactionDrift:
    """Verdicts for the analysed transactions, in the order given (bool arrays, or None when
    that measure is disabled or unavailable)."""

    scoring_ids: np.ndarray
    accuracy: np.ndarray | None = None
    consistency: np.ndarray | None = None
    p_correct: np.ndarray | None = None
    prediction: np.ndarray | None = None
    check: ConsistencyCheck | None = None

    @property
    def analysed(self) -> int:
        return len(self.scoring_ids)

    def groups(self) -> dict[str, np.ndarray]:
        n = self.analysed
        acc = self.accuracy if self.accuracy is not None else np.zeros(n, dtype=bool)
        con = self.consistency if self.consistency is not None else np.zeros(n, dtype=bool)
        return {"accuracy_only": acc & ~con, "both": acc & con, "consistency_only": con & ~acc}

    def summary(
        self, ref: DriftReference | None, columns: Mapping[str, np.ndarray], limit: int = 1000
    ) -> dict[str, Any]:
        """Counts per group, the drifted transactions (at most ``limit`` ids per group, the most
        likely wrong first), and the clusters."""
        groups = self.groups()
        out: dict[str, Any] = {"analysed": self.analysed}
        for name, mask in groups.items():
            idx = np.flatnonzero(mask)
            if self.p_correct is not None and len(idx):
                idx = idx[np.lexsort((idx, self.p_correct[idx]))]
            out[name] = {"count": len(idx), "scoring_ids": self.scoring_ids[idx[:limit]].tolist()}
        out["clusters"] = self.clusters(ref, columns) if ref is not None else []
        return out

    def clusters(self, ref: DriftReference, columns: Mapping[str, np.ndarray]) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        if self.check is not None and len(self.check.violation_rows):
            out += self._consistency_clusters(ref, columns)
        groups = self.groups()
        acc_only = groups["accuracy_only"]
        if acc_only.any():
            import pandas as pd

            pred = self.prediction if self.prediction is not None else np.full(self.analysed, None, dtype=object)
            idx = np.flatnonzero(acc_only)
            codes, uniques = pd.factorize(pd.Series(pred[acc_only], dtype=object).astype(str))
            counts = np.bincount(codes, minlength=len(uniques))
            for u in sorted(range(len(uniques)), key=lambda u: (-counts[u], str(uniques[u]))):
                rows = idx[codes == u]
                out.append({"kind": "accuracy", "predicted": str(uniques[u]), **self._describe(ref, columns, rows)})
        out.sort(key=lambda c: (-c["rows"], c["kind"]))
        return out[:MAX_CLUSTERS]

    def _consistency_clusters(self, ref: DriftReference, columns: Mapping[str, np.ndarray]) -> list[dict[str, Any]]:
        check = self.check
        assert check is not None
        order = np.lexsort((check.violation_constraints, check.violation_rows))
        rows, cons = check.violation_rows[order], check.violation_constraints[order]
        signatures: dict[tuple[int, ...], list[int]] = {}
        starts = np.flatnonzero(np.r_[True, rows[1:] != rows[:-1]])
        ends = np.r_[starts[1:], len(rows)]
        for s, e in zip(starts.tolist(), ends.tolist(), strict=True):
            signatures.setdefault(tuple(cons[s:e].tolist()), []).append(int(rows[s]))
        out = []
        for sig, members in sorted(signatures.items(), key=lambda kv: (-len(kv[1]), kv[0]))[:MAX_CLUSTERS]:
            out.append(
                {
                    "kind": "consistency",
                    "constraints": [check.constraints[i].id for i in sig],
                    "explanation": [check.constraints[i].describe() for i in sig],
                    **self._describe(ref, columns, np.asarray(members, dtype=np.int64)),
                }
            )
        return out

    def _describe(self, ref: DriftReference, columns: Mapping[str, np.ndarray], rows: np.ndarray) -> dict[str, Any]:
        part = {k: v[rows] for k, v in columns.items() if k in ref.offsets}
        hist = DriftHistograms.from_columns(ref, part, len(rows))
        scores = []
        for f in ref.features:
            cur = hist.feature(ref, f.name)
            if cur.sum() == 0 or f.training.sum() == 0:
                continue
            g = f.effect_groups
            n = int(g.max()) + 1
            js = measures.js_distance(np.bincount(g, f.training, n), np.bincount(g, cur, n))
            scores.append((js, f.name))
        scores.sort(key=lambda t: (-t[0], t[1]))
        features = [
            {"feature": name, "js_distance": js, "impact": impact_class(js)} for js, name in scores[:CLUSTER_FEATURES]
        ]
        return {"rows": len(rows), "features": features, "examples": self.scoring_ids[rows[:CLUSTER_EXAMPLES]].tolist()}
