from __future__ import annotations

import math
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from progressd.histogram import LatencyHistogram


def _exact_percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100.0 * len(ordered)))
    return ordered[rank - 1]


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.floats(min_value=1e-6, max_value=3000.0, allow_nan=False), min_size=1, max_size=300
    ),
    st.floats(min_value=0.0, max_value=100.0),
)
def test_histogram_percentile_is_within_one_bucket_of_exact(values: list[float], p: float) -> None:
    hist = LatencyHistogram()
    for value in values:
        hist.record(value)
    exact = _exact_percentile(values, p)
    got = hist.percentile(p)
    assert exact <= got <= exact * (1 + 1 / 64) + 1e-12


def test_histogram_min_max_sum_mean_are_exact() -> None:
    hist = LatencyHistogram()
    for value in (0.002, 0.5, 0.0031, 7.25):
        hist.record(value)
    assert hist.count == 4
    assert hist.min == 0.002
    assert hist.max == 7.25
    assert hist.sum == pytest.approx(7.7551)
    assert hist.mean == pytest.approx(7.7551 / 4)
    assert hist.percentile(0) == 0.002
    assert hist.percentile(100) == 7.25


def test_histogram_memory_does_not_grow_with_samples() -> None:
    hist = LatencyHistogram()
    buckets = hist.bucket_count
    rng = random.Random(7)
    for _ in range(50_000):
        hist.record(rng.expovariate(20.0))
    assert hist.bucket_count == buckets == 1 + 32 * 64
    assert hist.count == 50_000
    assert hist.percentile(50) == pytest.approx(math.log(2) / 20.0, rel=0.05)


def test_histogram_merge_equals_recording_everything_in_one() -> None:
    rng = random.Random(3)
    left, right, both = LatencyHistogram(), LatencyHistogram(), LatencyHistogram()
    for i in range(2000):
        value = rng.lognormvariate(-4, 1)
        (left if i % 3 else right).record(value)
        both.record(value)
    left.merge(right)
    assert left.count == both.count
    assert left.min == both.min and left.max == both.max
    for p in (1, 50, 90, 95, 99, 99.9):
        assert left.percentile(p) == both.percentile(p)


def test_histogram_merge_refuses_a_different_layout() -> None:
    with pytest.raises(ValueError, match="different layouts"):
        LatencyHistogram().merge(LatencyHistogram(sub_buckets=32))


def test_histogram_clamps_values_outside_the_range() -> None:
    hist = LatencyHistogram(lowest=1e-3, highest=1.0)
    hist.record(0.0)
    hist.record(5e-4)
    hist.record(50.0)
    assert hist.count == 3
    assert hist.percentile(100) == 50.0
    assert hist.percentile(50) == 1e-3  # the underflow bucket reports its upper edge
    assert hist.min == 0.0


def test_histogram_value_on_an_edge_opens_the_upper_bucket() -> None:
    hist = LatencyHistogram(lowest=1e-6, highest=1.0, sub_buckets=4)
    for value in (1e-6, 1.25e-6, 2e-6, 4e-6, 5e-6, 1.9e-6):
        hist.record(value)
    # bucket 0: below lowest; bucket 1 + 4*octave + sub: [lowest*2**octave*(1+sub/4), ...)
    # 1e-6 and 2e-6 and 4e-6 open octaves 0, 1, 2; 1.25e-6 and 5e-6 open a sub bucket
    assert [i for i, n in enumerate(hist._counts) if n] == [1, 2, 4, 5, 9, 10]


def test_histogram_rejects_negative_and_nan_values() -> None:
    hist = LatencyHistogram()
    with pytest.raises(ValueError, match="latency must be a number >= 0, got -1"):
        hist.record(-1.0)
    with pytest.raises(ValueError, match="nan"):
        hist.record(math.nan)
    assert hist.count == 0


def test_histogram_rejects_bad_percentile_and_layout() -> None:
    with pytest.raises(ValueError, match=r"within 0\.\.100"):
        LatencyHistogram().percentile(101)
    with pytest.raises(ValueError, match="0 < lowest < highest"):
        LatencyHistogram(lowest=1.0, highest=0.5)
    with pytest.raises(ValueError, match="sub_buckets >= 1"):
        LatencyHistogram(sub_buckets=0)


def test_histogram_empty_answers_zero() -> None:
    hist = LatencyHistogram()
    assert hist.percentile(95) == 0.0
    assert hist.min == 0.0 and hist.mean == 0.0
    assert hist.summary().count == 0


def test_histogram_count_le_gives_prometheus_buckets() -> None:
    hist = LatencyHistogram()
    for value in (0.001, 0.002, 0.010, 0.100, 1.0):
        hist.record(value)
    assert hist.count_le(0.0015) == 1
    assert hist.count_le(0.05) == 3
    assert hist.count_le(10.0) == 5


def test_histogram_summary_and_reset() -> None:
    hist = LatencyHistogram()
    for i in range(1, 101):
        hist.record(i / 1000)
    summary = hist.summary()
    assert summary.count == 100
    assert summary.p50 == pytest.approx(0.050, rel=1 / 64)
    assert summary.p99 == pytest.approx(0.099, rel=1 / 64)
    hist.reset()
    assert hist.count == 0 and hist.max == 0.0
