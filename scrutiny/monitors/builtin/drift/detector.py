"""Accuracy drift (OpenScale's "drop in accuracy", contract §7.4): a model of the model's errors.

Trained once per subscription from the training rows scored by the deployed model: a
histogram gradient-boosting classifier learns, from the features and the model's class
probabilities, whether the model's prediction is correct. On live records it gives each
transaction a probability of being correct; a transaction is *drifted* when the detector
predicts "incorrect".

The detector's cut-off is set on the held-out test part so that the share it predicts
correct there equals the model's accuracy there (``base_accuracy``). With the usual 0.5
cut-off an imperfect detector calls most rows correct, and the "estimated accuracy" of the
training data itself would sit well above its real accuracy: a drop of, say, -0.15 on data
that has not drifted at all. Matched this way, data like the training data gives a drop near 0.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from scrutiny.errors import InvalidInput
from scrutiny.monitors.builtin.drift.binning import CategoryCoder
from scrutiny.monitors.builtin.drift.measures import wilson

TEST_SIZE = 0.3
MAX_CATEGORIES = 250  # histogram gradient boosting takes at most 255 categories per feature
MIN_TRAINING_ROWS = 50


@dataclass
class FeatureEncoder:
    """Features and class probabilities as the detector's input matrix (float64, NaN = missing).
    Categories are codes of the most frequent training categories; the rest share one code."""

    numeric: list[str]
    categorical: dict[str, list[Any]]
    classes: int

    def __post_init__(self) -> None:
        self._coders = {name: CategoryCoder(cats) for name, cats in self.categorical.items()}

    @property
    def columns(self) -> list[str]:
        return [*self.numeric, *self.categorical, *(f"p{i}" for i in range(self.classes)), "p_max"]

    @property
    def categorical_mask(self) -> np.ndarray:
        k = len(self.numeric)
        mask = np.zeros(len(self.columns), dtype=bool)
        mask[k : k + len(self.categorical)] = True
        return mask

    def matrix(self, columns: Mapping[str, np.ndarray], rows: int, probability: np.ndarray) -> np.ndarray:
        if probability.shape != (rows, self.classes):
            raise InvalidInput(
                f"class probabilities have shape {probability.shape}, the detector needs ({rows}, {self.classes})",
                field="probability",
            )
        out = np.empty((rows, len(self.columns)), dtype=np.float64)
        for j, name in enumerate(self.numeric):
            v = columns.get(name)
            out[:, j] = np.nan if v is None else np.asarray(v, dtype=np.float64)
        k = len(self.numeric)
        for j, (name, cats) in enumerate(self.categorical.items()):
            v = columns.get(name)
            if v is None:
                out[:, k + j] = np.nan
                continue
            codes = self._coders[name].codes(v).astype(np.float64)
            codes[codes == -1] = len(cats)  # outside the kept categories: one shared code
            codes[codes == -2] = np.nan
            out[:, k + j] = codes
        k += len(self.categorical)
        out[:, k : k + self.classes] = probability
        out[:, -1] = probability.max(axis=1) if rows else 0.0
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"numeric": self.numeric, "categorical": self.categorical, "classes": self.classes}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FeatureEncoder:
        return cls(list(d["numeric"]), dict(d["categorical"]), int(d["classes"]))


@dataclass
class AccuracyDriftResult:
    analysed: int
    drifted: int  # transactions predicted incorrect
    base_accuracy: float
    predicted_accuracy: float
    predicted_accuracy_interval: tuple[float, float]  # 95% Wilson
    drift_magnitude: float  # base_accuracy - predicted_accuracy
    drift_magnitude_interval: tuple[float, float]
    expected_accuracy: float  # mean probability of being correct: a second, calibration-based estimate
    drift_threshold: float
    p_correct: np.ndarray = field(repr=False)
    drifted_mask: np.ndarray = field(repr=False)

    @property
    def violated(self) -> bool:
        return self.analysed > 0 and self.drift_magnitude >= self.drift_threshold

    def values(self) -> dict[str, float]:
        return {
            "drift_magnitude": self.drift_magnitude,
            "predicted_accuracy": self.predicted_accuracy,
            "base_accuracy": self.base_accuracy,
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "analysed": self.analysed,
            "drifted": self.drifted,
            "base_accuracy": self.base_accuracy,
            "predicted_accuracy": self.predicted_accuracy,
            "predicted_accuracy_interval": list(self.predicted_accuracy_interval),
            "drift_magnitude": self.drift_magnitude,
            "drift_magnitude_interval": list(self.drift_magnitude_interval),
            "expected_accuracy": self.expected_accuracy,
            "drift_threshold": self.drift_threshold,
            "violated": self.violated,
        }


@dataclass
class AccuracyDetector:
    encoder: FeatureEncoder
    model: Any  # a fitted sklearn HistGradientBoostingClassifier
    cutoff: float  # probability of being correct below which a transaction is drifted
    base_accuracy: float
    labels: list[Any]
    train_rows: int
    test_rows: int
    detector_auc: float | None  # how well the detector separates right from wrong on the test part
    seed: int = 0

    def p_correct(self, columns: Mapping[str, np.ndarray], rows: int, probability: np.ndarray) -> np.ndarray:
        if rows == 0:
            return np.zeros(0)
        x = self.encoder.matrix(columns, rows, np.asarray(probability, dtype=np.float64))
        return _p_correct(self.model, x)

    def evaluate(
        self, columns: Mapping[str, np.ndarray], rows: int, probability: np.ndarray, drift_threshold: float = 0.1
    ) -> AccuracyDriftResult:
        p = self.p_correct(columns, rows, probability)
        drifted = p < self.cutoff
        ok = int(rows - drifted.sum())
        predicted = ok / rows if rows else 0.0
        lo, hi = wilson(ok, rows) if rows else (0.0, 1.0)
        return AccuracyDriftResult(
            analysed=rows,
            drifted=int(drifted.sum()),
            base_accuracy=self.base_accuracy,
            predicted_accuracy=predicted,
            predicted_accuracy_interval=(lo, hi),
            drift_magnitude=self.base_accuracy - predicted if rows else 0.0,
            drift_magnitude_interval=(self.base_accuracy - hi, self.base_accuracy - lo),
            expected_accuracy=float(p.mean()) if rows else 0.0,
            drift_threshold=drift_threshold,
            p_correct=p,
            drifted_mask=drifted,
        )

    def to_state(self) -> dict[str, Any]:
        """Plain data plus the fitted model (pickled by the archive, which seals it)."""
        return {
            "encoder": self.encoder.to_dict(),
            "model": self.model,
            "cutoff": self.cutoff,
            "base_accuracy": self.base_accuracy,
            "labels": self.labels,
            "train_rows": self.train_rows,
            "test_rows": self.test_rows,
            "detector_auc": self.detector_auc,
            "seed": self.seed,
        }

    @classmethod
    def from_state(cls, d: dict[str, Any]) -> AccuracyDetector:
        return cls(**{**d, "encoder": FeatureEncoder.from_dict(d["encoder"])})

    def summary(self) -> dict[str, Any]:
        return {
            "base_accuracy": self.base_accuracy,
            "cutoff": self.cutoff,
            "train_rows": self.train_rows,
            "test_rows": self.test_rows,
            "detector_auc": self.detector_auc,
            "features": self.encoder.columns,
        }


def _single_thread() -> Any:
    """Gradient boosting uses OpenMP; on a busy machine (the API, ingest and other monitors share
    the cores) its threads spin against each other: a 700-row fit took 78 s with the default
    threads under load and 2 s with one. One thread is also plenty for the sizes involved."""
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=1, user_api="openmp")


def _p_correct(model: Any, x: np.ndarray) -> np.ndarray:
    classes = list(model.classes_)
    with _single_thread():
        proba = model.predict_proba(x)
    if True in classes:
        return proba[:, classes.index(True)]
    return np.zeros(len(x))  # the model was never right on the training data


def train(
    columns: Mapping[str, np.ndarray],
    rows: int,
    *,
    truth: np.ndarray,
    prediction: np.ndarray,
    probability: np.ndarray,
    numeric: list[str],
    categorical: list[str],
    labels: list[Any],
    seed: int = 0,
    test_size: float = TEST_SIZE,
) -> AccuracyDetector:
    """Fit the detector on training rows scored by the model.

    ``truth`` and ``prediction`` are the label and the model's prediction per row (same types),
    ``probability`` the model's class probabilities in ``labels`` order. The split into train
    and test parts is stratified on correctness and seeded, so the same data gives the same detector.
    """
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import train_test_split

    if rows < MIN_TRAINING_ROWS:
        raise InvalidInput(
            f"the drift detector needs at least {MIN_TRAINING_ROWS} scored training rows, got {rows}",
            field="training_data",
        )
    probability = np.asarray(probability, dtype=np.float64)
    correct = _equal(np.asarray(truth, dtype=object), np.asarray(prediction, dtype=object))
    encoder = FeatureEncoder(
        numeric=list(numeric),
        categorical={name: _top_categories(columns.get(name), name) for name in categorical},
        classes=probability.shape[1],
    )
    x = encoder.matrix(columns, rows, probability)
    idx = np.arange(rows)
    stratify = correct if min(correct.sum(), (~correct).sum()) >= 2 else None
    tr, te = train_test_split(idx, test_size=test_size, random_state=seed, stratify=stratify)
    model = HistGradientBoostingClassifier(
        max_iter=200,
        learning_rate=0.05,
        max_leaf_nodes=15,
        min_samples_leaf=20,
        l2_regularization=1.0,
        categorical_features=encoder.categorical_mask,
        early_stopping=len(tr) >= 2000,
        random_state=seed,
    )
    with _single_thread():
        model.fit(x[tr], correct[tr])
    p_test = _p_correct(model, x[te])
    base = float(correct[te].mean())
    auc = None
    if 0 < correct[te].sum() < len(te):
        auc = float(roc_auc_score(correct[te], p_test))
    return AccuracyDetector(
        encoder=encoder,
        model=model,
        cutoff=_matched_cutoff(p_test, base),
        base_accuracy=base,
        labels=list(labels),
        train_rows=len(tr),
        test_rows=len(te),
        detector_auc=auc,
        seed=seed,
    )


def _matched_cutoff(p: np.ndarray, accuracy: float) -> float:
    """The cut-off at which the share of ``p >= cutoff`` is ``accuracy`` (ties stay together)."""
    k = round(accuracy * len(p))
    if k <= 0:
        return float(np.inf)
    if k >= len(p):
        return float(p.min()) if len(p) else 0.0
    return float(np.sort(p)[::-1][k - 1])


def _equal(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Element-wise equality of labels that may arrive as 1 and 1.0, or "1" and 1."""
    out = a == b
    if not out.all():
        out = np.array([x == y or str(x) == str(y) for x, y in zip(a.tolist(), b.tolist(), strict=True)])
    return out.astype(bool)


def _top_categories(values: np.ndarray | None, name: str) -> list[Any]:
    import pandas as pd

    if values is None:
        raise InvalidInput("the training data has no such column", field=name)
    vc = pd.Series(values, dtype=object).dropna().value_counts()
    keys = [k.item() if isinstance(k, np.generic) else k for k in vc.index]
    order = sorted(range(len(keys)), key=lambda i: (-int(vc.iloc[i]), str(keys[i])))
    return [keys[i] for i in order[:MAX_CATEGORIES]]
