"""Reference bins and mergeable histograms: the binning rule, merging, serialisation."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scrutiny.core.training_stats import STATS_VERSION, bin_counts, bin_index, compute_statistics
from scrutiny.demo import credit
from scrutiny.errors import InvalidInput
from scrutiny.monitors.builtin.drift.binning import CategoryCoder, NumericBinner
from scrutiny.monitors.builtin.drift.histograms import UNSEEN_EXAMPLES, DriftHistograms
from scrutiny.monitors.builtin.drift.reference import DriftReference
from tests.support.drift import CAT_COLS, NUM_COLS, synthetic_columns, synthetic_frame


def _reference(frame, features, categorical):
    stats = compute_statistics(
        frame, feature_fields=features, categorical_fields=categorical, label_column=None, problem_type="binary"
    )
    return stats, DriftReference.from_statistics(stats)


@pytest.fixture(scope="module")
def german_ref():
    return _reference(credit.load_german(), credit.FEATURES, credit.CATEGORICAL_FEATURES)


def test_bin_layout() -> None:
    edges = np.array([1.0, 2.0, 5.0])
    x = np.array([0.5, 1.0, 1.5, 2.0, 4.9, 5.0, 5.1, np.nan, -np.inf, np.inf])
    #             below  [1,2) [1,2) [2,5) [2,5) =max  above missing below above
    assert bin_index(edges, x).tolist() == [0, 1, 1, 2, 2, 3, 4, 5, 0, 4]
    assert bin_counts(edges, x).tolist() == [2, 2, 2, 1, 2, 1]


def test_training_counts_are_the_histogram_of_the_training_rows(german_ref) -> None:
    stats, ref = german_ref
    assert stats["version"] == STATS_VERSION >= 2
    g = credit.load_german()
    from tests.support.drift import columns_of

    cols = columns_of(g, credit.NUMERIC_FEATURES, credit.CATEGORICAL_FEATURES)
    hist = DriftHistograms.from_columns(ref, cols, len(g))
    for f in ref.features:
        assert hist.feature(ref, f.name).tolist() == f.training.tolist(), f.name
    # few distinct values: one bin per value; many: the training percentiles
    assert ref.feature("InstallmentPercent").edges.tolist() == [1.0, 2.0, 3.0, 4.0]
    assert len(ref.feature("LoanAmount").edges) == 101


finite = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False)


@settings(max_examples=200, deadline=None)
@given(
    edges=st.lists(finite, min_size=1, max_size=120, unique=True),
    values=st.lists(st.one_of(finite, st.just(np.nan), st.just(np.inf), st.just(-np.inf)), min_size=0, max_size=300),
    pick=st.lists(st.integers(0, 119), max_size=50),
)
def test_fast_binner_equals_the_binning_rule(edges, values, pick) -> None:
    e = np.sort(np.asarray(edges))
    # values sitting exactly on edges are the hard case for the grid
    x = np.asarray(values + [float(e[i % len(e)]) for i in pick], dtype=np.float64)
    assert np.array_equal(NumericBinner(e)(x), bin_index(e, x))


def test_fast_binner_on_a_million_values_with_ties_and_outliers() -> None:
    rng = np.random.default_rng(0)
    x = np.round(rng.lognormal(3, 1, 1_000_000), 1)
    x[::997] = np.nan
    x[::1009] = -5
    e = np.unique(np.quantile(x[np.isfinite(x)][:5000], np.linspace(0, 1, 101)))
    assert np.array_equal(NumericBinner(e)(x), bin_index(e, x))


def test_merge_is_the_histogram_of_the_union_in_any_order(german_ref) -> None:
    _, ref = german_ref
    g = credit.load_german()
    from tests.support.drift import columns_of

    parts = [g.iloc[i : i + 137] for i in range(0, len(g), 137)]
    hists = [
        DriftHistograms.from_columns(ref, columns_of(p, credit.NUMERIC_FEATURES, credit.CATEGORICAL_FEATURES), len(p))
        for p in parts
    ]
    whole = DriftHistograms.from_columns(
        ref, columns_of(g, credit.NUMERIC_FEATURES, credit.CATEGORICAL_FEATURES), len(g)
    )
    left = hists[0]
    for h in hists[1:]:
        left = left.merge(h)
    right = hists[-1]
    for h in reversed(hists[:-1]):
        right = h + right
    bulk = DriftHistograms.merge_all(hists[::-1], ref)
    for m in (left, right, bulk):
        assert m.rows == whole.rows == 1000
        assert np.array_equal(m.counts, whole.counts)
    assert DriftHistograms.merge_all([], ref).counts.sum() == 0


def test_serialisation_round_trips_and_is_small(german_ref) -> None:
    _, ref = german_ref
    cols = synthetic_columns(10)  # nothing in common with German: every category unseen
    h = DriftHistograms.from_columns(ref, {"Sex": cols["cat_0"], "Age": cols["num_0"]}, np.int64(10))
    for back in (DriftHistograms.from_bytes(h.to_bytes()), DriftHistograms.from_dict(h.to_dict())):
        assert back.fingerprint == h.fingerprint and back.rows == 10
        assert np.array_equal(back.counts, h.counts) and back.unseen == h.unseen
    assert len(h.to_bytes()) < 1000
    with pytest.raises(InvalidInput):
        DriftHistograms.from_bytes(b"nonsense")


def test_histograms_of_other_bins_are_never_merged(german_ref) -> None:
    _, ref = german_ref
    other = DriftReference.from_statistics(
        compute_statistics(
            credit.load_german().iloc[:500],
            feature_fields=credit.FEATURES,
            categorical_fields=credit.CATEGORICAL_FEATURES,
            label_column=None,
            problem_type="binary",
        )
    )
    assert other.fingerprint != ref.fingerprint
    with pytest.raises(InvalidInput, match="training bins changed"):
        DriftHistograms.empty(ref).merge(DriftHistograms.empty(other))
    with pytest.raises(InvalidInput, match="backfill"):
        DriftHistograms.merge_all([DriftHistograms.empty(other)], ref)


def test_categories_unseen_missing_and_absent_columns(german_ref) -> None:
    _, ref = german_ref
    sex = np.array(["male", "female", None, "robot", "robot", "alien"], dtype=object)
    h = DriftHistograms.from_columns(ref, {"Sex": sex}, 6)
    f = ref.feature("Sex")
    counts = h.feature(ref, "Sex")
    assert counts[f.categories.index("male")] == 1 and counts[f.categories.index("female")] == 1
    assert counts[f.other_bin] == 3 and counts[f.missing_bin] == 1
    assert h.unseen["Sex"] == {"robot": 2, "alien": 1}
    # a feature absent from the batch counts as missing in every row
    assert h.feature(ref, "Housing")[ref.feature("Housing").missing_bin] == 6
    with pytest.raises(InvalidInput, match="Sex"):
        DriftHistograms.from_columns(ref, {"Sex": sex[:3]}, 6)


def test_unseen_examples_are_capped_and_merged_by_count(german_ref) -> None:
    _, ref = german_ref
    many = np.array([f"v{i % 40}" for i in range(400)] + ["v0"] * 10, dtype=object)
    h = DriftHistograms.from_columns(ref, {"Job": many}, len(many))
    assert len(h.unseen["Job"]) == UNSEEN_EXAMPLES and h.unseen["Job"]["v0"] == 20
    m = h.merge(h)
    assert m.unseen["Job"]["v0"] == 40 and len(m.unseen["Job"]) == UNSEEN_EXAMPLES


def test_numeric_and_boolean_categories() -> None:
    coder = CategoryCoder([1, 2, 3])
    assert coder.codes(np.array([1.0, 3.0, 2.5, np.nan])).tolist() == [0, 2, -1, -2]
    flags = CategoryCoder([False, True])
    assert flags.codes(np.array([True, None, False], dtype=object)).tolist() == [1, -2, 0]
    assert flags.codes(np.array([1.0, 0.0])).tolist() == [1, 0]
    np_bools = np.array([np.True_, np.False_], dtype=object)  # as read back from SQLite
    assert flags.codes(np_bools).tolist() == [1, 0]


def test_synthetic_reference_has_every_feature() -> None:
    _, ref = _reference(synthetic_frame(2000), NUM_COLS + CAT_COLS, CAT_COLS)
    assert ref.names == NUM_COLS + CAT_COLS
    assert ref.feature("cat_4").categories[0] == "c4_0"  # most frequent first
    assert DriftReference.from_dict(ref.to_dict()).fingerprint == ref.fingerprint


def test_old_statistics_are_refused_with_a_clear_message() -> None:
    with pytest.raises(InvalidInput, match="recompute"):
        DriftReference.from_statistics({"version": 1, "features": {}})


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.one_of(st.integers(-50, 50).map(float), finite, st.just(np.nan), st.just(np.inf), st.just(-np.inf)),
        min_size=1,
        max_size=300,
    )
)
def test_training_bin_counts_follow_the_binning_rule(values) -> None:
    """The statistics count the training rows by binary search on sorted values; the result must
    be what binning each row (as live records are binned) gives."""
    from scrutiny.core.training_stats import numeric_statistics

    v = np.asarray(values, dtype=np.float64)
    s = numeric_statistics(v)
    if "bins" in s:
        edges = np.asarray(s["bins"]["edges"])
        assert s["bins"]["counts"] == bin_counts(edges, v).tolist()
