from __future__ import annotations

import asyncio
import random

import pytest

from progressd.clock import FakeClock
from progressd.errors import ConfigError, StateError
from progressd.events import Batch, BatchingConfig, EventBus, Priority
from progressd.workbook import Field, Status, Workbook

ALL = ["field", "milestone", "rollback", "error", "lease"]


def make_bus(
    *, size: int = 512, interval: float = 10.0, threshold: Priority = Priority.HIGH, rows: int = 50
) -> tuple[Workbook, FakeClock, EventBus, list[Batch]]:
    wb = Workbook(["logged-in", "paid"], rows=rows)
    clock = FakeClock(100.0)
    config = BatchingConfig(
        max_batch_size=size, flush_interval=interval, priority_threshold=threshold
    )
    bus = EventBus(wb, clock, config)
    got: list[Batch] = []
    bus.subscribe(ALL, got.append)
    return wb, clock, bus, got


def events_of(batches: list[Batch]) -> list[tuple[str, int]]:
    return [(e.topic, e.row) for b in batches for e in b.events]


def test_batching_config_from_dsl_reads_the_three_parameters() -> None:
    config = BatchingConfig.from_dsl(
        {"max-batch-size": 64, "flush-interval": "250ms", "priority-threshold": "critical"}
    )
    assert config == BatchingConfig(
        max_batch_size=64, flush_interval=0.25, priority_threshold=Priority.CRITICAL
    )
    assert BatchingConfig.from_dsl({}) == BatchingConfig()


def test_batching_config_names_the_bad_key() -> None:
    with pytest.raises(ConfigError, match=r"progress\.batching\.flush-interval"):
        BatchingConfig.from_dsl({"flush-interval": "soon"})
    with pytest.raises(ConfigError, match=r"priority-threshold: expected one of low, normal"):
        BatchingConfig.from_dsl({"priority-threshold": "urgent"})
    with pytest.raises(ConfigError, match=r"max-batch-size: expected a positive integer"):
        BatchingConfig.from_dsl({"max-batch-size": 0})
    with pytest.raises(ConfigError, match=r"unknown key\(s\) \['max-batch'\]"):
        BatchingConfig.from_dsl({"max-batch": 3})


def test_batching_size_triggers_a_flush_when_a_batch_fills() -> None:
    wb, clock, bus, got = make_bus(size=3)
    for row in range(7):
        wb.set(row, Field.STEP, 1)
    assert bus.flush_due(clock.now()) == 2
    assert [len(b.events) for b in got] == [3, 3]
    assert {b.reason for b in got} == {"size"}
    assert bus.statistics().pending == 1
    assert events_of(got) == [("field", r) for r in range(6)]


def test_batching_interval_triggers_a_flush_after_the_oldest_change_waited() -> None:
    wb, clock, bus, got = make_bus(interval=0.5)
    wb.set(0, Field.STEP, 1)
    assert bus.next_deadline() == clock.now(), "uncollected changes: call flush_due now"
    assert bus.flush_due(clock.now()) == 0
    assert bus.next_deadline() == pytest.approx(100.5)
    clock.advance(0.3)
    wb.set(1, Field.STEP, 1)
    assert bus.flush_due(clock.now()) == 0
    clock.advance(0.2)
    assert bus.flush_due(clock.now()) == 1
    assert got[0].reason == "interval"
    assert events_of(got) == [("field", 0), ("field", 1)]
    assert bus.next_deadline() is None


def test_batching_interval_counts_from_the_first_uncollected_change() -> None:
    wb, clock, bus, got = make_bus(interval=0.5)
    wb.set(0, Field.STEP, 1)
    clock.advance(0.6)
    assert bus.flush_due(clock.now()) == 1, "the change waited 0.6 s before collection"
    assert got[0].reason == "interval"


def test_batching_priority_flushes_everything_pending_in_order() -> None:
    wb, clock, bus, got = make_bus(threshold=Priority.HIGH)
    wb.set(4, Field.STEP, 1)
    assert bus.flush_due(clock.now()) == 0
    wb.reach_milestone(2, 1)
    assert bus.flush_due(clock.now()) == 1
    assert got[0].reason == "priority"
    assert events_of(got) == [("field", 4), ("milestone", 2), ("field", 2)]
    assert got[0].events[1].milestone == 1


