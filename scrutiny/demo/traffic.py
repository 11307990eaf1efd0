"""Realistic scoring traffic for the demo: credit applicants drawn around the real data set."""

from __future__ import annotations

from typing import Any

import numpy as np

from scrutiny.demo import credit


class Applicants:
    """Draws applicants: a real row with its numbers jittered, so traffic looks like the training
    data without repeating it. ``drift`` (0..1) shifts it: younger, larger and longer loans."""

    def __init__(self, seed: int = 7) -> None:
        self.rng = np.random.default_rng(seed)
        self.data = credit.load_german()
        self.drift = 0.0

    def sample(self, n: int) -> list[list[Any]]:
        rows = self.data.iloc[self.rng.integers(0, len(self.data), n)][credit.FEATURES].reset_index(drop=True)
        d = self.drift
        age = rows["Age"].to_numpy(dtype=float) + self.rng.normal(0, 2, n) - d * 12
        rows["Age"] = np.clip(np.round(age), 19, 75).astype(int)
        amount = rows["LoanAmount"].to_numpy(dtype=float) * self.rng.lognormal(0, 0.1, n) * (1 + 1.5 * d)
        rows["LoanAmount"] = np.round(amount).astype(int)
        duration = rows["LoanDuration"].to_numpy(dtype=float) + self.rng.normal(0, 2, n) + d * 18
        rows["LoanDuration"] = np.clip(np.round(duration), 4, 72).astype(int)
        if d > 0:
            flip = self.rng.random(n) < d * 0.5
            rows.loc[flip, "CheckingStatus"] = "less_0"
        return rows.values.tolist()

    def labels_for(self, rows: list[list[Any]], model: Any) -> list[str]:
        """Plausible true outcomes: mostly what a model trained on all data says, with noise."""
        import pandas as pd

        frame = pd.DataFrame(rows, columns=credit.FEATURES)
        p = model.predict_proba(frame)[:, 1]
        return ["Risk" if u < q else "No Risk" for u, q in zip(self.rng.random(len(rows)), p, strict=True)]
