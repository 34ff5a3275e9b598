"""The timer seam of the HTTP client.

Request and connect timeouts are plain timers: ``call_at(when, callback)`` returning a handle
with ``cancel()``. The running asyncio loop already is such a scheduler (``loop.time()`` and
``loop.call_at``); the poller can supply its timer pollables instead, and tests supply a manual
scheduler that fires timers when told, so no test sleeps. ``TimerQueue`` multiplexes many
timers onto one timer of any such scheduler: pools use it over the loop by default.
"""

from __future__ import annotations

import heapq
import math
from collections import deque
from collections.abc import Callable
from typing import Protocol


class TimerHandle(Protocol):
    """A scheduled callback that can be cancelled before it runs."""

    def cancel(self) -> None: ...


class Scheduler(Protocol):
    """A monotonic clock and one-shot timers on the same timebase."""

    def time(self) -> float: ...

    def call_at(self, when: float, callback: Callable[[], object], /) -> TimerHandle: ...


def _nothing() -> None:
    pass


class QueuedTimer:
    """A timer in a ``TimerQueue``; ``cancel()`` is a flag, the queue drops it lazily."""

    __slots__ = ("callback", "cancelled", "queue", "when")

    def __init__(self, queue: TimerQueue, when: float, callback: Callable[[], object]) -> None:
        self.queue = queue
        self.when = when
        self.callback = callback
        self.cancelled = False

    def cancel(self) -> None:
        if not self.cancelled:
            self.cancelled = True
            self.callback = _nothing  # let what the callback holds go now, not at the front
            self.queue.cancelled += 1


class TimerQueue:
    """Many one-shot timers on ONE timer of a base scheduler (the loop by default).

    A request timeout is armed and, almost always, cancelled a few milliseconds later. One loop
    timer per request costs more than the rest of the request (measured in perf/http.py), so
    the pool keeps its deadlines here: a FIFO for deadlines that arrive in order (one timeout
    value: the common case), a heap for the rest, and the base timer armed for the earliest.
    Cancelling sets a flag; cancelled timers are dropped when they reach the front, and both
    queues are compacted once more than half their entries are cancelled, so memory stays
    proportional to the timers still pending.

    Invariants: ``_armed_at`` is the deadline of the armed base timer, or ``None``; every live
    timer's deadline is >= ``_armed_at`` or it is due and about to fire.
    """

    __slots__ = ("_armed", "_armed_at", "_base", "_fifo", "_heap", "_seq", "cancelled", "time")

    def __init__(self, base: Scheduler) -> None:
        self._base = base
        self.time: Callable[[], float] = base.time  # the base's clock, one call per read
        self._fifo: deque[QueuedTimer] = deque()
        self._heap: list[tuple[float, int, QueuedTimer]] = []
        self._seq = 0
        self._armed: TimerHandle | None = None
        self._armed_at: float | None = None
        self.cancelled = 0

    def call_at(self, when: float, callback: Callable[[], object], /) -> QueuedTimer:
        timer = QueuedTimer(self, when, callback)
        fifo = self._fifo
        while fifo and fifo[0].cancelled:
            fifo.popleft()
            self.cancelled -= 1
        if not fifo or when >= fifo[-1].when:
            fifo.append(timer)
        else:
            self._seq += 1
            heapq.heappush(self._heap, (when, self._seq, timer))
        if self.cancelled > 1024 and self.cancelled * 2 > len(fifo) + len(self._heap):
            self._compact()
        if self._armed_at is None or when < self._armed_at:
            self._arm(when)
        return timer

    def __len__(self) -> int:
        """Timers held, cancelled ones not yet dropped included."""
        return len(self._fifo) + len(self._heap)

    def _arm(self, when: float) -> None:
        if self._armed is not None:
            self._armed.cancel()
        self._armed_at = when
        self._armed = self._base.call_at(when, self._fire)

    def _disarm(self) -> None:
        self._armed = None
        self._armed_at = None

    def _fire(self) -> None:
        self._disarm()
        now = self._base.time()
        while (timer := self._pop_due(now)) is not None:
            timer.callback()
        fifo, heap = self._fifo, self._heap
        nxt = min(fifo[0].when if fifo else math.inf, heap[0][0] if heap else math.inf)
        if nxt != math.inf and (self._armed_at is None or nxt < self._armed_at):
            self._arm(nxt)  # a callback may have armed a later deadline meanwhile

    def _pop_due(self, now: float) -> QueuedTimer | None:
        """The earliest due live timer, dropping cancelled ones on the way; None if none."""
        fifo, heap = self._fifo, self._heap
        while True:
            while fifo and fifo[0].cancelled:
                fifo.popleft()
                self.cancelled -= 1
            while heap and heap[0][2].cancelled:
                heapq.heappop(heap)
                self.cancelled -= 1
            head = fifo[0] if fifo else None
            top = heap[0][2] if heap else None
            if top is not None and (head is None or top.when < head.when):
                if top.when > now:
                    return None
                heapq.heappop(heap)
                top.cancelled = True  # fired: a later cancel() is a no-op
                return top
            if head is None or head.when > now:
                return None
            fifo.popleft()
            head.cancelled = True
            return head

    def _compact(self) -> None:
        self._fifo = deque(t for t in self._fifo if not t.cancelled)
        self._heap = [entry for entry in self._heap if not entry[2].cancelled]
        heapq.heapify(self._heap)
        self.cancelled = 0
