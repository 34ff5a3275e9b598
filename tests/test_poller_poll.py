"""Conformance with ``wasi:io/poll@0.2`` semantics, as a table of the model's rules, plus the
async main loop (fresh wake futures, wake-ups from I/O, stop).

| wasi:io/poll rule                                   | test                                      |
|-----------------------------------------------------|-------------------------------------------|
| poll traps on an empty list                         | test_poll_empty_list_is_an_error          |
| poll returns indices of ALL ready pollables         | test_poll_returns_every_ready_index       |
| the same pollable twice yields both indices          | test_poll_duplicate_handle_yields_both    |
| poll blocks until at least one is ready             | test_poll_waits_until_one_fires           |
| ready() never blocks; a ready pollable stays ready  | test_pollable_ready_is_sticky_one_shot    |
| block() == poll([self])                             | test_pollable_wait_ready_blocks_until_... |
| fresh futures: readiness between calls not missed   | test_poll_readiness_between_calls_...     |
| (progressd) a cancelled pollable is an error        | test_poll_cancelled_handle_is_an_error    |
"""

from __future__ import annotations

import asyncio

import pytest
import uvloop

from progressd.clock import FakeClock, MonotonicClock
from progressd.errors import StateError
from progressd.poller import PollableKind, Poller, ProgressPollable, poll


def make_poller() -> tuple[Poller, FakeClock]:
    clock = FakeClock(10.0)
    return Poller(clock), clock


async def settle() -> None:
    """Let ready tasks run (a few loop turns, no time passes)."""
    for _ in range(5):
        await asyncio.sleep(0)


async def test_poll_empty_list_is_an_error() -> None:
    with pytest.raises(ValueError, match="empty wait set never wakes"):
        await poll([])


async def test_poll_returns_every_ready_index() -> None:
    poller, clock = make_poller()
    a = poller.subscribe_timer(clock.now() + 1, None)
    b = poller.subscribe(PollableKind.COMPLETION)
    c = poller.subscribe_timer(clock.now() + 5, None)
    d = poller.subscribe(PollableKind.REPORT)
    clock.advance(1)
    poller.make_ready(d)
    assert await poll([a, b, c, d]) == [0, 3]


async def test_poll_duplicate_handle_yields_both() -> None:
    poller, clock = make_poller()
    a = poller.subscribe_timer(clock.now(), None)
    b = poller.subscribe(PollableKind.CONDITION)
    assert await poll([a, b, a]) == [0, 2]


async def test_poll_waits_until_one_fires() -> None:
    poller, clock = make_poller()
    a = poller.subscribe(PollableKind.COMPLETION)
    b = poller.subscribe_timer(clock.now() + 2, None)
    task = asyncio.ensure_future(poll([a, b]))
    await settle()
    assert not task.done()
    clock.advance(2)
    poller.run_ready()
    assert await task == [1]
    assert a._callback is None and b._callback is None  # waiters detached


async def test_poll_wakes_on_completion_with_several_ready() -> None:
    poller, _ = make_poller()
    a = poller.subscribe(PollableKind.COMPLETION)
    b = poller.subscribe(PollableKind.COMPLETION)
    task = asyncio.ensure_future(poll([a, b]))
    await settle()
    poller.make_ready(b, "ok")
    poller.make_ready(a, "ok")
    poller.run_ready()
    assert await task == [0, 1]


async def test_pollable_ready_is_sticky_one_shot() -> None:
    poller, _ = make_poller()
    calls: list[ProgressPollable] = []
    h = poller.subscribe(PollableKind.COMPLETION, calls.append)
    assert not h.ready()
    poller.make_ready(h)
    poller.run_ready()
    for _ in range(3):
        assert h.ready()
        assert await poll([h]) == [0]
        poller.run_ready()
    assert calls == [h]  # fired exactly once; waiting again needs a new handle


async def test_pollable_wait_ready_blocks_until_the_handle_fires() -> None:
    poller, clock = make_poller()
    h = poller.subscribe_timer(clock.now() + 1, None)
    task = asyncio.ensure_future(h.wait_ready())
    await settle()
    assert not task.done()
    clock.advance(1)
    poller.run_ready()
    await task
    assert h.fired


async def test_poll_readiness_between_calls_is_never_missed() -> None:
    poller, _ = make_poller()
    a = poller.subscribe(PollableKind.COMPLETION)
    b = poller.subscribe(PollableKind.COMPLETION)
    first = asyncio.ensure_future(poll([a, b]))
    await settle()
    poller.make_ready(a)
    poller.make_ready(b)  # ready before the second call exists
    poller.run_ready()
    assert await first == [0, 1]
    # A new call builds a new future: b is seen at once, nothing from `first` is reused.
    assert await poll([b]) == [0]


async def test_poll_cancelled_handle_is_an_error() -> None:
    poller, _ = make_poller()
    h = poller.subscribe(PollableKind.CONDITION)
    h.cancel()
    with pytest.raises(StateError, match="cancelled"):
        await poll([h])


async def test_poll_handle_cancelled_while_waiting_fails_the_call() -> None:
    poller, _ = make_poller()
    h = poller.subscribe(PollableKind.CONDITION)
    task = asyncio.ensure_future(poll([h]))
    await settle()
    h.cancel()
    with pytest.raises(StateError, match="cancelled while being polled"):
        await task


