"""Quality metrics (contract §7.3) from mergeable sufficient statistics.

* Classification: the confusion matrix (actual by predicted, in label order), the summed log
  loss, and for binary models two histograms of the positive class's probability (one for
  actual positives, one for actual negatives) on ``bins`` equal-width bins over [0, 1].
  Count-based metrics and log loss are exact; the areas under the ROC and PR curves are
  computed with the bin edges as thresholds (scores within one bin count as ties), which
  stays within 1e-3 of the exact areas at the default 10,000 bins (tested against
  scikit-learn on German credit and Adult census).
* Regression: count, mean and M2 of the label and of the error ``y - ŷ`` (merged with Chan's
  parallel formula, numerically stable), the sums of ``|e|`` and ``e²``. Exact.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from scrutiny.monitors.partials import pack, unpack

EPS = 1e-15
_trapezoid: Any = getattr(np, "trapezoid", None) or getattr(np, "trapz")  # noqa: B009 - NumPy < 2 names it trapz


# -- classification ----------------------------------------------------------------------------------


@dataclass
class ClassificationStats:
    confusion: np.ndarray  # int64 [C, C]: rows actual, columns predicted
    unmatched: int  # rows whose label or prediction is not one of the labels
    logloss_sum: float
    logloss_n: int  # rows with a probability vector
    hist_pos: np.ndarray | None  # int64 [bins]: positive-class probability of actual positives (binary)
    hist_neg: np.ndarray | None
    bins: int | None = None
    sparse: tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]] | None = None  # as stored

    @classmethod
    def empty(cls, n_classes: int, bins: int | None) -> ClassificationStats:
        h = None if bins is None else np.zeros(bins, dtype=np.int64)
        return cls(np.zeros((n_classes, n_classes), dtype=np.int64), 0, 0.0, 0, h, None if h is None else h.copy())

    @classmethod
    def of(
        cls,
        actual: np.ndarray,
        predicted: np.ndarray,
        probability: np.ndarray | None,
        n_classes: int,
        positive: int | None,
        bins: int | None,
    ) -> ClassificationStats:
        """``actual``/``predicted`` are class indexes (-1: not a label)."""
        ok = (actual >= 0) & (predicted >= 0)
        conf = np.bincount(actual[ok] * n_classes + predicted[ok], minlength=n_classes * n_classes)
        out = cls(conf.reshape(n_classes, n_classes).astype(np.int64), int((~ok).sum()), 0.0, 0, None, None)
        if bins is not None:
            out.hist_pos = np.zeros(bins, dtype=np.int64)
            out.hist_neg = np.zeros(bins, dtype=np.int64)
        if probability is None or probability.shape[1] != n_classes:
            return out
        has = (actual >= 0) & np.isfinite(probability).all(axis=1)
        if has.any():
            p_true = probability[has, actual[has]]
            out.logloss_sum = float(-np.log(np.clip(p_true, EPS, 1 - EPS)).sum())
            out.logloss_n = int(has.sum())
            if bins is not None and positive is not None:
                b = score_bins(probability[has, positive], bins)
                pos = actual[has] == positive
                out.hist_pos = np.bincount(b[pos], minlength=bins).astype(np.int64)
                out.hist_neg = np.bincount(b[~pos], minlength=bins).astype(np.int64)
        return out

    def merge(self, other: ClassificationStats) -> ClassificationStats:
        if self.sparse is not None and (other.hist_pos is not None or other.sparse is not None):
            self.densify()  # before adding anything: every count is added exactly once
        self.confusion = self.confusion + other.confusion
        self.unmatched += other.unmatched
        self.logloss_sum += other.logloss_sum
        self.logloss_n += other.logloss_n
        if self.hist_pos is not None and self.hist_neg is not None:
            if other.hist_pos is not None and other.hist_neg is not None:
                self.hist_pos = self.hist_pos + other.hist_pos
                self.hist_neg = self.hist_neg + other.hist_neg
            elif other.sparse is not None:  # a stored partial: add its non-empty bins only
                (pi, pc), (ni, nc) = other.sparse
                self.hist_pos[pi] += pc
                self.hist_neg[ni] += nc
        return self

    def densify(self) -> None:
        """Sparse bins (as stored) to dense arrays, so further merges add in place."""
        if self.sparse is None or self.bins is None:
            return
        (pi, pc), (ni, nc) = self.sparse
        self.hist_pos = np.zeros(self.bins, dtype=np.int64)
        self.hist_neg = np.zeros(self.bins, dtype=np.int64)
        self.hist_pos[pi] = pc
        self.hist_neg[ni] = nc
        self.sparse = None

    def to_bytes(self) -> bytes:
        fields: dict[str, Any] = {
            "conf": self.confusion,
            "unmatched": self.unmatched,
            "ll_sum": self.logloss_sum,
            "ll_n": self.logloss_n,
        }
        if self.hist_pos is not None and self.hist_neg is not None:  # sparse: most bins are empty
            fields["bins"] = len(self.hist_pos)
            for name, h in (("pos", self.hist_pos), ("neg", self.hist_neg)):
                nz = np.flatnonzero(h)
                fields[f"{name}_i"] = nz.astype(np.int32)
                fields[f"{name}_c"] = h[nz]
        elif self.sparse is not None:
            fields["bins"] = self.bins
            (fields["pos_i"], fields["pos_c"]), (fields["neg_i"], fields["neg_c"]) = self.sparse
        return pack(fields)

    @classmethod
    def from_bytes(cls, data: bytes) -> ClassificationStats:
        return cls.of_fields(unpack(data))

    @classmethod
    def of_fields(cls, d: dict[str, Any]) -> ClassificationStats:
        out = cls(d["conf"], int(d["unmatched"]), float(d["ll_sum"]), int(d["ll_n"]), None, None)
        if "bins" in d:
            out.bins = int(d["bins"])
            out.sparse = ((d["pos_i"], d["pos_c"]), (d["neg_i"], d["neg_c"]))
        return out

    @property
    def n(self) -> int:
        return int(self.confusion.sum())


def score_bins(p: np.ndarray, bins: int) -> np.ndarray:
    return np.clip((p * bins).astype(np.int64), 0, bins - 1)


def _div(a: float, b: float) -> tuple[float, bool]:
    """a / b, or (0, flagged) when b is zero (contract §7.3: zero denominators give 0, flagged)."""
    return (a / b, False) if b else (0.0, True)


def binary_metrics(s: ClassificationStats, positive: int) -> tuple[dict[str, float | None], dict[str, Any]]:
    s.densify()
    c = s.confusion
    neg = [i for i in range(c.shape[0]) if i != positive]
    tp = float(c[positive, positive])
    fn = float(c[positive, neg].sum())
    fp = float(c[neg, positive].sum())
    tn = float(c[np.ix_(neg, neg)].sum())
    n = tp + fn + fp + tn
    flags = []
    tpr, f1_ = _div(tp, tp + fn)
    fpr, f2_ = _div(fp, fp + tn)
    precision, f3_ = _div(tp, tp + fp)
    f1, f4_ = _div(2 * precision * tpr, precision + tpr)
    for name, flag in (("recall", f1_), ("false_positive_rate", f2_), ("precision", f3_), ("f1_measure", f4_)):
        if flag:
            flags.append(name)
    values: dict[str, float | None] = {
        "area_under_roc": None,
        "area_under_pr": None,
        "accuracy": (tp + tn) / n if n else None,
        "true_positive_rate": tpr,
        "false_positive_rate": fpr,
        "recall": tpr,
        "precision": precision,
        "f1_measure": f1,
        "log_loss": s.logloss_sum / s.logloss_n if s.logloss_n else None,
    }
    details: dict[str, Any] = {"tp": int(tp), "fn": int(fn), "fp": int(fp), "tn": int(tn)}
    if s.hist_pos is not None and s.hist_neg is not None and s.hist_pos.sum() and s.hist_neg.sum():
        values["area_under_roc"] = roc_auc_binned(s.hist_pos, s.hist_neg)
        values["area_under_pr"] = pr_auc_binned(s.hist_pos, s.hist_neg)
    elif s.logloss_n == 0:
        details["no_probability"] = "the records carry no probabilities: areas under curves and log loss need them"
    else:
        details["single_class"] = "the areas under curves need both classes among the actual labels"
    if flags:
        details["zero_denominators"] = flags
    return values, details


def roc_auc_binned(hist_pos: np.ndarray, hist_neg: np.ndarray) -> float:
    """Trapezoidal area under TPR(FPR) with thresholds at the bin edges, highest first."""
    tps = np.concatenate([[0], np.cumsum(hist_pos[::-1])])
    fps = np.concatenate([[0], np.cumsum(hist_neg[::-1])])
    tpr = tps / tps[-1]
    fpr = fps / fps[-1]
    return float(_trapezoid(tpr, fpr))


def pr_auc_binned(hist_pos: np.ndarray, hist_neg: np.ndarray) -> float:
    """``auc(recall, precision)`` as scikit-learn's precision_recall_curve builds it, on bin thresholds."""
    keep = (hist_pos + hist_neg)[::-1] > 0  # one threshold per non-empty bin, highest first
    tps = np.cumsum(hist_pos[::-1])[keep].astype(np.float64)
    fps = np.cumsum(hist_neg[::-1])[keep].astype(np.float64)
    precision = tps / (tps + fps)
    recall = tps / tps[-1]
    precision = np.concatenate([[1.0], precision])
    recall = np.concatenate([[0.0], recall])
    return float(_trapezoid(precision, recall))


