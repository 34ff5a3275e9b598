"""The poller's pure parts: the budget split (starvation floor), the wake-latency histogram and
the idle-time garbage collection policy."""

from __future__ import annotations

import asyncio
import gc

import pytest
from hypothesis import given
from hypothesis import strategies as st

from progressd.clock import FakeClock
from progressd.poller import Poller, PriorityClasses, WakeLatencyHistogram, split_budget
from progressd.poller.gcpolicy import IdleCollector


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


def test_idle_collector_collects_only_when_idle_and_restores_the_collector() -> None:
    now = [0.0]
    collector = IdleCollector(min_idle=0.002, full_interval=60.0, clock=lambda: now[0])
    was_enabled = gc.isenabled()
    collector.start()
    try:
        assert not gc.isenabled()
        threshold = gc.get_threshold()[0]
        junk = [[i] for i in range(threshold * 2)]  # past the threshold, short of the batch
        collector.on_idle(0.010)
        assert collector.young_collections == 0
        junk += [[i] for i in range(threshold * collector.young_batch)]  # past the batch
        collector.on_idle(0.001)  # too short a nap to spend on collecting
        assert collector.young_collections == 0
        collector.on_idle(0.010)  # a long nap, but the collector started < young_interval ago
        assert collector.young_collections == 0
        now[0] = 0.2
        collector.on_idle(0.010)
        assert collector.young_collections == 1 and collector.full_collections == 0
        junk += [[i] for i in range(threshold * collector.young_batch)]
        now[0] = 0.25
        collector.on_idle(0.010)  # a batch again, within young_interval of the last collection
        collector.on_busy()  # nor the valve: 20x is not reached
        assert collector.young_collections == 1
        while gc.get_count()[0] < 20 * threshold:  # 20x: the valve, once the interval is over
            junk.append([0])
        collector.on_busy()
        assert collector.young_collections == 1
        now[0] = 0.31
        collector.on_busy()
        assert collector.young_collections == 2
        now[0] = 61.0
        collector.on_idle(0.010)
        assert collector.full_collections == 1
        now[0] = 61.0 + 121.0
        collector.on_busy()  # two intervals overdue: collected even while busy
        assert collector.full_collections == 2
        del junk
    finally:
        collector.stop()
    assert gc.isenabled() == was_enabled


async def test_poller_run_with_idle_gc_policy_restores_the_collector() -> None:
    poller = Poller(FakeClock(0.0), gc_policy="idle")
    was_enabled = gc.isenabled()
    seen: list[bool] = []
    poller.add_iteration_hook(lambda now: seen.append(gc.isenabled()))
    task = asyncio.ensure_future(poller.run())
    for _ in range(3):
        await asyncio.sleep(0)
    poller.stop()
    await task
    assert seen and not any(seen)  # off while the poller runs
    assert gc.isenabled() == was_enabled
