"""The poller's asynchronous main loop: iterate, then await a fresh wake future.

Kept apart from ``core.py`` (the queues and the hot loop) because nothing here runs per handle:
once per iteration ``run()`` calls ``run_ready()`` and then waits on a future created for that
wait alone — resolved through ``call_soon`` when work is left, by ``call_later`` at the next
deadline (earliest timer, earliest hook deadline, or the sentinel: the wait set is never empty),
or early by ``make_ready``/``subscribe_*``/``notify`` through ``_wake_up``.

Timer slack: a wait that would end within ``slack`` (1 ms) sleeps ``slack`` instead. The loop's
timers have millisecond resolution, so a shorter wait would fire at once and the poller would
spin until the due instant, burning a core at ~10,000 wakes/s; with the slack it wakes about
once a millisecond and takes every timer due by then (wake latency up to ~1 ms more).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING

from progressd.clock import Clock
from progressd.errors import StateError
from progressd.poller.gcpolicy import IdleCollector

if TYPE_CHECKING:
    from progressd.poller.core import IterationHook

__all__ = ["MainLoop"]

_INF = float("inf")


def _resolve(future: asyncio.Future[str], reason: str) -> None:
    if not future.done():
        future.set_result(reason)


class MainLoop:
    """The ``run()``/``stop()`` half of ``Poller`` (a mixin: it uses the poller's state)."""

    # the loop's own state; the rest of Poller's slots are declared on Poller
    __slots__ = ("_armed", "_idle", "_running", "_sentinel_wakeups", "_stopping", "_wake")

    clock: Clock
    sentinel: float
    slack: float
    _hooks: list[IterationHook]
    _wake: asyncio.Future[str] | None
    _idle: bool
    _armed: float
    _stopping: bool
    _running: bool
    _sentinel_wakeups: int
    _collector: IdleCollector | None
    run_ready: Callable[..., int]
    has_ready: Callable[[], bool]
    next_deadline: Callable[[], float | None]

    async def run(self) -> None:
        """The daemon's main loop: iterate until ``stop()`` or cancellation.

        Raises:
            StateError: when the poller is already running.
        """
        if self._running:
            raise StateError("the poller is already running; one run() per poller")
        loop = asyncio.get_running_loop()
        self._running = True
        self._stopping = False
        collector = self._collector
        if collector is not None:
            collector.start()
        try:
            while not self._stopping:
                self.run_ready()
                if not self._stopping:
                    await self._wait(loop)
        finally:
            self._running = False
            self._idle = False
            self._wake = None
            if collector is not None:
                collector.stop()

    async def _wait(self, loop: asyncio.AbstractEventLoop) -> None:
        future: asyncio.Future[str] = loop.create_future()  # fresh every iteration
        self._wake = future
        timer: asyncio.TimerHandle | None = None
        collector = self._collector
        if self.has_ready():
            if collector is not None:
                collector.on_busy()
            loop.call_soon(_resolve, future, "busy")
        else:
            deadline, is_sentinel = self._wait_deadline(self.clock.now())
            if collector is not None:
                collector.on_idle(deadline - self.clock.now())
            delay = deadline - self.clock.now()
            if delay > 0.0:  # never shorter than the slack: sleep, do not spin on a due timer
                delay = max(delay, self.slack)
            reason = "sentinel" if is_sentinel else "deadline"
            timer = loop.call_later(max(delay, 0.0), _resolve, future, reason)
            self._armed = deadline
            self._idle = True
        try:
            if await future == "sentinel":
                self._sentinel_wakeups += 1
        finally:
            self._idle = False
            self._armed = _INF
            self._wake = None
            if timer is not None:
                timer.cancel()

    def stop(self) -> None:
        """Make ``run()`` return after the current iteration."""
        self._stopping = True
        future = self._wake
        if future is not None and not future.done():
            future.set_result("stop")

    @property
    def running(self) -> bool:
        return self._running

    def _wait_deadline(self, now: float) -> tuple[float, bool]:
        """The instant the idle wait ends and whether it is the sentinel."""
        deadline = self.next_deadline()
        for hook in self._hooks:
            if hook.next_deadline is not None:
                hook_deadline = hook.next_deadline()
                if hook_deadline is not None and (deadline is None or hook_deadline < deadline):
                    deadline = hook_deadline
        sentinel = now + self.sentinel
        if deadline is None or deadline > sentinel:
            return sentinel, True
        return deadline, False
