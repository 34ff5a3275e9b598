"""Request deadlines of one pool, on ONE timer of the scheduler.

Design note. A request timeout is armed and, almost always, made moot a few milliseconds later
when the response arrives. A scheduler timer per request (``loop.call_at`` and ``cancel()``)
cost more than the rest of the request in perf/http.py, so a pool keeps its deadlines here
instead: the exchanges themselves, in one FIFO per timeout value. ``now`` only grows, so each
FIFO is sorted by deadline (``started + timeout``, computed when needed, never stored), and
adding is an ``append``. Completing an exchange (its state becoming ``DONE``) is the
cancellation: nothing to call. One scheduler timer is armed for the earliest deadline; when it
fires, expired exchanges are handed to ``on_expire`` and finished ones at the fronts are
dropped, then the timer is re-armed for the next live front.

Invariants: every FIFO is sorted by deadline; ``_armed_at`` is the deadline of the armed timer
or ``None``, and no live exchange has an earlier deadline. Hence the fast path of ``add``:
appending to a non-empty FIFO needs no arming. The timer is due no later than that FIFO's front
(live when the timer was last set; the timer only moves earlier until it fires), and the front
no later than the new deadline; inside ``_fire`` (no timer) the re-arm that ends it sees the
new exchange. Memory: finished exchanges behind a slow one wait in their FIFO until it reaches
the front, so a FIFO is compacted whenever it doubles past its size after the last compaction
(amortised O(1) per request).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

from progressd.http.exchange import DONE, Exchange
from progressd.http.scheduler import Scheduler, TimerHandle

_MIN_COMPACT = 1024


class Deadlines:
    """Exchanges with a timeout, expiring on one timer of ``scheduler``."""

    __slots__ = ("_armed", "_armed_at", "_compact_at", "_fifos", "_on_expire", "_scheduler")

    def __init__(self, scheduler: Scheduler, on_expire: Callable[[Exchange], None]) -> None:
        self._scheduler = scheduler
        self._on_expire = on_expire
        self._fifos: dict[float, deque[Exchange]] = {}
        self._compact_at: dict[float, int] = {}
        self._armed: TimerHandle | None = None
        self._armed_at: float | None = None

    def add(self, ex: Exchange, timeout: float) -> None:
        """Expire ``ex`` at ``ex.started + timeout`` unless it is ``DONE`` by then."""
        fifo = self._fifos.get(timeout)
        if fifo:  # see the module note: nothing to arm
            fifo.append(ex)
            if len(fifo) > self._compact_at[timeout]:
                self._compact(timeout)
            return
        if fifo is None:
            fifo = self._fifos[timeout] = deque()
            self._compact_at[timeout] = _MIN_COMPACT
        fifo.append(ex)
        deadline = ex.started + timeout
        armed_at = self._armed_at
        if armed_at is None or deadline < armed_at:
            self._arm(deadline)

    def __len__(self) -> int:
        """Exchanges held, finished ones not yet dropped included."""
        return sum(len(fifo) for fifo in self._fifos.values())

    def close(self) -> None:
        """Forget every deadline and disarm."""
        if self._armed is not None:
            self._armed.cancel()
        self._armed = self._armed_at = None
        self._fifos.clear()

    def _arm(self, when: float) -> None:
        if self._armed is not None:
            self._armed.cancel()
        self._armed_at = when
        self._armed = self._scheduler.call_at(when, self._fire)

    def _fire(self) -> None:
        self._armed = None
        self._armed_at = None
        now = self._scheduler.time()
        for timeout, fifo in list(self._fifos.items()):
            while fifo and (fifo[0].state == DONE or fifo[0].started + timeout <= now):
                ex = fifo.popleft()
                if ex.state != DONE:
                    self._on_expire(ex)  # may add: to the back, with a later deadline
        self._rearm()

    def _rearm(self) -> None:
        fronts = []
        for timeout, fifo in self._fifos.items():
            while fifo and fifo[0].state == DONE:
                fifo.popleft()
            if fifo:
                fronts.append(fifo[0].started + timeout)
        if fronts:
            earliest = min(fronts)
            if self._armed_at is None or earliest < self._armed_at:
                self._arm(earliest)

    def _compact(self, timeout: float) -> None:
        live = deque(ex for ex in self._fifos[timeout] if ex.state != DONE)
        self._fifos[timeout] = live
        self._compact_at[timeout] = max(_MIN_COMPACT, 2 * len(live))
