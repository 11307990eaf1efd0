"""The surrogate fitted from sufficient statistics equals scikit-learn's Ridge and LIME's selection."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import LinearRegression, Ridge

from scrutiny.explain.lime import kernel_weights
from scrutiny.explain.surrogate import WeightedLinear


def neighbourhood(seed: int = 0, n: int = 3000, d: int = 12) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = (rng.random((n, d)) < rng.uniform(0.2, 0.8, d)).astype(np.float64)
    X[0] = 1.0
    beta = rng.normal(0, 0.2, d)
    y = 1 / (1 + np.exp(-(X @ beta + rng.normal(0, 0.3, n))))
    Y = np.column_stack([1 - y, y])
    return X, Y, kernel_weights(X, 0.75 * np.sqrt(d))


@pytest.mark.parametrize("alpha", [1.0, 0.01, 0.0])
def test_fit_equals_sklearn_weighted_ridge(alpha: float) -> None:
    X, Y, w = neighbourhood()
    model = WeightedLinear(X, Y, w)
    cols = [0, 3, 5, 7, 11]
    for target in (0, 1):
        ours = model.fit(cols, target, alpha)
        ref = Ridge(alpha=alpha) if alpha else LinearRegression()
        ref.fit(X[:, cols], Y[:, target], sample_weight=w)
        by_col = dict(zip(ours.columns.tolist(), ours.coef.tolist(), strict=True))
        np.testing.assert_allclose([by_col[c] for c in cols], ref.coef_, rtol=1e-9, atol=1e-12)
        assert ours.intercept == pytest.approx(ref.intercept_, abs=1e-10)
        assert ours.r2 == pytest.approx(ref.score(X[:, cols], Y[:, target], sample_weight=w), abs=1e-9)
        assert np.all(np.diff(np.abs(ours.coef)) <= 1e-15), "sorted by |coefficient|"


@pytest.mark.parametrize("method,k", [("forward_selection", 4), ("highest_weights", 8)])
def test_feature_selection_equals_lime(method: str, k: int) -> None:
    from lime.lime_base import LimeBase

    X, Y, w = neighbourhood(seed=3)
    ours = WeightedLinear(X, Y, w).select(1, k, method)
    base = LimeBase(kernel_fn=lambda d: d, random_state=0)
    theirs = base.feature_selection(X, Y[:, 1], w, k, method)
    assert list(ours) == list(theirs)


def test_kernel_is_limes() -> None:
    from sklearn.metrics import pairwise_distances

    X, _, w = neighbourhood(seed=5)
    width = 0.75 * np.sqrt(X.shape[1])
    d = pairwise_distances(X, X[:1]).ravel()
    np.testing.assert_allclose(w, np.sqrt(np.exp(-(d**2) / width**2)), rtol=1e-12)


def test_constant_features_are_never_selected() -> None:
    X, Y, w = neighbourhood(seed=7)
    X[:, 2] = 1.0
    model = WeightedLinear(X, Y, w)
    assert 2 not in model.select(1, 5).tolist()
    assert 2 not in model.select(1, 20).tolist()