def test_batching_priority_threshold_decides_what_is_urgent() -> None:
    wb, clock, bus, got = make_bus(threshold=Priority.CRITICAL)
    wb.reach_milestone(0, 0)
    assert bus.flush_due(clock.now()) == 0, "a milestone is only HIGH"
    wb.rollback([0], "health-check-failed")
    assert bus.flush_due(clock.now()) == 1
    assert [e.topic for e in got[0].events] == ["milestone", "field", "rollback"]
    assert got[0].events[2].reason == "health-check-failed"


def test_batching_loses_nothing_and_keeps_order_under_random_writes() -> None:
    wb, clock, bus, got = make_bus(size=16, interval=0.05, rows=200)
    rng = random.Random(7)
    written: set[int] = set()
    milestones = 0
    for _ in range(2000):
        row = rng.randrange(200)
        if rng.random() < 0.05:
            wb.reach_milestone(row, rng.randrange(2))
            milestones += 1
        else:
            wb.add(row, Field.DONE, 1)
        written.add(row)
        clock.advance(rng.random() * 0.01)
        bus.flush_due(clock.now())
    clock.advance(1.0)
    bus.flush_due(clock.now())
    seqs = [e.seq for b in got for e in b.events]
    assert seqs == list(range(len(seqs)))
    assert [b.seq for b in got] == list(range(len(got)))
    assert {r for t, r in events_of(got) if t == "field"} == written
    assert sum(1 for t, _ in events_of(got) if t == "milestone") == milestones
    stats = bus.statistics()
    assert stats.events_delivered == stats.events_collected == len(seqs)
    assert stats.pending == 0


def test_event_bus_topics_filter_what_a_subscriber_sees() -> None:
    wb, clock, bus, _ = make_bus()
    seen: list[Batch] = []
    bus.subscribe(["milestone"], seen.append)
    wb.set(0, Field.STEP, 3)
    wb.reach_milestone(1, 0)
    bus.flush(clock.now())
    assert [e.topic for b in seen for e in b.events] == ["milestone"]


def test_event_bus_emits_error_and_lease_events() -> None:
    wb, clock, bus, got = make_bus()
    wb.record_error(3, "refused")
    wb.set(5, Field.LEASE, 2)
    bus.flush(clock.now())
    topics = events_of(got)
    assert ("error", 3) in topics
    assert ("lease", 5) in topics
    error = next(e for b in got for e in b.events if e.topic == "error")
    assert error.fields == Field.ERRORS.mask | Field.ERROR_TEXT.mask


def test_event_bus_orders_a_rows_field_error_and_lease_events_and_counts_urgency() -> None:
    wb, clock, bus, got = make_bus(threshold=Priority.HIGH)
    wb.set(1, Field.STEP, 2)
    wb.record_error(3, "refused")  # HIGH: urgent
    wb.set(3, Field.LEASE, 4)
    assert bus.flush_due(clock.now()) == 1
    assert got[0].reason == "priority"
    assert [(e.topic, e.row, e.seq) for e in got[0].events] == [
        ("field", 1, 0), ("field", 3, 1), ("error", 3, 2), ("lease", 3, 3)
    ]  # fmt: skip
    wb.set(1, Field.STEP, 3)  # nothing urgent is left over: a plain write waits
    assert bus.flush_due(clock.now()) == 0


def test_event_bus_field_priority_at_the_threshold_flushes_every_write() -> None:
    wb = Workbook(["m"], rows=4)
    clock = FakeClock(0.0)
    bus = EventBus(wb, clock, priorities={"field": Priority.HIGH})
    got: list[Batch] = []
    bus.subscribe(ALL, got.append)
    wb.set(0, Field.STEP, 1)
    wb.set(2, Field.STEP, 1)
    assert bus.flush_due(clock.now()) == 1
    assert got[0].reason == "priority" and events_of(got) == [("field", 0), ("field", 2)]
    assert bus.statistics().pending == 0


