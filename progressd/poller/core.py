"""The poll loop: a priority queue of one-shot pollables on one event loop.

Design note. progressd runs 100k+ virtual users on one thread by making each waiting user a
*queue entry*, not a coroutine: a ``ProgressPollable`` in the timer wheel (thinking, health check
due, lease expiry) or parked until ``make_ready`` (step completion, condition, report). The loop
mirrors a ``wasi:io/poll`` guest runtime:

1. Every iteration starts from the clock: due timers move from the timer wheel to their
   class's ready queue. Handles made ready by I/O since the last iteration are already queued.
2. The ready queues are cut into a *fresh batch* (budget split by ``split_budget``: a floor per
   class, then strict priority, then due order inside a class). The batch is detached before it
   runs, so handles made ready while it runs — including a handle that re-subscribes itself
   at once — wait for the next iteration: one always-ready handle cannot monopolise a turn.
3. The batch runs in a tight loop: state to FIRED, callback, done. No future per handle.
4. Per-iteration hooks run (the event bus flushes its due batches).
5. ``run()`` (mainloop.py) then awaits a FRESH future: resolved via ``call_soon`` when work is left
   (the loop gets to do I/O in between), else by ``call_later`` at the next deadline — the
   earliest timer, hook deadline or the sentinel, so the wait set is never empty — or early by
   ``make_ready``/``subscribe_*``/``notify``. A future is never awaited twice.

Trade-offs: waiting timers sit in millisecond slots (timers.py), not one big heap, so a slot
is sorted by due time as it leaves; cancellation is lazy (dead entries are dropped when their
slot is taken, and the slots are rebuilt when more than half of the entries are dead); wake
latency is measured when a run of handles sharing one due instant ends, so it may overstate
(never understate) for the earlier handles of that run; ordering by due time inside a class
relies on the clock being monotonic, with one sort when event-ready and timer-ready handles
meet in the same batch.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from operator import attrgetter
from typing import Any, Final, Literal

from progressd.clock import Clock
from progressd.errors import StateError
from progressd.poller.gcpolicy import IdleCollector
from progressd.poller.mainloop import MainLoop
from progressd.poller.poll import wake_cancelled
from progressd.poller.pollable import (
    CANCELLED,
    FIRED,
    READY,
    WAITING_EVENT,
    WAITING_TIMER,
    PollableKind,
    ProgressPollable,
    ReadyCallback,
)
from progressd.poller.priorities import (
    DEFAULT_PRIORITIES,
    PriorityClasses,
    split_budget,
    validate_io_budget,
    validate_limits,
)
from progressd.poller.stats import PollerStatistics, WakeLatencyHistogram
from progressd.poller.timers import TimerWheel

__all__ = ["AGAIN", "ErrorHandler", "IterationHook", "Poller"]

_log = logging.getLogger("progressd.poller")
_INF = float("inf")
_by_due = attrgetter("due")
_TIMER = PollableKind.TIMER

ErrorHandler = Callable[[BaseException, object], object]
"""Receives an exception raised by a ready callback or a hook, and the handle or hook."""


class IterationHook:
    """A function run after every iteration's batch, with an optional deadline source.

    ``run(now)`` does the work (e.g. ``EventBus.flush_due``); ``next_deadline()`` returns the
    instant it next needs a turn, or ``None``; the idle wait never sleeps past it.
    """

    __slots__ = ("next_deadline", "run")

    def __init__(
        self, run: Callable[[float], object], next_deadline: Callable[[], float | None] | None
    ) -> None:
        self.run = run
        self.next_deadline = next_deadline


class _ReadySlot(ProgressPollable):
    """A re-armable handle (``Poller.subscribe_timer(..., rearmable=True)``)."""

    __slots__ = ()


class _Again:
    __slots__ = ()

    def __repr__(self) -> str:
        return "AGAIN"


AGAIN: Final = _Again()
"""What a slot's callback returns to run again (``Poller.subscribe_timer``, ``rearmable``)."""


def _log_error(exc: BaseException, source: object) -> None:
    _log.error("poller: %r raised", source, exc_info=exc)


