"""Distances and tests on binned counts: the statistics behind every data drift verdict.

Each function takes counts of the reference (training) and of the current records on the same
bins, so it costs O(bins), whatever the number of rows. Oracles in the tests: SciPy's
``jensenshannon``, ``chi2_contingency`` and ``ks_2samp``/``anderson_ksamp``, and PSI by hand.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import special

PSI_FLOOR = 1e-4  # proportions below this count as 1e-4 in PSI, so an empty bin gives a finite term
MIN_EXPECTED = 5.0  # chi-square: cells expected below this are pooled (Cochran's rule)


def _shares(counts: np.ndarray) -> np.ndarray:
    c = np.asarray(counts, dtype=np.float64)
    total = c.sum()
    return c / total if total > 0 else c


def js_distance(reference: np.ndarray, current: np.ndarray) -> float:
    """Jensen-Shannon distance in base 2 (0 = same distribution, 1 = disjoint), as SciPy's
    ``jensenshannon(p, q, base=2)``: both count vectors are normalised first."""
    p, q = _shares(reference), _shares(current)
    m = 0.5 * (p + q)
    div = 0.5 * (special.rel_entr(p, m).sum() + special.rel_entr(q, m).sum()) / math.log(2.0)
    return float(math.sqrt(max(div, 0.0)))


def psi(reference: np.ndarray, current: np.ndarray, floor: float = PSI_FLOOR) -> float:
    """Population stability index ``sum((q - p) * ln(q / p))``, shares floored at ``floor``."""
    p = np.maximum(_shares(reference), floor)
    q = np.maximum(_shares(current), floor)
    return float(np.sum((q - p) * np.log(q / p)))


def total_variation(reference: np.ndarray, current: np.ndarray) -> float:
    """Half the L1 distance of the shares: the largest difference in probability of any set of bins."""
    return float(0.5 * np.abs(_shares(reference) - _shares(current)).sum())


def ks_distance(reference: np.ndarray, current: np.ndarray) -> float:
    """The Kolmogorov-Smirnov distance alone (its exact p-value costs 35 ms per feature at a
    million rows, and drift reports the distance only: the verdict's test is Anderson-Darling)."""
    m, n = float(np.sum(reference)), float(np.sum(current))
    if m == 0 or n == 0:
        return 0.0
    return float(np.max(np.abs(np.cumsum(reference) / m - np.cumsum(current) / n)))


def ks_binned(reference: np.ndarray, current: np.ndarray) -> tuple[float, float]:
    """Kolmogorov-Smirnov distance of two samples given as counts on ordered bins, and its
    asymptotic p-value (SciPy's ``ks_2samp(method="asymp")`` rule). On bins the distance is
    evaluated at bin edges only: it is at most the exact one and differs from it by less
    than the largest share of any single bin."""
    m, n = float(np.sum(reference)), float(np.sum(current))
    if m == 0 or n == 0:
        return 0.0, 1.0
    d = ks_distance(reference, current)
    return d, ks_pvalue(d, m, n)


def ks_pvalue(d: float, m: float, n: float) -> float:
    from scipy import stats  # imported here: scipy.stats alone adds ~60 MB to a server that never needs it

    en = m * n / (m + n)
    return float(np.clip(stats.kstwo.sf(d, np.round(en)), 0.0, 1.0))


def anderson_darling_binned(reference: np.ndarray, current: np.ndarray) -> tuple[float, float]:
    """Two-sample Anderson-Darling statistic on ordered bins (Pettitt 1976; for k = 2 samples it is
    Scholz and Stephens' right-continuous ``A2_kN`` for tied values, SciPy's
    ``anderson_ksamp(variant="right")`` before standardisation) and its asymptotic p-value.

    Bins act as tied values, so the test stays valid (slightly conservative) on binned data.
    It weighs the tails more than KS does, which makes it far more sensitive to a change of
    spread: at 1,000 rows against 1,000, a normal 1.3x wider is found at p < 0.001 in 160 of
    160 trials, where KS misses 15 of them.
    """
    r = np.asarray(reference, dtype=np.float64)
    c = np.asarray(current, dtype=np.float64)
    m, n = r.sum(), c.sum()
    if m == 0 or n == 0:
        return 0.0, 1.0
    big_n = m + n
    fr = np.cumsum(r) / m
    fc = np.cumsum(c) / n
    h = r + c
    hh = np.cumsum(h) / big_n
    ok = (h > 0) & (hh > 0) & (hh < 1 - 1e-12)
    a2 = float((m * n / big_n) * np.sum((fr[ok] - fc[ok]) ** 2 / (hh[ok] * (1 - hh[ok])) * h[ok] / big_n))
    return a2, anderson_darling_pvalue(a2)


def anderson_darling_pvalue(a2: float) -> float:
    """Upper tail of the asymptotic Anderson-Darling distribution (Marsaglia and Marsaglia 2004,
    ``ADinf``: absolute error below 2e-6)."""
    z = float(a2)
    if z <= 0:
        return 1.0
    if z < 2.0:
        cdf = (
            math.exp(-1.2337141 / z)
            / math.sqrt(z)
            * (2.00012 + (0.247105 - (0.0649821 - (0.0347962 - (0.011672 - 0.00168691 * z) * z) * z) * z) * z)
        )
        return float(min(1.0, max(0.0, 1.0 - cdf)))
    u = 1.0776 - (2.30695 - (0.43424 - (0.082433 - (0.008056 - 0.0003146 * z) * z) * z) * z) * z
    return float(-math.expm1(-math.exp(u)))


def pooled_table(reference: np.ndarray, current: np.ndarray, min_expected: float = MIN_EXPECTED) -> np.ndarray:
    """The 2 x K table of counts the chi-square test runs on: empty columns dropped, and columns
    whose expected count is below ``min_expected`` in either row pooled into one."""
    table = np.vstack([np.asarray(reference, dtype=np.float64), np.asarray(current, dtype=np.float64)])
    table = table[:, table.sum(axis=0) > 0]
    total = table.sum()
    if total == 0 or table.shape[1] < 2:
        return table
    expected = table.sum(axis=1, keepdims=True) * table.sum(axis=0) / total
    small = expected.min(axis=0) < min_expected
    if not small.any():
        return table
    big = table[:, ~small]
    pooled = table[:, small].sum(axis=1, keepdims=True)
    pooled_expected = table.sum(axis=1, keepdims=True) * pooled.sum() / total
    if pooled_expected.min() < min_expected and big.shape[1] > 0:
        j = int(np.argmin(big.sum(axis=0)))  # still too small: join the smallest remaining column
        pooled = pooled + big[:, [j]]
        big = np.delete(big, j, axis=1)
    return np.hstack([big, pooled])


def chi_square(
    reference: np.ndarray, current: np.ndarray, min_expected: float = MIN_EXPECTED
) -> tuple[float, float, int]:
    """Pearson's chi-square test of homogeneity of two samples of counts (no continuity
    correction), on ``pooled_table``: statistic, p-value, degrees of freedom. SciPy's
    ``chi2_contingency(table, correction=False)`` on the same table gives the same numbers."""
    table = pooled_table(reference, current, min_expected)
    if table.shape[1] < 2 or (table.sum(axis=1) == 0).any():
        return 0.0, 1.0, 0
    expected = table.sum(axis=1, keepdims=True) * table.sum(axis=0) / table.sum()
    stat = float(np.sum((table - expected) ** 2 / expected))
    dof = table.shape[1] - 1
    return stat, float(special.chdtrc(dof, stat)), dof  # the chi-square survival function (scipy's chi2.sf)


def two_proportions(ref_hits: float, ref_n: float, cur_hits: float, cur_n: float) -> float:
    """p-value of the chi-square test (1 degree of freedom) that two shares are equal."""
    if ref_n == 0 or cur_n == 0:
        return 1.0
    return chi_square(np.array([ref_hits, ref_n - ref_hits]), np.array([cur_hits, cur_n - cur_hits]), 0.0)[1]


def holm(pvalues: list[float] | np.ndarray) -> np.ndarray:
    """Holm's step-down adjusted p-values (family-wise error control over the features tested)."""
    p = np.asarray(pvalues, dtype=np.float64)
    k = len(p)
    if k == 0:
        return p
    order = np.argsort(p, kind="stable")
    scaled = np.minimum(1.0, (k - np.arange(k)) * p[order])
    out = np.empty(k)
    out[order] = np.maximum.accumulate(scaled)
    return out


def wilson(successes: float, n: float, z: float = 1.959963984540054) -> tuple[float, float]:
    """The Wilson score interval of a proportion (95% by default)."""
    if n <= 0:
        return 0.0, 1.0
    phat = successes / n
    denom = 1 + z * z / n
    centre = (phat + z * z / (2 * n)) / denom
    half = z * math.sqrt(phat * (1 - phat) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)
