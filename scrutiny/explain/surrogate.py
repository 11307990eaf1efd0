"""A weighted sparse linear surrogate, fitted from sufficient statistics.

LIME fits scikit-learn ``Ridge`` models many times on the same weighted neighbourhood (once per
candidate feature in forward selection, then once per explained class). Every one of those
fits only needs the weighted, centred Gram matrix ``Xcᵀ W Xc`` and ``Xcᵀ W y``, which are
computed once here; each fit is then a solve of at most (features x features). The results
are those of ``Ridge(alpha, fit_intercept=True).fit(X, y, sample_weight=w)`` and its weighted
``score`` (checked against scikit-learn in the tests).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

FORWARD_SELECTION_MAX = 6  # LIME's "auto": forward selection up to 6 features, highest weights above


@dataclass
class LinearFit:
    columns: np.ndarray  # column indices, sorted by |coefficient| descending
    coef: np.ndarray
    intercept: float
    r2: float  # weighted coefficient of determination on the neighbourhood


class WeightedLinear:
    """Weighted least squares with an intercept over the columns of ``X``, for each target in ``Y``."""

    def __init__(self, X: np.ndarray, Y: np.ndarray, weights: np.ndarray) -> None:
        w = np.asarray(weights, dtype=np.float64)
        Y = Y.reshape(len(Y), -1).astype(np.float64)
        sw = w.sum()
        # einsum, not BLAS: these products are small, multi-threaded BLAS is slower on a busy
        # machine, and a fixed summation order keeps explanations bit-for-bit repeatable.
        self.x_mean = np.einsum("n,nj->j", w, X) / sw
        self.y_mean = np.einsum("n,nt->t", w, Y) / sw
        Xc = X - self.x_mean
        Yc = Y - self.y_mean
        WXc = Xc * w[:, None]
        self.gram = np.einsum("ni,nj->ij", WXc, Xc)
        self.cross = np.einsum("ni,nt->it", WXc, Yc)  # [features, targets]
        self.total = np.einsum("n,nt,nt->t", w, Yc, Yc)  # weighted total sum of squares per target
        self.varying = np.flatnonzero(np.diag(self.gram) > 1e-12)

    def fit(self, columns: np.ndarray | list[int], target: int, alpha: float) -> LinearFit:
        cols = np.asarray(columns, dtype=np.int64)
        if cols.size == 0:
            return LinearFit(cols, np.zeros(0), float(self.y_mean[target]), self._r2(0.0, target))
        g = self.gram[np.ix_(cols, cols)]
        h = self.cross[cols, target]
        # alpha > 0 is positive definite; forward selection's plain least squares may meet collinear columns
        coef = np.linalg.solve(g + alpha * np.eye(len(cols)), h) if alpha > 0 else np.linalg.lstsq(g, h, rcond=None)[0]
        explained = 2 * coef @ h - coef @ g @ coef
        order = np.argsort(-np.abs(coef), kind="stable")
        intercept = float(self.y_mean[target] - self.x_mean[cols] @ coef)
        return LinearFit(cols[order], coef[order], intercept, self._r2(explained, target))

    def _r2(self, explained: float, target: int) -> float:
        total = float(self.total[target])
        if total <= 1e-15:
            return 1.0  # constant outputs: nothing left to explain (scikit-learn's convention)
        return float(1.0 - max(total - explained, 0.0) / total)

    def select(self, target: int, k: int, method: str = "auto") -> np.ndarray:
        """LIME's feature selection: forward selection (≤ 6 features) or highest weights."""
        candidates = self.varying
        if k >= len(candidates) or method == "none":
            return candidates
        if method == "auto":
            method = "forward_selection" if k <= FORWARD_SELECTION_MAX else "highest_weights"
        if method == "forward_selection":
            used: list[int] = []
            for _ in range(k):
                best, best_r2 = -1, -np.inf
                for c in candidates:
                    if c in used:
                        continue
                    r2 = self.fit([*used, int(c)], target, 0.0).r2
                    if r2 > best_r2:
                        best, best_r2 = int(c), r2
                used.append(best)
            return np.array(used, dtype=np.int64)
        if method == "highest_weights":
            fit = self.fit(candidates, target, 0.01)  # the explained row is all ones: rank by |coef|
            return fit.columns[:k]
        raise ValueError(f"unknown feature selection {method!r}")
