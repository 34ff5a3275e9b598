"""The poll loop: one-shot handles, priority order, budget, starvation freedom, cancellation,
hooks and statistics. Every test drives a FakeClock and ``run_ready``; nothing sleeps."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from progressd.clock import FakeClock
from progressd.errors import ConfigError, StateError
from progressd.poller import AGAIN, PollableKind, Poller, ProgressPollable


def make_poller(**kwargs: object) -> tuple[Poller, FakeClock]:
    clock = FakeClock(100.0)
    return Poller(clock, **kwargs), clock  # type: ignore[arg-type]


def poller_with_errors() -> tuple[Poller, list[tuple[BaseException, object]]]:
    errors: list[tuple[BaseException, object]] = []
    poller, _clock = make_poller(on_error=lambda exc, src: errors.append((exc, src)))
    return poller, errors


def always_again(log: list[ProgressPollable]) -> Callable[[ProgressPollable], object]:
    def again(handle: ProgressPollable) -> object:
        log.append(handle)
        return AGAIN

    return again


def recorder(log: list[object]):  # type: ignore[no-untyped-def]
    def on_ready(handle: ProgressPollable) -> None:
        log.append(handle.owner)

    return on_ready


def test_poller_timer_fires_once_when_due() -> None:
    poller, clock = make_poller()
    log: list[object] = []
    handle = poller.subscribe_timer(clock.now() + 1.0, recorder(log), owner="a")
    assert poller.run_ready() == 0
    assert not handle.ready()
    clock.advance(1.0)
    assert handle.ready()  # due: ready before the poller has run it
    assert poller.run_ready() == 1
    assert handle.fired and log == ["a"]
    clock.advance(5.0)
    assert poller.run_ready() == 0
    assert log == ["a"]  # spent: never fires again


def test_poller_timers_fire_in_due_order() -> None:
    poller, clock = make_poller()
    log: list[object] = []
    for owner, delay in [("c", 3.0), ("a", 1.0), ("b", 2.0), ("a2", 1.0004), ("a1", 1.0002)]:
        poller.subscribe_timer(clock.now() + delay, recorder(log), owner=owner)
    clock.advance(3.0)
    poller.run_ready()
    assert log == ["a", "a1", "a2", "b", "c"]  # same-millisecond timers too


def test_poller_timer_slot_straddling_now_releases_only_the_due_part() -> None:
    poller, clock = make_poller()
    log: list[object] = []
    for owner, delay in [("late", 0.0009), ("early", 0.0001), ("mid", 0.0005)]:
        poller.subscribe_timer(clock.now() + delay, recorder(log), owner=owner)
    clock.advance(0.0006)
    poller.run_ready()
    assert log == ["early", "mid"]  # never early: "late" shares their millisecond
    assert poller.next_deadline() == pytest.approx(100.0009)
    clock.advance(0.0003)
    poller.run_ready()
    assert log == ["early", "mid", "late"]
    assert poller.next_deadline() is None and poller.statistics().timers_waiting == 0


def test_poller_runs_classes_in_priority_order_then_due() -> None:
    poller, clock = make_poller()
    log: list[object] = []
    now = clock.now()
    poller.subscribe_timer(now - 3, recorder(log), "telemetry", poller.rank_of("telemetry"))
    poller.subscribe_timer(now - 1, recorder(log), "step-late", poller.rank_of("step"))
    poller.subscribe_timer(now - 2, recorder(log), "step-early", poller.rank_of("step"))
    poller.subscribe_timer(now, recorder(log), "milestone", poller.rank_of("milestone"))
    poller.subscribe_timer(now, recorder(log), "health", poller.rank_of("health"))
    poller.run_ready()
    assert log == ["health", "milestone", "step-early", "step-late", "telemetry"]


def test_poller_orders_event_and_timer_handles_by_due_within_a_class() -> None:
    poller, clock = make_poller()
    log: list[object] = []
    poller.subscribe_timer(clock.now() + 1.0, recorder(log), "timer-at-1")
    clock.advance(2.0)
    event = poller.subscribe(PollableKind.COMPLETION, recorder(log), "event-at-2")
    poller.make_ready(event)
    poller.run_ready()
    assert log == ["timer-at-1", "event-at-2"]


def test_poller_custom_priorities_reverse_the_order() -> None:
    poller, clock = make_poller(priorities={"step": 0, "health": 5})
    log: list[object] = []
    poller.subscribe_timer(clock.now(), recorder(log), "health", poller.rank_of("health"))
    poller.subscribe_timer(clock.now(), recorder(log), "step", poller.rank_of("step"))
    poller.run_ready()
    assert log == ["step", "health"]


def test_poller_handle_ready_during_a_batch_waits_for_the_next_iteration() -> None:
    poller, clock = make_poller()
    runs: list[int] = []

    def again(handle: ProgressPollable) -> None:
        runs.append(poller.statistics().iterations)
        if len(runs) < 3:
            poller.subscribe_timer(poller.now, again)

    poller.subscribe_timer(clock.now(), again)
    assert poller.run_ready() == 1
    assert poller.run_ready() == 1
    assert poller.run_ready() == 1
    assert runs == [1, 2, 3]  # one run per iteration: a fresh ready list each time


def test_poller_budget_bounds_one_iteration_and_keeps_the_rest() -> None:
    poller, clock = make_poller(budget=10)
    log: list[object] = []
    for i in range(25):
        poller.subscribe_timer(clock.now(), recorder(log), i)
    assert [poller.run_ready() for _ in range(4)] == [10, 10, 5, 0]
    assert log == list(range(25))


def test_poller_io_budget_bounds_an_iteration_while_completions_are_queued() -> None:
    poller, clock = make_poller(budget=10, io_budget=4)
    log: list[object] = []
    for i in range(12):
        poller.subscribe_timer(clock.now(), recorder(log), f"t{i}")
    assert poller.run_ready() == 10  # timers only: the whole budget
    for i in range(6):
        poller.make_ready(poller.subscribe(PollableKind.COMPLETION, recorder(log), f"c{i}"))
    assert [poller.run_ready() for _ in range(4)] == [4, 4, 0, 0]  # 2 timers + 6 completions
    assert log[10:] == ["t10", "t11", "c0", "c1", "c2", "c3", "c4", "c5"]
    assert make_poller(budget=100)[0].io_budget == 100  # the default, capped at the budget
    assert make_poller()[0].io_budget == 256


def test_poller_low_priority_progresses_under_a_self_rescheduling_flood() -> None:
    poller, clock = make_poller(budget=8, floor=1)
    health = poller.rank_of("health")
    low: list[object] = []

    def flood(handle: ProgressPollable) -> None:
        poller.subscribe_timer(poller.now, flood, handle.owner, health)

    for i in range(50):  # far more always-ready health handles than the budget
        poller.subscribe_timer(clock.now(), flood, i, health)
    for i in range(3):
        poller.subscribe_timer(clock.now(), recorder(low), i, poller.rank_of("telemetry"))
    for _ in range(3):
        poller.run_ready()
    assert low == [0, 1, 2]  # floor 1 per iteration: p // floor + 1 iterations at most
    assert poller.statistics().starvation_events == 3


def test_poller_without_contention_counts_no_starvation() -> None:
    poller, clock = make_poller(budget=8, floor=1)
    for rank in range(4):
        poller.subscribe_timer(clock.now(), None, rank=rank)
    assert poller.run_ready() == 4
    assert poller.statistics().starvation_events == 0


@pytest.mark.parametrize("state", ["waiting-timer", "waiting-event", "ready"])
def test_poller_cancelled_handles_never_fire(state: str) -> None:
    poller, clock = make_poller()
    log: list[object] = []
    if state == "waiting-timer":
        handle = poller.subscribe_timer(clock.now() + 1, recorder(log), "x")
    else:
        handle = poller.subscribe(PollableKind.CONDITION, recorder(log), "x")
        if state == "ready":
            poller.make_ready(handle)
    assert handle.state == state
    assert poller.cancel(handle)
    assert not poller.cancel(handle)
    assert not poller.make_ready(handle)
    clock.advance(2)
    assert poller.run_ready() == 0
    assert log == [] and handle.cancelled and not handle.ready()
    stats = poller.statistics()
    assert stats.handles_cancelled == 1
    assert stats.queue_depth["step"] == 0 and stats.timers_waiting == 0


def test_poller_callback_may_cancel_a_later_handle_of_the_same_batch() -> None:
    poller, clock = make_poller()
    log: list[object] = []
    second = poller.subscribe_timer(clock.now(), recorder(log), "second")
    first_rank = poller.rank_of("health")
    poller.subscribe_timer(clock.now(), lambda h: second.cancel(), "first", first_rank)
    assert poller.run_ready() == 1
    assert log == []


def test_poller_cancel_compacts_mostly_dead_timers() -> None:
    poller, clock = make_poller()
    handles = [poller.subscribe_timer(clock.now() + 1 + i, None) for i in range(3000)]
    for handle in handles[:2500]:
        handle.cancel()
    assert poller._wheel.entries < 3000  # rebuilt once more than half was dead
    assert poller.statistics().timers_waiting == 500
    clock.advance(10_000)
    assert poller.run_ready() == 500


def test_poller_make_ready_is_one_shot_and_carries_a_value() -> None:
    poller, _ = make_poller()
    values: list[object] = []
    handle = poller.subscribe(PollableKind.COMPLETION, lambda h: values.append(h.value), owner=7)
    assert not handle.ready() and handle.value is None
    assert poller.make_ready(handle, ("ok", 200))
    assert not poller.make_ready(handle, ("late", 500))
    assert handle.ready() and not handle.fired
    poller.run_ready()
    assert values == [("ok", 200)] and handle.fired


def test_poller_events_of_one_turn_share_the_first_ones_instant() -> None:
    poller, clock = make_poller()
    first, second, later = (poller.subscribe(PollableKind.COMPLETION) for _ in range(3))
    poller.make_ready(first)
    clock.advance(0.004)
    poller.make_ready(second)  # same turn: stamped with the first one's instant
    assert first.due == second.due == 100.0
    clock.advance(0.001)
    poller.run_ready()  # both ran 5 ms after the first event: an upper bound for the second
    stats = poller.statistics()
    assert stats.wake_latency_max_seconds == pytest.approx(0.005)
    clock.advance(0.002)
    poller.make_ready(later)  # a new turn reads the clock again
    assert later.due == pytest.approx(100.007)


def test_poller_event_with_deadline_times_out_without_a_value() -> None:
    poller, clock = make_poller()
    fired: list[object] = []
    handle = poller.subscribe(
        PollableKind.REPORT, lambda h: fired.append(h.value), due=clock.now() + 0.5
    )
    clock.advance(0.5)
    poller.run_ready()
    assert fired == [None] and handle.kind is PollableKind.REPORT


def test_poller_callback_errors_are_reported_and_do_not_stop_the_batch() -> None:
    errors: list[tuple[BaseException, object]] = []
    poller, clock = make_poller(on_error=lambda exc, src: errors.append((exc, src)))
    log: list[object] = []

    def boom(handle: ProgressPollable) -> None:
        raise RuntimeError("boom")

    bad = poller.subscribe_timer(clock.now(), boom, "bad", poller.rank_of("health"))
    poller.subscribe_timer(clock.now(), recorder(log), "good")
    assert poller.run_ready() == 2
    assert log == ["good"]
    assert [(str(e), s) for e, s in errors] == [("boom", bad)]
    assert poller.statistics().callback_errors == 1


def test_poller_iteration_hooks_run_every_iteration_with_now() -> None:
    poller, clock = make_poller()
    seen: list[float] = []
    remove = poller.add_iteration_hook(seen.append, lambda: None)
    poller.run_ready()
    clock.advance(1.5)
    poller.run_ready()
    remove()
    poller.run_ready()
    assert seen == [100.0, 101.5]


def test_poller_statistics_record_latency_depth_and_iterations() -> None:
    poller, clock = make_poller(budget=2)
    for delay in (0.001, 0.002, 0.003):
        poller.subscribe_timer(clock.now() + delay, None)
    clock.advance(0.010)
    poller.run_ready()
    stats = poller.statistics()
    assert stats.iterations == 1 and stats.handles_run == 2
    assert stats.queue_depth == {"health": 0, "milestone": 0, "step": 1, "telemetry": 0}
    assert stats.handles_per_iteration_max == 2
    # latencies 9 ms and 8 ms: bucket upper bounds within 12.5 %, never below the value
    assert 0.009 <= stats.wake_latency_p99_seconds <= 0.009 * 1.125
    assert 0.008 <= stats.wake_latency_p50_seconds <= 0.008 * 1.125
    assert stats.wake_latency_max_seconds == pytest.approx(0.009)
    poller.reset_statistics()
    assert poller.statistics().iterations == 0


def test_poller_next_deadline_skips_cancelled_timers() -> None:
    poller, clock = make_poller()
    first = poller.subscribe_timer(clock.now() + 1, None)
    poller.subscribe_timer(clock.now() + 2, None)
    assert poller.next_deadline() == 101.0
    first.cancel()
    assert poller.next_deadline() == 102.0


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"priorities": {}}, "at least one priority class"),
        ({"priorities": {"step": -1}}, "integer priority >= 0"),
        ({"priorities": {"step": "high"}}, "integer priority >= 0"),
        ({"budget": 0}, "budget: expected an integer >= 1"),
        ({"budget": 4, "floor": 5}, r"floor: expected an integer in \[1, budget\]"),
        ({"budget": 4, "io_budget": 5}, r"io-budget: expected an integer in \[1, budget=4\]"),
        ({"io_budget": 0}, r"io-budget: expected an integer in \[1, budget=1024\]"),
        ({"sentinel": 0.0}, "sentinel: expected a positive number"),
    ],
)
def test_poller_rejects_bad_configuration(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        make_poller(**kwargs)


def test_poller_rank_of_unknown_class_names_the_known_ones() -> None:
    poller, _ = make_poller()
    with pytest.raises(ConfigError, match=r"unknown priority class 'urgent'.*health, milestone"):
        poller.rank_of("urgent")


def test_poller_shared_priority_levels_share_a_queue() -> None:
    poller, clock = make_poller(priorities={"health": 0, "milestone": 0, "step": 1})
    assert poller.rank_of("health") == poller.rank_of("milestone") == 0
    poller.subscribe_timer(clock.now(), None, rank=0)
    assert poller.statistics().queue_depth == {"health+milestone": 1, "step": 0}


def test_poller_slot_returning_again_is_rearmed_in_place_next_iteration() -> None:
    poller, _clock = make_poller()
    seen: list[ProgressPollable] = []

    def again(handle: ProgressPollable) -> object:
        seen.append(handle)
        return AGAIN if len(seen) < 4 else None

    slot = poller.subscribe_timer(poller.now, again, "u", rearmable=True)
    for ran in range(4):
        assert poller.run_ready() == 1, ran  # once per iteration: never twice in one batch
    assert poller.run_ready() == 0
    assert seen == [slot] * 4 and slot.fired  # the same handle, spent after the last turn
    assert poller.statistics().handles_run == 4 and poller.statistics().callback_errors == 0


def test_poller_again_never_rearms_a_public_handle() -> None:
    poller, errors = poller_with_errors()
    seen: list[ProgressPollable] = []
    public = poller.subscribe_timer(poller.now, always_again(seen), "u")
    assert poller.run_ready() == 1
    assert poller.run_ready() == 0 and seen == [public] and public.fired  # spent for good
    [(exc, source)] = errors
    assert isinstance(exc, StateError) and "no live slot" in str(exc) and source is public


def test_poller_cancelled_slot_never_fires_and_is_not_rearmed() -> None:
    poller, errors = poller_with_errors()
    log: list[ProgressPollable] = []
    slot = poller.subscribe_timer(poller.now, always_again(log), "u", rearmable=True)
    poller.run_ready()
    assert slot.state == "ready"  # re-armed by its AGAIN
    assert poller.cancel(slot)
    assert poller.run_ready() == 0 and slot.cancelled and len(log) == 1
    assert poller.statistics().queue_depth["step"] == 0

    def running(handle: ProgressPollable) -> object:
        log.append(handle)
        assert not poller.cancel(handle)  # it has fired: its return value decides
        return None

    other = poller.subscribe_timer(poller.now, running, "w", rearmable=True)
    assert poller.run_ready() == 1 and poller.run_ready() == 0 and len(log) == 2
    assert other.fired and errors == []


def test_poller_waiting_slot_fires_at_its_due_then_loops() -> None:
    poller, clock = make_poller()
    turns: list[float] = []

    def again(handle: ProgressPollable) -> object:
        turns.append(poller.now)
        return AGAIN if len(turns) < 3 else None

    poller.subscribe_timer(clock.now() + 1.0, again, "u", rearmable=True)
    assert poller.run_ready() == 0
    clock.advance(1.0)
    assert [poller.run_ready() for _ in range(4)] == [1, 1, 1, 0]
    assert turns == [101.0, 101.0, 101.0]
