"""Partial counts: any split of the rows, merged in any order and through their stored bytes,
equals the counts of all rows at once; keys of every type survive the round trip."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scrutiny.ingest.batch import RecordBatch
from scrutiny.monitors.builtin.fairness.binning import numeric_edges
from scrutiny.monitors.builtin.fairness.counting import FairnessCounts, IncompatibleCounts, count_batch
from scrutiny.monitors.builtin.fairness.crosstab import Crosstab
from scrutiny.monitors.builtin.fairness.spec import AttributeSpec, FairnessSpec, OutcomeSpec

EDGES = [float(e) for e in numeric_edges([[18, 25], [26, 75]], integer=True, stats=None)]
SPEC = FairnessSpec(
    [
        AttributeSpec("sex", True, ["f"], ["m"], 0.8),
        AttributeSpec("age", False, [[18, 25]], [[26, 75]], 0.8, integer=True, edges=EDGES),
        AttributeSpec("member", True, [True], [False], 0.8),
    ],
    OutcomeSpec("prediction", False, [1], [0]),
    1,
)


def batch(rng: np.random.Generator, n: int) -> RecordBatch:
    sex = rng.choice(np.array(["f", "m", None], dtype=object), n, p=[0.4, 0.5, 0.1])
    age = rng.integers(10, 90, n).astype(np.float64)
    age[rng.random(n) < 0.05] = np.nan
    member = rng.choice(np.array([True, False, None], dtype=object), n)
    pred = rng.choice([0.0, 1.0, 2.0, np.nan], n)  # numeric labels, one outside both sets, some missing
    ts = np.datetime64("2026-01-01T00:00:00", "us") + rng.integers(0, 10**9, n).astype("timedelta64[us]")
    return RecordBatch(
        ids=np.array([f"r{i}" for i in range(n)], dtype=object),
        timestamps=ts,
        columns={"sex": sex, "age": age, "member": member, "prediction": pred},
        kinds={},
    )


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(0, 400), cuts=st.lists(st.integers(0, 400), max_size=6))
def test_any_split_merges_back_to_the_whole(seed: int, n: int, cuts: list[int]) -> None:
    rng = np.random.default_rng(seed)
    whole = batch(rng, n)
    bounds = sorted({0, n, *(min(c, n) for c in cuts)})
    parts = [count_batch(whole.take(np.arange(a, b)), SPEC) for a, b in itertools.pairwise(bounds)]
    parts = [FairnessCounts.from_bytes(p.to_bytes()) for p in parts]  # as stored
    rng.shuffle(parts)  # type: ignore[arg-type]
    merged = FairnessCounts()
    for p in parts:
        merged = merged.merge(p)
    expected = count_batch(whole, SPEC)
    assert merged.rows == expected.rows == n
    for name in ("sex", "age", "member"):
        if n:
            assert merged.attributes[name] == expected.attributes[name]
            assert merged.attributes[name].total == n
    if n:
        assert merged.first == whole.timestamps.min() and merged.last == whole.timestamps.max()


def test_keys_keep_their_types_and_booleans_stay_apart_from_numbers() -> None:
    t = Crosstab([True, 1, "1", None, 2.5], [0, None], np.arange(10, dtype=np.int64).reshape(5, 2))
    back = FairnessCounts(1, {"a": t}, {"a": "x"}).to_bytes()
    again = FairnessCounts.from_bytes(back).attributes["a"]
    assert again.rows == [True, 1, "1", None, 2.5]
    assert [type(k) for k in again.rows] == [bool, int, str, type(None), float]
    assert again == t
    assert t.merge(Crosstab([1], [0], np.array([[5]]))).counts[1, 0] == 7  # 1 merged with 1, not with True


WIDER = [float(e) for e in numeric_edges([[18, 30], [31, 99]], integer=True, stats=None)]


def test_counts_of_other_bins_refuse_to_merge() -> None:
    assert WIDER != EDGES
    rng = np.random.default_rng(0)
    a = count_batch(batch(rng, 50), SPEC)
    other = FairnessSpec(
        [
            SPEC.attributes[0],
            AttributeSpec("age", False, [[18, 30]], [[31, 99]], 0.8, integer=True, edges=WIDER),
            SPEC.attributes[2],
        ],
        SPEC.outcome,
        1,
    )
    b = count_batch(batch(rng, 50), other)
    with pytest.raises(IncompatibleCounts):
        a.merge(b)
    # a categorical group or a favourable label changing keeps the counts valid
    regrouped = FairnessSpec(
        [AttributeSpec("sex", True, ["m"], None, 0.9), *SPEC.attributes[1:]],
        OutcomeSpec("prediction", False, [0], None),
        1,
    )
    assert regrouped.fingerprints() == SPEC.fingerprints()