async def test_poll_keeps_the_original_callback_and_restores_it() -> None:
    poller, _ = make_poller()
    calls: list[ProgressPollable] = []
    h = poller.subscribe(PollableKind.COMPLETION, calls.append)
    task = asyncio.ensure_future(poll([h]))
    await settle()
    assert h._callback is not calls.append  # wrapped while polled
    poller.make_ready(h)
    poller.run_ready()
    assert await task == [0]
    assert calls == [h]


async def test_poll_cancelled_task_detaches_its_waiter() -> None:
    poller, _ = make_poller()
    h = poller.subscribe(PollableKind.COMPLETION)
    task = asyncio.ensure_future(poll([h]))
    await settle()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert h._callback is None


# -- the async main loop ----------------------------------------------------------------------


async def test_poller_run_wakes_on_make_ready_from_io() -> None:
    poller, _ = make_poller()
    fired = asyncio.Event()
    h = poller.subscribe(PollableKind.COMPLETION, lambda _: fired.set())
    runner = asyncio.ensure_future(poller.run())
    await settle()
    assert poller._idle  # waiting on its sentinel deadline (FakeClock does not move)
    asyncio.get_running_loop().call_soon(poller.make_ready, h)
    await asyncio.wait_for(fired.wait(), 5)
    poller.stop()
    await runner
    assert not poller.running


async def test_poller_run_uses_a_fresh_wake_future_every_iteration(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    poller, _ = make_poller()
    loop = asyncio.get_running_loop()
    created: list[asyncio.Future[object]] = []
    real_create = loop.create_future

    def spy() -> asyncio.Future[object]:
        future = real_create()
        created.append(future)
        return future

    monkeypatch.setattr(loop, "create_future", spy)
    stale: list[object] = []
    seen = asyncio.Event()

    def spin(handle: ProgressPollable) -> None:
        if poller.statistics().iterations < 20:
            poller.subscribe_timer(poller.now, spin)
        else:
            seen.set()

    poller.add_iteration_hook(lambda now: stale.append(poller._wake))
    poller.subscribe_timer(poller.now, spin)
    runner = asyncio.ensure_future(poller.run())
    await asyncio.wait_for(seen.wait(), 5)
    poller.stop()
    await runner
    assert stale == [None] * len(stale)  # no wake future survives into an iteration
    assert len({id(f) for f in created}) == len(created) >= 20  # one new future per wait
    assert all(f.done() for f in created)


async def test_poller_run_fires_timers_at_their_deadline() -> None:
    poller = Poller(MonotonicClock())
    fired = asyncio.Event()
    due = poller.clock.now() + 0.005
    poller.subscribe_timer(due, lambda _: fired.set())
    runner = asyncio.ensure_future(poller.run())
    await asyncio.wait_for(fired.wait(), 5)
    assert poller.clock.now() >= due
    poller.stop()
    await runner
    assert poller.statistics().wake_latency_max_seconds < 1.0


async def test_poller_run_twice_is_an_error() -> None:
    poller, _ = make_poller()
    runner = asyncio.ensure_future(poller.run())
    await settle()
    with pytest.raises(StateError, match="already running"):
        await poller.run()
    poller.stop()
    await runner


async def test_poller_idle_wait_is_never_empty() -> None:
    poller, clock = make_poller()
    deadline, sentinel = poller._wait_deadline(clock.now())
    assert sentinel and deadline == clock.now() + poller.sentinel
    poller.subscribe_timer(clock.now() + 0.25, None)
    assert poller._wait_deadline(clock.now()) == (clock.now() + 0.25, False)
    poller.add_iteration_hook(lambda now: None, lambda: clock.now() + 0.1)
    assert poller._wait_deadline(clock.now()) == (clock.now() + 0.1, False)


async def test_poller_run_never_misses_a_handle_made_ready_mid_iteration() -> None:
    poller, _ = make_poller()
    fired = asyncio.Event()
    later = poller.subscribe(PollableKind.REPORT, lambda _: fired.set())
    # made ready from inside a callback, i.e. while an iteration's batch is running
    poller.subscribe_timer(poller.now, lambda _: poller.make_ready(later, "report"))
    runner = asyncio.ensure_future(poller.run())
    await asyncio.wait_for(fired.wait(), 5)
    poller.stop()
    await runner
    assert later.fired and later.value == "report"
    assert poller.statistics().iterations >= 2  # it ran in the next iteration, not this one


def test_poller_run_sleeps_the_slack_instead_of_spinning_on_a_near_timer() -> None:
    # On uvloop (millisecond timers) a 0.3 ms wait fires at once; without the slack the poller
    # went round ~20-30 times until the timer was due (measured), with it: one sleep.
    async def near_timer() -> int:
        poller = Poller(MonotonicClock(), slack=0.001)
        fired = asyncio.Event()
        due = poller.clock.now() + 0.0003
        poller.subscribe_timer(due, lambda _: fired.set())
        runner = asyncio.ensure_future(poller.run())
        await asyncio.wait_for(fired.wait(), 5)
        poller.stop()
        await runner
        assert poller.clock.now() >= due  # never early
        return poller.statistics().iterations

    assert uvloop.run(near_timer()) <= 3  # one sleep, not a busy loop until due
