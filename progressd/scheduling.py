"""One-shot timers on a clock: the ``Scheduler`` seam and its test double.

The running asyncio loop already is a ``Scheduler`` (``loop.time()`` and ``loop.call_at``).
The HTTP client (request and connect timeouts) and the report mailbox (wait deadlines, replays)
take one instead of reaching for the loop, so tests drive them with ``FakeScheduler``: time moves
only when a test says, and due timers run then, earliest first (ties in scheduling order).
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from progressd.clock import FakeClock

__all__ = ["FakeScheduler", "Scheduler", "TimerHandle"]


class TimerHandle(Protocol):
    """A scheduled callback that can be cancelled before it runs."""

    def cancel(self) -> None: ...


class Scheduler(Protocol):
    """A monotonic clock and one-shot timers on the same timebase; an asyncio loop is one."""

    def time(self) -> float: ...

    def call_at(self, when: float, callback: Callable[[], object], /) -> TimerHandle: ...


class FakeScheduler:
    """A ``Scheduler`` on a ``FakeClock``: timers run when ``run_due``/``advance`` says. Tests.

    Raises:
        ValueError: from ``advance`` when asked to go backwards (see ``FakeClock``).
    """

    __slots__ = ("_clock", "_heap", "_seq")

    def __init__(self, clock: FakeClock) -> None:
        self._clock = clock
        self._heap: list[tuple[float, int, _FakeTimer]] = []
        self._seq = itertools.count()

    def time(self) -> float:
        return self._clock.now()

    def call_at(self, when: float, callback: Callable[[], object], /) -> _FakeTimer:
        timer = _FakeTimer(callback)
        heapq.heappush(self._heap, (when, next(self._seq), timer))
        return timer

    def advance(self, seconds: float) -> int:
        """Move the clock on by ``seconds``, then run what fell due; return how many ran."""
        self._clock.advance(seconds)
        return self.run_due()

    def run_due(self) -> int:
        """Run every live timer due by now, earliest first; return how many ran."""
        ran = 0
        while self._heap and self._heap[0][0] <= self._clock.now():
            timer = heapq.heappop(self._heap)[2]
            if not timer.cancelled:
                timer.cancelled = True
                timer.callback()
                ran += 1
        return ran

    def pending(self) -> int:
        """How many timers are armed and not cancelled."""
        return sum(1 for _, _, timer in self._heap if not timer.cancelled)


@dataclass(slots=True)
class _FakeTimer:
    callback: Callable[[], object]
    cancelled: bool = False

    def cancel(self) -> None:
        self.cancelled = True
