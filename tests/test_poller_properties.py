"""Property tests: under random subscriptions, events, cancellations, clock moves and a small
budget, every live handle fires exactly once and never before it is due, cancelled handles
never fire, each iteration runs classes in priority order and each class in due order, and no
ready handle waits more iterations than the starvation floor allows."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from progressd.clock import FakeClock
from progressd.poller import PollableKind, Poller, ProgressPollable

ops = st.lists(
    st.one_of(
        st.tuples(st.just("timer"), st.floats(-1.0, 3.0), st.integers(0, 3)),
        st.tuples(st.just("event"), st.just(0.0), st.integers(0, 3)),
        st.tuples(st.just("ready"), st.integers(0, 200), st.just(0)),
        st.tuples(st.just("cancel"), st.integers(0, 200), st.just(0)),
        st.tuples(st.just("advance"), st.floats(0.0, 1.0), st.just(0)),
        st.tuples(st.just("iterate"), st.just(0.0), st.just(0)),
    ),
    max_size=120,
)


@settings(max_examples=150, deadline=None)
@given(ops=ops, budget=st.integers(1, 8))
def test_poller_fires_every_live_handle_once_in_order(
    ops: list[tuple[str, float, int]], budget: int
) -> None:
    clock = FakeClock(0.0)
    poller = Poller(clock, budget=budget, floor=1)
    handles: list[ProgressPollable] = []
    fired: list[tuple[int, ProgressPollable, float]] = []  # (iteration, handle, fired at)
    iteration = 0

    def on_ready(handle: ProgressPollable) -> None:
        fired.append((iteration, handle, clock.now()))

    def run_one() -> None:
        nonlocal iteration
        iteration += 1
        poller.run_ready()

    for op, value, rank in ops:
        if op == "timer":
            handles.append(poller.subscribe_timer(clock.now() + value, on_ready, None, rank))
        elif op == "event":
            handles.append(poller.subscribe(PollableKind.COMPLETION, on_ready, None, rank))
        elif op == "ready" and handles:
            poller.make_ready(handles[int(value) % len(handles)])
        elif op == "cancel" and handles:
            poller.cancel(handles[int(value) % len(handles)])
        elif op == "advance":
            clock.advance(value)
        elif op == "iterate":
            run_one()
    clock.advance(10.0)
    for _ in range(len(handles) + 2):  # floor 1: at most one iteration per queued handle
        run_one()

    fired_handles = [h for _, h, _ in fired]
    assert len(fired_handles) == len({id(h) for h in fired_handles})  # at most once
    for handle in handles:
        if handle.cancelled:
            assert handle not in fired_handles
        elif handle.kind is PollableKind.TIMER or handle.state != "waiting-event":
            assert handle.fired and handle in fired_handles  # live and due/ready: fired
    for _, handle, at in fired:
        assert handle.due <= at  # never early
    by_iteration: dict[int, list[ProgressPollable]] = {}
    for it, handle, _ in fired:
        by_iteration.setdefault(it, []).append(handle)
    for batch in by_iteration.values():
        keys = [(h.rank, h.due) for h in batch]
        assert keys == sorted(keys)  # classes in priority order, due order within a class
        assert len(batch) <= max(budget, len({h.rank for h in batch}))
    assert poller.statistics().queue_depth == dict.fromkeys(poller.statistics().queue_depth, 0)
