"""The timer seam of the HTTP client.

Request and connect timeouts are plain timers: ``call_at(when, callback)`` returning a handle
with ``cancel()``. The running asyncio loop already is such a scheduler (``loop.time()`` and
``loop.call_at``), but a pool defaults to ``LoopTimers``: the loop's timers on the monotonic
clock, because uvloop's ``time()`` is too coarse to time a request with. The poller can supply
its timer pollables instead, and tests supply a manual scheduler that fires timers when told,
so no test sleeps. A pool arms one timer at a time for all its request deadlines (see
``deadlines.py``), plus one per connect attempt.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from progressd.scheduling import Scheduler, TimerHandle

__all__ = ["LoopTimers", "Scheduler", "TimerHandle"]


class LoopTimers:
    """The loop's timers read on ``time.monotonic()``: a pool's default ``Scheduler``.

    uvloop's ``loop.time()`` counts whole milliseconds (libuv's cached ``uv_now``), so a latency
    taken from it is 0.0 for every sub-millisecond exchange and off by up to 1 ms for the rest.
    ``time.monotonic()`` reads the same clock (CLOCK_MONOTONIC; the stdlib loop's ``time()`` is
    exactly it) at full resolution, and ``loop.call_at`` accepts deadlines taken from it (uvloop
    may run one ~1 ms early; ``Deadlines`` re-checks the time and re-arms).
    """

    __slots__ = ("call_at", "time")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.time: Callable[[], float] = time.monotonic  # slots, not methods: one lookup each
        self.call_at: Callable[[float, Callable[[], object]], TimerHandle] = loop.call_at
