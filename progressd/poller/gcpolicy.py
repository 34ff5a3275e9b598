"""Cyclic garbage collection moved to the poller's idle moments.

A daemon with 100,000 users keeps a few hundred thousand GC-tracked objects alive (pollables,
timer slots, rows' cold values). CPython's automatic collector runs whenever allocations pass
a threshold — in the middle of a busy iteration — and a full (generation 2) collection over that
population pauses the loop for tens of milliseconds (35 ms measured here at 100,000 timer
waiters), which is most of the wake-latency tail.

``IdleCollector`` (``Poller(gc_policy="idle")``, the default) turns the automatic collector
off while ``Poller.run()`` runs and collects instead:

- the young generations (0, 1) when the poller is about to sleep at least ``min_idle``,
  generation 0 holds ``young_batch`` (10) times its threshold, and the last young collection is
  ``young_interval`` (0.1 s) ago — a millisecond of work where nothing is due, at most ten times
  a second. Not at every threshold: under HTTP load the poller "sleeps" between nearly every
  batch of completions, and each young collection walks the ~thousands of objects of the
  requests in flight, whatever its size, to find next to nothing (the hot path's objects are
  freed by reference counting). Collecting every 700 allocations cost ~13 % of a request's CPU
  (`perf/run.py --loopback`: 8.6-9.0 -> 7.7-7.9 µs per request at 10x); and generation 0's count
  is no measure of garbage anyway — CPython adds every tracked allocation and subtracts frees
  only while it is above zero, so at 1,000 requests in flight it climbed past 10x the threshold
  between nearly every batch (140 collections a second, ~0.6 µs a request) until the interval;
- all generations every ``full_interval`` seconds, at the next idle moment;
- as safety valves, whatever the load: generation 0 when it holds 20 times its threshold (at
  most once per ``young_interval``), and a full collection when one is ``2 * full_interval``
  overdue. Garbage is therefore still collected, with pauses bounded in frequency rather than
  triggered by allocation.

The previous collector state is restored when ``run()`` returns. Progressd's hot objects are
freed by reference counting (a fired pollable has no cycle keeping it alive), so deferring
cycle collection costs memory only for real cycles, which are rare.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable

__all__ = ["IdleCollector"]

_VALVE = 20


class IdleCollector:
    """Collect garbage when idle; see the module note."""

    __slots__ = (
        "_clock",
        "_last_full",
        "_last_young",
        "_was_enabled",
        "full_collections",
        "full_interval",
        "min_idle",
        "pause_max",
        "young_batch",
        "young_collections",
        "young_interval",
    )

    def __init__(
        self,
        *,
        min_idle: float = 0.002,
        full_interval: float = 60.0,
        young_batch: int = 10,
        young_interval: float = 0.1,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.min_idle = min_idle
        self.young_batch = young_batch
        self.young_interval = young_interval
        self.full_interval = full_interval
        self._clock = clock
        self._was_enabled = gc.isenabled()
        self._last_full = self._last_young = clock()
        self.young_collections = 0
        self.full_collections = 0
        self.pause_max = 0.0

    def start(self) -> None:
        self._was_enabled = gc.isenabled()
        self._last_full = self._last_young = self._clock()
        gc.disable()

    def stop(self) -> None:
        if self._was_enabled:
            gc.enable()

    def on_busy(self) -> None:
        """Called every iteration: only the safety valves."""
        threshold = gc.get_threshold()[0]
        now = self._clock()
        if now - self._last_full >= 2 * self.full_interval:
            self._collect(2, now)
        elif (
            threshold
            and gc.get_count()[0] >= _VALVE * threshold
            and now - self._last_young >= self.young_interval
        ):
            self._collect(0, now)

    def on_idle(self, idle_for: float) -> None:
        """Called before the loop sleeps ``idle_for`` seconds."""
        if idle_for < self.min_idle:
            return
        now = self._clock()
        if now - self._last_full >= self.full_interval:
            self._collect(2, now)
            return
        if now - self._last_young < self.young_interval:
            return
        counts, thresholds = gc.get_count(), gc.get_threshold()
        if counts[0] >= self.young_batch * thresholds[0]:
            self._collect(1 if counts[1] >= thresholds[1] else 0, now)

    def _collect(self, generation: int, now: float) -> None:
        started = time.perf_counter()
        gc.collect(generation)
        self.pause_max = max(self.pause_max, time.perf_counter() - started)
        self._last_young = now  # a full collection collects the young generations too
        if generation == 2:
            self.full_collections += 1
            self._last_full = now
        else:
            self.young_collections += 1
