"""Deadlines: a pool's request timeouts on one timer of a (manual) scheduler: no sleeps."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from progressd.clock import FakeClock
from progressd.http.deadlines import Deadlines
from progressd.http.exchange import DONE, Exchange
from progressd.http.request import encode_request
from progressd.http.result import HttpResult
from progressd.scheduling import FakeScheduler

REQUEST = encode_request("GET", "/", "h")


def _ignore(result: HttpResult) -> None:
    pass


def _exchange(started: float) -> Exchange:
    return Exchange(REQUEST, _ignore, started)


def _deadlines(start: float = 0.0) -> tuple[FakeScheduler, Deadlines, list[Exchange]]:
    clock = FakeScheduler(FakeClock(start))
    expired: list[Exchange] = []

    def expire(ex: Exchange) -> None:
        ex.state = DONE
        expired.append(ex)

    return clock, Deadlines(clock, expire), expired


def test_deadlines_expire_in_order_on_one_timer() -> None:
    clock, deadlines, expired = _deadlines()
    exchanges = [_exchange(started=i * 0.1) for i in range(100)]
    for ex in exchanges:
        deadlines.add(ex, 5.0)
    assert clock.pending() == 1
    clock.advance(5.0)
    assert expired == exchanges[:1]
    clock.advance(4.95)
    assert expired == exchanges[:50]
    clock.advance(5.0)
    assert expired == exchanges
    assert len(deadlines) == 0 and clock.pending() == 0


def test_deadlines_skip_finished_exchanges() -> None:
    clock, deadlines, expired = _deadlines()
    exchanges = [_exchange(started=0.0) for _ in range(4)]
    for ex in exchanges:
        deadlines.add(ex, 1.0)
    exchanges[0].state = exchanges[2].state = DONE  # completed before their deadline
    clock.advance(1.0)
    assert expired == [exchanges[1], exchanges[3]]


def test_deadlines_rearm_for_the_next_live_front() -> None:
    clock, deadlines, expired = _deadlines()
    first, later = _exchange(0.0), _exchange(3.0)
    deadlines.add(first, 2.0)
    deadlines.add(later, 2.0)
    first.state = DONE
    clock.advance(2.0)  # the armed timer finds only a finished exchange, re-arms for 5.0
    assert expired == [] and clock.pending() == 1
    clock.advance(3.0)
    assert expired == [later]


def test_deadlines_with_a_shorter_timeout_arm_earlier() -> None:
    clock, deadlines, expired = _deadlines()
    slow, fast = _exchange(0.0), _exchange(0.0)
    deadlines.add(slow, 10.0)
    deadlines.add(fast, 1.0)
    clock.advance(1.0)
    assert expired == [fast]
    clock.advance(9.0)
    assert expired == [fast, slow]


def test_deadlines_memory_follows_live_exchanges() -> None:
    _, deadlines, _ = _deadlines()
    stuck = _exchange(0.0)  # a slow request holds the front of its FIFO
    deadlines.add(stuck, 10.0)
    for i in range(10_000):
        ex = _exchange(i * 1e-4)
        deadlines.add(ex, 10.0)
        ex.state = DONE
    assert len(deadlines) <= 1025  # compacted, not 10,001


def test_deadlines_callback_may_add_and_close_disarms() -> None:
    clock = FakeScheduler(FakeClock(0.0))
    expired: list[Exchange] = []

    def expire_and_retry(ex: Exchange) -> None:
        ex.state = DONE
        expired.append(ex)
        if len(expired) == 1:
            deadlines.add(_exchange(clock.time()), 1.0)

    deadlines = Deadlines(clock, expire_and_retry)
    deadlines.add(_exchange(0.0), 1.0)
    clock.advance(1.0)
    assert len(expired) == 1 and clock.pending() == 1
    clock.advance(1.0)
    assert len(expired) == 2
    deadlines.add(_exchange(clock.time()), 1.0)
    deadlines.close()
    assert clock.pending() == 0 and len(deadlines) == 0


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.tuples(st.just("add"), st.sampled_from([0.5, 1.0, 3.0])),
            st.tuples(st.just("finish"), st.integers(0, 50)),
            st.tuples(st.just("advance"), st.sampled_from([0.0, 0.1, 0.4, 1.0, 2.5])),
        ),
        max_size=80,
    )
)
def test_deadlines_expire_exactly_the_live_overdue_exchanges(ops: list[tuple[str, float]]) -> None:
    clock, deadlines, expired = _deadlines()
    added: list[tuple[Exchange, float]] = []
    finished: set[int] = set()
    for op, arg in ops:
        if op == "add":
            ex = _exchange(clock.time())
            deadlines.add(ex, arg)
            added.append((ex, arg))
        elif op == "finish" and added:
            ex = added[int(arg) % len(added)][0]
            if ex.state != DONE:
                ex.state = DONE
                finished.add(id(ex))
        else:
            clock.advance(arg)
            now = clock.time()
            overdue = [ex for ex, t in added if id(ex) not in finished and ex.started + t <= now]
            assert sorted(map(id, expired)) == sorted(map(id, overdue))  # none early, none late