def multiclass_metrics(s: ClassificationStats) -> tuple[dict[str, float | None], dict[str, Any]]:
    c = s.confusion.astype(np.float64)
    n = c.sum()
    support = c.sum(axis=1)  # actual
    predicted = c.sum(axis=0)
    tp = np.diag(c)
    w = support / n if n else support
    with np.errstate(divide="ignore", invalid="ignore"):
        recall = np.where(support > 0, tp / support, 0.0)
        precision = np.where(predicted > 0, tp / predicted, 0.0)
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
        fp = predicted - tp
        tn = n - support - fp
        fpr = np.where(fp + tn > 0, fp / (fp + tn), 0.0)
    values: dict[str, float | None] = {
        "accuracy": float(tp.sum() / n) if n else None,
        "weighted_true_positive_rate": float(np.dot(w, recall)) if n else None,
        "weighted_false_positive_rate": float(np.dot(w, fpr)) if n else None,
        "weighted_recall": float(np.dot(w, recall)) if n else None,
        "weighted_precision": float(np.dot(w, precision)) if n else None,
        "weighted_f_measure": float(np.dot(w, f1)) if n else None,
        "log_loss": s.logloss_sum / s.logloss_n if s.logloss_n else None,
    }
    flagged = [int(i) for i in np.flatnonzero((predicted == 0) & (support > 0))]
    details: dict[str, Any] = {
        "per_class": {
            "recall": recall.tolist(),
            "precision": precision.tolist(),
            "f1": f1.tolist(),
            "false_positive_rate": fpr.tolist(),
            "support": support.astype(np.int64).tolist(),
        }
    }
    if flagged:
        details["zero_denominators"] = {"precision": flagged}
    return values, details


