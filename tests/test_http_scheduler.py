"""TimerQueue: many timers on one timer of a base scheduler (a manual one here: no sleeps)."""

from __future__ import annotations

from http_testkit import ManualScheduler

from progressd.http import TimerQueue


def test_timer_queue_fires_in_deadline_order_on_one_base_timer() -> None:
    base = ManualScheduler(start=0.0)
    queue = TimerQueue(base)
    fired: list[str] = []
    queue.call_at(5.0, lambda: fired.append("a"))
    queue.call_at(7.0, lambda: fired.append("b"))
    queue.call_at(6.0, lambda: fired.append("out-of-order"))  # earlier than the tail: heap
    queue.call_at(1.0, lambda: fired.append("earliest"))  # re-arms the base timer earlier
    assert base.pending() == 1
    base.advance(1.0)
    assert fired == ["earliest"]
    base.advance(5.5)
    assert fired == ["earliest", "a", "out-of-order"]
    base.advance(0.5)
    assert fired == ["earliest", "a", "out-of-order", "b"]
    assert len(queue) == 0 and base.pending() == 0


def test_timer_queue_cancelled_timers_never_fire_and_are_dropped() -> None:
    base = ManualScheduler(start=0.0)
    queue = TimerQueue(base)
    fired: list[int] = []
    timers = [queue.call_at(10.0 + i, lambda i=i: fired.append(i)) for i in range(5)]
    for i in (0, 1, 3):
        timers[i].cancel()
        timers[i].cancel()  # twice is harmless
    base.advance(20.0)
    assert fired == [2, 4]
    assert queue.cancelled == 0 and len(queue) == 0


def test_timer_queue_memory_follows_live_timers_not_cancelled_ones() -> None:
    base = ManualScheduler(start=0.0)
    queue = TimerQueue(base)
    stuck = queue.call_at(100.0, lambda: None)  # a slow request holds the front
    for i in range(10_000):
        queue.call_at(100.0 + i * 1e-3, lambda: None).cancel()
    assert len(queue) < 2100  # compacted, not 10,001
    stuck.cancel()


def test_timer_queue_callback_may_schedule_and_later_deadlines_still_fire() -> None:
    base = ManualScheduler(start=0.0)
    queue = TimerQueue(base)
    fired: list[str] = []

    def first() -> None:
        fired.append("first")
        queue.call_at(base.now + 10.0, lambda: fired.append("scheduled-late"))

    queue.call_at(1.0, first)
    queue.call_at(2.0, lambda: fired.append("second"))
    base.advance(1.0)
    base.advance(1.0)
    assert fired == ["first", "second"]
    base.advance(10.0)
    assert fired == ["first", "second", "scheduled-late"]


def test_timer_queue_fires_everything_due_at_once_and_time_is_the_base_time() -> None:
    base = ManualScheduler(start=3.0)
    queue = TimerQueue(base)
    assert queue.time() == 3.0
    fired: list[float] = []
    for when in (4.0, 4.5, 5.0):
        queue.call_at(when, lambda when=when: fired.append(when))
    base.advance(10.0)
    assert fired == [4.0, 4.5, 5.0]
