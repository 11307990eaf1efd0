"""The drift statistics against independent oracles (SciPy, and PSI by hand) on real data.

Tolerances: 1e-12 for distances computed on the same bins (JS, PSI, TVD, Wilson); 1e-9 relative
for test statistics and p-values on the same table or on exactly the same samples (chi-square,
KS, Anderson-Darling where every bin is one distinct value); on percentile bins, the KS distance
differs from the exact one by less than the largest share of one bin (stated bound, asserted).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats
from scipy.spatial.distance import jensenshannon

from scrutiny.core.training_stats import compute_statistics
from scrutiny.demo import credit
from scrutiny.monitors.builtin.drift import measures
from scrutiny.monitors.builtin.drift.histograms import DriftHistograms
from scrutiny.monitors.builtin.drift.reference import DriftReference
from tests.support.drift import ADULT_CATEGORICAL, ADULT_FEATURES, ADULT_NUMERIC, adult, columns_of


def _german_reference_and_subset(seed: int = 0, size: int = 300):
    g = credit.load_german()
    stats_ = compute_statistics(
        g,
        feature_fields=credit.FEATURES,
        categorical_fields=credit.CATEGORICAL_FEATURES,
        label_column=None,
        problem_type="binary",
    )
    ref = DriftReference.from_statistics(stats_)
    sub = g.sample(size, random_state=seed)
    cols = columns_of(sub, credit.NUMERIC_FEATURES, credit.CATEGORICAL_FEATURES)
    return g, sub, ref, DriftHistograms.from_columns(ref, cols, len(sub))


def _adult_pair(seed: int = 0):
    data, test = adult()
    stats_ = compute_statistics(
        data,
        feature_fields=ADULT_FEATURES,
        categorical_fields=ADULT_CATEGORICAL,
        label_column=None,
        problem_type="binary",
    )
    ref = DriftReference.from_statistics(stats_)
    cur = test.sample(5000, random_state=seed)
    return (
        data,
        cur,
        ref,
        DriftHistograms.from_columns(ref, columns_of(cur, ADULT_NUMERIC, ADULT_CATEGORICAL), len(cur)),
    )


@pytest.fixture(scope="module")
def german_case():
    return _german_reference_and_subset()


@pytest.fixture(scope="module")
def adult_case():
    return _adult_pair()


def _pairs(ref, hist):
    for f in ref.features:
        yield f, f.training, hist.feature(ref, f.name)


def test_js_distance_equals_scipy(german_case, adult_case) -> None:
    n = 0
    for _, _, ref, hist in (german_case, adult_case):
        for f, train, cur in _pairs(ref, hist):
            ours = measures.js_distance(train, cur)
            oracle = jensenshannon(train.astype(float), cur.astype(float), base=2)
            assert ours == pytest.approx(oracle, abs=1e-12), f.name
            g = f.effect_groups
            gr, gc = np.bincount(g, train), np.bincount(g, cur)
            assert measures.js_distance(gr, gc) == pytest.approx(jensenshannon(gr, gc, base=2), abs=1e-12)
            n += 1
    assert n == len(credit.FEATURES) + len(ADULT_FEATURES)


def _psi_by_hand(ref: np.ndarray, cur: np.ndarray, floor: float) -> float:
    total_r, total_c = float(sum(ref)), float(sum(cur))
    out = 0.0
    for r, c in zip(ref.tolist(), cur.tolist(), strict=True):
        p = max(r / total_r, floor)
        q = max(c / total_c, floor)
        out += (q - p) * math.log(q / p)
    return out


def test_psi_equals_the_textbook_sum(german_case, adult_case) -> None:
    for _, _, ref, hist in (german_case, adult_case):
        for f, train, cur in _pairs(ref, hist):
            assert measures.psi(train, cur) == pytest.approx(_psi_by_hand(train, cur, 1e-4), abs=1e-12), f.name
    # an empty bin on one side costs a finite, large term
    assert measures.psi(np.array([100, 0]), np.array([50, 50])) == pytest.approx(
        _psi_by_hand(np.array([100, 0]), np.array([50, 50]), 1e-4), abs=1e-12
    )


def test_chi_square_equals_scipy_on_the_pooled_table(german_case, adult_case) -> None:
    checked = 0
    for _, _, ref, hist in (german_case, adult_case):
        for f, train, cur in _pairs(ref, hist):
            if f.kind != "categorical":
                continue
            table = measures.pooled_table(train, cur)
            stat, p, dof = measures.chi_square(train, cur)
            o = stats.chi2_contingency(table, correction=False)
            assert stat == pytest.approx(o.statistic, rel=1e-9), f.name
            assert p == pytest.approx(o.pvalue, rel=1e-9, abs=1e-300), f.name
            assert dof == o.dof
            # pooling keeps every expected count at 5 or more
            assert o.expected_freq.min() >= 5 or table.shape[1] <= 2
            checked += 1
    assert checked == len(credit.CATEGORICAL_FEATURES) + len(ADULT_CATEGORICAL)


def test_chi_square_without_small_cells_is_the_plain_test() -> None:
    data, test = adult()
    a = data["relationship"].value_counts().sort_index()
    b = test["relationship"].value_counts().reindex(a.index).fillna(0)
    stat, p, dof = measures.chi_square(a.to_numpy(), b.to_numpy())
    o = stats.chi2_contingency(np.vstack([a.to_numpy(), b.to_numpy()]), correction=False)
    assert (stat, dof) == (pytest.approx(o.statistic, rel=1e-9), o.dof)
    assert p == pytest.approx(o.pvalue, rel=1e-9)


def test_two_proportions_is_the_2x2_chi_square() -> None:
    p = measures.two_proportions(30, 1000, 55, 900)
    o = stats.chi2_contingency(np.array([[30, 970], [55, 845]]), correction=False)
    assert p == pytest.approx(o.pvalue, rel=1e-9)


@pytest.mark.filterwarnings("ignore:p-value capped:UserWarning")
def test_ks_and_anderson_darling_equal_scipy_when_bins_are_the_values(german_case) -> None:
    """German numbers have at most 100 distinct values: each is its own bin, and the current
    rows are a subset of the training rows, so the binned statistics are the exact ones."""
    g, sub, ref, hist = german_case
    checked = 0
    for name in credit.NUMERIC_FEATURES:
        f = ref.feature(name)
        if f.edges is None or len(f.edges) > 100:
            continue
        train, cur = f.training[:-1], hist.feature(ref, name)[:-1]
        x, y = g[name].to_numpy(float), sub[name].to_numpy(float)
        d, p = measures.ks_binned(train, cur)
        o = stats.ks_2samp(x, y, method="asymp")
        assert d == pytest.approx(o.statistic, abs=1e-12), name
        assert p == pytest.approx(o.pvalue, rel=1e-9), name
        a2, _ = measures.anderson_darling_binned(train, cur)
        ad = stats.anderson_ksamp([x, y], variant="right")
        assert _standardised(a2, len(x), len(y)) == pytest.approx(ad.statistic, rel=1e-9), name
        checked += 1
    assert checked >= 6


def _standardised(a2: float, m: int, n: int) -> float:
    """Scholz and Stephens (1987) standardisation of A2_kN for k = 2 (what SciPy returns)."""
    k, big_n = 2, m + n
    h_ = 1 / m + 1 / n
    hs_cs = np.cumsum(1.0 / np.arange(big_n - 1, 1, -1))
    h = hs_cs[-1] + 1
    g = np.sum(hs_cs / np.arange(2, big_n))
    a = (4 * g - 6) * (k - 1) + (10 - 6 * g) * h_
    b = (2 * g - 4) * k**2 + 8 * h * k + (2 * g - 14 * h - 4) * h_ - 8 * h + 4 * g - 6
    c = (6 * h + 2 * g - 2) * k**2 + (4 * h - 4 * g + 6) * k + (2 * h - 6) * h_ + 4 * h
    d = (2 * h + 6) * k**2 - 4 * h * k
    var = (a * big_n**3 + b * big_n**2 + c * big_n + d) / ((big_n - 1) * (big_n - 2) * (big_n - 3))
    return (a2 - (k - 1)) / math.sqrt(var)


def test_ks_on_percentile_bins_is_within_one_bin_of_the_exact_distance(adult_case) -> None:
    data, cur, ref, hist = adult_case
    for name in ADULT_NUMERIC:
        f = ref.feature(name)
        train, now = f.training[:-1], hist.feature(ref, name)[:-1]
        d, _ = measures.ks_binned(train, now)
        exact = stats.ks_2samp(data[name].to_numpy(float), cur[name].to_numpy(float)).statistic
        bound = max((train / train.sum()).max(), (now / now.sum()).max())
        assert d <= exact + 1e-12, name
        assert exact - d <= bound, name


def test_anderson_darling_asymptotic_tail_matches_the_published_quantiles() -> None:
    # Anderson and Darling (1954): P(A2 > 1.933) = 0.10, 2.492 -> 0.05, 3.070 -> 0.025, 3.857 -> 0.01
    for z, p in [(1.933, 0.10), (2.492, 0.05), (3.070, 0.025), (3.857, 0.01)]:
        assert measures.anderson_darling_pvalue(z) == pytest.approx(p, abs=1e-3)
    zs = np.linspace(0.05, 40, 2000)
    ps = np.array([measures.anderson_darling_pvalue(z) for z in zs])
    assert np.all(np.diff(ps) <= 0) and ps[0] <= 1 and ps[-1] >= 0


def test_anderson_darling_pvalue_agrees_with_a_permutation_test() -> None:
    """Asymptotic p-values against SciPy's permutation distribution (2,000 resamples, seeded) on
    German ages: reference rows vs applicants with a long loan (a real, moderate difference)."""
    g = credit.load_german()
    x = g["Age"].to_numpy(float)
    for cut, tol in [(36, 0.02), (24, 0.03)]:
        y = g.loc[g["LoanDuration"] >= cut, "Age"].to_numpy(float)
        edges = np.unique(x)
        from scrutiny.core.training_stats import bin_counts

        _, p = measures.anderson_darling_binned(bin_counts(edges, x)[:-1], bin_counts(edges, y)[:-1])
        perm = stats.anderson_ksamp(
            [x, y], variant="right", method=stats.PermutationMethod(n_resamples=2000, rng=np.random.default_rng(0))
        )
        assert abs(p - perm.pvalue) <= tol, (cut, p, perm.pvalue)


def test_holm_matches_the_step_down_procedure() -> None:
    rng = np.random.default_rng(3)
    for _ in range(50):
        p = rng.uniform(0, 0.05, size=12) ** rng.uniform(0.5, 3)
        adj = measures.holm(p)
        for alpha in (0.01, 0.05):
            # Holm: reject p_(1..j) while p_(i) <= alpha / (k - i + 1)
            order = np.argsort(p)
            reject = np.zeros(len(p), dtype=bool)
            for i, idx in enumerate(order):
                if p[idx] <= alpha / (len(p) - i):
                    reject[idx] = True
                else:
                    break
            assert np.array_equal(adj <= alpha, reject)
    assert measures.holm([]).size == 0


def test_wilson_equals_scipy() -> None:
    for k, n in [(0, 10), (7, 10), (850, 1000), (999, 1000), (1000, 1000), (13, 2000)]:
        lo, hi = measures.wilson(k, n)
        ci = stats.binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
        assert (lo, hi) == (pytest.approx(ci.low, abs=1e-12), pytest.approx(ci.high, abs=1e-12))


def test_total_variation_is_half_l1() -> None:
    a, b = np.array([1, 2, 3, 4]), np.array([4, 3, 2, 1])
    assert measures.total_variation(a, b) == pytest.approx(0.5 * np.abs(a / 10 - b / 10).sum(), abs=1e-15)
