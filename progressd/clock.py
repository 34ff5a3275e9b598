"""Injected time.

Everything that waits or schedules (the poller, event batching, leases, health checks) takes a
``Clock`` instead of calling ``time`` or ``loop.time()`` itself, so unit tests drive time with a
``FakeClock`` and never sleep.
"""

from __future__ import annotations

import asyncio
import time
from typing import Protocol


class Clock(Protocol):
    """A monotonic clock in seconds. ``now()`` never goes backwards."""

    def now(self) -> float: ...


class MonotonicClock:
    """``time.monotonic()``; the same timebase as the asyncio loop's ``time()`` on Linux."""

    __slots__ = ()

    def now(self) -> float:
        return time.monotonic()


class LoopClock:
    """The running event loop's clock, so deadlines line up with ``loop.call_at``."""

    __slots__ = ("_loop",)

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    def now(self) -> float:
        return self._loop.time()


class FakeClock:
    """A clock that moves only when told to. For tests.

    Raises:
        ValueError: from ``advance`` when asked to go backwards.
    """

    __slots__ = ("_now",)

    def __init__(self, start: float = 0.0) -> None:
        self._now = start

    def now(self) -> float:
        return self._now

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError(f"a clock cannot go backwards (advance by {seconds})")
        self._now += seconds

    def set(self, instant: float) -> None:
        self.advance(instant - self._now)