def test_event_bus_subscriber_write_back_lands_in_a_later_batch() -> None:
    wb, clock, bus, got = make_bus()

    def advance_next_row(batch: Batch) -> None:
        for event in batch.events:
            if event.topic == "field" and event.row < 3:
                wb.set(event.row + 1, Field.STATUS, Status.ACTIVE)
                assert wb.status(event.row + 1) is Status.PENDING, "staged until dispatch ends"

    bus.subscribe(["field"], advance_next_row)
    wb.set(0, Field.STATUS, Status.ACTIVE)
    for _ in range(5):
        bus.flush(clock.now())
    assert events_of(got) == [("field", 0), ("field", 1), ("field", 2), ("field", 3)]
    assert [len(b.events) for b in got] == [1, 1, 1, 1]


def test_event_bus_back_pressure_stalls_instead_of_dropping() -> None:
    wb, clock, bus, _ = make_bus(size=2)
    queue = bus.subscribe(["field"], max_pending=1)
    wakes: list[int] = []
    bus.on_wake = lambda: wakes.append(1)
    for row in range(4):
        wb.set(row, Field.STEP, 1)
    assert bus.flush_due(clock.now()) == 1, "the queue holds one batch; the second waits"
    assert bus.stalled
    wb.add(0, Field.DONE, 5)
    wb.add(0, Field.DONE, 5)
    clock.advance(2.0)
    assert bus.flush_due(clock.now()) == 0
    assert bus.next_deadline() is None
    assert wb.statistics().dirty_rows == 1, "changes wait in the workbook, coalesced per row"
    first = queue.pop_nowait()
    assert first is not None and [e.row for e in first.events] == [0, 1]
    assert wakes, "draining a full queue wakes the poller"
    clock.advance(0.5)
    assert bus.flush_due(clock.now()) == 1
    second = queue.pop_nowait()
    assert second is not None and [e.row for e in second.events] == [2, 3]
    clock.advance(10.0)
    assert bus.flush_due(clock.now()) == 1
    third = queue.pop_nowait()
    assert third is not None and [(e.row, e.fields) for e in third.events] == [(0, Field.DONE.mask)]
    stats = bus.statistics()
    assert stats.stalls == 2
    assert stats.stall_seconds == pytest.approx(2.5)
    assert stats.max_queue_depth == 1
    assert stats.events_delivered == 5


def test_event_bus_forced_flush_ignores_back_pressure() -> None:
    wb, clock, bus, _ = make_bus()
    queue = bus.subscribe(["field"], max_pending=1)
    wb.set(0, Field.STEP, 1)
    bus.flush(clock.now())
    wb.set(1, Field.STEP, 1)
    assert bus.flush(clock.now()) == 0
    assert bus.flush(clock.now(), force=True) == 1
    assert len(queue.queue) == 2


async def test_event_bus_queue_subscriber_waits_for_a_batch() -> None:
    wb, clock, bus, _ = make_bus()
    queue = bus.subscribe(["milestone"], max_pending=4)
    waiter = asyncio.ensure_future(queue.wait_batch())
    await asyncio.sleep(0)
    assert not waiter.done()
    wb.reach_milestone(7, 0)
    bus.flush_due(clock.now())
    batch = await asyncio.wait_for(waiter, 1.0)
    assert [(e.topic, e.row) for e in batch.events] == [("milestone", 7)]


def test_event_bus_failing_subscriber_does_not_starve_others(
    caplog: pytest.LogCaptureFixture,
) -> None:
    wb, clock, bus, got = make_bus()

    def broken(batch: Batch) -> None:
        raise RuntimeError("subscriber bug")

    bus.subscribe(["field"], broken)
    after: list[Batch] = []
    bus.subscribe(["field"], after.append)
    wb.set(0, Field.STEP, 1)
    bus.flush(clock.now())
    assert len(got) == len(after) == 1
    assert bus.statistics().subscriber_errors == 1
    assert "subscriber failed" in caplog.text


def test_event_bus_subscribe_rejects_unknown_topics() -> None:
    _, _, bus, _ = make_bus()
    with pytest.raises(StateError, match="unknown topics"):
        bus.subscribe(["progress"], print)
    with pytest.raises(StateError, match="max_pending must be >= 1"):
        bus.subscribe(["field"], max_pending=0)


def test_event_bus_wakes_the_poller_on_the_first_change() -> None:
    wb, _clock, bus, _ = make_bus()
    wakes: list[int] = []
    bus.on_wake = lambda: wakes.append(1)
    wb.set(0, Field.STEP, 1)
    wb.set(1, Field.STEP, 1)
    assert wakes == [1]