class Poller(MainLoop):
    """Runs ready ``ProgressPollable`` handles in priority order, a budget per iteration.

    ``priorities`` is ``progress.poller.priorities`` (lower runs first). ``budget`` bounds the
    handles run per iteration (so I/O is served between iterations); ``io_budget`` (default
    ``min(budget, 256)``) is the smaller bound of an iteration while handles made ready by
    events (step completions, reports) are queued — their callbacks mostly start I/O, and
    serving the loop's I/O between smaller batches touches each connection while it is still
    in cache (perf/http.py, 1,000 users: ~57k req/s at 1024 a batch, ~70k at 256); ``floor``
    is the share of it each non-empty class is guaranteed (default
    ``budget // (8 * classes)``, at least 1, never above the iteration's bound);
    ``sentinel`` caps an idle wait, so the wait set is never empty; ``slack`` is the shortest
    idle sleep (mainloop.py). ``gc_policy="idle"`` (the
    default) moves cyclic garbage collection to idle moments while ``run()`` runs, restoring the
    collector afterwards (gcpolicy.py); ``"default"`` leaves the collector alone.

    Raises:
        ConfigError: for an invalid priority mapping, budget, io_budget, floor or sentinel.
    """

    # slots, not a __dict__: past 30 attributes CPython 3.11 stops sharing instance-dict keys,
    # and every attribute read on the hot path becomes a dict lookup (MainLoop declares the
    # loop's own six)
    __slots__ = (
        "_batch_max",
        "_busy_seconds",
        "_cancelled",
        "_collector",
        "_dead_ready",
        "_errors",
        "_events",
        "_handles_run",
        "_heads",
        "_hooks",
        "_iteration_max",
        "_iterations",
        "_latency",
        "_now",
        "_on_error",
        "_stamp",
        "_starvation",
        "_timed",
        "_wheel",
        "budget",
        "classes",
        "clock",
        "default_rank",
        "floor",
        "io_budget",
        "sentinel",
        "slack",
    )

    def __init__(
        self,
        clock: Clock,
        priorities: Mapping[str, int] = DEFAULT_PRIORITIES,
        *,
        budget: int = 1024,
        io_budget: int | None = None,
        floor: int | None = None,
        sentinel: float = 1.0,
        slack: float = 0.001,
        on_error: ErrorHandler = _log_error,
        gc_policy: Literal["default", "idle"] = "idle",
    ) -> None:
        self.clock = clock
        self.classes = PriorityClasses(priorities)
        ranks = self.classes.count
        self.budget, self.floor, self.sentinel = validate_limits(budget, floor, sentinel, ranks)
        self.slack = max(0.0, float(slack))
        self.io_budget = validate_io_budget(io_budget, self.budget)
        self.default_rank = self.classes.rank_of("step") if "step" in self.classes else ranks - 1
        self._on_error = on_error
        # Invariants: _timed[r][_heads[r]:] (timer-ready) and _events[r] (made ready) each hold
        # rank r's READY or CANCELLED handles in due order; _dead_ready[r] counts the CANCELLED
        # ones among them. Waiting timers live in the TimerWheel (its invariants: timers.py).
        self._timed: list[list[ProgressPollable]] = [[] for _ in range(ranks)]
        self._heads = [0] * ranks
        self._events: list[list[ProgressPollable]] = [[] for _ in range(ranks)]
        self._dead_ready = [0] * ranks
        self._wheel = TimerWheel()
        self._now = clock.now()
        self._stamp: float | None = None
        """The instant stamped on handles made ready since the last iteration began or ended
        (``make_ready``): one clock read per turn of the loop, not one per event."""
        self._hooks: list[IterationHook] = []
        self._wake: asyncio.Future[str] | None = None
        self._idle = False
        self._armed = _INF
        self._stopping = False
        self._running = False
        self._collector = IdleCollector() if gc_policy == "idle" else None
        self._init_counters()

    def _init_counters(self) -> None:
        self._iterations = 0
        self._handles_run = 0
        self._batch_max = 0
        self._busy_seconds = 0.0
        self._iteration_max = 0.0
        self._latency = WakeLatencyHistogram()
        self._starvation = 0
        self._cancelled = 0
        self._errors = 0
        self._sentinel_wakeups = 0

    # -- subscribing ----------------------------------------------------------------------

    @property
    def now(self) -> float:
        """The instant the current (or last) iteration started; compute think deadlines from
        it (``poller.now + think``) so a zero think goes straight to the ready queue."""
        return self._now

    def rank_of(self, name: str) -> int:
        """The rank of priority class ``name``, to pass as ``rank=``.

        Raises:
            ConfigError: when ``name`` is not a configured class.
        """
        return self.classes.rank_of(name)

    def subscribe_timer(
        self,
        due: float,
        callback: ReadyCallback | None = None,
        owner: Any = None,
        rank: int | None = None,
        kind: PollableKind = PollableKind.TIMER,
        *,
        rearmable: bool = False,
    ) -> ProgressPollable:
        """A handle that is ready at instant ``due`` (at once when ``due <= now``).

        ``rearmable``: a *slot*, private to its subscriber, whose callback may return
        ``AGAIN`` to run again at the next iteration's instant — a zero think looping without
        a handle per turn (the poller re-arms it in place: O(1), no allocation). One-shot holds
        for every other handle: only a slot is ever re-armed, only by its own callback's
        ``AGAIN``. A cancelled slot never runs again; inside its callback it has fired, so
        ``cancel`` returns ``False`` there as for any fired handle and the return value
        decides. Hold a slot only to ``cancel`` it, never ``poll`` it. A handle that is not a
        slot and returns ``AGAIN`` is reported to the error handler (a ``StateError``) and
        stays spent.
        """
        if rank is None:
            rank = self.default_rank
        now = self._now
        cls = _ReadySlot if rearmable else ProgressPollable
        if due <= now:
            handle = cls(self, kind, owner, rank, callback, due, READY)
            self._timed[rank].append(handle)
            if due < now:
                self._order_timed(rank)
            if self._idle:
                self._wake_up()
            return handle
        handle = cls(self, kind, owner, rank, callback, due, WAITING_TIMER)
        self._wheel.add(handle)
        if self._idle and due < self._armed:
            self._wake_up()
        return handle

    def subscribe_duration(
        self,
        delay: float,
        callback: ReadyCallback | None = None,
        owner: Any = None,
        rank: int | None = None,
    ) -> ProgressPollable:
        """A timer ready ``delay`` seconds after the clock's current instant."""
        return self.subscribe_timer(self.clock.now() + max(delay, 0.0), callback, owner, rank)

    def subscribe(
        self,
        kind: PollableKind,
        callback: ReadyCallback | None = None,
        owner: Any = None,
        rank: int | None = None,
        *,
        due: float | None = None,
    ) -> ProgressPollable:
        """A handle made ready by ``make_ready`` (a completion, condition, report, ...).

        With ``due``, it also becomes ready at that instant if nothing made it ready before (a
        timeout); ``value`` then stays ``None``.
        """
        if due is not None:
            return self.subscribe_timer(due, callback, owner, rank, kind)
        if rank is None:
            rank = self.default_rank
        return ProgressPollable(self, kind, owner, rank, callback, _INF, WAITING_EVENT)

    def make_ready(self, handle: ProgressPollable, value: object = None) -> bool:
        """Mark a waiting handle ready (its event happened) and queue it; O(1).

        Returns ``False`` (and does nothing) when the handle is already ready, fired or
        cancelled — so racing completions are harmless.

        The handle's ``due`` (where its wake latency is measured from) is the instant the first
        event since the last iteration was made ready: the events between two iterations —
        while the poller runs, one turn of the loop, one batch of I/O callbacks — share it, so
        the clock is read once per turn, and the latency they report is an upper bound, by at
        most the time between the two iterations (a turn; longer while ``run()`` is stopped,
        e.g. a paused run).
        """
        state = handle._state
        if state > WAITING_EVENT:
            return False
        if state == WAITING_TIMER:
            self._wheel.dead += 1
        handle._state = READY
        stamp = self._stamp
        if stamp is None:  # the first event since the last iteration: read the clock once
            stamp = self._stamp = self.clock.now()
        handle.due = stamp
        handle._value = value
        self._events[handle.rank].append(handle)
        if self._idle:
            self._wake_up()
        return True

    def cancel(self, handle: ProgressPollable) -> bool:
        """Withdraw a handle in O(1): it will never fire. ``False`` when already fired or
        cancelled. ``poll`` calls waiting on it fail with ``StateError``."""
        state = handle._state
        if state >= FIRED:
            return False
        handle._state = CANCELLED
        if state == WAITING_TIMER:
            self._wheel.dead += 1
            self._wheel.compact()
        elif state == READY:
            self._dead_ready[handle.rank] += 1
        wake_cancelled(handle)
        handle._callback = None
        self._cancelled += 1
        return True

    def notify(self) -> None:
        """Wake an idle ``run()`` so it starts an iteration now."""
        if self._idle:
            self._wake_up()

    def add_iteration_hook(
        self,
        run: Callable[[float], object],
        next_deadline: Callable[[], float | None] | None = None,
    ) -> Callable[[], None]:
        """Run ``run(now)`` after every iteration; returns a function that removes the hook."""
        hook = IterationHook(run, next_deadline)
        self._hooks.append(hook)
        self.notify()

        def remove() -> None:
            if hook in self._hooks:
                self._hooks.remove(hook)

        return remove

    # -- one iteration --------------------------------------------------------------------

    def run_ready(self, now: float | None = None) -> int:
        """Run one iteration synchronously; return how many handles fired.

        ``now`` defaults to the clock; tests pass nothing and drive a ``FakeClock``. When
        given, it is also the instant wake latencies are measured against.
        """
        started = time.perf_counter()
        fixed = now is not None
        if now is None:
            now = self.clock.now()
        self._now = now
        self._stamp = None
        self._iterations += 1
        self._wheel.pop_due(now, self._timed)
        batches = self._cut_batches()
        ran = 0
        for batch in batches:
            if batch:
                ran += self._fire(batch, now if fixed else None)
        self._run_hooks(now if fixed else self.clock.now())
        self._stamp = None  # events made ready from now on are stamped anew
        self._handles_run += ran
        self._batch_max = max(self._batch_max, ran)
        elapsed = time.perf_counter() - started
        self._busy_seconds += elapsed
        self._iteration_max = max(self._iteration_max, elapsed)
        return ran

    def _cut_batches(self) -> list[list[ProgressPollable]]:
        """Detach this iteration's batch per rank; what is left waits for the next one."""
        timed, heads, events = self._timed, self._heads, self._events
        lengths = [len(timed[r]) - heads[r] + len(events[r]) for r in range(len(timed))]
        total = sum(lengths)
        budget = self.budget
        if total > self.io_budget and any(events):  # completions queued: a smaller batch
            budget = self.io_budget
        if total <= budget:
            allot = lengths
        else:
            allot, rescues = split_budget(lengths, budget, min(self.floor, budget))
            self._starvation += rescues
        return [self._cut(rank, n) for rank, n in enumerate(allot)]

    def _cut(self, rank: int, count: int) -> list[ProgressPollable]:
        queue, head, events = self._timed[rank], self._heads[rank], self._events[rank]
        if events:
            # both are in due order: sort only when they interleave (events left over from a
            # batch cut short by the budget come before the new ones: no sort)
            interleave = len(queue) > head and queue[-1].due > events[0].due
            queue = queue[head:] + events if head else queue + events
            if interleave:
                queue.sort(key=_by_due)
            self._events[rank] = []
            head = 0
        if head + count >= len(queue):
            self._timed[rank] = []
            self._heads[rank] = 0
            return queue[head:] if head else queue
        batch = queue[head : head + count]
        head += count
        if head > 4096 and head * 2 > len(queue):
            del queue[:head]
            head = 0
        self._timed[rank] = queue
        self._heads[rank] = head
        return batch

    def _order_timed(self, rank: int) -> None:
        queue = self._timed[rank]
        head = self._heads[rank]
        if len(queue) - head > 1 and queue[-2].due > queue[-1].due:
            rest = queue[head:]
            rest.sort(key=_by_due)
            self._timed[rank] = rest
            self._heads[rank] = 0

    def _fire(self, batch: list[ProgressPollable], fixed_now: float | None) -> int:
        """The hot loop. Latency is recorded once per run of handles sharing a due instant.
        A slot whose callback returns ``AGAIN`` goes back to its queue, due now."""
        clock_now = self.clock.now
        record = self._latency.record
        ready, fired = READY, FIRED
        now, timed, again, slot = self._now, self._timed, AGAIN, _ReadySlot
        ran = 0
        run_due = _INF
        run_len = 0
        for handle in batch:
            if handle._state != ready:
                self._dead_ready[handle.rank] -= 1
                continue
            handle._state = fired
            due = handle.due
            if due != run_due:
                if run_len:
                    record((clock_now() if fixed_now is None else fixed_now) - run_due, run_len)
                    ran += run_len
                run_due = due
                run_len = 0
            run_len += 1
            callback = handle._callback
            if callback is not None:
                try:
                    if callback(handle) is again:
                        if type(handle) is not slot:
                            raise StateError(
                                f"{handle!r} returned AGAIN but is no live slot: not re-armed"
                            )
                        handle._state = ready
                        handle.due = now
                        timed[handle.rank].append(handle)
                except Exception as exc:
                    self._errors += 1
                    self._on_error(exc, handle)
        if run_len:
            record((clock_now() if fixed_now is None else fixed_now) - run_due, run_len)
            ran += run_len
        return ran

    def _run_hooks(self, now: float) -> None:
        for hook in self._hooks:
            try:
                hook.run(now)
            except Exception as exc:
                self._errors += 1
                self._on_error(exc, hook)

    # -- deadlines -------------------------------------------------------------------------

    def has_ready(self) -> bool:
        """Whether handles are queued to run (cancelled ones may be counted)."""
        timed, heads = self._timed, self._heads
        return any(len(timed[r]) > heads[r] or self._events[r] for r in range(len(timed)))

    def next_deadline(self) -> float | None:
        """The earliest instant a waiting timer is due, or ``None`` when none waits."""
        return self._wheel.next_due()

    def _wake_up(self) -> None:
        self._idle = False
        future = self._wake
        if future is not None and not future.done():
            future.set_result("wake")

    # -- statistics -----------------------------------------------------------------------

    def statistics(self) -> PollerStatistics:
        """A frozen snapshot of the counters (cheap; telemetry calls it at scrape time)."""
        iterations = self._iterations
        histogram = self._latency
        collector = self._collector
        return PollerStatistics(
            iterations=iterations,
            handles_run=self._handles_run,
            handles_per_iteration_mean=self._handles_run / iterations if iterations else 0.0,
            handles_per_iteration_max=self._batch_max,
            iteration_seconds_mean=self._busy_seconds / iterations if iterations else 0.0,
            iteration_seconds_max=self._iteration_max,
            iteration_seconds_total=self._busy_seconds,
            wake_latency_p50_seconds=histogram.percentile(0.50),
            wake_latency_p99_seconds=histogram.percentile(0.99),
            wake_latency_max_seconds=histogram.max,
            wake_latency_buckets=histogram.buckets(),
            queue_depth=self._queue_depths(),
            timers_waiting=self._wheel.waiting,
            starvation_events=self._starvation,
            handles_cancelled=self._cancelled,
            callback_errors=self._errors,
            sentinel_wakeups=self._sentinel_wakeups,
            gc_young_collections=collector.young_collections if collector else 0,
            gc_full_collections=collector.full_collections if collector else 0,
            gc_pause_max_seconds=collector.pause_max if collector else 0.0,
        )

    def _queue_depths(self) -> dict[str, int]:
        return {
            self.classes.label(rank): len(self._timed[rank])
            - self._heads[rank]
            + len(self._events[rank])
            - self._dead_ready[rank]
            for rank in range(self.classes.count)
        }

    def reset_statistics(self) -> None:
        """Zero the counters (benchmarks call it after their warm-up)."""
        self._init_counters()
