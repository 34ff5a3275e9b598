"""``Scheduler`` implementations: the poller, the plain event loop, and a fake for tests.

``PollerScheduler`` is what the daemon uses: each call is one ``ProgressPollable`` timer of
kind ``health`` or ``lease-expiry`` in the named priority class, so a member's next check is
one entry in the poller's heap, not a task. ``LoopScheduler`` serves code without a poller; it
ignores priority classes because the loop has none. ``FakeScheduler`` runs due callbacks only
when a test advances its clock, most urgent class first among callbacks due at the same instant.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from progressd.clock import FakeClock
from progressd.poller import PollableKind, Poller, ProgressPollable

DEFAULT_PRIORITIES: Mapping[str, int] = {"health": 0, "milestone": 1, "step": 2, "telemetry": 3}


class PollerScheduler:
    """``Scheduler`` on the progressd ``Poller`` (share its clock with the manager).

    Raises:
        ConfigError: from ``call_at`` for a class not in ``progress.poller.priorities``.
    """

    __slots__ = ("_poller", "_ranks")

    def __init__(self, poller: Poller) -> None:
        self._poller = poller
        self._ranks: dict[str, int] = {}

    def call_at(
        self,
        when: float,
        callback: Callable[[], None],
        priority_class: str,
        kind: str = "timer",
    ) -> ProgressPollable:
        rank = self._ranks.get(priority_class)
        if rank is None:
            rank = self._ranks[priority_class] = self._poller.rank_of(priority_class)
        return self._poller.subscribe_timer(
            when, lambda _handle: callback(), None, rank, PollableKind(kind)
        )


class LoopScheduler:
    """``Scheduler`` on ``loop.call_at``; pair it with ``LoopClock`` for one timebase."""

    __slots__ = ("_loop",)

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    def call_at(
        self,
        when: float,
        callback: Callable[[], None],
        priority_class: str,
        kind: str = "timer",
    ) -> asyncio.TimerHandle:
        return self._loop.call_at(when, callback)


@dataclass(slots=True)
class FakeCall:
    """A pending call in a ``FakeScheduler``; ``cancel()`` withdraws it."""

    when: float
    priority_class: str
    callback: Callable[[], None]
    kind: str = "timer"
    cancelled: bool = False

    def cancel(self) -> None:
        self.cancelled = True


class FakeScheduler:
    """A ``Scheduler`` for tests: nothing runs until ``advance``/``run_due`` is called.

    Raises:
        KeyError: from ``call_at`` for a priority class not in ``priorities``.
    """

    __slots__ = ("_heap", "_seq", "clock", "priorities", "ran")

    def __init__(self, clock: FakeClock, priorities: Mapping[str, int] = DEFAULT_PRIORITIES):
        self.clock = clock
        self.priorities = dict(priorities)
        self._heap: list[tuple[float, int, int, FakeCall]] = []
        self._seq = itertools.count()
        self.ran: list[tuple[float, str]] = []

    def call_at(
        self,
        when: float,
        callback: Callable[[], None],
        priority_class: str,
        kind: str = "timer",
    ) -> FakeCall:
        call = FakeCall(when, priority_class, callback, kind)
        rank = self.priorities[priority_class]
        heapq.heappush(self._heap, (when, rank, next(self._seq), call))
        return call

    def pending(self) -> list[FakeCall]:
        """Calls not yet run nor cancelled, in the order they would run."""
        return [entry[3] for entry in sorted(self._heap) if not entry[3].cancelled]

    def run_due(self) -> int:
        """Run every call due now (including ones they schedule for now); how many ran."""
        ran = 0
        now = self.clock.now()
        while self._heap and self._heap[0][0] <= now:
            call = heapq.heappop(self._heap)[3]
            if not call.cancelled:
                call.cancelled = True
                self.ran.append((now, call.priority_class))
                call.callback()
                ran += 1
        return ran

    def advance(self, seconds: float) -> int:
        """Move the clock forward, stopping at each due time to run its calls; how many ran."""
        target = self.clock.now() + seconds
        ran = 0
        while self._heap and self._heap[0][0] <= target:
            self.clock.set(max(self.clock.now(), self._heap[0][0]))
            ran += self.run_due()
        self.clock.set(target)
        return ran + self.run_due()