# -- regression --------------------------------------------------------------------------------------


@dataclass
class RegressionStats:
    n: int
    mean_y: float
    m2_y: float  # Σ(y - ȳ)²
    mean_e: float
    m2_e: float  # Σ(e - ē)², e = y - ŷ
    sum_abs_e: float
    sum_sq_e: float
    skipped: int = 0  # rows with a missing label or prediction

    @classmethod
    def empty(cls) -> RegressionStats:
        return cls(0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0)

    @classmethod
    def of(cls, y: np.ndarray, pred: np.ndarray) -> RegressionStats:
        ok = np.isfinite(y) & np.isfinite(pred)
        y, pred = y[ok], pred[ok]
        n = len(y)
        if n == 0:
            return cls(0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, int((~ok).sum()))
        e = y - pred
        my, me = float(y.mean()), float(e.mean())
        return cls(
            n,
            my,
            float(((y - my) ** 2).sum()),
            me,
            float(((e - me) ** 2).sum()),
            float(np.abs(e).sum()),
            float((e**2).sum()),
            int((~ok).sum()),
        )

    def merge(self, o: RegressionStats) -> RegressionStats:
        if o.n == 0 or self.n == 0:
            base = self if o.n == 0 else o
            return RegressionStats(
                base.n,
                base.mean_y,
                base.m2_y,
                base.mean_e,
                base.m2_e,
                base.sum_abs_e,
                base.sum_sq_e,
                self.skipped + o.skipped,
            )
        n = self.n + o.n
        dy = o.mean_y - self.mean_y
        de = o.mean_e - self.mean_e
        return RegressionStats(
            n,
            self.mean_y + dy * o.n / n,
            self.m2_y + o.m2_y + dy * dy * self.n * o.n / n,
            self.mean_e + de * o.n / n,
            self.m2_e + o.m2_e + de * de * self.n * o.n / n,
            self.sum_abs_e + o.sum_abs_e,
            self.sum_sq_e + o.sum_sq_e,
            self.skipped + o.skipped,
        )

    def to_bytes(self) -> bytes:
        return pack({k: getattr(self, k) for k in self.__dataclass_fields__})

    @classmethod
    def from_bytes(cls, data: bytes) -> RegressionStats:
        return cls.of_fields(unpack(data))

    @classmethod
    def of_fields(cls, d: dict[str, Any]) -> RegressionStats:
        values: dict[str, Any] = {
            k: (int(d[k]) if k in ("n", "skipped") else float(d[k])) for k in cls.__dataclass_fields__
        }
        return cls(**values)

    def metrics(self) -> dict[str, float | None]:
        if self.n == 0:
            return dict.fromkeys(REGRESSION, None)
        mse = self.sum_sq_e / self.n
        return {
            "mean_absolute_error": self.sum_abs_e / self.n,
            "mean_squared_error": mse,
            "root_mean_squared_error": float(np.sqrt(mse)),
            "r2": 1.0 - self.sum_sq_e / self.m2_y if self.m2_y > 0 else None,
            "explained_variance": 1.0 - self.m2_e / self.m2_y if self.m2_y > 0 else None,
        }


BINARY = [
    "area_under_roc",
    "area_under_pr",
    "accuracy",
    "true_positive_rate",
    "false_positive_rate",
    "recall",
    "precision",
    "f1_measure",
    "log_loss",
]
MULTICLASS = [
    "accuracy",
    "weighted_true_positive_rate",
    "weighted_false_positive_rate",
    "weighted_recall",
    "weighted_precision",
    "weighted_f_measure",
    "log_loss",
]
REGRESSION = ["mean_absolute_error", "mean_squared_error", "root_mean_squared_error", "r2", "explained_variance"]
