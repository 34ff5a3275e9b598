"""The timer seam of the HTTP client.

Request and connect timeouts are plain timers: ``call_at(when, callback)`` returning a handle
with ``cancel()``. The running asyncio loop already is such a scheduler (``loop.time()`` and
``loop.call_at``); the poller can supply its timer pollables instead, and tests supply a manual
scheduler that fires timers when told, so no test sleeps. A pool arms one timer at a time
for all its request deadlines (see ``deadlines.py``), plus one per connect attempt.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol


class TimerHandle(Protocol):
    """A scheduled callback that can be cancelled before it runs."""

    def cancel(self) -> None: ...


class Scheduler(Protocol):
    """A monotonic clock and one-shot timers on the same timebase."""

    def time(self) -> float: ...

    def call_at(self, when: float, callback: Callable[[], object], /) -> TimerHandle: ...
