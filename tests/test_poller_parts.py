"""The poller's pure parts: the budget split (starvation floor) and the wake-latency histogram."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from progressd.poller import PriorityClasses, WakeLatencyHistogram, split_budget


def test_split_budget_under_budget_gives_everyone_everything() -> None:
    assert split_budget([3, 0, 2], budget=10, floor=1) == ([3, 0, 2], 0)


def test_split_budget_strict_priority_after_the_floor() -> None:
    allot, rescues = split_budget([100, 100, 100], budget=10, floor=2)
    assert allot == [6, 2, 2]
    assert rescues == 2  # ranks 1 and 2 ran only thanks to their floor


@given(
    lengths=st.lists(st.integers(0, 5000), min_size=1, max_size=6),
    budget=st.integers(1, 2048),
    floor=st.integers(1, 64),
)
def test_split_budget_guarantees_the_floor_and_never_overruns(
    lengths: list[int], budget: int, floor: int
) -> None:
    floor = min(floor, budget)
    allot, _ = split_budget(lengths, budget, floor)
    for n, a in zip(lengths, allot, strict=True):
        assert min(n, floor) <= a <= n
    floors = sum(min(n, floor) for n in lengths)
    assert sum(allot) <= max(budget, floors)
    if sum(lengths) >= budget:
        assert sum(allot) >= min(budget, sum(lengths))


def test_priority_classes_are_dense_and_shared() -> None:
    classes = PriorityClasses({"a": 10, "b": 3, "c": 10})
    assert classes.count == 2
    assert classes.rank_of("b") == 0 and classes.rank_of("a") == classes.rank_of("c") == 1
    assert classes.label(1) == "a+c"


def test_histogram_percentiles_bound_the_value_from_above() -> None:
    histogram = WakeLatencyHistogram()
    for us in range(1, 1001):
        histogram.record(us / 1_000_000)
    p50, p99 = histogram.percentile(0.5), histogram.percentile(0.99)
    assert 0.000500 <= p50 <= 0.000500 * 1.125
    assert 0.000990 <= p99 <= 0.000990 * 1.125
    assert histogram.total == 1000 and histogram.max == pytest.approx(0.001)


def test_histogram_counts_runs_and_is_bounded() -> None:
    histogram = WakeLatencyHistogram()
    histogram.record(0.002, count=99)
    histogram.record(10**9, count=1)  # absurd latency: lands in the top bucket
    assert histogram.total == 100
    assert histogram.percentile(0.99) <= 0.002 * 1.125
    assert len(histogram._counts) < 400
    assert sum(n for _, n in histogram.buckets()) == 100
    histogram.reset()
    assert histogram.percentile(0.5) == 0.0
